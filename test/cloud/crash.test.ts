/** kill -9 of a real gateway process in the middle of a full sync and of an upload. */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WecomEmulator, type CloudUser } from '../../src/cloud/wecom/emulator.js';
import { writeSecret } from '../../src/cloud/wecom/secret.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const children: ChildProcess[] = [];
let emu: WecomEmulator | null = null;
afterEach(async () => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  await emu?.stop();
  emu = null;
});

const users = (n: number, prefix: string): CloudUser[] =>
  Array.from({ length: n }, (_, i) => ({ userid: `${prefix}${i}`, openvid: String(1_000_000 + i + (prefix === 'b' ? 500_000 : 0)), user_type: 0, name: `${prefix}${i}` }));

function gatewayProcess(config: string): ChildProcess {
  const c = spawn(process.execPath, [join(ROOT, 'dist/cli/main.js'), 'start', '-c', config], { stdio: ['pipe', 'ignore', 'ignore'] });
  children.push(c);
  return c;
}

async function workspace(): Promise<{ config: string; dataDir: string; emu: WecomEmulator }> {
  emu = new WecomEmulator();
  const url = await emu.start();
  const dir = tmpDir();
  const dataDir = join(dir, 'data');
  const config = join(dir, 'doorgw.yaml');
  writeFileSync(
    config,
    `data_dir: ${dataDir}\npolicy: { debounce_ms: 0 }\nlog: { level: warn, pretty: false }\n` +
      `doors:\n  - id: front\n    readers: [{ id: console, type: terminal }]\n` +
      `cloud:\n  provider: wecom\n  wecom: { url: "${url}", sn: crash-1, backoff_min_ms: 100, backoff_max_ms: 500 }\n`,
  );
  writeSecret(dataDir, { sn: 'crash-1', secret: emu.provision('crash-1') });
  return { config, dataDir, emu };
}

async function storeOf(dataDir: string): Promise<{ count: number; version: number | undefined; has: (id: string) => boolean; close: () => Promise<void> }> {
  const s = await Store.open(dataDir);
  return { count: await s.userCount(), version: await s.getMeta<number>('wecom.perm_version'), has: (id) => s.directory.user(id) !== undefined, close: () => s.close() };
}

const exited = (c: ChildProcess): Promise<void> => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', () => r())));

describe('kill -9', () => {
  it('mid full sync: the previous complete directory stays in force, and the next start completes', async () => {
    const ws = await workspace();
    ws.emu.seed(users(1000, 'a'));
    let gw = gatewayProcess(ws.config);
    await until(() => ws.emu.requests.filter(([c]) => c === 'get_userinfo_by_page').length === 5 && ws.emu.requests.some(([c]) => c === 'get_visitor_version'), 'first sync', 30_000);
    await new Promise((r) => setTimeout(r, 300));
    gw.kill('SIGTERM');
    await exited(gw);
    const first = await storeOf(ws.dataDir);
    expect([first.count, first.version]).toEqual([1000, 1]);
    await first.close();

    // The cloud grows to 5000 users; history is unavailable, so the next login does a full sync,
    // slowed down so it can be killed in the middle.
    ws.emu.upsertUsers(users(4000, 'b'), { push: false });
    ws.emu.fault = (cmd) => (cmd === 'get_notify_history' ? { errcode: 600099, errmsg: 'history unavailable' } : cmd === 'get_userinfo_by_page' ? { delayMs: 40 } : undefined);
    const before = ws.emu.requests.length;
    gw = gatewayProcess(ws.config);
    await until(() => ws.emu.requests.slice(before).filter(([c, b]) => c === 'get_userinfo_by_page' && Number(b.offset) >= 2400).length > 0, 'half the pages', 20_000);
    gw.kill('SIGKILL');
    await exited(gw);

    const after = await storeOf(ws.dataDir);
    expect([after.count, after.version, after.has('a999'), after.has('b0')]).toEqual([1000, 1, true, false]);
    await after.close();

    ws.emu.fault = (cmd) => (cmd === 'get_notify_history' ? { errcode: 600099, errmsg: 'history unavailable' } : undefined);
    gw = gatewayProcess(ws.config);
    const pagesBefore = ws.emu.requests.length;
    await until(() => ws.emu.requests.slice(pagesBefore).filter(([c, b]) => c === 'get_userinfo_by_page' && b.offset === 4800).length > 0 && ws.emu.requests.slice(pagesBefore).some(([c]) => c === 'get_visitor_version'), 'second sync', 20_000);
    await new Promise((r) => setTimeout(r, 300));
    gw.kill('SIGTERM');
    await exited(gw);
    const done = await storeOf(ws.dataDir);
    expect([done.count, done.version, done.has('b3999')]).toEqual([5000, 2, true]);
    await done.close();
  }, 120_000);

  it('mid upload: every pass record reaches the cloud once, after restart', async () => {
    const ws = await workspace();
    ws.emu.seed(users(30, 'a'));
    ws.emu.fault = (cmd) => (cmd === 'checkin' ? 'ignore' : undefined); // the cloud never answers
    let gw = gatewayProcess(ws.config);
    await until(() => ws.emu.requests.some(([c]) => c === 'get_visitor_version'), 'login', 30_000);
    for (let i = 0; i < 30; i++) gw.stdin!.write(`face:a${i}\n`);
    await until(() => ws.emu.requests.some(([c]) => c === 'checkin'), 'upload attempt', 30_000);
    await new Promise((r) => setTimeout(r, 200));
    gw.kill('SIGKILL');
    await exited(gw);
    expect(ws.emu.checkins).toHaveLength(0);

    ws.emu.fault = () => undefined;
    gw = gatewayProcess(ws.config);
    await until(() => ws.emu.checkins.length === 30, 'all records delivered', 20_000);
    expect(new Set(ws.emu.checkins.map((c) => c.userid)).size).toBe(30);
    await new Promise((r) => setTimeout(r, 300));
    gw.kill('SIGTERM');
    await exited(gw);
    const s = await Store.open(ws.dataDir);
    expect(await s.outboxDepth()).toBe(0);
    expect((await s.recentJournal(100)).filter((j) => j.decision === 'grant')).toHaveLength(30);
    await s.close();
  }, 90_000);
});
