import type { Logger } from '../shared/log.ts';
import { loadOrCreateIdentity } from '../shared/p2p/identity.ts';
import { createP2pNode } from '../shared/p2p/node.ts';
import type { Labels } from '../shared/schemas.ts';
import { describeHost } from './describe.ts';
import { AgentSession } from './session.ts';

export interface AgentOptions {
  stateDir: string;
  join: string[];
  token?: string;
  listen: string[];
  advertiseAddress?: string;
  labels: Labels;
  log: Logger;
}

export interface RunningAgent {
  nodeId: string;
  session: AgentSession;
  stop(): Promise<void>;
}

export async function runAgent(options: AgentOptions): Promise<RunningAgent> {
  const privateKey = await loadOrCreateIdentity(options.stateDir);
  const p2p = await createP2pNode({ privateKey, listen: options.listen });
  const session = new AgentSession({
    p2p,
    stateDir: options.stateDir,
    join: options.join,
    token: options.token,
    labels: options.labels,
    describe: () => describeHost({ address: options.advertiseAddress, engineLabels: options.labels }),
    log: options.log.child('session'),
  });
  try {
    await session.start();
  } catch (error) {
    await p2p.stop();
    throw error;
  }
  options.log.info('agent started', { nodeId: p2p.peerId.toString(), listen: p2p.getMultiaddrs().map((a) => a.toString()) });
  return {
    nodeId: p2p.peerId.toString(),
    session,
    async stop() {
      await session.stop();
      await p2p.stop();
    },
  };
}
