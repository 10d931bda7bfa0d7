/**
 * The daemons' structured logger: one JSON line per entry (time, level, component, message,
 * fields) on stderr, which the lab sends to a file. pino does the writing, levels and
 * redaction; the rest of the code sees only this small interface.
 */
import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  child(component: string): Logger;
}

export const logLevels = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof logLevels)[number];

/** Fields that must never reach a log: credentials under any of these names, at any depth up to two. */
const redactedPaths = ['token', 'joinToken', 'authorization', 'password', 'secret'].flatMap((name) => [name, `*.${name}`, `*.*.${name}`]);

export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go (tests pass a stream of their own); stderr by default. */
  destination?: DestinationStream;
}

/** The level from SHOAL_LOG_LEVEL, or info; a wrong value is refused with the choices. */
export function logLevelFrom(value: string | undefined): LogLevel {
  if (value === undefined || value === '') return 'info';
  if ((logLevels as readonly string[]).includes(value)) return value as LogLevel;
  throw new Error(`log level "${value}" is not one of ${logLevels.join(', ')}`);
}

export function createLogger(component: string, options: LoggerOptions = {}): Logger {
  const root = pino(
    {
      level: options.level ?? logLevelFrom(process.env.SHOAL_LOG_LEVEL),
      base: undefined,
      messageKey: 'message',
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: redactedPaths, censor: '[redacted]' },
    },
    options.destination ?? pino.destination({ fd: 2, sync: true }),
  );
  return wrap(root, component);
}

/** Children are made from the root, so each line has one `component` field, the full dotted name. */
function wrap(root: PinoLogger, component: string): Logger {
  const logger = root.child({ component });
  const at = (level: 'debug' | 'info' | 'warn' | 'error') => (message: string, fields: Record<string, unknown> = {}) => logger[level](fields, message);
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (name) => wrap(root, `${component}.${name}`),
  };
}

export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child: () => silentLogger,
};
