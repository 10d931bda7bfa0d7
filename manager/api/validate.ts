import type { z } from 'zod';
import { errors } from '../../shared/errors.ts';
import { describeIssues } from '../../shared/schemas.ts';

/** Parses a request part against its schema, or fails with a 400 that says what was wrong. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, what: string): z.infer<S> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw errors.invalid(`invalid ${what}: ${describeIssues(parsed.error)}`);
  return parsed.data;
}
