/** Probe case: the control socket path names a file that is not a socket. */
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { GatewayApi } from '../../src/control/api.js';
import { connectControl, serveControl } from '../../src/control/socket.js';
import { createLogger } from '../../src/log.js';
import { tmpDir } from '../helpers/tmp.js';

const log = createLogger({ level: 'silent', pretty: false });
const api = { status: () => Promise.resolve({ running: true }) } as unknown as GatewayApi;

describe('control socket', () => {
  it('refuses to replace a file that is not a socket, and leaves it as it was', async () => {
    const path = join(tmpDir(), 'doorgw.yaml');
    writeFileSync(path, 'precious: true\n');
    await expect(serveControl(path, api, log)).rejects.toThrow(/exists and is not a socket; refusing to replace it/);
    expect(readFileSync(path, 'utf8')).toBe('precious: true\n');
  });

  it('replaces a stale socket left by a crash, and refuses one a live gateway answers on', async () => {
    const path = join(tmpDir(), 'doorgw.sock');
    // a stale socket: bound, then the process "died" without unlinking it
    const stale = createServer();
    await new Promise<void>((r) => stale.listen(path, () => r()));
    await new Promise<void>((r) => {
      // close() would unlink the path; keep the file, drop the listener
      (stale as unknown as { _handle: { close(): void } | null })._handle?.close();
      r();
    });
    const server = await serveControl(path, api, log);
    const remote = await connectControl(path);
    expect(await remote!.status()).toEqual({ running: true });
    remote!.close();
    await expect(serveControl(path, api, log)).rejects.toThrow(/another gateway answers/);
    await new Promise<void>((r) => server.close(() => r()));
  });
});
