/**
 * Starts containers through the API with one context, from wherever it is run (the TLS
 * benchmark runs it inside a lab host's namespace, where the managers' TCP API is), and
 * prints each start's milliseconds as JSON; removes what it started.
 *   node api-starts.js CONTEXT_FILE NODE COUNT
 */
import { ApiClient, parseEndpoint } from '../../cli/client.ts';
import { readContext } from '../../cli/context.ts';
import { timeMs } from '../stats.ts';

const [contextFile, node, count] = process.argv.slice(2);
const context = await readContext(contextFile);
if (!context || !node) throw new Error('usage: api-starts CONTEXT_FILE NODE COUNT');
const client = new ApiClient(context.hosts.map((h) => parseEndpoint(h, context.tls)), context.token);
const ids: string[] = [];
const samples: number[] = [];
for (let i = 0; i < Number(count ?? 5); i++) {
  samples.push(await timeMs(async () => {
    ids.push((await client.call<{ id: string }>('POST', '/v1/containers', { node, image: 'busybox:1.35.0', cmd: ['sleep', '300'], networks: ['none'] })).id);
  }));
}
for (const id of ids) await client.call('DELETE', `/v1/containers/${id}?force=true`);
process.stdout.write(`${JSON.stringify(samples)}\n`);
