/**
 * Local control channel: newline-delimited JSON over a Unix socket in the data directory (mode
 * 0600, so only the gateway's own user and root can use it). The CLI uses it to reach the data of
 * a running gateway, which holds LevelDB's single-process lock.
 *
 *   → {"id":1,"method":"usersShow","params":{"userid":"x1"}}
 *   ← {"id":1,"ok":true,"result":{…}}   or   {"id":1,"ok":false,"error":"…"}
 */
import { chmodSync, existsSync, lstatSync, unlinkSync, type Stats } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import type { Logger } from '../log.js';
import { API_METHODS } from './roles.js';
import type { GatewayApi } from './api.js';
import { RemoteError, UsageError, type ErrorCode } from './errors.js';

/** Every GatewayApi method (the table in roles.ts, which must name them all). */
const METHODS = API_METHODS;
const MAX_LINE = 64 * 1024 * 1024;

interface Request {
  id: number;
  method: string;
  params?: unknown;
}

function lines(sock: Socket, onLine: (line: string) => void): void {
  let buf = '';
  sock.setEncoding('utf8');
  sock.on('data', (chunk: string) => {
    buf += chunk;
    if (buf.length > MAX_LINE) {
      sock.destroy(new Error('control message too large'));
      return;
    }
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.trim()) onLine(line);
    }
  });
}

/** Is something answering on this socket? */
export function probe(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.on('connect', () => done(true));
    s.on('error', () => done(false));
  });
}

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch {
    return null;
  }
}

export async function serveControl(path: string, api: GatewayApi, log: Logger): Promise<Server> {
  const existing = lstatOrNull(path);
  if (existing) {
    // Only ever remove a stale socket: control.socket may name any file by mistake.
    if (!existing.isSocket()) throw new Error(`control socket path ${path} exists and is not a socket; refusing to replace it (fix control.socket or remove the file)`);
    if (await probe(path)) throw new Error(`another gateway answers on ${path}`);
    unlinkSync(path); // stale, left by a crash
  }
  const server = createServer((sock) => {
    sock.on('error', (e) => log.debug({ err: e }, 'control client error'));
    lines(sock, (line) => {
      let req: Request;
      try {
        req = JSON.parse(line) as Request;
      } catch {
        sock.write(`${JSON.stringify({ id: null, ok: false, error: 'request is not JSON' })}\n`);
        return;
      }
      const reply = (body: object): void => void sock.write(`${JSON.stringify({ id: req.id, ...body })}\n`);
      if (!METHODS.has(req.method as keyof GatewayApi)) return reply({ ok: false, error: `unknown method '${String(req.method)}'` });
      const method = req.method as keyof GatewayApi;
      Promise.resolve()
        .then(() => (api[method] as (p: unknown) => Promise<unknown>)(req.params ?? {}))
        .then((result) => reply({ ok: true, result }))
        .catch((e: unknown) => {
          if (!(e instanceof UsageError)) log.error({ err: e, method: req.method }, 'control request failed');
          reply({ ok: false, error: (e as Error).message, usage: e instanceof UsageError, code: e instanceof UsageError ? e.code : 'internal' });
        });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  return server;
}

/** A GatewayApi whose calls go over the socket. Resolves null when no gateway answers. */
export async function connectControl(path: string): Promise<(GatewayApi & { close(): void }) | null> {
  if (!existsSync(path)) return null;
  const sock = await new Promise<Socket | null>((resolve) => {
    const s = createConnection(path);
    s.once('connect', () => resolve(s));
    s.once('error', () => resolve(null));
  });
  if (!sock) return null;
  let next = 1;
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  lines(sock, (line) => {
    const msg = JSON.parse(line) as { id: number; ok: boolean; result?: unknown; error?: string; usage?: boolean; code?: ErrorCode };
    const w = waiting.get(msg.id);
    waiting.delete(msg.id);
    if (msg.ok) w?.resolve(msg.result);
    else w?.reject(new RemoteError(msg.error ?? 'failed', msg.usage === true, msg.code));
  });
  sock.on('close', () => {
    for (const w of waiting.values()) w.reject(new Error('the gateway closed the control connection'));
    waiting.clear();
  });
  const call = (method: string) => (params: unknown) =>
    new Promise((resolve, reject) => {
      const id = next++;
      waiting.set(id, { resolve, reject });
      sock.write(`${JSON.stringify({ id, method, params })}\n`);
    });
  const api = Object.fromEntries([...METHODS].map((m) => [m, call(m)])) as unknown as GatewayApi;
  return Object.assign(api, { close: () => sock.end() });
}
