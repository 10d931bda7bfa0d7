import type { Lab } from '../../lab/lab.ts';
import { runShoal } from '../helpers/cli.ts';
import type { Model } from './invariants.ts';
import type { Random } from './random.ts';

export const operationNames = ['deploy', 'scale', 'rolling-update', 'network-create-rm', 'node-drain'] as const;
/** `idle`, never drawn by default, lets a benchmark time a fault alone. */
export type OperationName = (typeof operationNames)[number] | 'idle';

/** The overlay network the suite's services join, made before the first round. */
export const chaosNetwork = 'chaos';
const image = 'busybox:1.35.0';
const maxServices = 4;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs the CLI until it succeeds, as a user retries during a failover; an answer that shows the
 * earlier try had landed (`settled`) also counts. Gives up after `timeoutMs`.
 */
async function retried(lab: Lab, args: string[], settled: RegExp | undefined, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    const result = await runShoal(args, { env: { SHOAL_CONTEXT: lab.record.contextFile }, timeoutMs: 30_000 });
    if (result.code === 0 || (settled && settled.test(result.stderr))) return;
    last = result.stderr.trim();
    await sleep(1_000);
  }
  throw new Error(`shoal ${args.join(' ')} kept failing for ${timeoutMs / 1000} s: ${last}`);
}

/** Runs one operation and records in the model what it asked for. */
export async function operate(lab: Lab, name: OperationName, model: Model, random: Random, round: number): Promise<string> {
  const services = [...model.services.keys()];
  const deploy = async () => {
    const service = `c${round}`;
    const replicas = random.int(1, 4);
    model.services.set(service, { replicas, env: [] });
    await retried(lab, ['service', 'create', '--detach', '--name', service, '--replicas', String(replicas), '--network', chaosNetwork, image, 'sleep', '3600'], /already exists/);
    return `deploy ${service} with ${replicas}`;
  };
  switch (name) {
    case 'idle':
      return 'no operation';
    case 'deploy': {
      if (services.length >= maxServices) {
        const gone = random.pick(services);
        model.services.delete(gone);
        await retried(lab, ['service', 'rm', gone], /not found|no such/i);
      }
      return deploy();
    }
    case 'scale': {
      if (services.length === 0) return deploy();
      const service = random.pick(services);
      const replicas = random.int(1, 6);
      model.services.get(service)!.replicas = replicas;
      await retried(lab, ['service', 'scale', '--detach', `${service}=${replicas}`], undefined);
      return `scale ${service} to ${replicas}`;
    }
    case 'rolling-update': {
      if (services.length === 0) return deploy();
      const service = random.pick(services);
      const variable = `CHAOS_ROUND=${round}`;
      const wanted = model.services.get(service)!;
      wanted.env = [variable];
      await retried(lab, ['service', 'update', '--detach', '--env-add', variable, service], undefined);
      return `update ${service} (${variable})`;
    }
    case 'network-create-rm': {
      const removable = [...model.networks].filter((n) => n !== chaosNetwork);
      if (removable.length > 0 && random.next() < 0.5) {
        const network = random.pick(removable);
        model.networks.delete(network);
        model.removedNetworks.add(network);
        await retried(lab, ['network', 'rm', network], /not found|no such/i);
        return `network rm ${network}`;
      }
      const network = `chaos-${round}`;
      model.networks.add(network);
      await retried(lab, ['network', 'create', '--driver', 'overlay', network], /already exists/);
      return `network create ${network}`;
    }
    case 'node-drain': {
      const host = random.pick(lab.record.topology.hosts).name;
      await retried(lab, ['node', 'update', '--availability', 'drain', host], undefined);
      await sleep(3_000);
      await retried(lab, ['node', 'update', '--availability', 'active', host], undefined);
      return `drain ${host} for 3 s`;
    }
  }
}
