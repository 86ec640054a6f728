/**
 * The site as deployed (issue 23): 20 gateway processes (`doorgw start`), 15 on the site Mosquitto
 * directly, 5 behind their own local Mosquitto bridged as the role renders it (helpers/site-processes.ts).
 *   lockdown   threat level signed → in force at all 20 doors, as each gateway's MQTT state says
 *              (ms from the fact's signing; --runs runs, lockdown and normal alternating)
 *   healing    5 doors cut off (2 local brokers SIGSTOPped, 1 killed, 2 gateways killed -9) while
 *              a block and a level change are made; healed → each cut door's signed report
 *              confirms the site's manifest (ms, per way of being cut off; --partitions times)
 *   facts      10,000 facts retained: what they cost one gateway process (RSS, MB), and the time
 *              until every door is complete
 * Last line of output is JSON.
 *
 *   npm run bench:site-processes [-- --runs 20 --partitions 3]
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { keyIdOf, signEnvelope } from '../../src/domain/site-envelope.js';
import { lobbyMode, ProcessSite, type SiteStatus } from '../helpers/site-processes.js';
import { pct, r2 } from './common.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '20' }, partitions: { type: 'string', default: '3' }, facts: { type: 'string', default: '10000' } } });
const RUNS = Number(values.runs);
const PARTITIONS = Number(values.partitions);
const FACTS = Number(values.facts);

const site = new ProcessSite({ doors: 20, bridged: 5 });
await site.start();
const { tool: op, close } = await site.operator();
const progress = (what: string) => process.stderr.write(`${new Date().toISOString()} ${what}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor<T>(f: () => Promise<T | null | false> | T | null | false, what: string, ms = 120_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out: ${what}\n${site.output.slice(-3000)}`);
    await sleep(20);
  }
}
const status = (ok: (s: SiteStatus) => boolean, what: string) => waitFor(async () => { const s = await op.status(); return ok(s) ? s : null; }, what);

// Every gateway's level as its MQTT state says it (the monitor account reads doorgw/+/state).
const level = new Map<string, { level: string | null; at: number }>();
const mon = await mqtt.connectAsync(site.site.url, { username: 'monitor', password: site.accounts.monitor!, protocolVersion: 5 });
mon.on('message', (topic, payload) => {
  try {
    const p = JSON.parse(payload.toString()) as { levels?: Record<string, string | null> };
    level.set(topic.split('/')[1]!, { level: p.levels?.lobby ?? null, at: Date.now() });
  } catch {
    /* not a state */
  }
});
await mon.subscribeAsync('doorgw/+/state', { qos: 1 });

await op.state('user/bench', { site: true }, { cards: ['1'] });
await status((s) => s.doors.length === 20 && s.unconfirmed.length === 0, 'all 20 doors report');
progress('20 doors report');

// Lockdown.
const lockdown: number[] = [];
for (let i = 0; i < RUNS; i++) {
  const want = i % 2 === 0 ? 'lockdown' : 'normal';
  const { fact } = await op.state('threat_level/site', { site: true }, { level: want });
  const t = await waitFor(() => site.ids.every((id) => level.get(id)?.level === want) && Math.max(...site.ids.map((id) => level.get(id)!.at)), `${want} at every door`);
  lockdown.push(t - fact.iat);
}
progress('lockdown runs done');
if (RUNS % 2 === 1) await op.state('threat_level/site', { site: true }, { level: 'normal' });

