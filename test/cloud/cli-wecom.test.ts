/** The WeCom operator flow as an installer runs it: real processes, real emulator. */
import { spawn, type ChildProcess } from 'node:child_process';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WecomEmulator, generateDirectory } from '../../src/cloud/wecom/emulator.js';
import { secretPath } from '../../src/cloud/wecom/secret.js';
import { tmpDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

const CLI = join(new URL('../..', import.meta.url).pathname, 'dist/cli/main.js');
const children: ChildProcess[] = [];
let emu: WecomEmulator | null = null;
afterEach(async () => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  await emu?.stop();
});

/** Run the CLI without blocking this process (it hosts the emulator the CLI talks to). */
function run(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    c.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    c.once('close', (status) => resolve({ status, stdout, stderr }));
  });
}
const statusOf = async (config: string) => JSON.parse((await run(['status', '-c', config, '--json'])).stdout) as { running: boolean; users: number; cloud: { link: string } | null };

describe('doorgw wecom activate, sync, outbox', () => {
  it('activates an unprovisioned gateway, which then logs in and syncs by itself', async () => {
    emu = new WecomEmulator({ autoBind: false });
    const url = await emu.start();
    emu.seed(generateDirectory(700).users);
    const dir = tmpDir();
    const dataDir = join(dir, 'data');
    const config = join(dir, 'doorgw.yaml');
    writeFileSync(config, `data_dir: ${dataDir}\nlog: { level: warn, pretty: false }\ndoors: [{ id: front }]\ncloud:\n  provider: wecom\n  wecom: { url: "${url}", sn: CLI-1 }\n`);

    const gw = spawn(process.execPath, [CLI, 'start', '-c', config], { stdio: 'ignore' });
    children.push(gw);
    // Running but not activated: unhealthy (exit 3), so a rollout's health gate stops here.
    const notActivated = await until(async () => {
      const r = await run(['status', '-c', config]);
      return r.status === 3 ? r : null;
    }, 'gateway running, unhealthy', 30_000);
    expect(notActivated.stdout + notActivated.stderr).toMatch(/device not activated/);
    expect((await statusOf(config)).cloud?.link).toBe('unprovisioned');
    expect((await run(['sync', '-c', config])).stderr).toMatch(/not logged in to WeCom/);

    const act = spawn(process.execPath, [CLI, 'wecom', 'activate', '-c', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(act);
    let out = '';
    act.stdout.on('data', (c: Buffer) => (out += c.toString()));
    await until(() => out.includes('waiting for a corp administrator'), 'registration', 30_000);
    emu.bind('CLI-1');
    const code = await new Promise<number | null>((r) => act.once('exit', r));
    expect(code).toBe(0);
    expect(statSync(secretPath(dataDir)).mode & 0o777).toBe(0o600);
    expect(out).not.toMatch(new RegExp(emu.devices.get('CLI-1')!.secret!)); // the secret is never printed

    await until(async () => (await statusOf(config)).users === 700, 'login and sync after activation', 30_000);
    expect((await statusOf(config)).cloud?.link).toBe('online');
    expect((await run(['status', '-c', config])).status).toBe(0); // healthy once synced
    const synced = JSON.parse((await run(['sync', '-c', config, '--json'])).stdout) as { users: number; version: number };
    expect(synced).toMatchObject({ users: 700, version: 1 });
    const outbox = JSON.parse((await run(['outbox', '-c', config, '--json'])).stdout) as { queued: unknown[]; held: unknown[] };
    expect(outbox).toEqual({ queued: [], held: [] });
    expect((await run(['outbox', 'requeue', '-c', config])).stdout).toMatch(/requeued 0 records/);
  }, 90_000);

  it('refuses to activate twice without --force', async () => {
    emu = new WecomEmulator({ autoBind: true });
    const url = await emu.start();
    const dir = tmpDir();
    const config = join(dir, 'doorgw.yaml');
    writeFileSync(config, `data_dir: ${join(dir, 'data')}\ndoors: [{ id: front }]\ncloud: { provider: wecom, wecom: { url: "${url}", sn: CLI-2 } }\n`);
    expect((await run(['wecom', 'activate', '-c', config])).status).toBe(0);
    const again = await run(['wecom', 'activate', '-c', config]);
    expect([again.status, again.stdout]).toEqual([0, expect.stringContaining('already activated')]);
  }, 60_000);
});
