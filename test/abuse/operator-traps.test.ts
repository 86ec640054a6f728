/**
 * Operator traps found by walking through the README as a new user: the `doorgw` command as a real
 * process (read-only commands, pipes, arguments, times, secrets, root) and one source of truth for
 * door modes.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readSecret, SecretUnreadableError, secretPath, writeSecret } from '../../src/cloud/wecom/secret.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { user } from '../helpers/users.js';
import { until } from '../helpers/wait.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const CLI = join(ROOT, 'dist/cli/main.js'); // built by test/global-setup.ts
const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;

function doorgw(args: string[], env: Record<string, string> = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 20_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function workspace(extra = ''): { dir: string; config: string; dataDir: string } {
  const dir = tmpDir();
  const dataDir = join(dir, 'data');
  const config = join(dir, 'doorgw.yaml');
  writeFileSync(config, `data_dir: ${dataDir}\ntimezone: Asia/Shanghai\ndoors:\n  - id: front\n  - id: back\n    timezone: America/New_York\n${extra}`);
  return { dir, config, dataDir };
}

describe('read-only commands', () => {
  it('say there is no data instead of creating an empty database', () => {
    const w = workspace();
    for (const args of [['users', 'list'], ['status'], ['journal'], ['outbox'], ['check', '--card', '1'], ['users', 'show', 'x']]) {
      const r = doorgw([...args, '-c', w.config]);
      expect([args.join(' '), r.code, r.stderr]).toEqual([args.join(' '), 1, `doorgw: no gateway data in ${w.dataDir} (the gateway has not run with this configuration, or --config points elsewhere)\n`]);
    }
    expect(existsSync(w.dataDir)).toBe(false);
  });

  it('end quietly when the reader of their output goes away (| head -1)', () => {
    const w = workspace();
    const s = Store.open(w.dataDir).then(async (st) => {
      await st.upsertUsers(Array.from({ length: 3000 }, (_, i) => user({ userid: `u${i}`, cards: [i + 1] })));
      await st.close();
    });
    return s.then(() => {
      const r = spawnSync('sh', ['-c', `'${process.execPath}' '${CLI}' users list -c '${w.config}' | head -1`], { encoding: 'utf8' });
      expect(r.stdout).toBe('LAYER\tUSERID\tTYPE\tNAME\tCARDS\tOPENVID\tKEY\tRULES\t\n');
      expect(r.stderr).toBe('more: --after u1898\n'); // the paging hint, and no EPIPE trace
    });
  });
});

describe('arguments and times', () => {
  it('name the real problem', () => {
    const w = workspace();
    expect(doorgw(['journal', '--limit', 'abc', '-c', w.config]).stderr).toBe("doorgw: --limit 'abc' must be a whole number\n");
    expect(doorgw(['status', '--max-link-down', '5m', '-c', w.config]).stderr).toBe("doorgw: --max-link-down '5m' must be seconds\n");
    expect(doorgw(['records', 'reconcile', '--since', '2026-02-30', '-c', w.config]).stderr).toBe("doorgw: --since '2026-02-30' is not a date that exists\n");
    expect(doorgw(['records', 'reconcile', '--since', '2026-01-01T25:00:00+08:00', '-c', w.config]).stderr).toBe("doorgw: --since '2026-01-01T25:00:00+08:00' is not a valid date and time\n");
    const unknown = doorgw(['status', '-c', w.config], { DOORGW_MQTT__PASWORD: 'x' });
    expect([unknown.code, unknown.stderr]).toEqual([2, 'doorgw: invalid configuration in the environment:\n  - DOORGW_MQTT__PASWORD: no configuration key mqtt.pasword (variables starting DOORGW_ are configuration overrides)\n']);
  });

  it('print journal times in the door\'s zone with the offset', async () => {
    const w = workspace();
    const s = await Store.open(w.dataDir);
    const at = Date.UTC(2026, 10, 22, 14, 5, 1);
    await s.append([
      { decision: { decision: 'grant', reason: 'default_allow', userid: 'a', user_type: 0, method: 'card', door: 'front', at } },
      { decision: { decision: 'deny', reason: 'unknown_user', userid: null, user_type: null, method: 'card', door: 'back', at } },
    ]);
    await s.close();
    const lines = doorgw(['journal', '-c', w.config]).stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^2026-11-22 09:05:01 -05:00 {2}back {2}deny/);
    expect(lines[1]).toMatch(/^2026-11-22 22:05:01 \+08:00 {2}front {2}grant/);
  });
});

describe('held records', () => {
  it('requeue and discard refuse unknown sequence numbers; discard removes held records for good', async () => {
    const w = workspace();
    const s = await Store.open(w.dataDir);
    const [seq] = await s.outboxAppend([{ userid: 'a', user_type: 0, timestamp: 1_800_000_000, direction: 'in', method: 'card', door: 'front' }]);
    await s.outboxHold(await s.outboxPeek(), 'no WeCom code for card passes');
    await s.close();
    expect(doorgw(['outbox', 'requeue', '999', '-c', w.config])).toMatchObject({ code: 2, stderr: 'doorgw: no held record #999 (doorgw outbox lists them)\n' });
    expect(doorgw(['outbox', 'discard', '--reason', 'card pass', '-c', w.config])).toMatchObject({ code: 2, stderr: 'doorgw: name the held records to discard, or --all\n' });
    expect(doorgw(['outbox', 'discard', String(seq), '-c', w.config]).code).toBe(2); // no reason
    expect(doorgw(['outbox', 'discard', String(seq), '--reason', 'WeCom has no code for card passes', '-c', w.config])).toMatchObject({ code: 0, stdout: 'discarded 1 held record\n' });
    const actions = JSON.parse(doorgw(['journal', '--door-events', '--type', 'operator_action', '--json', '-c', w.config]).stdout) as { detail: string }[];
    expect(actions.map((a) => a.detail)).toEqual([expect.stringMatching(/^cli:.+: outbox discard #\d+ \(1\): WeCom has no code for card passes$/)]);
    expect(doorgw(['outbox', '-c', w.config]).stdout).toBe('queued: 0\nheld: 0\n');
  });
});

describe('the demo', () => {
  it('reports every upload, the remote open\'s included', () => {
    // It used to stop waiting at the first upload and report 2 of 3 now and then.
    for (let i = 0; i < 2; i++) {
      const r = doorgw(['demo', 'run', '--users', '200', '--pause', '0']);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('8 decisions journaled; 3 pass records uploaded with checkin; outbox now 0');
    }
  }, 60_000);
});

describe('the WeCom emulator without auto-bind', () => {
  it('lets the operator bind a registering device by hand, so activation completes', async () => {
    const port = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    const emu = spawn(process.execPath, [CLI, 'wecom', 'emulator', '--no-auto-bind', '--port', String(port), '--users', '5'], { stdio: ['pipe', 'pipe', 'inherit'] });
    let emuOut = '';
    emu.stdout.on('data', (c: Buffer) => (emuOut += c.toString()));
    const w = workspace(`cloud: { provider: wecom, wecom: { url: "ws://127.0.0.1:${port}", sn: HAND-1 } }\n`);
    try {
      await until(() => emuOut.includes("type 'bind <sn>'"), 'emulator up');
      const act = spawn(process.execPath, [CLI, 'wecom', 'activate', '-c', w.config], { stdio: ['ignore', 'pipe', 'inherit'] });
      let actOut = '';
      act.stdout.on('data', (c: Buffer) => (actOut += c.toString()));
      await until(() => actOut.includes('waiting for a corp administrator'), 'registration');
      emu.stdin.write('devices\n');
      await until(() => emuOut.includes('HAND-1: registered, waiting for a bind'), 'device listed');
      emu.stdin.write('bind NOPE\nbind HAND-1\n');
      const code = await new Promise<number | null>((r) => act.once('exit', r));
      expect(code).toBe(0);
      expect(emuOut).toContain("no device 'NOPE' has registered");
      expect(emuOut).toContain('bound HAND-1');
      expect(readSecret(w.dataDir)?.sn).toBe('HAND-1');
    } finally {
      emu.kill('SIGTERM');
    }
  }, 30_000);
});

describe('secrets', () => {
  it('config check --json redacts passwords in URLs and wherever the value appears', () => {
    const w = workspace('mqtt: { enabled: true, url: "mqtt://doorgw:s3cr3t-pass@broker:1883", password: "s3cr3t-pass" }\n');
    const r = doorgw(['config', 'check', w.config, '--json']);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain('s3cr3t');
    expect(JSON.parse(r.stdout)).toMatchObject({ mqtt: { url: 'mqtt://[redacted]@broker:1883', password: '[redacted]' } });
  });

  it('a secret file that exists but cannot be used is an error, not "not activated"', () => {
    const w = workspace();
    mkdirSync(w.dataDir, { recursive: true });
    writeFileSync(secretPath(w.dataDir), '{"sn": "x"');
    expect(() => readSecret(w.dataDir)).toThrow(SecretUnreadableError);
    expect(() => readSecret(w.dataDir)).toThrow(/not valid JSON/);
  });

  it.skipIf(!isRoot)('as root: the secret belongs to the data directory\'s owner, and one it cannot read is named with its owner', () => {
    const w = workspace();
    chmodSync(w.dir, 0o755);
    mkdirSync(w.dataDir);
    chownSync(w.dataDir, NOBODY, NOBODY);
    writeSecret(w.dataDir, { sn: 'sn-1', secret: 'abc' });
    expect(statSync(secretPath(w.dataDir)).uid).toBe(NOBODY);
    // The service user cannot read a root-owned 0600 secret: a clear error naming the fix.
    chownSync(secretPath(w.dataDir), 0, 0);
    const probe = `import('${join(ROOT, 'dist/cloud/wecom/secret.js')}').then((m) => { try { m.readSecret('${w.dataDir}'); console.log('read'); } catch (e) { console.log(e.name + ': ' + e.message); } })`;
    const r = spawnSync(process.execPath, ['-e', probe], { uid: NOBODY, gid: NOBODY, encoding: 'utf8' });
    expect(r.stdout).toMatch(/^SecretUnreadableError: cannot read the device secret .*EACCES; owner uid 0, mode 600, this process uid 65534\): give it to the service user/);
  });

  it.skipIf(!isRoot)('as root, the CLI acts as the owner of the data directory: nothing it writes there becomes root\'s', () => {
    const w = workspace();
    chmodSync(w.dir, 0o755);
    mkdirSync(w.dataDir);
    chownSync(w.dataDir, NOBODY, NOBODY);
    expect(doorgw(['demo', 'seed', '-c', w.config]).code).toBe(0);
    const files = readdirSync(w.dataDir);
    expect(files.length).toBeGreaterThan(3);
    for (const f of files) expect([f, statSync(join(w.dataDir, f)).uid]).toEqual([f, NOBODY]);
  });
});
