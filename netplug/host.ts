/**
 * The namespace a driver programs as "the host": the agent's own (an agent runs in its host's
 * namespace), or a named one, so one process can drive several hosts (the conformance suite).
 */
import { ipBatch, run } from '../shared/exec.ts';
import { nftIn, setNetnsSysctl } from '../native/netns.ts';
import { writeFile } from 'node:fs/promises';
import { linkExists } from './links.ts';

export class HostNamespace {
  /** `netns`: a namespace under /run/netns; absent for the process's own. */
  constructor(readonly netns?: string) {}

  /** `ip` arguments (-n NETNS first when named). */
  ipArgs(args: string[]): string[] {
    return this.netns ? ['-n', this.netns, ...args] : args;
  }

  ip(args: string[]): Promise<string> {
    return run('ip', this.ipArgs(args));
  }

  /** Several `ip` commands in one process. */
  ipBatch(lines: string[]): Promise<void> {
    return ipBatch(lines, this.netns);
  }

  /** Any other command (nft, bridge), inside the namespace. */
  run(command: string, args: string[], input?: string): Promise<string> {
    return this.netns ? run('ip', ['netns', 'exec', this.netns, command, ...args], input) : run(command, args, input);
  }

  /** An nft command or script here, through libnftables (`json`: nft -j's output). */
  nft(script: string, options: { json?: boolean } = {}): Promise<string> {
    return nftIn(this.netns, script, options);
  }

  /** Writes a sysctl such as net/ipv4/ip_forward. */
  sysctl(key: string, value: string): Promise<void> {
    return this.netns ? setNetnsSysctl(this.netns, key, value) : writeFile(`/proc/sys/${key}`, value);
  }

  /** Whether `device` exists here. */
  linkExists(device: string): Promise<boolean> {
    return linkExists(device, this.netns);
  }
}
