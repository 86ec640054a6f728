/**
 * Third outside probe: with control.socket on a regular file the start failed late, but the
 * console kept listening, MQTT kept retrying and the process ignored SIGTERM for 10 minutes. Now
 * what had started is stopped in reverse and the process exits non-zero.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI_MAIN } from '../helpers/cli.js';
import { Broker } from '../helpers/mosquitto.js';
import { USERS } from '../helpers/mosquitto.js';
import { tmpDir } from '../helpers/tmp.js';

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });

describe('a start that fails late', () => {
  it('stops the console and MQTT it had started and exits non-zero, promptly', async () => {
    const broker = new Broker();
    await broker.start();
    try {
      const dir = tmpDir();
      const notASocket = join(dir, 'control.sock');
      writeFileSync(notASocket, 'a regular file');
      const port = await freePort();
      const config = join(dir, 'doorgw.yaml');
      writeFileSync(config, [
        `gateway_id: gw-fail`,
        `data_dir: ${join(dir, 'data')}`,
        `log: { level: info, pretty: false }`,
        `doors: [{ id: front }]`,
        `control: { socket: ${notASocket} }`,
        `web: { enabled: true, port: ${port} }`,
        `mqtt: { enabled: true, url: "${broker.url}", username: doorgw, password: ${USERS.doorgw} }`,
      ].join('\n'));
      const t0 = Date.now();
      const child = spawn(process.execPath, [CLI_MAIN, 'start', '-c', config], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      child.stderr.on('data', (b: Buffer) => (out += b.toString()));
      const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
      expect(code).toBe(1);
      expect(Date.now() - t0).toBeLessThan(15_000);
      expect(out).toContain('exists and is not a socket');
      expect(out).toContain('start failed: stopping what had started, in reverse');
      // The console's port is free again.
      await new Promise<void>((resolve, reject) => {
        const s = createServer();
        s.once('error', reject);
        s.listen(port, '127.0.0.1', () => s.close(() => resolve()));
      });
    } finally {
      await broker.stop();
    }
  }, 30_000);
});
