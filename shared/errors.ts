/** One catalogue of coded errors; each has a kind that maps to an HTTP status in one place. */

export type ErrorKind = 'invalid' | 'not_found' | 'conflict' | 'forbidden' | 'unauthorized' | 'temporary' | 'internal';

const httpStatusByKind: Record<ErrorKind, number> = {
  invalid: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  temporary: 503,
  internal: 500,
};

/**
 * A header on an answer that is whole but for a part that could not be had: a listing from
 * every node that one node did not answer. One header line per warning, each URI-encoded
 * (a header holds no newline and no byte above 0x7f).
 */
export const warningHeader = 'shoal-warning';

export class ShoalError extends Error {
  readonly code: string;
  readonly kind: ErrorKind;
  readonly hint: string | undefined;

  constructor(kind: ErrorKind, code: string, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'ShoalError';
    this.kind = kind;
    this.code = code;
    this.hint = options.hint;
  }

  get httpStatus(): number {
    return httpStatusByKind[this.kind];
  }

  /** The JSON body an API error is sent as. */
  toJSON(): { code: string; message: string; hint?: string } {
    return this.hint ? { code: this.code, message: this.message, hint: this.hint } : { code: this.code, message: this.message };
  }
}

export function kindForHttpStatus(status: number): ErrorKind {
  const found = Object.entries(httpStatusByKind).find(([, s]) => s === status);
  if (found) return found[0] as ErrorKind;
  return status >= 500 ? 'internal' : 'invalid';
}

export const errors = {
  invalid: (message: string, hint?: string) => new ShoalError('invalid', 'invalid_request', message, { hint }),
  notFound: (what: string, id: string, hint?: string) =>
    new ShoalError('not_found', `${what}_not_found`, `${what} "${id}" not found`, { hint }),
  conflict: (message: string, hint?: string) => new ShoalError('conflict', 'conflict', message, { hint }),
  versionConflict: (key: string) =>
    new ShoalError('conflict', 'version_conflict', `"${key}" was changed by someone else; read it again and retry`),
  unauthorized: (message: string) => new ShoalError('unauthorized', 'unauthorized', message),
  badJoinToken: () =>
    new ShoalError('forbidden', 'bad_join_token', 'the join token is not valid for this cluster (wrong, or rotated)', {
      hint: 'get the current one with `shoal join-token worker` on a manager',
    }),
  notLeader: (leader: string | undefined) =>
    new ShoalError('temporary', 'not_leader', leader ? `this manager is not the leader (leader: ${leader})` : 'no leader is elected yet'),
  deposed: () =>
    new ShoalError('temporary', 'deposed', 'this manager stopped leading before its write; the new leader decides instead'),
  unavailable: (message: string, cause?: unknown) => new ShoalError('temporary', 'unavailable', message, { cause }),
};

export function isShoalError(value: unknown): value is ShoalError {
  return value instanceof ShoalError;
}
