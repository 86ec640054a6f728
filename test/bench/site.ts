/**
 * The site on a real Mosquitto (issue 23). In one process: N gateways (default 20) connected to
 * the site broker directly (each its own account), an operator's tool, and a flood sender.
 *   lockdown      threat level set → in force at all N doors (ms), over --runs runs
 *   late join     a new door with nothing on disk, 10,000 facts retained → complete (ms), and
 *                 what the facts cost the heap (after GC, MB: RSS of a process with 21 gateways is noise)
 *   restart       the same door restarted: facts loaded from disk before its first decision (ms)
 *   decisions     p50/p99 of pipeline.handle (µs) without site traffic, and while 10,000 bad
 *                 envelopes a second arrive
 * In one process the N doors share one event loop, so "all N" is an upper bound of what N
 * processes would show. Last line of output is JSON.
 *
 *   npm run bench:site [-- --doors 20 --runs 20 --facts 10000]
 */
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SiteTool } from '../../src/cli/site-tool.js';
import { validateConfig } from '../../src/config/load.js';
import { credentialEvent } from '../../src/domain/events.js';
import { keyIdOf, signEnvelope, type SiteEnvelope } from '../../src/domain/site-envelope.js';
import { MANIFEST_SUBJECT } from '../../src/domain/site-facts.js';
import { Gateway } from '../../src/gateway.js';
import { ToolClient } from '../../src/io/mqtt/client.js';
import { createLogger } from '../../src/log.js';
import { Broker } from '../helpers/mosquitto.js';
import { pct, r2 } from './common.js';

const { values } = parseArgs({ options: { doors: { type: 'string', default: '20' }, runs: { type: 'string', default: '20' }, facts: { type: 'string', default: '10000' } } });
const N = Number(values.doors);
const RUNS = Number(values.runs);
const FACTS = Number(values.facts);
const log = createLogger({ level: 'silent', pretty: false });

const users: Record<string, string> = { 'bench-tool': 'tool', 'bench-flood': 'flood' };
let acl = 'user bench-tool\ntopic readwrite doorgw-site/#\nuser bench-flood\ntopic readwrite doorgw-site/#\n';
for (let i = 0; i <= N; i++) {
  users[`g${i}`] = `p${i}`;
  acl += `user g${i}\ntopic readwrite doorgw/#\ntopic read doorgw-site/#\ntopic write doorgw-site/fact/#\ntopic write doorgw-site/door/+\n`;
}
const broker = new Broker({ users, acl });
await broker.start();

const admin = generateKeyPairSync('ed25519');
const raw = admin.publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64');
const site = { enabled: true, keys: [{ kid: keyIdOf(admin.publicKey), name: 'bench-admin', public_key: raw, roles: ['admin'] }] };
const configOf = (i: number, dir: string) =>
  validateConfig(
    {
      gateway_id: `g${i}`,
      data_dir: dir,
      policy: { debounce_ms: 0 },
      doors: [{ id: 'door', readers: [] }],
      mqtt: { enabled: true, url: broker.url, username: `g${i}`, password: `p${i}` },
      site,
    },
    'bench',
  );
const startDoor = async (i: number, dir = mkdtempSync(join(tmpdir(), 'doorgw-bench-site-'))) => {
  const g = await Gateway.start({ config: configOf(i, dir), log, controlSocket: false });
  while (!g.mqtt!.link.connected$.value) await new Promise((r) => setTimeout(r, 10));
  return { g, dir };
};
const waitFor = async (fn: () => boolean, ms = 60_000) => {
  const t0 = performance.now();
  while (!fn()) {
    if (performance.now() - t0 > ms) throw new Error('timed out');
    await new Promise((r) => setImmediate(r));
  }
  return performance.now() - t0;
};

const doors: { g: Gateway; dir: string }[] = [];
for (let i = 1; i <= N; i++) doors.push(await startDoor(i));
const client = await ToolClient.connect({ url: broker.url, username: 'bench-tool', password: 'tool', clientId: 'bench-tool' });
const tool = new SiteTool(client, configOf(0, mkdtempSync(join(tmpdir(), 'doorgw-bench-site-tool-'))), { privateKey: admin.privateKey, kid: keyIdOf(admin.publicKey) });

// Lockdown: from the publish of the fact to the last door in force.
const lockdown: number[] = [];
for (let r = 0; r < RUNS; r++) {
  const level = r % 2 === 0 ? 'lockdown' : 'normal';
  const want = level === 'lockdown' ? 'lockdown' : 'normal';
  const e = signEnvelope({ v: 1, kid: keyIdOf(admin.publicKey), iat: Date.now(), id: randomUUID(), kind: 'fact', subject: 'threat_level/site', scope: { site: true }, version: r + 1, body: { level } }, admin.privateKey);
  const t0 = performance.now();
  await client.publish('doorgw-site/fact/threat_level/site', JSON.stringify(e), true);
  await waitFor(() => doors.every((d) => d.g.pipeline.modeOf('door') === want));
  lockdown.push(performance.now() - t0);
}

