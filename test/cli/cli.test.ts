/** The `doorgw` command as a user runs it: a real process, real files, exit codes and output. */
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { employeeQr, makeKey, visitorQr } from '../helpers/qr.js';
import { OsdpBusEmulator } from '../../src/io/osdp/emulator.js';
import { doorgwAsync } from '../helpers/cli.js';
import { ptyPair } from '../helpers/r30x-emulator.js';
import { tmpDir } from '../helpers/tmp.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const CLI = [join(ROOT, 'dist/cli/main.js')]; // built by test/global-setup.ts
const key = makeKey();
const now = Math.floor(Date.now() / 1000);

function doorgw(args: string[], env: Record<string, string> = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [...CLI, ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 20_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function workspace(): { config: string; dataDir: string } {
  const dir = tmpDir();
  const dataDir = join(dir, 'data');
  const config = join(dir, 'doorgw.yaml');
  writeFileSync(config, `data_dir: ${dataDir}\nlog: { level: info, pretty: false }\ndoors:\n  - id: front\n    readers: [{ id: console, type: terminal }]\n  - id: back\n    mode: lockdown\n`);
  return { config, dataDir };
}

describe('doorgw qr verify', () => {
  it('exits 0 for a valid code and reports it as JSON with the openvid as a decimal string', () => {
    const r = doorgw(['qr', 'verify', employeeQr(key.privateKey, '18446744073709551615', now - 5, 600), '--key', key.publicB64, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      valid: true, reason: null, type: 'employee', openvid: '18446744073709551615', start_time: now - 5, expires_in: 600, state_hex: null,
    });
  });

  it('reports a visitor code with its state', () => {
    const r = doorgw(['qr', 'verify', visitorQr(key.privateKey, '12', Buffer.from([0xab, 0xcd])), '--key', key.publicUncompressedB64, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ valid: true, type: 'visitor', openvid: '12', start_time: null, state_hex: 'abcd' });
  });

  it('exits 1 for expired, forged and malformed codes with the reason', () => {
    const expired = doorgw(['qr', 'verify', employeeQr(key.privateKey, '1', 1000, 60), '--key', key.publicB64, '--at', '5000', '--json']);
    expect([expired.code, JSON.parse(expired.stdout).reason]).toEqual([1, 'expired']);
    const forged = doorgw(['qr', 'verify', employeeQr(makeKey().privateKey, '1', now), '--key', key.publicB64]);
    expect([forged.code, forged.stdout]).toEqual([1, expect.stringContaining('not valid: bad_signature')]);
    const junk = doorgw(['qr', 'verify', 'hello world', '--key', key.publicB64, '--json']);
    expect(junk.code).toBe(1);
    expect(JSON.parse(junk.stdout)).toEqual({ valid: false, reason: 'malformed', type: null, openvid: null, start_time: null, expires_in: null, state_hex: null });
  });

  it('exits 2 for an unusable key or a missing option', () => {
    const bad = doorgw(['qr', 'verify', 'AAAA', '--key', 'AmOVOOcprQJXEi94HPv9S']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--key: public key must be a 33-byte compressed/);
    expect(doorgw(['qr', 'verify', 'AAAA']).code).toBe(2);
  });
});

describe('doorgw rule eval', () => {
  it('exits 0 on match and 1 on no match, in the given zone', () => {
    expect(doorgw(['rule', 'eval', '9:00-10:00 * * 1-5 *', '--at', '2024-06-03T09:30:00+08:00']).code).toBe(0);
    const r = doorgw(['rule', 'eval', '9:00-10:00 * * 1-5 *', '--at', '2024-06-03T09:30:00+08:00', '--tz', 'Europe/London', '--json']);
    expect([r.code, JSON.parse(r.stdout)]).toEqual([1, { match: false, error: null }]);
    expect(doorgw(['rule', 'eval', '0:00-23:59 */2 * * *', '--at', String(1_700_000_000 + 86_400), '--effect-time', '1700000000']).code).toBe(1);
  });

  it('exits 2 with the error for an invalid rule or a time without offset', () => {
    const r = doorgw(['rule', 'eval', '9:300-10:00 * * 6 *', '--at', '0', '--json']);
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout).error).toMatch(/minutes must have two digits/);
    const t = doorgw(['rule', 'eval', '9:00-10:00 * * * *', '--at', '2024-06-03T09:30:00']);
    expect(t.code).toBe(2);
    expect(t.stderr).toMatch(/with an offset/);
  });
});

