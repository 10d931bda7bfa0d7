import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import type { HostUsage } from '../shared/p2p/protocol.ts';

function cpuTimes(): { busy: number; total: number } {
  let busy = 0;
  let total = 0;
  for (const cpu of cpus()) {
    const { user, nice, sys, irq, idle } = cpu.times;
    busy += user + nice + sys + irq;
    total += user + nice + sys + irq + idle;
  }
  return { busy, total };
}

/** Memory in use as the kernel counts it: total less MemAvailable (reclaimable caches are not "used"). */
function memoryUsedBytes(): number {
  const available = /MemAvailable:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1];
  return available === undefined ? 0 : Math.max(0, totalmem() - Number(available) * 1024);
}

/** Samples the host's usage; each call gives the CPU used since the previous one. */
export function hostUsageSampler(): () => HostUsage {
  let last = cpuTimes();
  return () => {
    const now = cpuTimes();
    const total = now.total - last.total;
    const cpuFraction = total > 0 ? Math.min(1, Math.max(0, (now.busy - last.busy) / total)) : 0;
    last = now;
    return { cpuFraction, memoryUsedBytes: memoryUsedBytes() };
  };
}
