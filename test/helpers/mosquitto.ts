/**
 * A real Mosquitto broker for the tests, on a free port, with the shipped ACL and a password file.
 * The test command installs Mosquitto on a fresh Debian machine (.ci/run); without it these tests
 * fail with the command to run, never pass silently.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';

const MOSQUITTO = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto'].find((p) => existsSync(p));
const PASSWD = ['/usr/bin/mosquitto_passwd', '/usr/sbin/mosquitto_passwd'].find((p) => existsSync(p));
export const ACL = new URL('../../deploy/mosquitto/doorgw.acl', import.meta.url).pathname;
/** The shipped listener configuration: the tests run the broker as deployed. */
export const CONF = new URL('../../deploy/mosquitto/doorgw.conf', import.meta.url).pathname;

export const USERS = { doorgw: 'gw-pass', operator: 'op-pass', admin: 'ad-pass', homeassistant: 'ha-pass', 'lobby-reader': 'rd-pass', 'other-reader': 'rd2-pass' } as const;

/** A port nobody listens on now (the OS's choice). */
export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export class Broker {
  private proc: ChildProcess | null = null;
  port = 0;
  private dir = '';

  /** `extra`: accounts beyond the shipped ones (name → password) and their ACL lines (benchmarks). */
  /** `conf`: lines appended to the broker's configuration (a bridge, as the role renders one). */
  constructor(
    private readonly extra: { users: Record<string, string>; acl: string } | null = null,
    private readonly conf = '',
  ) {}

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  async start(port?: number): Promise<void> {
    if (!MOSQUITTO || !PASSWD) throw new Error('Mosquitto is not installed: run `apt-get install -y mosquitto` (the .ci/run script does)');
    if (!this.dir) {
      this.dir = mkdtempSync(join(tmpdir(), 'doorgw-broker-')); // lives across tests (restarts reuse it)
      const passwd = join(this.dir, 'passwd');
      writeFileSync(passwd, '');
      for (const [u, p] of Object.entries({ ...USERS, ...this.extra?.users })) execFileSync(PASSWD, ['-b', passwd, u, p]);
      copyFileSync(ACL, join(this.dir, 'acl'));
      if (this.extra) appendFileSync(join(this.dir, 'acl'), `\n${this.extra.acl}\n`);
    }
    this.port = port ?? (await freePort());
    const conf = join(this.dir, 'mosquitto.conf');
    const shipped = readFileSync(CONF, 'utf8')
      .replace(/^listener .*$/m, `listener ${this.port} 127.0.0.1`)
      .replace(/^password_file .*$/m, `password_file ${join(this.dir, 'passwd')}`)
      .replace(/^acl_file .*$/m, `acl_file ${join(this.dir, 'acl')}`);
    writeFileSync(conf, `user root\npersistence false\nlog_type error\n${shipped}\n${typeof this.conf === 'string' ? this.conf : ''}\n`);
    this.proc = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    this.proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    for (let i = 0; i < 100; i++) {
      if (this.proc.exitCode !== null) throw new Error(`mosquitto exited: ${err}`);
      const up = await new Promise<boolean>((r) => {
        const c = mqtt.connect(this.url, { username: 'operator', password: USERS.operator, reconnectPeriod: 0, connectTimeout: 500 });
        c.once('connect', () => c.end(true, {}, () => r(true)));
        c.once('error', () => c.end(true, {}, () => r(false)));
      });
      if (up) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`mosquitto did not come up: ${err}`);
  }

  /** Freeze the broker (SIGSTOP): connections stay open, nothing is answered. */
  pause(): void {
    this.proc?.kill('SIGSTOP');
  }

  resume(): void {
    this.proc?.kill('SIGCONT');
  }

  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (!p || p.exitCode !== null) return;
    await new Promise<void>((r) => {
      p.once('exit', () => r());
      p.kill('SIGKILL');
    });
  }
}

export const SITE_ACL = new URL('../../deploy/mosquitto/site.acl', import.meta.url).pathname;

/**
 * The site broker as shipped (deploy/mosquitto/site.acl) for gateways that connect to it directly,
 * each with its own account (`users`), which may also use its own `doorgw/<account>/` tree.
 */
export function siteBroker(users: Record<string, string>): Broker {
  return new Broker({ users, acl: `${readFileSync(SITE_ACL, 'utf8')}\npattern readwrite doorgw/%u/#\n` });
}

/** A client with one of the test users; messages collected per topic. */
export async function client(broker: Broker, user: keyof typeof USERS, subscribe: string[] = []): Promise<{ c: MqttClient; got: { topic: string; payload: string; retain: boolean }[] }> {
  const c = mqtt.connect(broker.url, { username: user, password: USERS[user], protocolVersion: 5, reconnectPeriod: 0 });
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('error', reject);
  });
  const got: { topic: string; payload: string; retain: boolean }[] = [];
  c.on('message', (topic, payload, packet) => got.push({ topic, payload: payload.toString(), retain: packet.retain }));
  if (subscribe.length) await c.subscribeAsync(subscribe, { qos: 1 });
  return { c, got };
}
