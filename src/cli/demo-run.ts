/**
 * `npm run demo`: the product working end to end without a cloud account. A WeCom emulator with a
 * few thousand users, activation, the gateway connected to it with simulated hardware, and a
 * scripted scanner; each decision is shown with its latency, then the sync and the uploads.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Subject } from 'rxjs';
import { WecomEmulator, generateDirectory, signQrFor, type CloudUser } from '../cloud/wecom/emulator.js';
import { activate } from '../cloud/wecom/provision.js';
import { writeSecret } from '../cloud/wecom/secret.js';
import { WecomSession } from '../cloud/wecom/session.js';
import { validateConfig } from '../config/load.js';
import { Gateway } from '../gateway.js';
import { createLogger } from '../log.js';
import { credentialEvent, type CredentialEvent, type DecisionEvent } from '../domain/events.js';
import { passRecordOf } from '../pipeline/journal-writer.js';
import { compressedPoint } from '../domain/qr.js';
import { generateKeyPairSync } from 'node:crypto';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function runDemo(o: { users: number; pauseMs: number; out: (s: string) => void }): Promise<void> {
  const { out } = o;
  const bold = (s: string): string => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
  const color = (grant: boolean, s: string): string => (process.stdout.isTTY ? `\x1b[${grant ? 32 : 31}m${s}\x1b[0m` : s);
  const quiet = createLogger({ level: 'warn', pretty: 'auto' });

  const dir = generateDirectory(o.users);
  const emu = new WecomEmulator({ autoBind: true });
  emu.seed(dir.users);
  const url = await emu.start();
  const dataDir = mkdtempSync(join(tmpdir(), 'doorgw-demo-'));
  out(bold(`doorgw demo — WeCom emulator at ${url} with ${o.users} users, data in ${dataDir}`));

  // Activation, exactly as `doorgw wecom activate` does it.
  const s = new WecomSession({ url, log: quiet, requestTimeoutMs: 5000, backoffMs: [500, 2000] });
  s.start();
  await new Promise<void>((r) => s.opened$.subscribe(() => r()));
  const secret = await activate(s, 'DEMO-0001', quiet);
  await s.stop();
  writeSecret(dataDir, { sn: 'DEMO-0001', secret });
  out(`activation: registered DEMO-0001, bound by the (emulated) corp, secret stored with mode 0600`);

  const scanner = new Subject<CredentialEvent>();
  const config = validateConfig(
    { data_dir: dataDir, timezone: 'Asia/Shanghai', policy: { debounce_ms: 300 }, doors: [{ id: 'front', name: 'Front door', relay: { pulse_ms: 1500 } }], cloud: { provider: 'wecom', wecom: { url, sn: 'DEMO-0001' } } },
    'demo',
  );
  const t0 = Date.now();
  const gw = await Gateway.start({ config, log: quiet, sources: [scanner], controlSocket: false });
  try {
    const sync = await waitFor(async () => (gw.cloud?.state$.value.directory_version === emu.permVersion ? gw.store.userCount() : 0), 30_000);
    out(`sync: ${sync} users from get_userinfo_by_page in ${((Date.now() - t0) / 1000).toFixed(2)} s (perm_version ${emu.permVersion}), now deciding offline\n`);

    const decisions: DecisionEvent[] = [];
    gw.pipeline.decisions$.subscribe((d) => decisions.push(d));
    const show = (label: string, d: DecisionEvent | undefined): void => {
      if (!d) return out(`  ${label.padEnd(46)} (no decision)`);
      const grant = d.decision === 'grant';
      out(`  ${label.padEnd(46)} → ${color(grant, `${d.decision.toUpperCase().padEnd(5)} ${d.reason.padEnd(17)}`)} ${`${Math.round(d.latency_us)} µs`.padStart(8)}${grant ? '   relay pulsed' : ''}`);
    };
    const present = async (label: string, ev: CredentialEvent): Promise<void> => {
      const n = decisions.length;
      scanner.next(ev);
      show(label, await waitFor(() => decisions[n], 2000).catch(() => undefined));
      await sleep(o.pauseMs);
    };
    const scan = (text: string): CredentialEvent => credentialEvent('front', 'demo-scanner', 'in', { type: 'qr', text });
    const now = Math.floor(Date.now() / 1000);
    const keyOf = (u: CloudUser) => dir.keys.get(u.public_key!)!;
    const employee = dir.users.find((u) => u.user_type === 0 && !u.pass_rule_list)!;
    const scheduled: CloudUser = { ...employee, userid: 'night-shift', openvid: '18446744073709551000', name: 'Night shift', pass_rule_list: [{ id: 0, rule: '3:00-3:01 1 1 * 2001', effect_time: 0 }] };
    const visitor: CloudUser = { ...employee, userid: 'V/10001', openvid: '18446744073709551002', user_type: 1, name: 'Visitor' };
    emu.upsertUsers([scheduled, visitor]);
    await waitFor(() => gw.store.directory.user('V/10001'), 5000);

    out(bold('scripted scanner at the front door:'));
    const valid = signQrFor(employee, keyOf(employee), now - 5);
    await present(`${employee.name}: employee code, valid`, scan(valid));
    await present(`${employee.name}: the same code shown again`, scan(valid));
    await present(`${employee.name}: code that expired an hour ago`, scan(signQrFor(employee, keyOf(employee), now - 3900)));
    const forger = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    await present(`${employee.name}: forged code (another key)`, scan(signQrFor(employee, forger, now)));
    await present('Night shift: valid code, outside the schedule', scan(signQrFor(scheduled, keyOf(scheduled), now)));
    await present('Visitor: visitor code, no pass rules', scan(signQrFor(visitor, keyOf(visitor), now)));
    await present('garbage from the scanner', scan('hello?'));

    out(bold('\ncloud pushes:'));
    const nk = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const newcomer: CloudUser = { userid: 'newcomer', openvid: '18446744073709551001', user_type: 0, name: 'Newcomer', public_key: compressedPoint(nk.publicKey).toString('base64') };
    emu.upsertUsers([newcomer]);
    await waitFor(() => gw.store.directory.user('newcomer'), 5000);
    out(`  push_change_contact → perm_version ${emu.permVersion}: 'newcomer' fetched with get_userinfo_by_ids`);
    await present('Newcomer: employee code, seconds after the push', scan(signQrFor(newcomer, nk.privateKey, now)));
    const n = decisions.length;
    const { report, ms } = await emu.remoteOpen(employee.userid, 'demo-op');
    show(`push_remote_open_door for ${employee.name}`, decisions[n]);
    out(`  report_remote_open_door status ${String(report.status)} after ${ms} ms (deadline 3 s)`);

    // Wait for every pass record, not the first: the remote open's record is queued after its reply.
    const passes = decisions.filter((x) => passRecordOf(x) !== undefined).length;
    await waitFor(async () => emu.checkins.length >= passes && (await gw.store.outboxDepth()) === 0, 10_000);
    out(bold('\nrecords:'));
    out(`  ${decisions.length} decisions journaled; ${emu.checkins.length} pass records uploaded with checkin; outbox now ${await gw.store.outboxDepth()}`);
    for (const c of emu.checkins) out(`    checkin ${c.userid} pass_type ${c.pass_type} pass_method ${c.pass_method} at ${new Date(c.timestamp * 1000).toISOString()}`);
    out(`\nTry it yourself: \`npx doorgw wecom emulator\`, then \`npm start\` with cloud.provider: wecom (docs/clouds.md).`);
  } finally {
    await gw.stop();
    await emu.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function waitFor<T>(fn: () => T | Promise<T>, timeoutMs: number): Promise<NonNullable<T>> {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error('demo step timed out');
    await sleep(20);
  }
}
