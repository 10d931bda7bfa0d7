import test from 'ava';
import { networkPicture } from '../../cli/ui/network-picture.ts';
import type { UiNetworkDetail } from '../../cli/ui/source.ts';
import { plainTheme, themeFor } from '../../cli/ui/theme.ts';
import { recorded } from '../helpers/recorded-source.ts';

const withProblems = (problems: Record<string, string[]>): UiNetworkDetail => {
  const detail = recorded<UiNetworkDetail>('network-healthy');
  return { ...detail, hosts: detail.hosts!.map((h) => ({ ...h, problems: problems[h.hostname] ?? [] })) };
};

test('a healthy overlay spans its hosts with every link between them healthy', (t) => {
  const picture = networkPicture(recorded('network-healthy'));
  t.deepEqual(picture.hosts.map((h) => [h.hostname, h.role, h.endpoints.length]), [['h1', 'VTEP svx-4097 mtu 1450', 1], ['h2', 'VTEP svx-4097 mtu 1450', 1], ['h3', 'VTEP svx-4097 mtu 1450', 2]]);
  t.deepEqual(picture.links.map((l) => [l.from, l.to, l.kind, l.problems]), [['h1', 'h2', 'VXLAN 4097', []], ['h1', 'h3', 'VXLAN 4097', []], ['h2', 'h3', 'VXLAN 4097', []]]);
  t.regex(picture.hosts[0]!.endpoints[0]!.name, /^web\.\d\.[0-9a-f]{12}$/, 'endpoints carry their task\'s name');
});

test('each problem is blamed on the link it breaks, and a missing neighbour entry marks the endpoint', (t) => {
  const detail = withProblems({
    h2: ['missing flood entry towards 198.18.0.1', 'missing neighbour entry 198.19.0.2 -> 02:42:c6:13:00:02'],
    h3: ['no endpoint announcement heard from 198.18.0.2 lately (gossip)', 'the host has endpoints on the network but no VTEP'],
  });
  const picture = networkPicture(detail);
  const link = (a: string, b: string) => picture.links.find((l) => l.from === a && l.to === b)!.problems;
  t.deepEqual(link('h1', 'h2'), ['h2: missing flood entry towards 198.18.0.1']);
  // 198.19.0.2 lives on h3 in the recorded lab.
  t.deepEqual(link('h2', 'h3'), ['h2: missing neighbour entry 198.19.0.2 -> 02:42:c6:13:00:02', 'h3: no endpoint announcement heard from 198.18.0.2 lately (gossip)']);
  t.deepEqual(link('h1', 'h3'), []);
  const endpoint = picture.hosts.flatMap((h) => h.endpoints).find((e) => e.address === '198.19.0.2')!;
  t.deepEqual(endpoint.problems, ['missing on h2']);
  t.deepEqual(picture.hosts.find((h) => h.hostname === 'h3')!.problems, ['the host has endpoints on the network but no VTEP']);
});

test('NO_COLOR turns every colour off', (t) => {
  t.is(themeFor({ NO_COLOR: '1' }), plainTheme);
  t.not(themeFor({}), plainTheme);
});

test('a host-gw network draws each host\'s subnet and a routed link between hosts; a missing route turns that link red', (t) => {
  const detail = recorded<UiNetworkDetail>('network-healthy');
  const hosts = detail.hosts!.map((h, i) => ({
    ...h,
    kernel: {
      driver: 'hostgw',
      detail: { driver: 'hostgw', summary: `subnet 198.19.${176 + i}.0/24 on slb-96edd2f5d5`, link: 'routes' },
      endpoints: 1,
      problems: [],
      routes: [],
    },
    problems: h.hostname === 'h1' ? ['missing route 198.19.177.0/24 via 198.18.0.2'] : [],
  }));
  const picture = networkPicture({ ...detail, spec: { ...detail.spec, driver: 'hostgw' }, hosts });
  t.deepEqual(picture.hosts.map((h) => h.role), ['subnet 198.19.176.0/24 on slb-96edd2f5d5', 'subnet 198.19.177.0/24 on slb-96edd2f5d5', 'subnet 198.19.178.0/24 on slb-96edd2f5d5']);
  t.deepEqual(picture.links.map((l) => [l.from, l.to, l.kind, l.problems]), [
    ['h1', 'h2', 'routes', ['h1: missing route 198.19.177.0/24 via 198.18.0.2']],
    ['h1', 'h3', 'routes', []],
    ['h2', 'h3', 'routes', []],
  ]);
});

