/**
 * Prometheus metrics on a real 2-host lab: every manager and agent serves /metrics on its
 * host's address, each metric family exists and moves when its event happens, and the API
 * histogram agrees with the durations a client measures of the same calls.
 */
import test from 'ava';
import { metricSample, scrapeMetrics } from '../../lab/metrics.ts';
import { metricsEndpoints } from '../../lab/topology.ts';
import { eventually } from '../helpers/cli.ts';
import { useLab } from '../helpers/lab-fixture.ts';

const fixture = useLab(test, { name: 'it-metrics', hosts: 2, managers: 1, etcdMembers: 1, heartbeatPeriodMs: 1000 });
const { ok } = fixture;

/** One daemon's metrics, scraped from inside its host's namespace. */
const scrape = (role: 'manager' | 'agent', host: string) => scrapeMetrics(fixture.lab().record.topology, role, host);

const agents = async () => Promise.all(['h1', 'h2'].map((host) => scrape('agent', host)));
const agentSum = (texts: string[], name: string, labels: Record<string, string> = {}) => texts.reduce((total, text) => total + metricSample(text, name, labels), 0);

test.serial('every manager and agent serves /metrics with the process metrics, and the lab names where', async (t) => {
  const endpoints = metricsEndpoints(fixture.lab().record.topology);
  t.deepEqual(endpoints.map((e) => `${e.host}/${e.role}`), ['h1/manager', 'h1/agent', 'h2/agent']);
  for (const endpoint of endpoints) {
    const text = await scrape(endpoint.role, endpoint.host);
    t.true(metricSample(text, 'process_cpu_user_seconds_total') > 0, `${endpoint.url} has the process metrics`);
    t.true(metricSample(text, 'nodejs_heap_size_used_bytes') > 0);
    t.regex(text, /# HELP shoal_/);
  }
});

test.serial('the gauges count nodes, tasks and endpoints; a service\'s start moves scheduling, dispatch, store, start-stage and gossip histograms', async (t) => {
  const managerBefore = await scrape('manager', 'h1');
  const agentsBefore = await agents();
  t.is(metricSample(managerBefore, 'shoal_nodes', { state: 'ready' }), 2);

  await ok('network', 'create', '-d', 'overlay', 'metered');
  await ok('service', 'create', '--name', 'metered', '--replicas', '4', '--network', 'metered', 'busybox:1.35.0', 'sleep', '600');
  const { value: manager } = await eventually(60_000, async () => {
    const text = await scrape('manager', 'h1');
    return metricSample(text, 'shoal_tasks', { state: 'running' }) >= 4 ? text : undefined;
  });
  // 4 task endpoints plus the service's VIP.
  t.true(metricSample(manager, 'shoal_network_endpoints', { network: 'metered' }) >= 5);
  t.true(metricSample(manager, 'shoal_scheduling_delay_seconds_count') - metricSample(managerBefore, 'shoal_scheduling_delay_seconds_count') >= 4);
  t.true(metricSample(manager, 'shoal_dispatch_delay_seconds_count') - metricSample(managerBefore, 'shoal_dispatch_delay_seconds_count') >= 4);
  t.true(metricSample(manager, 'shoal_control_loop_pass_duration_seconds_count') > metricSample(managerBefore, 'shoal_control_loop_pass_duration_seconds_count'));
  t.true(metricSample(manager, 'shoal_store_transaction_duration_seconds_count', { outcome: 'committed' }) > metricSample(managerBefore, 'shoal_store_transaction_duration_seconds_count', { outcome: 'committed' }));
  t.true(metricSample(manager, 'shoal_api_request_duration_seconds_count', { method: 'POST', route: '/v1/services', status: '201' }) + metricSample(manager, 'shoal_api_request_duration_seconds_count', { method: 'POST', route: '/v1/services', status: '200' }) >= 1);

  const { value: agentsAfter } = await eventually(30_000, async () => {
    const texts = await agents();
    // Each host hears the other's endpoint announcements on the network they share.
    return agentSum(texts, 'shoal_gossip_message_delay_seconds_count') > agentSum(agentsBefore, 'shoal_gossip_message_delay_seconds_count') ? texts : undefined;
  });
  for (const stage of ['prepare', 'start', 'total']) {
    t.is(agentSum(agentsAfter, 'shoal_task_start_stage_seconds_count', { stage }) - agentSum(agentsBefore, 'shoal_task_start_stage_seconds_count', { stage }), 4, `4 task starts observed at stage ${stage}`);
  }
  t.is(agentSum(agentsAfter, 'shoal_network_endpoints', { network: 'metered' }), 4, 'the agents hold the 4 task endpoints between them');
  t.true(agentSum(agentsAfter, 'shoal_engine_call_duration_seconds_count') >= agentSum(agentsBefore, 'shoal_engine_call_duration_seconds_count'));

  const engineBefore = agentSum(agentsAfter, 'shoal_engine_call_duration_seconds_count');
  await ok('container', 'ls', '-a');
  t.true(agentSum(await agents(), 'shoal_engine_call_duration_seconds_count') > engineBefore, 'container ls calls each engine');

  await ok('service', 'rm', 'metered');
  await eventually(60_000, async () => (metricSample(await scrape('manager', 'h1'), 'shoal_tasks', { state: 'running' }) === 0 ? true : undefined));
  await ok('network', 'rm', 'metered');
});

test.serial('the API histogram agrees with what a client measures of the same calls', async (t) => {
  const client = await fixture.lab().client();
  const series = { method: 'GET', route: '/v1/nodes', status: '200' };
  const before = await scrape('manager', 'h1');
  const calls = 20;
  let clientSeconds = 0;
  for (let i = 0; i < calls; i++) {
    const startedAt = performance.now();
    await client.call('GET', '/v1/nodes');
    clientSeconds += (performance.now() - startedAt) / 1000;
  }
  const after = await scrape('manager', 'h1');
  const count = metricSample(after, 'shoal_api_request_duration_seconds_count', series) - metricSample(before, 'shoal_api_request_duration_seconds_count', series);
  const serverSeconds = metricSample(after, 'shoal_api_request_duration_seconds_sum', series) - metricSample(before, 'shoal_api_request_duration_seconds_sum', series);
  t.log(`${calls} calls: ${(clientSeconds * 1000).toFixed(1)} ms measured by the client, ${(serverSeconds * 1000).toFixed(1)} ms by the manager's histogram`);
  t.is(count, calls);
  // The manager's share lies inside each call the client timed, and is most of it on a local socket.
  t.true(serverSeconds > 0 && serverSeconds <= clientSeconds);
});
