/**
 * Calico's selector language over workload labels, parsed into a tree that is evaluated
 * against a workload's labels, with errors that name their column:
 *   role == 'db' && stack in {'shop', 'ops'}     has(tier)     !has(debug) || env != 'prod'
 *   name starts with 'web'   name ends with '-api'   name contains 'cache'   all()
 * `&&` binds tighter than `||`; `!` negates what follows; parentheses group. A key is letters,
 * digits and `_ . / -`; a value is quoted with ' or ". Hand-written: no npm package parses
 * Calico's grammar, and a few dozen lines give errors at their column.
 */

export type Selector =
  | { kind: 'all' }
  | { kind: 'has'; key: string }
  | { kind: 'compare'; key: string; op: '==' | '!=' | 'contains' | 'starts with' | 'ends with'; value: string }
  | { kind: 'in'; key: string; values: string[]; negated: boolean }
  | { kind: 'not'; inner: Selector }
  | { kind: 'and' | 'or'; left: Selector; right: Selector };

export class SelectorError extends Error {
  constructor(
    message: string,
    /** 1-based column in the selector text. */
    readonly column: number,
  ) {
    super(`${message} at column ${column}`);
  }
}

type Token = { kind: 'key' | 'string' | 'op' | 'punct' | 'end'; text: string; column: number };

const operators = ['==', '!=', '&&', '||'];
const words = ['in', 'not', 'has', 'all', 'contains', 'starts', 'ends', 'with'];

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const char = text[i]!;
    const column = i + 1;
    if (/\s/.test(char)) {
      i++;
      continue;
    }
    const two = text.slice(i, i + 2);
    if (operators.includes(two)) {
      tokens.push({ kind: 'op', text: two, column });
      i += 2;
    } else if ('(){},!'.includes(char)) {
      tokens.push({ kind: 'punct', text: char, column });
      i++;
    } else if (char === "'" || char === '"') {
      const end = text.indexOf(char, i + 1);
      if (end < 0) throw new SelectorError(`unterminated string (no closing ${char})`, column);
      tokens.push({ kind: 'string', text: text.slice(i + 1, end), column });
      i = end + 1;
    } else if (/[A-Za-z0-9_./-]/.test(char)) {
      let end = i;
      while (end < text.length && /[A-Za-z0-9_./-]/.test(text[end]!)) end++;
      tokens.push({ kind: 'key', text: text.slice(i, end), column });
      i = end;
    } else {
      throw new SelectorError(`unexpected character "${char}"`, column);
    }
  }
  tokens.push({ kind: 'end', text: '', column: text.length + 1 });
  return tokens;
}

class Parser {
  private index = 0;

  constructor(private readonly tokens: Token[]) {}

  private peek(): Token {
    return this.tokens[this.index]!;
  }

  private next(): Token {
    return this.tokens[this.index++]!;
  }

  private expect(kind: Token['kind'], text: string | undefined, what: string): Token {
    const token = this.next();
    if (token.kind !== kind || (text !== undefined && token.text !== text)) throw new SelectorError(`expected ${what}, found ${describe(token)}`, token.column);
    return token;
  }

  private word(text: string): boolean {
    const token = this.peek();
    if (token.kind === 'key' && token.text === text) {
      this.index++;
      return true;
    }
    return false;
  }

  parse(): Selector {
    const selector = this.or();
    const rest = this.peek();
    if (rest.kind !== 'end') throw new SelectorError(`expected && or || or the end, found ${describe(rest)}`, rest.column);
    return selector;
  }

  private or(): Selector {
    return this.binary('||', 'or', () => this.and());
  }

  private and(): Selector {
    return this.binary('&&', 'and', () => this.unary());
  }

  /** Operands of one operator, left-associative: `a && b && c` is `(a && b) && c`. */
  private binary(operator: '&&' | '||', kind: 'and' | 'or', operand: () => Selector): Selector {
    let left = operand();
    while (this.peek().kind === 'op' && this.peek().text === operator) {
      this.index++;
      left = { kind, left, right: operand() };
    }
    return left;
  }

  private unary(): Selector {
    const token = this.peek();
    if (token.kind === 'punct' && token.text === '!') {
      this.index++;
      return { kind: 'not', inner: this.unary() };
    }
    return this.primary();
  }

