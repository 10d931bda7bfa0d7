/**
 * A trace as the terminal reads it: a title, one line per hop with ✓ or ✗, and under the first
 * ✗ its host, kernel object and fix. `shoal network trace` prints it; the UI draws it.
 */
import type { TraceAnswer } from '../manager/api/trace.ts';

export interface TraceLine {
  text: string;
  tone: 'title' | 'ok' | 'bad' | 'detail';
}

export function traceLines(answer: TraceAnswer): TraceLine[] {
  const lines: TraceLine[] = [{ text: `trace ${answer.from} -> ${answer.to} on ${answer.network}`, tone: 'title' }];
  let first = true;
  for (const hop of answer.hops) {
    lines.push({ text: `${hop.ok ? '✓' : '✗'} ${hop.hop.padEnd(24)} ${hop.detail}`, tone: hop.ok ? 'ok' : 'bad' });
    if (hop.ok || !first) continue;
    first = false;
    if (hop.host) lines.push({ text: `    host:   ${hop.host}`, tone: 'detail' });
    if (hop.object) lines.push({ text: `    object: ${hop.object}`, tone: 'detail' });
    if (hop.fix) lines.push({ text: `    fix:    ${hop.fix}`, tone: 'detail' });
  }
  return lines;
}
