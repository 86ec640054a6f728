/**
 * The Ansible role, for real: lint, syntax, a local run into a throw-away root (twice: the second
 * must change nothing), and checks of what it produced with the tools that will read it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const REPO = new URL('../..', import.meta.url).pathname;
const ANSIBLE = join(REPO, 'deploy/ansible');
const missing = ['ansible-playbook', 'ansible-lint', 'systemd-analyze'].filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
if (missing.length) throw new Error(`missing ${missing.join(', ')}: run \`apt-get install -y ansible ansible-lint systemd\` (the .ci/run script does)`);

const run = (cmd: string, args: string[], cwd = ANSIBLE) => spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 300_000, env: { ...process.env, ANSIBLE_NOCOLOR: '1', ANSIBLE_FORCE_COLOR: '0', PY_COLORS: '0' } });
const root = mkdtempSync(join(tmpdir(), 'doorgw-root-'));
const at = (p: string): string => join(root, p);
let first: ReturnType<typeof run>;
let second: ReturnType<typeof run>;

beforeAll(() => {
  const play = ['test/local.yml', '-e', `doorgw_root=${root}`, '-e', `doorgw_release_dir=${REPO}`];
  first = run('ansible-playbook', play);
  second = run('ansible-playbook', play);
}, 600_000);

describe('Ansible role', () => {
  it('passes ansible-lint (production profile) and the syntax check', () => {
    const lint = run('ansible-lint', ['--offline', '--nocolor']);
    expect(lint.status, lint.stdout + lint.stderr).toBe(0);
    for (const [pb, inv] of [['site.yml', 'inventory.example.yml'], ['fetch-backups.yml', 'inventory.example.yml'], ['test/local.yml', 'localhost,']] as const) {
      const r = run('ansible-playbook', ['--syntax-check', '-i', inv, pb]);
      expect(r.status, r.stderr).toBe(0);
    }
  });

  it('runs for real, and a second run changes nothing', () => {
    expect(first.status, first.stdout.slice(-3000)).toBe(0);
    expect(first.stdout).toMatch(/localhost\s+:\s+ok=\d+\s+changed=[1-9]/);
    expect(second.status).toBe(0);
    expect(second.stdout).toMatch(/localhost\s+:\s+ok=\d+\s+changed=0\s+unreachable=0\s+failed=0/);
  });

  it('renders a configuration the gateway accepts, secrets apart with mode 0600', () => {
    const check = run(process.execPath, [join(REPO, 'dist/cli/main.js'), 'config', 'check', at('etc/doorgw/doorgw.yaml')], REPO);
    expect(check.stdout + check.stderr).toMatch(/valid \(1 door: lobby\)/);
    expect(statSync(at('etc/doorgw/secrets.env')).mode & 0o777).toBe(0o600);
    expect(readFileSync(at('etc/doorgw/secrets.env'), 'utf8')).toContain('DOORGW_MQTT__PASSWORD="s3cret-mqtt"');
    expect(readFileSync(at('etc/doorgw/secrets.env'), 'utf8')).toContain('DOORGW_WEB__METRICS__TOKEN="s3cret-metrics"');
    // The console: on, loopback only (nothing opened to the network by default).
    expect(readFileSync(at('etc/doorgw/doorgw.yaml'), 'utf8')).toMatch(/^web:\n {2}enabled: true\n {2}bind: 127\.0\.0\.1\n {2}port: 8080$/m);
    expect(readFileSync(at('etc/doorgw/doorgw.yaml'), 'utf8')).toMatch(/^io:\n {2}inputs:\n {4}fire_panel:\n/m); // the io section as given
    // The site's other keys (a level schedule), areas and groups as given, and a door key that may raise a level.
    const rendered = readFileSync(at('etc/doorgw/doorgw.yaml'), 'utf8');
    expect(rendered).toMatch(/^ {2}level_schedule:\n {2}- level: elevated\n/m);
    expect(rendered).toMatch(/^areas:\n {2}hq:\n/m);
    expect(rendered).toMatch(/^groups:\n {2}security:\n {2}- sam$/m);
    expect(rendered).toMatch(/may_raise:\n {4}- lockdown/);
    expect(statSync(at('etc/doorgw/web-users.sha256')).mode & 0o777).toBe(0o600);
    // no secret anywhere else the role wrote
    const files = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? (e.name === 'releases' ? [] : files(join(dir, e.name))) : e.isFile() ? [join(dir, e.name)] : []));
    expect(statSync(at('var/lib/doorgw/wecom-secret.json')).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(at('var/lib/doorgw/wecom-secret.json'), 'utf8'))).toEqual({ sn: 'TEST-0001', secret: 's3cret-device' });
    for (const f of files(root).filter((f) => !f.endsWith('secrets.env') && !f.endsWith('collector.env') && !f.endsWith('doorgw.passwd') && !f.endsWith('wecom-secret.json'))) {
      expect(readFileSync(f, 'utf8'), f).not.toMatch(/s3cret/);
    }
    expect(statSync(at('etc/mosquitto/doorgw.passwd.sha256')).mode & 0o777).toBe(0o600);
    expect(existsSync(at('opt/doorgw/current/dist/cli/main.js'))).toBe(true);
    expect(statSync(at('usr/local/bin/doorgw')).mode & 0o111).not.toBe(0);
  });

  it('renders a systemd unit that passes systemd-analyze verify, hardened as required', () => {
    const unit = at('etc/systemd/system/doorgw.service');
    const verify = run('systemd-analyze', ['verify', unit]);
    expect(verify.status, verify.stderr).toBe(0);
    const text = readFileSync(unit, 'utf8');
    for (const line of ['Type=notify', 'WatchdogSec=30', 'Restart=always', 'User=doorgw', 'StateDirectory=doorgw', 'ConfigurationDirectory=doorgw', 'NoNewPrivileges=yes', 'ProtectSystem=strict', 'ProtectHome=yes', 'PrivateTmp=yes', 'DevicePolicy=closed', 'DeviceAllow=char-hidraw rw', 'Environment=NODE_ENV=production MALLOC_ARENA_MAX=2']) {
      expect(text).toContain(line);
    }
    expect(text).toMatch(/ExecStart=\/usr\/bin\/node --max-semi-space-size=4 \/opt\/doorgw\/current\/dist\/cli\/main\.js start --config \/etc\/doorgw\/doorgw\.yaml/);
    expect(text).not.toMatch(/^MemoryDenyWriteExecute/m);
    const sec = run('systemd-analyze', ['security', '--offline=true', unit]);
    const exposure = /Overall exposure level for doorgw\.service: ([\d.]+)/.exec(sec.stdout);
    expect(Number(exposure?.[1])).toBeLessThan(3);
  });

  it('runs the gateway under the unit\'s system-call filter: a full sync in the generation worker (which lowers its own priority) and a start survive it', () => {
    // systemd is not PID 1 here, so the unit's SystemCallFilter= deny-list is applied by hand, with
    // systemd's own groups and its action (SIGSYS kills the whole service unless
    // SystemCallErrorNumber= is set). The allow-list base (@system-service) is not emulated.
    const unit = readFileSync(at('etc/systemd/system/doorgw.service'), 'utf8');
    const group = (g: string): string[] =>
      g.startsWith('@') ? run('systemd-analyze', ['syscall-filter', g]).stdout.split('\n').map((l) => l.trim()).filter((l) => /^[a-z_0-9]+$/.test(l)) : [g];
    const denied = new Set<string>();
    for (const [, list] of unit.matchAll(/^SystemCallFilter=(.*)$/gm)) {
      const deny = list!.startsWith('~');
      for (const name of list!.replace(/^~/, '').split(/\s+/).filter(Boolean).flatMap(group)) {
        if (deny) denied.add(name);
        else denied.delete(name);
      }
    }
    expect(denied.size).toBeGreaterThan(20);
    const numbers = new Map([...run('sh', ['-c', 'echo "#include <sys/syscall.h>" | cc -E -dM -']).stdout.matchAll(/#define __NR_(\w+) (\d+)/g)].map((m) => [m[1]!, m[2]!]));
    const nrs = [...denied].map((n) => numbers.get(n)).filter(Boolean);
    const action = /^SystemCallErrorNumber=EPERM$/m.test(unit) ? 'eperm' : 'kill';
    const launcher = join(root, 'seccomp-launch');
    const cc = run('cc', ['-O1', '-Wall', '-o', launcher, join(REPO, 'test/helpers/seccomp-launch.c')]);
    expect(cc.status, cc.stderr).toBe(0);
    const confined = (args: string[], timeout = 60_000) => spawnSync(launcher, [action, nrs.join(','), '--', process.execPath, ...args], { cwd: REPO, encoding: 'utf8', timeout });
    // A full sync from a listing: the store hands it to the generation worker.
    const dir = mkdtempSync(join(tmpdir(), 'doorgw-seccomp-'));
    const sync = confined(['--input-type=module', '-e', `
      const { Store } = await import(${JSON.stringify(join(REPO, 'dist/store/store.js'))});
      const s = await Store.open(${JSON.stringify(join(dir, 'db'))});
      let fellBack = null;
      s.onWorkerUnavailable = (e) => (fellBack = e.message);
      async function* listing() {
        for (let i = 0; i < 300; i++) {
          if (i % 100 === 0) await new Promise((r) => setImmediate(r));
          yield { record: { userid: 'u' + i, user_type: 0, name: null, openvid: null, cards: [String(i)], rules: [], invalid_rules: [], source: 'feishu', fp_ver: null, fa_ver: null }, key: null, templates: [] };
        }
      }
      const written = await s.replaceDirectory(listing());
      console.log(JSON.stringify({ written, users: await s.userCount(), fellBack, card7: s.directory.useridByCard('7') }));
      await s.close();`]);
    expect(sync.signal, `killed by ${sync.signal}: a system call the unit forbids (${sync.stderr})`).toBeNull();
    expect(sync.status, sync.stderr).toBe(0);
    expect(JSON.parse(sync.stdout.trim().split('\n').at(-1)!)).toEqual({ written: 300, users: 300, fellBack: null, card7: 'u7' });
    // The gateway's start, to ready, and its stop.
    writeFileSync(join(dir, 'c.yaml'), `data_dir: ${join(dir, 'data')}\nstorage: { reserve_mb: 0 }\nlog: { level: info, pretty: false }\ndoors: [{ id: front }]\n`);
    const start = confined(['-e', `
      const { spawn } = require('node:child_process');
      const gw = spawn(process.execPath, ['--max-semi-space-size=4', 'dist/cli/main.js', 'start', '-c', ${JSON.stringify(join(dir, 'c.yaml'))}], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      let sent = false;
      gw.stdout.on('data', (d) => { out += d; if (!sent && out.includes('gateway ready')) { sent = true; gw.kill('SIGTERM'); } });
      gw.on('exit', (code, signal) => { console.log(JSON.stringify({ code, signal, ready: out.includes('gateway ready') })); });`]);
    expect(start.status, start.stderr).toBe(0);
    expect(JSON.parse(start.stdout.trim().split('\n').at(-1)!)).toEqual({ code: 0, signal: null, ready: true });
  }, 120_000);

  it('renders the collector: a configuration it accepts, its secrets apart (0600), a hardened unit systemd accepts', () => {
    const check = run(process.execPath, [join(REPO, 'dist/cli/main.js'), 'collector', 'check', '--collector-config', at('etc/doorgw/collector.yaml')], REPO);
    expect(check.stdout + check.stderr).toMatch(/valid \(1 door key, database postgresql, broker mqtt:\/\/127\.0\.0\.1:1883\)/);
    expect(readFileSync(at('etc/doorgw/collector.yaml'), 'utf8')).not.toMatch(/s3cret/);
    expect(statSync(at('etc/doorgw/collector.env')).mode & 0o777).toBe(0o600);
    expect(readFileSync(at('etc/doorgw/collector.env'), 'utf8')).toMatch(/^DOORGW_COLLECTOR_PASSWORD="s3cret-collector"\nPGPASSWORD="s3cret-db"$/m);
    const unit = at('etc/systemd/system/doorgw-collector.service');
    const verify = run('systemd-analyze', ['verify', unit]);
    expect(verify.status, verify.stderr).toBe(0);
    expect(readFileSync(unit, 'utf8')).toMatch(/ExecStart=\/usr\/bin\/node \/opt\/doorgw\/current\/dist\/cli\/main\.js collector run --collector-config \/etc\/doorgw\/collector\.yaml/);
    const sec = run('systemd-analyze', ['security', '--offline=true', unit]);
    expect(Number(/Overall exposure level for doorgw-collector\.service: ([\d.]+)/.exec(sec.stdout)?.[1])).toBeLessThan(3);
  });

  it('schedules backups with a timer and a service systemd accepts, keeping the newest files', () => {
    for (const unit of ['doorgw-backup.service', 'doorgw-backup.timer']) {
      const verify = run('systemd-analyze', ['verify', at(`etc/systemd/system/${unit}`)]);
      expect(verify.status, verify.stderr).toBe(0);
    }
    expect(readFileSync(at('etc/systemd/system/doorgw-backup.timer'), 'utf8')).toMatch(/OnCalendar=\*-\*-\* 03:17:00/);
    const script = at('usr/local/lib/doorgw/backup.sh');
    expect(statSync(script).mode & 0o111).not.toBe(0);
    expect(spawnSync('sh', ['-n', script]).status).toBe(0);
    expect(readFileSync(script, 'utf8')).toMatch(/file="\$dir\/door-test-1-.*doorgw backup "\$file".*tail -n \+8/s);
    expect(statSync(at('var/lib/doorgw/backups')).mode & 0o777).toBe(0o700);
  });

  it('renders well-formed udev rules and a Mosquitto configuration Mosquitto accepts', async () => {
    const rules = readFileSync(at('etc/udev/rules.d/60-doorgw.rules'), 'utf8').split('\n').filter((l) => l.trim() && !l.startsWith('#'));
    expect(rules.some((l) => l.includes('ATTRS{idVendor}=="0581"') && l.includes('GROUP="doorgw"'))).toBe(true);
    for (const l of rules) expect(l, l).toMatch(/^([A-Z_]+(\{[A-Za-z_]+\})?(==|=)"[^"]*"(, )?)+$/);
    // Mosquitto parses the rendered listener (paths pointed into the test root, a free port).
    const port = await new Promise<number>((r) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => r(p));
      });
    });
    // The bridge (fleet out, site commands in, persistent), in a file only the broker's group reads.
    expect(statSync(at('etc/mosquitto/conf.d/doorgw.conf')).mode & 0o777).toBe(0o640);
    expect(readFileSync(at('etc/mosquitto/conf.d/doorgw.conf'), 'utf8')).toMatch(/^cleansession false\n[\s\S]*^topic doorgw-site\/command in 1\ntopic doorgw-site\/manifest in 1\ntopic doorgw-site\/fact\/# both 1\ntopic doorgw-site\/door\/[\w.-]+ out 1$/m);
    expect(readFileSync(at('etc/mosquitto/conf.d/doorgw.conf'), 'utf8')).toMatch(/^remote_username door-test-1$/m); // the gateway id, by default
    expect(readFileSync(at('etc/doorgw/doorgw.yaml'), 'utf8')).toMatch(/^site:\n {2}enabled: true\n/m);
    const conf = readFileSync(at('etc/mosquitto/conf.d/doorgw.conf'), 'utf8').replaceAll('/etc/mosquitto/', `${at('etc/mosquitto')}/`).replace(/listener 1883 /, `listener ${port} `);
    const confFile = join(root, 'mosquitto-test.conf');
    writeFileSync(confFile, `user root\n${conf}`);
    const m = spawn(existsSync('/usr/sbin/mosquitto') ? '/usr/sbin/mosquitto' : 'mosquitto', ['-c', confFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    m.stderr.on('data', (c: Buffer) => (err += c.toString()));
    await new Promise((r) => setTimeout(r, 700));
    expect(m.exitCode, err).toBeNull(); // still running: the configuration was accepted
    m.kill();
    expect(readFileSync(at('etc/mosquitto/doorgw.passwd'), 'utf8')).toMatch(/^doorgw:\$7\$.*\noperator:\$7\$/m);
  });
});
