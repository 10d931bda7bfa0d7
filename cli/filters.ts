/** Docker's `--filter key=value` for listings: parsed once, each key checked against what the listing knows. */
import { ShoalError } from '../shared/errors.ts';

export type Filters = Map<string, string[]>;

export function parseFilters(values: readonly string[], known: readonly string[]): Filters {
  const filters: Filters = new Map();
  for (const value of values) {
    const index = value.indexOf('=');
    const key = index < 0 ? '' : value.slice(0, index).trim();
    if (!known.includes(key)) {
      throw new ShoalError('invalid', 'invalid_filter', `--filter "${value}": ${key ? `"${key}" is not a filter here` : 'write it KEY=VALUE'}; filters: ${known.join(', ')}`);
    }
    filters.set(key, [...(filters.get(key) ?? []), value.slice(index + 1)]);
  }
  return filters;
}

/**
 * As Docker combines them: values of one key are alternatives (any may match), different keys
 * must all match. `test` says whether one value matches the row.
 */
export function keep<Row>(rows: readonly Row[], filters: Filters, tests: Record<string, (row: Row, value: string) => boolean>): Row[] {
  return rows.filter((row) => [...filters].every(([key, values]) => values.some((value) => tests[key]!(row, value))));
}

export { labelMatches } from '../shared/schemas.ts';
