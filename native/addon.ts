import { createRequire } from 'node:module';
import type { LinkInfo, NeighbourInfo } from './netns.ts';

/** The compiled addon's surface; the modules beside this one wrap it with types and docs. */
export interface NativeAddon {
  listLinks(netnsPath: string): Promise<LinkInfo[]>;
  listNeighbours(netnsPath: string): Promise<NeighbourInfo[]>;
  createNetns(path: string): Promise<void>;
  deleteNetns(path: string): Promise<void>;
  writeInNetns(netnsPath: string, file: string, value: string): Promise<void>;
  socketInNetns(netnsPath: string, kind: 'udp' | 'tcp', address: string, port: number): Promise<number>;
  nftInNetns(netnsPaths: string[], command: string, json: boolean): Promise<Array<{ output: string; error?: string }>>;
  mountOverlay(lower: string, upper: string, work: string, target: string): Promise<void>;
  unmount(target: string): Promise<void>;
  mkfifo(path: string): Promise<void>;
  spawnDetached(argv: string[], stdoutFd: number, stderrFd: number, cwd: string): number;
  reap(pid: number): boolean;
  fetchFd(dir: string, name: string, timeoutMs: number): Promise<number>;
  setWindowSize(fd: number, rows: number, cols: number): void;
}

const require = createRequire(import.meta.url);
// Compiled to dist/native/addon.js; the addon is built in native/build/.
export const addon = require('../../native/build/Release/shoal_native.node') as NativeAddon;
