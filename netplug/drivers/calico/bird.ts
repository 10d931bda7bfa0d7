/**
 * Calico's other way to spread routes: BIRD (Debian's bird2), one per host, started by the
 * agent for the calico networks created with `-o routing=bgp`. Each host announces its own
 * blocks (static blackhole routes kept inside BIRD, never put in the kernel) over iBGP to every
 * other host holding a block of such a network (Calico's node-to-node mesh, AS 64512), with
 * itself as next hop; what BIRD learns goes into the kernel's main table (`proto bird`). The
 * routes are the ones the route-sync loop would program: each other host's blocks via its
 * underlay address.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { systemBinary } from '../../../shared/exec.ts';
import type { HostNamespace } from '../../host.ts';

const bird = systemBinary('bird');
const birdc = systemBinary('birdc');
const asNumber = 64512;

export interface BgpWanted {
  /** This host's blocks of the network, announced. */
  blocks: string[];
  /** The underlay addresses of the other hosts holding blocks of it: the BGP neighbours. */
  peers: string[];
}

export interface BgpPeerState {
  peer: string;
  /** BIRD's protocol state and info ("up Established", "start Active" ...). */
  state: string;
}

/** The BIRD configuration for what every BGP network of this host wants. */
export function birdConfig(routerId: string, wanted: Iterable<BgpWanted>): string {
  const blocks = new Set<string>();
  const peers = new Set<string>();
  for (const want of wanted) {
    for (const block of want.blocks) blocks.add(block);
    for (const peer of want.peers) if (peer !== routerId) peers.add(peer);
  }
  const name = (peer: string) => `peer_${peer.replace(/\./g, '_')}`;
  return [
    `router id ${routerId};`,
    'protocol device { scan time 10; }',
    // Learned routes into the kernel; the blackholes of the host's own blocks stay in BIRD.
    'protocol kernel { ipv4 { import none; export where source = RTS_BGP; }; }',
    'protocol static blocks {',
    '  ipv4;',
    ...[...blocks].sort().map((block) => `  route ${block} blackhole;`),
    '}',
    ...[...peers].sort().flatMap((peer) => [
      `protocol bgp ${name(peer)} {`,
      `  local ${routerId} as ${asNumber};`,
      `  neighbor ${peer} as ${asNumber};`,
      '  direct;',
      // Sessions come up in a second or two (BIRD waits 5 s and retries every 120 s by default);
      // a host that goes away is dropped from the mesh by the leader's table before the hold time.
      '  connect delay time 1;',
      '  connect retry time 5;',
      '  hold time 30;',
      '  ipv4 { import all; export where source = RTS_STATIC; next hop self; gateway direct; };',
      '}',
    ]),
    '',
  ].join('\n');
}

/** One BIRD for the host: written, started, reconfigured and stopped as the BGP networks come and go. */
export class BirdSpeaker {
  private readonly wanted = new Map<string, BgpWanted>();
  private child: ChildProcess | undefined;
  private lastError: string | undefined;
  private written = '';
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly host: HostNamespace,
    /** The folder for its configuration, control socket and log (under the agent's state dir). */
    private readonly dir: string,
    private readonly routerId: string,
  ) {}

  private get socket(): string {
    return join(this.dir, 'bird.ctl');
  }

  /** What one network wants now; nothing (no blocks) takes it out. */
  want(networkId: string, wanted: BgpWanted | undefined): Promise<void> {
    if (!wanted || wanted.blocks.length === 0) this.wanted.delete(networkId);
    else this.wanted.set(networkId, wanted);
    const next = this.queue.then(() => this.sync());
    this.queue = next.catch((error: unknown) => void (this.lastError = String(error)));
    return next;
  }

  private async sync(): Promise<void> {
    if (this.wanted.size === 0) return this.stop();
    const config = birdConfig(this.routerId, this.wanted.values());
    if (config === this.written && this.running()) return;
    await mkdir(this.dir, { recursive: true });
    await writeFile(join(this.dir, 'bird.conf'), config);
    if (this.running()) await this.host.run(birdc, ['-s', this.socket, 'configure']);
    else await this.start();
    this.written = config;
  }

  private running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  private async start(): Promise<void> {
    await this.killLeftover();
    const args = ['-f', '-c', join(this.dir, 'bird.conf'), '-s', this.socket, '-P', join(this.dir, 'bird.pid')];
    const child = this.host.netns ? spawn('ip', ['netns', 'exec', this.host.netns, bird, ...args], { stdio: ['ignore', 'ignore', 'pipe'] }) : spawn(bird, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => void (stderr = (stderr + chunk.toString()).slice(-2000)));
    child.on('error', (error) => void (this.lastError = `bird could not start: ${error.message}`));
    child.on('exit', (code, signal) => {
      if (this.child === child) this.lastError = `bird exited (${signal ?? code})${stderr ? `: ${stderr.trim()}` : ''}`;
    });
    this.child = child;
    // Up once its control socket answers.
    for (let i = 0; i < 50; i++) {
      if (!this.running()) throw new Error(this.lastError ?? 'bird exited');
      if (await this.host.run(birdc, ['-s', this.socket, 'show', 'status']).then(() => true, () => false)) {
        this.lastError = undefined;
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error('bird did not answer on its control socket within 5 s');
  }

  /** A BIRD left by an earlier run of the agent (killed) holds the socket and port 179. */
  private async killLeftover(): Promise<void> {
    const pid = Number((await readFile(join(this.dir, 'bird.pid'), 'utf8').catch(() => '')).trim());
    if (pid > 0) {
      try {
        process.kill(pid, 'SIGTERM');
        await new Promise((resolve) => setTimeout(resolve, 200));
      } catch {
        // gone already
      }
    }
    await rm(this.socket, { force: true });
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    this.written = '';
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((resolve) => {
        child.once('exit', resolve);
        setTimeout(resolve, 2000);
      });
    }
    await this.killLeftover();
  }

  /** Each BGP neighbour's session state, as BIRD tells it; with why it is not running, if it is not. */
  async peers(): Promise<{ peers: BgpPeerState[]; error?: string }> {
    if (!this.running()) return { peers: [], ...(this.lastError ? { error: this.lastError } : this.wanted.size > 0 ? { error: 'bird is not running' } : {}) };
    const text = await this.host.run(birdc, ['-s', this.socket, 'show', 'protocols']).catch(() => '');
    const peers = text.split('\n').flatMap((line) => {
      const match = /^peer_(\d+_\d+_\d+_\d+)\s+BGP\s+\S+\s+(\S+)\s+\S+\s+(.*)$/.exec(line.trim());
      return match ? [{ peer: match[1]!.replace(/_/g, '.'), state: `${match[2]} ${match[3]!.trim()}`.trim() }] : [];
    });
    return { peers, ...(this.lastError ? { error: this.lastError } : {}) };
  }
}
