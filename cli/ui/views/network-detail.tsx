/**
 * One network across the hosts: a box per host (underlay address, VTEP, local endpoints with
 * their tasks, and the routes of route-aware drivers: host-gw subnets, calico blocks) and the
 * links between them. What disagrees with the peer table is red, with the reason, and marked
 * ✗ so it reads without colour too; an endpoint whose policy drops rose since the last
 * refresh is yellow and marked ⛔. The selected endpoint is drawn inverse, the one a trace
 * starts from marked ▶.
 */
import { Box, Text } from 'ink';
import { useRef } from 'react';
import { type NetworkPicture, networkPicture, type PictureHost, type PictureLink } from '../network-picture.ts';
import type { UiNetworkDetail } from '../source.ts';
import { useTheme } from '../theme.ts';

interface Props {
  network: UiNetworkDetail;
  width: number;
  height: number;
  /** The owners of the selected endpoint and of the one a trace starts from. */
  selected?: string;
  traceFrom?: string;
}

interface HostBoxProps {
  host: PictureHost;
  width: number;
  maxEndpoints: number;
  selected?: string;
  traceFrom?: string;
}

function HostBox({ host, width, maxEndpoints, selected, traceFrom }: HostBoxProps) {
  const theme = useTheme();
  const broken = host.problems.length > 0 || host.endpoints.some((e) => e.problems.length > 0);
  // The window of endpoints keeps the selected one in view.
  const at = host.endpoints.findIndex((e) => e.owner === selected);
  const start = at >= maxEndpoints ? at - maxEndpoints + 1 : 0;
  const shown = host.endpoints.slice(start, start + maxEndpoints);
  const hidden = host.endpoints.length - shown.length;
  return (
    <Box flexDirection="column" borderStyle="round" borderColor={broken ? theme.bad : theme.ok} width={width} paddingX={1}>
      <Text bold wrap="truncate">
        {broken ? '✗ ' : '● '}
        {host.hostname} <Text color={theme.dim}>{host.address}</Text>
      </Text>
      <Text color={theme.accent} wrap="truncate">
        {host.role}
      </Text>
      {shown.map((endpoint) => (
        <Text key={endpoint.owner} inverse={endpoint.owner === selected} color={endpoint.problems.length ? theme.bad : endpoint.dropping ? theme.warn : undefined} wrap="truncate">
          {endpoint.owner === traceFrom ? '▶' : endpoint.problems.length ? '✗' : endpoint.dropping ? '⛔' : '·'} {endpoint.address} {endpoint.name}
          {endpoint.dropping ? ` policy dropping (${endpoint.drops})` : ''}
        </Text>
      ))}
      {host.routes.map((route) => (
        <Text key={route.destination} color={route.present ? theme.dim : theme.bad} wrap="truncate">
          {route.present ? '→' : '✗'} {route.destination} via {route.via}
          {route.refused ? ` (${route.refused})` : route.present ? '' : ' missing'}
        </Text>
      ))}
      {hidden > 0 ? <Text color={theme.dim}>+{hidden} more</Text> : null}
      {host.endpoints.length === 0 ? <Text color={theme.dim}>no endpoints</Text> : null}
      {host.problems.map((problem) => (
        <Text key={problem} color={theme.bad} wrap="truncate">
          ✗ {problem}
        </Text>
      ))}
    </Box>
  );
}

function LinkLine({ link, width }: { link: PictureLink; width: number }) {
  const theme = useTheme();
  const broken = link.problems.length > 0;
  const head = `${broken ? '✗' : '●'} ${link.from} ══ ${link.kind} ══ ${link.to}`;
  return (
    <Text color={broken ? theme.bad : theme.ok} wrap="truncate">
      {`${head}  ${broken ? link.problems.join('; ') : 'ok'}`.slice(0, width)}
    </Text>
  );
}

export function NetworkDetailView({ network, width, height, selected, traceFrom }: Props) {
  const theme = useTheme();
  // The picture before this refresh: an endpoint whose policy drops rose since is marked.
  const pictures = useRef<{ detail?: Props['network']; picture?: NetworkPicture }>({});
  if (pictures.current.detail !== network) pictures.current = { detail: network, picture: networkPicture(network, pictures.current.picture) };
  const picture = pictures.current.picture!;
  const pool = network.pools[0];
  const perRow = Math.max(1, Math.min(picture.hosts.length, Math.floor(width / 26)));
  const boxWidth = Math.max(24, Math.floor(width / perRow) - 1);
  const boxRows = Math.max(1, Math.ceil(picture.hosts.length / perRow));
  const linkLines = Math.min(picture.links.length, Math.max(1, Math.floor(height / 3)));
  // What is left for endpoint lines inside the boxes (each box: 2 borders, name, role).
  const vipLines = network.vips.length > 0 ? 1 : 0;
  const routeLines = Math.max(0, ...picture.hosts.map((h) => h.routes.length));
  const maxEndpoints = Math.max(1, Math.floor((height - 2 - vipLines - linkLines - boxRows * (4 + routeLines)) / boxRows) - 1);
  return (
    <Box flexDirection="column" height={height + 1}>
      <Text wrap="truncate">
        <Text bold>{network.spec.name}</Text> {network.spec.driver} {network.scope} {pool?.subnet ?? ''}
        {Object.entries(network.data ?? {}).map(([key, value]) => ` ${key} ${value}`).join('')}
        {network.spec.internal ? ' internal' : ''} <Text color={theme.dim}>· {picture.hosts.length} host(s), {network.endpoints.length} endpoint(s)</Text>
      </Text>
      {network.vips.length > 0 ? (
        <Text wrap="truncate">
          <Text color={theme.dim}>VIPs </Text>
          {network.vips.map((v) => `${v.service ?? v.serviceId.slice(0, 12)} ${v.address}`).join(' · ')}
        </Text>
      ) : null}
      {network.hosts === undefined || (network.hosts.length === 0 && network.endpoints.length === 0) ? <Text color={theme.dim}>asking the hosts…</Text> : null}
      <Box flexWrap="wrap">
        {picture.hosts.map((host) => (
          <HostBox key={host.hostname} host={host} width={boxWidth} maxEndpoints={maxEndpoints} {...(selected ? { selected } : {})} {...(traceFrom ? { traceFrom } : {})} />
        ))}
      </Box>
      {picture.links.slice(0, linkLines).map((link) => (
        <LinkLine key={`${link.from}-${link.to}`} link={link} width={width} />
      ))}
      {picture.links.length > linkLines ? <Text color={theme.dim}>+{picture.links.length - linkLines} more links</Text> : null}
    </Box>
  );
}