describe('doorgw users and check against the store', () => {
  it('imports the seed responses as they are, reports quirks, and decides from the store', () => {
    const ws = workspace();
    const page = doorgw(['users', 'import', join(ROOT, 'test/fixtures/wecom-get_userinfo_by_page.response.json'), '-c', ws.config]);
    expect(page.code).toBe(0);
    expect(page.stdout).toMatch(/imported 3 entries into the local layer \(kept across cloud syncs\), rejected 0/);
    // The same people as cloud records (templates kept), replacing nothing of the local layer.
    const byIds = doorgw(['users', 'import', join(ROOT, 'test/fixtures/wecom-get_userinfo_by_ids.response.json'), '--layer', 'cloud', '-c', ws.config, '--json']);
    const report = JSON.parse(byIds.stdout) as { imported: number; warnings: string[]; layer: string };
    expect([report.imported, report.layer]).toEqual([3, 'cloud']);
    expect(report.warnings.some((w) => w.includes('the next full sync from the cloud replaces it'))).toBe(true);
    doorgw(['users', 'remove', 'x1', '-c', ws.config]);
    expect(report.warnings.filter((w: string) => w.includes("rule 1 invalid"))).toHaveLength(3);

    const show = JSON.parse(doorgw(['users', 'show', 'x1', '-c', ws.config, '--json']).stdout) as { record: { invalid_rules: { rule: string }[] }; templates: { kind: string; id: string }[] };
    expect(show.record.invalid_rules[0]!.rule).toBe('9:300-10:00 * * 6 *');
    expect(show.templates.map((t: { kind: string; id: string }) => `${t.kind}/${t.id}`)).toEqual(['fa/0', 'fa/1', 'fp/0', 'fp/1']);
    expect(doorgw(['users', 'show', 'nobody', '-c', ws.config]).code).toBe(1);
    const list = doorgw(['users', 'list', '-c', ws.config]).stdout.trim().split('\n');
    expect(list).toHaveLength(4); // header + x1..x3

    // Monday 9:30 in Shanghai matches rule 0; Saturday 9:30 would need the invalid rule 1.
    expect(doorgw(['check', '--userid', 'x1', '--at', '2024-06-03T09:30:00+08:00', '-c', ws.config]).code).toBe(0);
    const sat = doorgw(['check', '--userid', 'x1', '--at', '2024-06-01T09:45:00+08:00', '-c', ws.config, '--json']);
    expect([sat.code, JSON.parse(sat.stdout).reason]).toEqual([1, 'outside_schedule']);
    expect(doorgw(['check', '--userid', 'x1', '--door', 'back', '-c', ws.config, '--json']).stdout).toMatch(/"lockdown"/);
    expect(doorgw(['check', '--userid', 'x1', '--door', 'side', '-c', ws.config]).code).toBe(2);
    expect(doorgw(['check', '-c', ws.config]).code).toBe(2);
  });

  it('rejects bad records with reasons, imports the rest, and loses nothing on a broken file', () => {
    const ws = workspace();
    const file = join(tmpDir(), 'users.json');
    writeFileSync(file, JSON.stringify([
      { userid: 'ok', openvid: 1, public_key: key.publicB64 },
      { userid: 'bad-type', user_type: 9 },
      { name: 'no id' },
      { userid: 'ok', openvid: 2 },
    ]));
    const r = doorgw(['users', 'import', file, '-c', ws.config, '--json']);
    expect(r.code).toBe(1);
    const rep = JSON.parse(r.stdout) as { imported: number; rejected: { index: number }[] };
    expect(rep.imported).toBe(1);
    expect(rep.rejected.map((x: { index: number }) => x.index)).toEqual([1, 2, 3]);
    writeFileSync(file, '[{"userid": "half"');
    const broken = doorgw(['users', 'import', file, '-c', ws.config]);
    expect(broken.code).toBe(2);
    expect(broken.stderr).toMatch(/is not JSON/);
    expect(doorgw(['users', 'show', 'ok', '-c', ws.config]).code).toBe(0);
    expect(doorgw(['check', '--qr', employeeQr(key.privateKey, '1', now), '-c', ws.config]).stdout).toMatch(/^GRANT default_allow user ok/);
  });

  it('seeds demo users whose printed codes decide as labelled', () => {
    const ws = workspace();
    const seeded = JSON.parse(doorgw(['demo', 'seed', '-c', ws.config, '--json']).stdout) as { imported: number; codes: { label: string; text: string }[] };
    expect(seeded.imported).toBe(3);
    const reasonOf = (label: string): string => {
      const code = seeded.codes.find((c) => c.label.startsWith(label))!;
      return (JSON.parse(doorgw(['check', '--qr', code.text, '-c', ws.config, '--json']).stdout) as { reason: string }).reason;
    };
    expect(reasonOf('Alice, valid')).toBe('default_allow');
    expect(reasonOf('Alice, expired')).toBe('expired');
    expect(reasonOf('Alice, forged')).toBe('bad_signature');
    expect(reasonOf('Vera')).toBe('default_deny');
  });

  it('refuses an invalid configuration with exit 2 and the key path', () => {
    const file = join(tmpDir(), 'bad.yaml');
    writeFileSync(file, 'doors:\n  - id: front\n    relay: { pulse_ms: soon }\n');
    const r = doorgw(['users', 'list', '-c', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/doors\[0\]\.relay\.pulse_ms: Invalid input: expected number/);
    expect(doorgw(['start', '-c', file]).code).toBe(2);
  });

  it('answers --help on every command', () => {
    for (const cmd of [[], ['start'], ['demo', 'seed'], ['qr', 'verify'], ['rule', 'eval'], ['users', 'import'], ['users', 'list'], ['users', 'show'], ['check'], ['journal'], ['status'], ['config', 'check']]) {
      const r = doorgw([...cmd, '--help']);
      expect(r.code, cmd.join(' ')).toBe(0);
      expect(r.stdout).toMatch(/Usage: doorgw/);
    }
  });
});

describe('while the gateway runs', () => {
  let child: ReturnType<typeof spawn> | null = null;
  afterEach(() => {
    child?.kill('SIGKILL');
    child = null;
  });

  it('serves CLI commands over the control socket, decides scans, and stops cleanly on SIGTERM', async () => {
    const ws = workspace();
    const users = join(tmpDir(), 'u.json');
    writeFileSync(users, JSON.stringify([{ userid: 'emp', openvid: 77, public_key: key.publicB64 }]));
    expect(doorgw(['users', 'import', users, '-c', ws.config]).code).toBe(0);

    child = spawn(process.execPath, [...CLI, 'start', '-c', ws.config], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    const lines: Record<string, unknown>[] = [];
    let buf = '';
    child.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        lines.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
        buf = buf.slice(i + 1);
      }
    });
    const waitFor = async (pred: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> => {
      for (let i = 0; i < 600; i++) {
        const hit = lines.find(pred);
        if (hit) return hit;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`timed out; log so far: ${JSON.stringify(lines)}`);
    };
    await waitFor((l) => l.msg === 'gateway ready');

    // The database is locked by the gateway; the CLI goes through the socket.
    const status = JSON.parse(doorgw(['status', '-c', ws.config, '--json']).stdout);
    expect(status).toMatchObject({ running: true, users: 1, healthy: true });
    // The quick path (no schema) and the full one (taken with an override in the environment) agree.
    const full = doorgw(['status', '-c', ws.config, '--json'], { DOORGW_LOG__LEVEL: 'info' });
    expect(full.stderr).toMatch(/answered by the running gateway with its own configuration/);
    const { uptime_s: _a, ...quickRest } = status as Record<string, unknown>;
    const { uptime_s: _b, ...fullRest } = JSON.parse(full.stdout) as Record<string, unknown>;
    expect(fullRest).toEqual(quickRest);
    writeFileSync(users, JSON.stringify([{ userid: 'vis', user_type: 1, openvid: 78, public_key: key.publicB64 }]));
    expect(doorgw(['users', 'import', users, '-c', ws.config]).code).toBe(0);
    expect(doorgw(['users', 'show', 'vis', '-c', ws.config]).code).toBe(0);

    child.stdin!.write(`${employeeQr(key.privateKey, '77', Math.floor(Date.now() / 1000))}\n`);
    const granted = await waitFor((l) => l.msg === 'access granted');
    expect(granted).toMatchObject({ userid: 'emp', method: 'qr', door: 'front', reason: 'default_allow' });
    expect(await waitFor((l) => l.msg === 'relay energised: door unlocked')).toMatchObject({ door: 'front', module: 'relay', ms: 3000 });

    const check = doorgw(['check', '--qr', visitorQr(key.privateKey, '78'), '-c', ws.config, '--json']);
    expect(JSON.parse(check.stdout)).toMatchObject({ decision: 'deny', reason: 'default_deny', userid: 'vis' });
    const journal = JSON.parse(doorgw(['journal', '-c', ws.config, '--json']).stdout);
    expect(journal[0]).toMatchObject({ userid: 'emp', decision: 'grant' });

    // A backup while it runs (written by the gateway), and no restore under its feet.
    const backup = join(tmpDir(), 'running.doorgw-backup');
    expect(doorgw(['backup', backup, '-c', ws.config])).toMatchObject({ code: 0, stdout: expect.stringMatching(/^backup written: .*running\.doorgw-backup/) });
    expect(doorgw(['restore', backup, '--force', '-c', ws.config])).toMatchObject({ code: 2, stderr: 'doorgw: the gateway is running on this data directory: stop it first (systemctl stop doorgw)\n' });
    expect(doorgw(['restore', backup, '--check', '-c', ws.config])).toMatchObject({ code: 0, stdout: expect.stringContaining('checksum good') });

    const exited = new Promise<number | null>((r) => child!.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    child = null;
    expect(doorgw(['status', '-c', ws.config, '--json']).code).toBe(1); // not running; read from the store
  }, 90_000);
});

describe('doorgw users, journal and restore: the local layer by hand', () => {
  it('adds, blocks, shows, exports and imports people; queries the journal; restores a backup onto a fresh directory', () => {
    const ws = workspace();
    const r = spawnSync(process.execPath, [...CLI, 'users', 'add', 'cleaner', '--name', 'Li', '--card', '900', '--card', '901', '--until', '2030-01-01', '--pin-stdin', '-c', ws.config], { input: '2468\n', encoding: 'utf8' });
    expect([r.status, r.stdout]).toEqual([0, 'added local user cleaner\n']);
    expect(doorgw(['users', 'add', 'cleaner', '-c', ws.config])).toMatchObject({ code: 2, stderr: "doorgw: local user 'cleaner' exists (change it with users set)\n" });
    expect(doorgw(['users', 'add', 'x', '--until', '2030-02-30', '-c', ws.config])).toMatchObject({ code: 2, stderr: expect.stringContaining("--until '2030-02-30'") });
    expect(doorgw(['users', 'block', '--card', '901', '--reason', 'lost', '-c', ws.config])).toMatchObject({ code: 0, stdout: 'blocked card 901 of cleaner until unblocked\n' });
    expect(doorgw(['users', 'block', '--card', '555', '-c', ws.config])).toMatchObject({ code: 1, stderr: 'doorgw: card 555 belongs to nobody in the directory\n' });
    const show = doorgw(['users', 'show', 'cleaner', '-c', ws.config]).stdout;
    expect(show).toMatch(/^decided by local user$/m);
    expect(show).toMatch(/^card 901 BLOCKED until lifted \(lost\)$/m);
    expect(show).toMatch(/^valid {6}- → 2030-01-01 00:00:00 \+08:00$/m);
    expect(show).toMatch(/^pin {8}set$/m);
    expect(doorgw(['check', '--card', '900', '-c', ws.config]).stdout).toBe('GRANT default_allow user cleaner\n');
    expect(doorgw(['check', '--card', '901', '-c', ws.config]).stdout).toBe('DENY blocked user cleaner (card blocked until lifted (lost))\n');
    // A visitor for today only, two passages, with her host named.
    expect(doorgw(['users', 'add', 'guest', '--type', 'employee', '--card', '902', '--today', '--max-uses', '2', '--sponsor', 'Li', '-c', ws.config]).code).toBe(0);
    const guest = doorgw(['users', 'show', 'guest', '-c', ws.config]).stdout;
    expect(guest).toMatch(/^valid {6}(\d{4}-\d{2}-\d{2}) 00:00:00 \+08:00 → \d{4}-\d{2}-\d{2} 00:00:00 \+08:00$/m);
    expect(guest).toMatch(/^uses {7}at most 2 since /m);
    expect(guest).toMatch(/^sponsor {4}Li$/m);
    expect(doorgw(['check', '--card', '902', '-c', ws.config]).stdout).toBe('GRANT default_allow user guest (use 1 of 2; sponsor Li)\n');
    expect(doorgw(['users', 'add', 'g2', '--today', '--until', '2030-01-01', '-c', ws.config])).toMatchObject({ code: 2, stderr: expect.stringContaining('--today sets --from and --until') });

    // CSV out and back in (a fresh directory), the block included, the PIN not.
    const csv = join(tmpDir(), 'local.csv');
    expect(doorgw(['users', 'export', '--format', 'csv', '--out', csv, '-c', ws.config]).code).toBe(0);
    const other = workspace();
    const imp = doorgw(['users', 'import', csv, '-c', other.config]);
    expect(imp).toMatchObject({ code: 0, stdout: 'imported 2 entries into the local layer (kept across cloud syncs), rejected 0\n' });
    expect(doorgw(['check', '--card', '901', '-c', other.config]).stdout).toMatch(/^DENY blocked/);
    expect(doorgw(['users', 'show', 'cleaner', '-c', other.config]).stdout).toMatch(/^pin {8}none$/m);
    expect(doorgw(['users', 'show', 'guest', '-c', other.config]).stdout).toMatch(/^uses {7}at most 2 since .*\nsponsor {4}Li$/m);

    // The journal: decisions made by hand through `check` are dry runs, so door events it is.
    const events = doorgw(['journal', '--door-events', '--type', 'operator_action', '--format', 'jsonl', '-c', ws.config]).stdout.trim().split('\n').map((l) => JSON.parse(l) as { detail: string; time_local: string });
    expect(events.map((e) => e.detail)).toEqual([expect.stringMatching(/: users add cleaner$/), expect.stringMatching(/: users block card 901 of cleaner \(lost\)$/), expect.stringMatching(/: users add guest$/)]);
    expect(events[0]!.time_local).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} \+08:00$/);
    expect(doorgw(['journal', '--between', '25:00-26:00', '-c', ws.config])).toMatchObject({ code: 2, stderr: expect.stringContaining("time_of_day '25:00-26:00'") });

    // Backup with the gateway stopped, restore onto a fresh directory; a second restore needs --force.
    const file = join(tmpDir(), 'door.doorgw-backup');
    expect(doorgw(['backup', file, '-c', ws.config]).code).toBe(0);
    const fresh = workspace();
    expect(doorgw(['restore', file, '-c', fresh.config])).toMatchObject({ code: 0, stdout: expect.stringMatching(/^restored \d+ entries of /) });
    expect(doorgw(['check', '--card', '900', '-c', fresh.config]).stdout).toBe('GRANT default_allow user cleaner\n');
    expect(doorgw(['restore', file, '-c', fresh.config])).toMatchObject({ code: 2, stderr: expect.stringContaining('give --force to replace it') });
  }, 60_000);
});

