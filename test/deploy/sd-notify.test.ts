/** sd_notify against a real Unix datagram socket, with the gateway as a real process. */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tmpDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

const require = createRequire(import.meta.url);
const dgram = require('unix-dgram') as { createSocket(t: 'unix_dgram', cb: (msg: Buffer) => void): { bind(p: string): void; close(): void } };
const CLI = new URL('../../dist/cli/main.js', import.meta.url).pathname;

function workspace(): string {
  const dir = tmpDir();
  const config = join(dir, 'doorgw.yaml');
  writeFileSync(config, `data_dir: ${join(dir, 'data')}\nlog: { level: warn, pretty: false }\ndoors: [{ id: front }]\n`);
  return config;
}

describe('sd_notify', () => {
  it('sends READY, watchdog pings at half the interval, and STOPPING', async () => {
    const sock = join(tmpDir(), 'notify.sock');
    const got: { at: number; msg: string }[] = [];
    const server = dgram.createSocket('unix_dgram', (m) => got.push({ at: Date.now(), msg: m.toString() }));
    server.bind(sock);
    try {
      const child = spawn(process.execPath, [CLI, 'start', '-c', workspace()], { stdio: 'ignore', env: { ...process.env, NOTIFY_SOCKET: sock, WATCHDOG_USEC: '400000' } });
      await until(() => got.some((g) => g.msg.startsWith('READY=1')), 'READY', 30_000);
      expect(got[0]!.msg).toMatch(/^READY=1\nSTATUS=deciding for front$/);
      await until(() => got.filter((g) => g.msg === 'WATCHDOG=1').length >= 4, 'watchdog pings', 10_000);
      const pings = got.filter((g) => g.msg === 'WATCHDOG=1').map((g) => g.at);
      const gaps = pings.slice(1).map((t, i) => t - pings[i]!);
      expect(Math.min(...gaps)).toBeGreaterThanOrEqual(150);
      expect(Math.max(...gaps)).toBeLessThan(400); // well inside the 400 ms watchdog
      child.kill('SIGTERM');
      const code = await new Promise<number | null>((r) => child.once('exit', r));
      expect(code).toBe(0);
      expect(got.at(-1)!.msg).toBe('STOPPING=1');
    } finally {
      server.close();
    }
  }, 60_000);

  it('does nothing without NOTIFY_SOCKET, and ignores a watchdog meant for another process', async () => {
    const sock = join(tmpDir(), 'notify2.sock');
    const got: string[] = [];
    const server = dgram.createSocket('unix_dgram', (m) => got.push(m.toString()));
    server.bind(sock);
    try {
      const env = { ...process.env };
      delete env.NOTIFY_SOCKET;
      const plain = spawn(process.execPath, [CLI, 'start', '-c', workspace()], { stdio: 'ignore', env });
      const other = spawn(process.execPath, [CLI, 'start', '-c', workspace()], { stdio: 'ignore', env: { ...env, NOTIFY_SOCKET: sock, WATCHDOG_USEC: '200000', WATCHDOG_PID: '1' } });
      await until(() => got.includes('READY=1\nSTATUS=deciding for front'), 'READY', 30_000);
      await new Promise((r) => setTimeout(r, 600));
      expect(got.filter((m) => m === 'WATCHDOG=1')).toEqual([]);
      for (const c of [plain, other]) c.kill('SIGTERM');
      await Promise.all([plain, other].map((c) => new Promise((r) => c.once('exit', r))));
    } finally {
      server.close();
    }
  }, 60_000);
});
