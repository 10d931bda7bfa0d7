import { addon } from './addon.ts';

/** Mounts an overlay: `lower` dirs top first, as overlayfs's lowerdir lists them. */
export function mountOverlay(lower: string[], upper: string, work: string, target: string): Promise<void> {
  return addon.mountOverlay(lower.join(':'), upper, work, target);
}

/** Unmounts (lazily); a target that is not mounted is fine. */
export function unmount(target: string): Promise<void> {
  return addon.unmount(target);
}

export function mkfifo(path: string): Promise<void> {
  return addon.mkfifo(path);
}
