/**
 * A real PostgreSQL for the tests (Debian's `postgresql`, installed by the test command): a cluster
 * of its own in a temporary directory, on a free port, trust authentication on 127.0.0.1 only.
 * initdb refuses to run as root, so as root the cluster belongs to the `postgres` user.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './mosquitto.js';

function binDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin/initdb'))).sort((a, b) => Number(b) - Number(a)) : [];
  if (!versions.length) throw new Error('PostgreSQL is not installed: run `apt-get install -y postgresql` (the .ci/run script does)');
  return join(root, versions[0]!, 'bin');
}

export class Postgres {
  private proc: ChildProcess | null = null;
  private dir = '';
  port = 0;
  private dbs = 0;

  async start(): Promise<void> {
    const bin = binDir();
    this.dir = mkdtempSync(join(tmpdir(), 'doorgw-pg-'));
    // As root, the processes run as the postgres user (spawned with its uid: signals reach them).
    let ids: { uid: number; gid: number } | object = {};
    if (process.getuid?.() === 0) {
      const uid = Number(execFileSync('id', ['-u', 'postgres']).toString());
      const gid = Number(execFileSync('id', ['-g', 'postgres']).toString());
      chownSync(this.dir, uid, gid);
      ids = { uid, gid };
    }
    const data = join(this.dir, 'data');
    execFileSync(join(bin, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8'], { stdio: 'ignore', cwd: this.dir, ...ids });
    this.port = await freePort();
    // fsync off: the tests crash the collector, never the database.
    this.proc = spawn(join(bin, 'postgres'), ['-D', data, '-p', String(this.port), '-k', this.dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'max_connections=50'], { stdio: ['ignore', 'ignore', 'pipe'], cwd: this.dir, ...ids });
    let err = '';
    this.proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    for (let i = 0; i < 200; i++) {
      if (this.proc.exitCode !== null) throw new Error(`postgres exited: ${err}`);
      try {
        const c = new pg.Client({ connectionString: this.url('postgres') });
        await c.connect();
        await c.end();
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    throw new Error(`postgres did not come up: ${err}`);
  }

  url(db: string): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${db}`;
  }

  /** A new, empty database: its URL. */
  async database(): Promise<string> {
    const name = `t${++this.dbs}_${process.pid}`;
    const c = new pg.Client({ connectionString: this.url('postgres') });
    await c.connect();
    await c.query(`CREATE DATABASE ${name}`);
    await c.end();
    return this.url(name);
  }

  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (p && p.exitCode === null) {
      await new Promise<void>((r) => {
        p.once('exit', () => r());
        p.kill('SIGQUIT'); // immediate shutdown: the cluster is thrown away
      });
    }
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}