describe('doorgw web user', () => {
  it('adds accounts with a password from standard input (hashed by the CLI), changes roles, lists and removes them', async () => {
    const ws = workspace();
    const add = (name: string, role: string, password: string) => spawnSync(process.execPath, [...CLI, 'web', 'user', 'add', name, '--role', role, '-c', ws.config], { input: `${password}\n`, encoding: 'utf8' });
    expect(add('guard', 'operator', 'short')).toMatchObject({ status: 2, stderr: 'doorgw: the password needs at least 10 characters\n' });
    expect(add('guard', 'operator', 'a-long-password')).toMatchObject({ status: 0, stdout: 'added console account guard (operator)\n' });
    expect(add('bad name', 'operator', 'a-long-password')).toMatchObject({ status: 2, stderr: expect.stringContaining('an account name is 1-32 letters') });
    expect(doorgw(['web', 'user', 'add', 'x', '--role', 'god', '-c', ws.config]).code).toBe(2);
    expect(doorgw(['web', 'user', 'role', 'guard', 'admin', '-c', ws.config]).stdout).toBe('console account guard is now admin\n');
    expect(doorgw(['web', 'user', 'list', '-c', ws.config]).stdout).toMatch(/^guard\tadmin\tchanged /);
    const { Store } = await import('../../src/store/store.js');
    const st = await Store.open(ws.dataDir);
    const a = await st.webAccount('guard');
    await st.close();
    expect(a?.hash).toMatch(/^scrypt\$32768\$8\$1\$/);
    expect(JSON.stringify(a)).not.toContain('a-long-password');
    expect(doorgw(['web', 'user', 'remove', 'guard', '-c', ws.config]).stdout).toBe('removed console account guard\n');
    expect(doorgw(['web', 'user', 'remove', 'guard', '-c', ws.config])).toMatchObject({ code: 1, stderr: "doorgw: no account 'guard'\n" });
  }, 30_000);
});

