import test from 'ava';
import { birdConfig } from '../../netplug/drivers/calico/bird.ts';

test('BIRD\'s configuration announces this host\'s blocks of every BGP network to each other host, once, itself as next hop', (t) => {
  const config = birdConfig('198.18.0.1', [
    { blocks: ['198.19.64.0/26', '198.19.64.192/26'], peers: ['198.18.0.3', '198.18.0.2'] },
    { blocks: ['198.19.80.0/26'], peers: ['198.18.0.2', '198.18.0.1'] },
  ]);
  t.regex(config, /^router id 198\.18\.0\.1;$/m);
  t.deepEqual([...config.matchAll(/route (\S+) blackhole;/g)].map((m) => m[1]), ['198.19.64.0/26', '198.19.64.192/26', '198.19.80.0/26']);
  t.deepEqual([...config.matchAll(/neighbor (\S+) as 64512;/g)].map((m) => m[1]), ['198.18.0.2', '198.18.0.3'], 'one session per other host, never to itself');
  t.regex(config, /export where source = RTS_STATIC; next hop self;/);
  t.regex(config, /protocol kernel \{ ipv4 \{ import none; export where source = RTS_BGP; \}; \}/, 'only learned routes reach the kernel: the blackholes stay in BIRD');
});
