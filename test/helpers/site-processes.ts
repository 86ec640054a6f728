/**
 * A site of gateway processes (`doorgw start`, as deployed) for tests and benchmarks: one site
 * Mosquitto with the shipped site ACL, some gateways on it directly (each its own account), the
 * rest behind their own local Mosquitto bridged as the role's template renders it. An operator
 * tool (site-operator) and a monitor account that reads every gateway's state.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SiteTool } from '../../src/cli/site-tool.js';
import { validateConfig } from '../../src/config/load.js';
import { keyIdOf, rawPublicKey } from '../../src/domain/site-envelope.js';
import { doorKey } from '../../src/io/door-key.js';
import { ToolClient } from '../../src/io/mqtt/client.js';
import { CLI_MAIN, ROOT } from './cli.js';
import { Broker, SITE_ACL, USERS } from './mosquitto.js';

export type SiteStatus = Awaited<ReturnType<SiteTool['status']>>;

export class ProcessSite {
  readonly ids: string[];
  readonly bridged: Set<string>;
  readonly accounts: Record<string, string>;
  readonly site: Broker;
  readonly locals = new Map<string, Broker>();
  readonly procs = new Map<string, ChildProcess>();
  readonly admin = generateKeyPairSync('ed25519');
  private readonly files = new Map<string, string>();
  private toolConfig: ReturnType<typeof validateConfig> | null = null;
  /** Everything of the site on disk (removed by stop; no vitest helpers: benchmarks use this too). */
  private readonly dir = mkdtempSync(join(tmpdir(), 'doorgw-site-'));
  private sub(name: string): string {
    const d = join(this.dir, name);
    mkdirSync(d, { recursive: true });
    return d;
  }
  /** The last 20 kB the gateways printed (for a failure's message). */
  output = '';

  constructor(o: { doors: number; bridged: number }) {
    this.ids = Array.from({ length: o.doors }, (_, i) => `gw${String(i + 1).padStart(2, '0')}`);
    this.bridged = new Set(this.ids.slice(o.doors - o.bridged));
    this.accounts = { ...Object.fromEntries(this.ids.map((id) => [id, `pw-${id}`])), 'site-operator': 'op-secret', monitor: 'mon-secret', publisher: 'pub-secret' };
    const acl = `${readFileSync(SITE_ACL, 'utf8')}\npattern readwrite doorgw/%u/#\nuser monitor\ntopic read doorgw/+/state\nuser publisher\ntopic write doorgw-site/fact/#\n`;
    this.site = new Broker({ users: this.accounts, acl });
  }

  /** The bridge lines mosquitto-doorgw.conf.j2 renders for a door with the site on. */
  private bridge(id: string): string {
    return [
      `connection doorgw-${id}`,
      `address 127.0.0.1:${this.site.port}`,
      `remote_clientid doorgw-bridge-${id}`,
      `remote_username ${id}`,
      `remote_password ${this.accounts[id]}`,
      'bridge_protocol_version mqttv50',
      'cleansession false',
      `topic doorgw/${id}/availability out 1`,
      `topic doorgw/${id}/state out 1`,
      `topic doorgw/${id}/door/# out 1`,
      'topic doorgw-site/command in 1',
      'topic doorgw-site/manifest in 1',
      'topic doorgw-site/fact/# both 1',
      `topic doorgw-site/door/${id} out 1`,
      `topic doorgw-site/journal/${id} out 1`,
      'topic doorgw-site/presence/# both 1',
      'topic doorgw-site/uses/# both 1',
    ].join('\n');
  }

  async start(): Promise<void> {
    await this.site.start();
    for (const id of this.bridged) {
      const b = new Broker(null, this.bridge(id));
      await b.start();
      this.locals.set(id, b);
    }
    const dirs = new Map(this.ids.map((id) => [id, this.sub(id)]));
    const door_keys = this.ids.map((id) => ({ gateway: id, kid: doorKey(dirs.get(id)!).kid, public_key: doorKey(dirs.get(id)!).publicKey }));
    const site = { enabled: true, door_keys, keys: [{ kid: keyIdOf(this.admin.publicKey), name: 'site-admin', public_key: rawPublicKey(this.admin.publicKey), roles: ['admin'] }], levels: [{ name: 'normal' }, { name: 'lockdown', mode: 'lockdown' }] };
    for (const id of this.ids) {
      const local = this.locals.get(id);
      const mqtt = local ? { enabled: true, url: local.url, username: 'doorgw', password: USERS.doorgw } : { enabled: true, url: this.site.url, username: id, password: this.accounts[id] };
      const file = join(this.dir, `${id}.json`);
      writeFileSync(file, JSON.stringify({ gateway_id: id, data_dir: dirs.get(id), log: { level: 'warn' }, doors: [{ id: 'lobby' }], mqtt, site }));
      this.files.set(id, file);
    }
    for (const id of this.ids) this.startGateway(id);
    this.toolConfig = validateConfig({ data_dir: this.sub('tool'), doors: [{ id: 'x' }], mqtt: { enabled: true, url: this.site.url }, site }, 'tool');
  }

  startGateway(id: string): void {
    // As the service runs it (doorgw.service.j2): the same heap and allocator settings.
    const p = spawn(process.execPath, ['--max-semi-space-size=4', CLI_MAIN, 'start', '-c', this.files.get(id)!], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, MALLOC_ARENA_MAX: '2' } });
    const keep = (b: Buffer) => (this.output = (this.output + `${id}: ${b.toString()}`).slice(-20_000));
    p.stdout.on('data', keep);
    p.stderr.on('data', keep);
    this.procs.set(id, p);
  }

  kill(id: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const p = this.procs.get(id)!;
    return new Promise<void>((r) => (p.exitCode !== null || p.signalCode !== null ? r() : (p.once('exit', () => r()), p.kill(signal))));
  }

  async stop(): Promise<void> {
    await Promise.all([...this.procs.keys()].map((id) => this.kill(id)));
    for (const b of this.locals.values()) {
      b.resume();
      await b.stop();
    }
    await this.site.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** The operator's tool on the site broker (the site-operator account and the admin key). */
  async operator(): Promise<{ tool: SiteTool; close: () => Promise<void> }> {
    const c = await ToolClient.connect({ url: this.site.url, username: 'site-operator', password: this.accounts['site-operator']!, clientId: 'site-operator' });
    return { tool: new SiteTool(c, this.toolConfig!, { privateKey: this.admin.privateKey, kid: keyIdOf(this.admin.publicKey) }), close: () => c.end() };
  }
}

/** A door's lobby mode as its signed report says. */
export const lobbyMode = (s: SiteStatus, id: string): string | null => s.doors.find((d) => d.gateway === id)?.states?.find((x) => x.door === 'lobby')?.mode ?? null;
