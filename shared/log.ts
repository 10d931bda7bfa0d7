/** A small structured logger: one JSON line per entry on stderr, which the lab sends to a file. */

export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  child(component: string): Logger;
}

export function createLogger(component: string, write: (line: string) => void = (line) => process.stderr.write(line)): Logger {
  const entry = (level: string) => (message: string, fields: Record<string, unknown> = {}) =>
    write(`${JSON.stringify({ time: new Date().toISOString(), level, component, message, ...fields })}\n`);
  return {
    info: entry('info'),
    warn: entry('warn'),
    error: entry('error'),
    child: (name) => createLogger(`${component}.${name}`, write),
  };
}

export const silentLogger: Logger = {
  info() {},
  warn() {},
  error() {},
  child: () => silentLogger,
};
