import { errors } from '../../../shared/errors.ts';

/** An image reference split Docker's way: registry host, repository, and a tag or a digest. */
export interface ImageReference {
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
}

const digestPattern = /^sha256:[0-9a-f]{64}$/;
const repositoryPattern = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const tagPattern = /^[\w][\w.-]{0,127}$/;

/**
 * Parses `[host[:port]/]repo[:tag][@sha256:...]`. A first path part with a dot, a colon or
 * "localhost" is a registry host; otherwise the reference is on `defaultRegistry` (the
 * cluster's registry: Shoal has no implicit Docker Hub). No tag and no digest means "latest".
 */
export function parseReference(text: string, defaultRegistry: string): ImageReference {
  const trimmed = text.trim();
  let rest = trimmed;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!digestPattern.test(digest)) throw errors.invalid(`"${text}": the digest must be sha256: and 64 hex digits`);
  }
  let registry = defaultRegistry;
  const slash = rest.indexOf('/');
  const first = slash >= 0 ? rest.slice(0, slash) : '';
  if (first && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    registry = first;
    rest = rest.slice(slash + 1);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!tagPattern.test(tag)) throw errors.invalid(`"${text}": "${tag}" is not a valid tag`);
  }
  if (!repositoryPattern.test(rest)) {
    throw errors.invalid(`"${text}" is not an image reference`, 'write it like busybox:1.35, 198.18.0.250:5000/busybox:1.35 or name@sha256:...');
  }
  if (!registry) throw errors.invalid(`"${text}" names no registry and this node has no default registry`, 'write the registry host in the reference');
  return { registry, repository: rest, ...(tag || !digest ? { tag: tag ?? 'latest' } : {}), ...(digest ? { digest } : {}) };
}

export function formatReference(reference: ImageReference): string {
  return `${reference.registry}/${reference.repository}${reference.tag ? `:${reference.tag}` : ''}${reference.digest ? `@${reference.digest}` : ''}`;
}
