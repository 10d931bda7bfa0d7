import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { JoinTokenRole } from './schemas.ts';

/**
 * Join tokens read SHOAL-2-<CA digest>-<cluster id>-<role>-<secret>, as Swarm's
 * SWMTKN-1-<CA digest>-<secret>: the digest lets a joining host check that the manager it
 * reached holds a certificate of this cluster's CA before it sends the secret. Role is "w" or "m".
 */
const tokenPattern = /^SHOAL-2-([0-9a-z]{50})-([0-9a-f]{16})-([wm])-([0-9a-z]{32})$/;

export function newClusterId(): string {
  return randomBytes(8).toString('hex');
}

function secret(): string {
  // base36 keeps the token to one word that survives copy and paste
  return [...randomBytes(32)].map((b) => (b % 36).toString(36)).join('');
}

export function newJoinToken(caDigest: string, clusterId: string, role: JoinTokenRole): string {
  return `SHOAL-2-${caDigest}-${clusterId}-${role === 'worker' ? 'w' : 'm'}-${secret()}`;
}

export function newApiToken(): string {
  return randomBytes(24).toString('base64url');
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

export interface ParsedJoinToken {
  caDigest: string;
  clusterId: string;
  role: JoinTokenRole;
}

/** Parses a join token's shape; whether it is current is for the cluster to say. */
export function parseJoinToken(token: string): ParsedJoinToken | undefined {
  const match = tokenPattern.exec(token.trim());
  if (!match) return undefined;
  return { caDigest: match[1]!, clusterId: match[2]!, role: match[3] === 'm' ? 'manager' : 'worker' };
}

/** The role a presented token grants, or undefined when it matches neither current token's hash. */
export function roleForJoinToken(presented: string, current: { worker: { sha256: string }; manager: { sha256: string } }): JoinTokenRole | undefined {
  const hash = sha256(presented.trim());
  if (safeEqual(hash, current.manager.sha256)) return 'manager';
  if (safeEqual(hash, current.worker.sha256)) return 'worker';
  return undefined;
}