describe('doorgw osdp with the gateway running', () => {
  // Commands run asynchronously: the emulated reader answers from this process meanwhile.
  let child: ReturnType<typeof spawn> | null = null;
  afterEach(() => {
    child?.kill('SIGKILL');
    child = null;
  });

  it('enrolls a reader over the control socket and shows its link in osdp status and status', async () => {
    const pty = await ptyPair();
    const emu = await OsdpBusEmulator.open(pty.device, 115200);
    const pd = emu.add({ address: 5 });
    try {
      const dir = tmpDir();
      const config = join(dir, 'doorgw.yaml');
      writeFileSync(config, `data_dir: ${join(dir, 'data')}\nlog: { level: info, pretty: false }\ndoors:\n  - id: front\n    readers: [{ id: front-osdp, type: osdp, path: ${pty.gateway}, address: 5, baud_rate: 115200, poll_interval_ms: 20 }]\n`);
      child = spawn(process.execPath, [...CLI, 'start', '-c', config], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
      for (let i = 0; i < 200 && !out.includes('gateway ready'); i++) await new Promise((r) => setTimeout(r, 50));
      for (let i = 0; i < 100; i++) {
        const s = JSON.parse((await doorgwAsync(['osdp', 'status', '-c', config, '--json'])).stdout || '[]') as { state: string }[];
        if (s[0]?.state === 'install') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const before = await doorgwAsync(['status', '-c', config]);
      expect(before.code).toBe(3); // unhealthy: awaiting enrollment
      expect(before.stdout).toMatch(/reader front-osdp \(door front, .* address 5\): install — NOT secure/);
      const enrolled = await doorgwAsync(['osdp', 'enroll', 'front-osdp', '-c', config]);
      expect(enrolled).toMatchObject({ code: 0, stdout: 'reader front-osdp enrolled: online, secure channel on its own key\n' });
      expect(pd.keysets).toHaveLength(1);
      const st = await doorgwAsync(['osdp', 'status', '-c', config, '--json']);
      expect(st.code).toBe(0);
      expect(JSON.parse(st.stdout)).toMatchObject([{ id: 'front-osdp', state: 'online', secure: true, enrolled: true, device: { vendor: '0a1b2c' } }]);
      expect((await doorgwAsync(['status', '-c', config])).code).toBe(0);
      expect(await doorgwAsync(['osdp', 'enroll', 'nope', '-c', config])).toMatchObject({ code: 1, stderr: expect.stringContaining("no OSDP reader 'nope'") });
      // The key never appears in the log.
      const key = pd.keysets[0]!.toString('hex');
      expect(out).not.toContain(key);
      expect(out).not.toContain(pd.keysets[0]!.toString('base64'));
    } finally {
      await emu.close();
      pty.stop();
    }
  }, 30_000);
});