test('a macvlan network shows each host\'s parent and mode and links the hosts over the LAN; a VIP backend one host lacks turns the link to the backend\'s host red', (t) => {
  const detail = recorded<UiNetworkDetail>('network-healthy');
  // 198.19.0.3 lives on h2 in the recorded lab.
  const hosts = detail.hosts!.map((h) => ({
    ...h,
    kernel: { driver: 'macvlan', detail: { driver: 'macvlan', summary: 'macvlan on eth0 (bridge, UP)', parent: 'eth0', mode: 'bridge', link: 'LAN' }, endpoints: 1, problems: [] },
    problems: h.hostname === 'h1' ? ['sandbox web.1: VIP 198.19.0.9 (web) spreads over 198.19.0.2: missing backend 198.19.0.3'] : h.hostname === 'h3' ? ['parent interface eth0 is down'] : [],
  }));
  const picture = networkPicture({ ...detail, hosts });
  t.deepEqual([...new Set(picture.hosts.map((h) => h.role))], ['macvlan on eth0 (bridge, UP)']);
  t.deepEqual(picture.links.map((l) => [l.from, l.to, l.kind, l.problems.length]), [['h1', 'h2', 'LAN', 1], ['h1', 'h3', 'LAN', 0], ['h2', 'h3', 'LAN', 0]]);
  t.deepEqual(picture.hosts.flatMap((h) => h.endpoints).find((e) => e.address === '198.19.0.3')!.problems, ['missing on h1']);
  t.deepEqual(picture.hosts.find((h) => h.hostname === 'h3')!.problems, ['parent interface eth0 is down']);
});

test('a one-host network draws no link, and a sandbox whose policy rules are missing is marked on its host', (t) => {
  const detail = recorded<UiNetworkDetail>('network-healthy');
  const h1 = detail.hosts!.find((h) => h.hostname === 'h1')!;
  const hosts = [{ ...h1, kernel: { driver: 'bridge', detail: { driver: 'bridge', summary: 'bridge slb-1' }, endpoints: 2, problems: [] }, problems: ['missing policy rules of web.1 (198.19.0.4): its nftables table inet shoal-policy is missing'] }];
  const picture = networkPicture({ ...detail, endpoints: detail.endpoints.filter((e) => e.nodeId === h1.node), hosts });
  t.deepEqual(picture.links, []);
  t.deepEqual(picture.hosts[0]!.endpoints.find((e) => e.address === '198.19.0.4')!.problems, ['missing on h1']);
});

test('route-aware drivers draw their routes by host, and an endpoint whose policy drops rose is marked', (t) => {
  const detail = recorded<UiNetworkDetail>('network-healthy');
  const endpoint = detail.endpoints.find((e) => e.nodeId === detail.hosts![0]!.node)!;
  const withDrops = (packets: number): UiNetworkDetail => ({
    ...detail,
    hosts: detail.hosts!.map((h, i) => i !== 0 ? h : {
      ...h,
      kernel: { ...h.kernel!, routes: [{ destination: '198.19.64.64/26', via: detail.hosts![1]!.address, present: true }, { destination: '198.19.64.128/26', via: '198.18.0.99', present: false, refused: 'no L2 adjacency' }] },
      policy: [{ name: endpoint.name ?? 'x', endpoints: [{ address: endpoint.address, labels: {} }], rules: [
        { endpoint: endpoint.address, direction: 'ingress', policy: 'p', rule: 0, action: 'allow', packets: 50, bytes: 3000 },
        { endpoint: endpoint.address, direction: 'ingress', action: 'default-deny', packets, bytes: packets * 60 },
      ] }],
    }),
  });
  const first = networkPicture(withDrops(3));
  const host = first.hosts.find((h) => h.hostname === detail.hosts![0]!.hostname)!;
  t.deepEqual(host.routes, [
    { destination: '198.19.64.64/26', via: detail.hosts![1]!.hostname, present: true },
    { destination: '198.19.64.128/26', via: '198.18.0.99', present: false, refused: 'no L2 adjacency' },
  ]);
  const marked = (picture: typeof first) => picture.hosts.flatMap((h) => h.endpoints).find((e) => e.address === endpoint.address)!;
  t.like(marked(first), { drops: 3, dropping: false }, 'no earlier picture: nothing to compare with');
  t.like(marked(networkPicture(withDrops(7), first)), { drops: 7, dropping: true }, 'the drops rose: marked');
  t.like(marked(networkPicture(withDrops(7), networkPicture(withDrops(7), first))), { drops: 7, dropping: false }, 'the drops stopped rising: no longer marked');
});