  private primary(): Selector {
    const token = this.peek();
    if (token.kind === 'punct' && token.text === '(') {
      this.index++;
      const inner = this.or();
      this.expect('punct', ')', 'a closing ")"');
      return inner;
    }
    if (token.kind === 'key' && (token.text === 'has' || token.text === 'all') && this.tokens[this.index + 1]?.text === '(') {
      this.index += 2;
      if (token.text === 'all') {
        this.expect('punct', ')', 'a closing ")" (all() takes nothing)');
        return { kind: 'all' };
      }
      const key = this.expect('key', undefined, 'a label key inside has(...)').text;
      this.expect('punct', ')', 'a closing ")"');
      return { kind: 'has', key };
    }
    if (token.kind !== 'key' || words.includes(token.text)) throw new SelectorError(`expected a label key, has(...), all(), "!" or "(", found ${describe(token)}`, token.column);
    this.index++;
    const key = token.text;
    const op = this.peek();
    if (op.kind === 'op' && (op.text === '==' || op.text === '!=')) {
      this.index++;
      return { kind: 'compare', key, op: op.text, value: this.value(op.text) };
    }
    if (this.word('contains')) return { kind: 'compare', key, op: 'contains', value: this.value('contains') };
    for (const edge of ['starts', 'ends'] as const) {
      if (this.word(edge)) {
        if (!this.word('with')) throw new SelectorError(`expected "with" after "${edge}", found ${describe(this.peek())}`, this.peek().column);
        return { kind: 'compare', key, op: `${edge} with`, value: this.value(`${edge} with`) };
      }
    }
    const negated = this.word('not');
    if (this.word('in')) return { kind: 'in', key, values: this.set(), negated };
    if (negated) throw new SelectorError(`expected "in" after "not", found ${describe(this.peek())}`, this.peek().column);
    throw new SelectorError(`expected ==, !=, in, not in, contains, starts with or ends with after "${key}", found ${describe(op)}`, op.column);
  }

  private value(after: string): string {
    const token = this.next();
    if (token.kind !== 'string') throw new SelectorError(`expected a quoted value after ${after}, found ${describe(token)}`, token.column);
    return token.text;
  }

  private set(): string[] {
    this.expect('punct', '{', 'a "{" opening the set of values');
    const values: string[] = [];
    if (this.peek().kind === 'punct' && this.peek().text === '}') {
      this.index++;
      return values;
    }
    for (;;) {
      values.push(this.value(values.length === 0 ? '"{"' : '","'));
      const token = this.next();
      if (token.kind === 'punct' && token.text === '}') return values;
      if (!(token.kind === 'punct' && token.text === ',')) throw new SelectorError(`expected "," or "}" in the set, found ${describe(token)}`, token.column);
    }
  }
}

function describe(token: Token): string {
  if (token.kind === 'end') return 'the end';
  if (token.kind === 'string') return `'${token.text}'`;
  return `"${token.text}"`;
}

/** Parses a selector; throws a SelectorError naming the column of the first problem. */
export function parseSelector(text: string): Selector {
  if (text.trim() === '') throw new SelectorError('a selector cannot be empty (use all() to select every workload)', 1);
  return new Parser(tokenize(text)).parse();
}

/** Whether a workload with these labels is selected. */
export function selects(selector: Selector, labels: Readonly<Record<string, string>>): boolean {
  switch (selector.kind) {
    case 'all':
      return true;
    case 'has':
      return Object.hasOwn(labels, selector.key);
    case 'compare': {
      const value = Object.hasOwn(labels, selector.key) ? labels[selector.key] : undefined;
      // As Calico: != also selects a workload without the label.
      if (selector.op === '!=') return value !== selector.value;
      if (value === undefined) return false;
      if (selector.op === '==') return value === selector.value;
      if (selector.op === 'contains') return value.includes(selector.value);
      return selector.op === 'starts with' ? value.startsWith(selector.value) : value.endsWith(selector.value);
    }
    case 'in': {
      const value = Object.hasOwn(labels, selector.key) ? labels[selector.key] : undefined;
      const inside = value !== undefined && selector.values.includes(value);
      return selector.negated ? !inside : inside;
    }
    case 'not':
      return !selects(selector.inner, labels);
    case 'and':
      return selects(selector.left, labels) && selects(selector.right, labels);
    case 'or':
      return selects(selector.left, labels) || selects(selector.right, labels);
  }
}

const quote = (value: string) => (value.includes("'") ? `"${value}"` : `'${value}'`);

/** The selector as text that parses back to the same tree (groups in parentheses). */
export function formatSelector(selector: Selector): string {
  switch (selector.kind) {
    case 'all':
      return 'all()';
    case 'has':
      return `has(${selector.key})`;
    case 'compare':
      return `${selector.key} ${selector.op} ${quote(selector.value)}`;
    case 'in':
      return `${selector.key} ${selector.negated ? 'not in' : 'in'} {${selector.values.map(quote).join(', ')}}`;
    case 'not':
      return `!${selector.inner.kind === 'and' || selector.inner.kind === 'or' || selector.inner.kind === 'compare' || selector.inner.kind === 'in' ? `(${formatSelector(selector.inner)})` : formatSelector(selector.inner)}`;
    case 'and':
    case 'or':
      return `(${formatSelector(selector.left)} ${selector.kind === 'and' ? '&&' : '||'} ${formatSelector(selector.right)})`;
  }
}

/** The label keys a selector reads. */
export function selectorKeys(selector: Selector): Set<string> {
  switch (selector.kind) {
    case 'all':
      return new Set();
    case 'has':
    case 'compare':
    case 'in':
      return new Set([selector.key]);
    case 'not':
      return selectorKeys(selector.inner);
    case 'and':
    case 'or':
      return new Set([...selectorKeys(selector.left), ...selectorKeys(selector.right)]);
  }
}
