/** Measuring one network path between two namespaces: iperf3 throughput and ping latency. */
import { spawn } from 'node:child_process';
import { run } from '../shared/exec.ts';

/** TCP throughput in Gbit/s, 1 stream for 3 s, from `clientNetns` to `address` served in `serverNetns`. */
export async function iperf(serverNetns: string, clientNetns: string, address: string): Promise<number> {
  const server = spawn('ip', ['netns', 'exec', serverNetns, 'iperf3', '-s', '-1'], { stdio: 'ignore' });
  try {
    await new Promise((resolve) => setTimeout(resolve, 300));
    const report = JSON.parse(await run('ip', ['netns', 'exec', clientNetns, 'iperf3', '-c', address, '-t', '3', '-J'])) as { end: { sum_received: { bits_per_second: number } } };
    return report.end.sum_received.bits_per_second / 1e9;
  } finally {
    server.kill();
  }
}

/** The mean of 20 pings in ms (busybox's ping, from the host's filesystem). */
export async function pingMs(netns: string, address: string): Promise<number> {
  const output = await run('ip', ['netns', 'exec', netns, 'busybox', 'ping', '-c', '20', '-i', '0.05', '-q', address]);
  return Number(/= [\d.]+\/([\d.]+)\//.exec(output)?.[1] ?? Number.NaN);
}