// 10,000 facts retained (blocks of cards), then the manifest; a new door joins.
const facts: SiteEnvelope[] = [];
for (let i = 0; i < FACTS; i++) {
  const e = signEnvelope({ v: 1, kid: keyIdOf(admin.publicKey), iat: Date.now(), id: randomUUID(), kind: 'fact', subject: `block/card:${1_000_000 + i}`, scope: { site: true }, version: 1, body: { reason: 'bench' } }, admin.privateKey);
  facts.push(e);
  await client.publish(`doorgw-site/fact/${e.subject}`, JSON.stringify(e), true);
}
const all = (await tool.snapshot()).facts;
await tool.publishManifest({ facts: all, manifest: (await tool.snapshot()).manifest });
void MANIFEST_SUBJECT;
await waitFor(() => doors.every((d) => d.g.site!.status().complete === true));
global.gc?.();
const heapBefore = process.memoryUsage().heapUsed;
const t0 = performance.now();
const late = await startDoor(0);
const lateJoinMs = (await waitFor(() => late.g.site!.status().complete === true)) + 0;
const lateTotal = performance.now() - t0;
global.gc?.();
await new Promise((r) => setTimeout(r, 200));
global.gc?.();
const heapAfter = process.memoryUsage().heapUsed;

// Restart of the late door: facts from disk before the first decision.
await late.g.stop();
const t1 = performance.now();
const again = await Gateway.start({ config: configOf(0, late.dir), log, controlSocket: false });
const restartMs = performance.now() - t1;
const loaded = again.site!.status().facts;
for (const d of doors) await d.g.stop(); // only the door measured hears the flood

// Decisions with and without a flood of bad envelopes (10,000 a second, forged signatures).
const decideSamples = (n: number) => {
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = process.hrtime.bigint();
    again.pipeline.handle(credentialEvent('door', 'bench', 'in', { type: 'card', value: String(2_000_000 + i) }));
    xs.push(Number(process.hrtime.bigint() - s) / 1000);
  }
  return xs;
};
const measure = async (ms: number) => {
  const xs: number[] = [];
  const end = performance.now() + ms;
  while (performance.now() < end) {
    xs.push(...decideSamples(50));
    await new Promise((r) => setImmediate(r));
  }
  return xs;
};
const quiet = await measure(3000);
const flood = await ToolClient.connect({ url: broker.url, username: 'bench-flood', password: 'flood', clientId: 'bench-flood' });
const bad = JSON.stringify({ ...facts[0]!, version: 99, id: 'forged-flood', sig: facts[1]!.sig });
let sent = 0;
let flooding = true;
const floodLoop = (async () => {
  while (flooding) {
    const t = performance.now();
    await Promise.all(Array.from({ length: 100 }, () => flood.publish('doorgw-site/fact/block/card:1000000', bad, false)));
    sent += 100;
    const wait = 10 - (performance.now() - t);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
})();
(globalThis as { gc?: () => void }).gc?.();
const rssFloodStart = process.memoryUsage().rss;
const heapFloodStart = process.memoryUsage().heapUsed;
const loud = await measure(3000);
flooding = false;
await floodLoop;
const rssFloodEnd = process.memoryUsage().rss;
const inbox = again.mqtt?.siteInbox;
const queuedAtEnd = inbox?.size ?? 0;
const droppedByInbox = inbox?.dropped ?? 0;
while ((inbox?.size ?? 0) > 0) await new Promise((r) => setTimeout(r, 20)); // the queue drains
(globalThis as { gc?: () => void }).gc?.();
const heapAfterDrain = process.memoryUsage().heapUsed;

const result = {
  bench: 'site',
  doors: N,
  runs: RUNS,
  lockdown_all_doors_ms: { p50: r2(pct(lockdown, 50)), p99: r2(pct(lockdown, 99)), max: r2(Math.max(...lockdown)) },
  late_join: { facts: FACTS, complete_ms: Math.round(lateJoinMs), start_to_complete_ms: Math.round(lateTotal), heap_mb: r2((heapAfter - heapBefore) / 2 ** 20) },
  restart: { start_ms: Math.round(restartMs), facts_loaded_before_first_decision: loaded },
  decisions_us: {
    quiet: { p50: r2(pct(quiet, 50)), p99: r2(pct(quiet, 99)), n: quiet.length },
    flood: { p50: r2(pct(loud, 50)), p99: r2(pct(loud, 99)), n: loud.length, envelopes_per_s: Math.round(sent / 3), rss_growth_mb: r2((rssFloodEnd - rssFloodStart) / 2 ** 20), heap_growth_after_drain_mb: r2((heapAfterDrain - heapFloodStart) / 2 ** 20), queued_at_end: queuedAtEnd, dropped_unverified: droppedByInbox },
    ratio_p50: r2(pct(loud, 50) / pct(quiet, 50)),
    ratio_p99: r2(pct(loud, 99) / pct(quiet, 99)),
  },
  refused_by_the_door: again.site!.status().refused,
};
await again.stop();
await client.end();
await flood.end();
await broker.stop();
console.log(JSON.stringify(result));