// Partitions and healing.
const heal: Record<'frozen_broker' | 'killed_broker' | 'killed_gateway', number[]> = { frozen_broker: [], killed_broker: [], killed_gateway: [] };
const kinds = { gw16: 'frozen_broker', gw17: 'frozen_broker', gw18: 'killed_broker', gw01: 'killed_gateway', gw02: 'killed_gateway' } as const;
const cut = Object.keys(kinds);
for (let p = 0; p < PARTITIONS; p++) {
  site.locals.get('gw16')!.pause();
  site.locals.get('gw17')!.pause();
  const port = site.locals.get('gw18')!.port;
  await site.locals.get('gw18')!.stop();
  await Promise.all(['gw01', 'gw02'].map((id) => site.kill(id)));
  await op.state(`block/card:${9000 + p}`, { site: true }, { reason: 'bench' });
  await op.state('threat_level/site', { site: true }, { level: p % 2 === 0 ? 'lockdown' : 'normal' });
  await status((s) => site.ids.filter((id) => !cut.includes(id)).every((id) => s.doors.find((d) => d.gateway === id)?.confirmed), 'the connected doors confirm');
  const t0 = Date.now();
  site.locals.get('gw16')!.resume();
  site.locals.get('gw17')!.resume();
  await site.locals.get('gw18')!.start(port);
  site.startGateway('gw01');
  site.startGateway('gw02');
  const first = new Map<string, number>();
  await waitFor(async () => {
    const s = await op.status();
    const now = Date.now();
    for (const id of cut) if (!first.has(id) && s.doors.find((d) => d.gateway === id)?.confirmed) first.set(id, now - t0);
    return first.size === cut.length && s.unconfirmed.length === 0;
  }, 'every door confirms after healing');
  for (const [id, ms] of first) heal[kinds[id as keyof typeof kinds]].push(ms);
  progress(`partition ${p + 1} healed`);
}
await op.state('threat_level/site', { site: true }, { level: 'normal' });
await status((s) => s.unconfirmed.length === 0 && site.ids.every((id) => lobbyMode(s, id) === 'normal'), 'normal everywhere');

// 10,000 facts: the cost in one gateway process, and how long until every door is complete.
const rss = (id: string) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${site.procs.get(id)!.pid}/status`, 'utf8'))![1]) / 1024;
await sleep(2000); // let the restarted ones settle
const before = rss('gw05');
// Its own account: with use_username_as_clientid, the operator's would take the tool's session.
const pub = await mqtt.connectAsync(site.site.url, { username: 'publisher', password: site.accounts.publisher!, protocolVersion: 5 });
const t0 = Date.now();
for (let i = 0; i < FACTS; i++) {
  const e = signEnvelope({ v: 1, kid: keyIdOf(site.admin.publicKey), iat: Date.now(), id: randomUUID(), kind: 'fact', subject: `block/card:${1_000_000 + i}`, scope: { site: true }, version: 1, body: { reason: 'bench' } }, site.admin.privateKey);
  await pub.publishAsync(`doorgw-site/fact/${e.subject}`, JSON.stringify(e), { qos: 1, retain: true });
}
await pub.endAsync();
progress('facts published');
const snap = await op.snapshot();
await op.publishManifest({ facts: snap.facts, manifest: snap.manifest });
await status((s) => s.unconfirmed.length === 0 && s.doors.every((d) => d.facts >= FACTS), 'every door complete with the facts');
const completeMs = Date.now() - t0;
await sleep(2000);
const after = rss('gw05');

const summary = (xs: number[]) => ({ p50: Math.round(pct(xs, 50)), max: Math.round(Math.max(...xs)), n: xs.length });
const result = {
  bench: 'site-processes',
  doors: 20,
  bridged: 5,
  lockdown_all_doors_ms: { p50: r2(pct(lockdown, 50)), p99: r2(pct(lockdown, 99)), max: r2(Math.max(...lockdown)), runs: RUNS },
  heal_to_confirmed_ms: { frozen_broker: summary(heal.frozen_broker), killed_broker: summary(heal.killed_broker), killed_gateway_restarted: summary(heal.killed_gateway) },
  facts: { count: FACTS, publish_to_all_complete_ms: completeMs, rss_mb_before: r2(before), rss_mb_after: r2(after), rss_growth_mb: r2(after - before) },
};
await mon.endAsync();
await close();
await site.stop();
// Written before exiting (a pipe is asynchronous: exit would cut the line off).
process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
