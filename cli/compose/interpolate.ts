/**
 * Compose's variable interpolation, as the Compose Specification defines it: `$VAR`,
 * `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`,
 * `${VAR:+alternative}`, `${VAR+alternative}`, and `$$` for a literal `$`. Defaults and
 * alternatives are interpolated in turn (`${A:-${B}}`).
 */

export interface Interpolated {
  value: string;
  /** Variables that were unset and had no default: compose warns and uses "". */
  unset: string[];
}

/** A `${VAR:?message}` whose variable is unset or empty, or a malformed expression. */
export class InterpolationError extends Error {
  constructor(
    message: string,
    /** Offset in the interpolated text where the expression starts. */
    readonly offset: number,
  ) {
    super(message);
  }
}

const namePattern = /^[A-Za-z_][A-Za-z0-9_]*/;

export function interpolate(text: string, env: Readonly<Record<string, string | undefined>>): Interpolated {
  const unset: string[] = [];
  const value = expand(text, env, unset, 0);
  return { value, unset: [...new Set(unset)] };
}

function expand(text: string, env: Readonly<Record<string, string | undefined>>, unset: string[], base: number): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const dollar = text.indexOf('$', i);
    if (dollar < 0) {
      out += text.slice(i);
      break;
    }
    out += text.slice(i, dollar);
    const next = text[dollar + 1];
    if (next === '$') {
      out += '$';
      i = dollar + 2;
      continue;
    }
    if (next === '{') {
      const close = matchingBrace(text, dollar + 1);
      if (close < 0) throw new InterpolationError(`"${text.slice(dollar)}": a \${ without its closing }`, base + dollar);
      out += substitute(text.slice(dollar + 2, close), env, unset, base + dollar);
      i = close + 1;
      continue;
    }
    const name = namePattern.exec(text.slice(dollar + 1))?.[0];
    if (!name) {
      // A lone `$` (before a digit, a space or the end) stays as it is, as compose leaves it.
      out += '$';
      i = dollar + 1;
      continue;
    }
    out += lookup(name, env, unset);
    i = dollar + 1 + name.length;
  }
  return out;
}

/** The index of the `}` closing the `{` at `open`, counting nested `${...}`. */
function matchingBrace(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === '{') depth++;
    else if (text[i] === '}' && --depth === 0) return i;
  }
  return -1;
}

function lookup(name: string, env: Readonly<Record<string, string | undefined>>, unset: string[]): string {
  const value = env[name];
  if (value === undefined) {
    unset.push(name);
    return '';
  }
  return value;
}

function substitute(body: string, env: Readonly<Record<string, string | undefined>>, unset: string[], offset: number): string {
  const name = namePattern.exec(body)?.[0];
  if (!name) throw new InterpolationError(`"\${${body}}": a variable name is letters, digits and "_", not starting with a digit`, offset);
  const rest = body.slice(name.length);
  if (rest === '') return lookup(name, env, unset);
  const operator = /^(:?[-?+])/.exec(rest)?.[1];
  if (!operator) throw new InterpolationError(`"\${${body}}": after the name comes }, :-, -, :?, ?, :+ or +`, offset);
  const word = rest.slice(operator.length);
  const value = env[name];
  // With a colon, an empty value counts as unset.
  const present = operator.startsWith(':') ? value !== undefined && value !== '' : value !== undefined;
  const expanded = () => expand(word, env, unset, offset + 2 + name.length + operator.length);
  switch (operator.replace(':', '')) {
    case '-':
      return present ? value! : expanded();
    case '+':
      return present ? expanded() : '';
    default: {
      if (present) return value!;
      const reason = expanded();
      throw new InterpolationError(`${name}: ${reason || (operator === ':?' ? 'is unset or empty' : 'is unset')}`, offset);
    }
  }
}

/**
 * Reads a `.env` file as compose does: NAME=value lines, `export ` allowed before the name,
 * `#` comments, values in single quotes taken literally, in double quotes with \n, \t, \\ and
 * \" unescaped, unquoted values trimmed and cut at ` #`. Returns the variables and, for a
 * line that is none of these, its number.
 */
export function parseDotEnv(text: string): { values: Record<string, string>; badLines: number[] } {
  const values: Record<string, string> = {};
  const badLines: number[] = [];
  const lines = text.split(/\r?\n/);
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*)$/.exec(line);
    if (!match) {
      badLines.push(index + 1);
      continue;
    }
    const [, name, rawValue] = match as unknown as [string, string, string];
    let value = rawValue;
    if (value.startsWith("'") && value.endsWith("'") && value.length >= 2) value = value.slice(1, -1);
    else if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) {
      value = value.slice(1, -1).replace(/\\([nt"\\])/g, (_, c: string) => ({ n: '\n', t: '\t', '"': '"', '\\': '\\' })[c]!);
    } else value = value.replace(/\s+#.*$/, '').trim();
    values[name] = value;
  }
  return { values, badLines };
}
