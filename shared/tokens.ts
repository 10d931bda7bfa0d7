import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { JoinTokenRole } from './schemas.ts';

/** Join tokens read SHOAL-1-<cluster id>-<role>-<secret>, like Swarm's SWMTKN-1-...; role is "w" or "m". */
const tokenPattern = /^SHOAL-1-([0-9a-f]{16})-([wm])-([0-9a-z]{32})$/;

export function newClusterId(): string {
  return randomBytes(8).toString('hex');
}

function secret(): string {
  // base36 keeps the token to one word that survives copy and paste
  return [...randomBytes(32)].map((b) => (b % 36).toString(36)).join('');
}

export function newJoinToken(clusterId: string, role: JoinTokenRole): string {
  return `SHOAL-1-${clusterId}-${role === 'worker' ? 'w' : 'm'}-${secret()}`;
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
  clusterId: string;
  role: JoinTokenRole;
}

/** Parses a join token's shape; whether it is current is for the cluster to say. */
export function parseJoinToken(token: string): ParsedJoinToken | undefined {
  const match = tokenPattern.exec(token.trim());
  if (!match) return undefined;
  return { clusterId: match[1]!, role: match[2] === 'm' ? 'manager' : 'worker' };
}

/** The role a presented token grants, or undefined when it matches neither current token. */
export function roleForJoinToken(presented: string, current: { worker: string; manager: string }): JoinTokenRole | undefined {
  if (safeEqual(presented.trim(), current.manager)) return 'manager';
  if (safeEqual(presented.trim(), current.worker)) return 'worker';
  return undefined;
}
