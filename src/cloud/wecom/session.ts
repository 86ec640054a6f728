/**
 * One WebSocket to the WeCom cloud: request/response matched by req_id with timeouts, pushes
 * delivered as an Observable, keepalive pings, and reconnection with exponential backoff and
 * jitter. It knows frames, not commands: login and sync live in the adapter.
 */
import { randomBytes } from 'node:crypto';
import { BehaviorSubject, Subject } from 'rxjs';
import WebSocket from 'ws';
import { Backoff } from '../../domain/backoff.js';
import type { Logger } from '../../log.js';
import { decodeBinaryFrame, encodeBinaryFrame, FrameError, headerlessErrcode, parseFrame, SESSION_LOST_CODES, stringifyFrame, WecomError, type Frame } from './protocol.js';

export type LinkState = 'stopped' | 'connecting' | 'open' | 'closed';

export interface SessionOptions {
  url: string;
  log: Logger;
  requestTimeoutMs: number;
  /** Backoff after a failed or dropped connection: min, max (ms). */
  backoffMs: [number, number];
}

export class LinkDownError extends Error {}

export class WecomSession {
  readonly link$ = new BehaviorSubject<LinkState>('stopped');
  /** Each time a connection opens (the adapter logs in on it). */
  readonly opened$ = new Subject<void>();
  readonly pushes$ = new Subject<Frame>();
  private ws: WebSocket | null = null;
  private readonly pending = new Map<string, { resolve: (f: Frame) => void; reject: (e: Error) => void; timer: NodeJS.Timeout; cmd: string }>();
  private readonly bootId = randomBytes(4).toString('hex');
  private seq = 0;
  private readonly backoff: Backoff;
  private running = false;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  private missedPings = 0;

  constructor(private readonly o: SessionOptions) {
    this.backoff = new Backoff({ initialMs: o.backoffMs[0], maxMs: o.backoffMs[1] });
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.connect();
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.stopPing();
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState !== WebSocket.CLOSED) {
      await new Promise<void>((resolve) => {
        ws.once('close', () => resolve());
        ws.close();
        setTimeout(() => {
          ws.terminate();
          resolve();
        }, 1000).unref();
      });
    }
    this.failPending(new LinkDownError('session stopped'));
    this.link$.next('stopped');
  }

  get isOpen(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  private connect(): void {
    this.link$.next('connecting');
    const ws = new WebSocket(this.o.url, { handshakeTimeout: this.o.requestTimeoutMs, maxPayload: 32 * 1024 * 1024 });
    this.ws = ws;
    ws.on('open', () => {
      this.backoff.reset();
      this.link$.next('open');
      this.o.log.info({ url: this.o.url }, 'cloud link open');
      this.opened$.next();
    });
    ws.on('message', (data: Buffer, isBinary) => {
      if (isBinary) return this.onBinary(data);
      this.onText(data.toString('utf8'));
    });
    ws.on('error', (e) => this.o.log.warn({ err: e.message }, 'cloud link error'));
    ws.on('close', (code) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.stopPing();
      this.failPending(new LinkDownError(`cloud link closed (${code})`));
      this.link$.next('closed');
      if (this.running) this.scheduleReconnect();
    });
  }

  private scheduleReconnect(): void {
    const delay = this.backoff.next();
    this.o.log.info({ retry_in_ms: delay, attempt: this.backoff.attempts }, 'cloud link down; reconnecting');
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
    this.reconnectTimer.unref();
  }

  /** Drop the connection (it reconnects if running). */
  drop(reason: string): void {
    this.o.log.warn({ reason }, 'dropping cloud link');
    this.ws?.terminate();
  }

  /**
   * A binary reply (protocols.md §10.1, gen_login_qrcode): format_version, req_id and data, each
   * length 4 bytes little-endian; it answers the pending request of that req_id with the data.
   */
  private onBinary(b: Buffer): void {
    try {
      const { version, fields } = decodeBinaryFrame(b, 2);
      const req_id = fields[0]!.toString('utf8');
      const data = fields[1]!;
      const p = this.pending.get(req_id);
      if (!p) return this.o.log.warn({ req_id, version }, 'binary frame for an unknown req_id ignored');
      this.pending.delete(req_id);
      clearTimeout(p.timer);
      p.resolve({ headers: { req_id }, body: { format_version: version, data_b64: data.toString('base64') } });
    } catch (e) {
      this.o.log.warn({ err: (e as Error).message, bytes: b.length }, 'malformed binary frame from the cloud ignored');
    }
  }

  private onText(text: string): void {
    let f: Frame;
    try {
      f = parseFrame(text);
    } catch (e) {
      const code = headerlessErrcode(text);
      if (code !== null && SESSION_LOST_CODES.has(code)) {
        this.o.log.warn({ errcode: code }, 'the cloud says this session is lost (an error frame without headers): logging in again on a new connection');
        return this.drop(`session lost (${code})`);
      }
      this.o.log.warn({ err: e instanceof FrameError ? e.message : e, bytes: text.length }, 'malformed frame from the cloud ignored');
      return;
    }
    if (f.cmd?.startsWith('push_')) {
      this.pushes$.next(f);
      return;
    }
    const p = this.pending.get(f.headers.req_id);
    if (!p) {
      this.o.log.warn({ req_id: f.headers.req_id, cmd: f.cmd }, 'response with an unknown req_id ignored');
      return;
    }
    this.pending.delete(f.headers.req_id);
    clearTimeout(p.timer);
    if ((f.errcode ?? 0) !== 0) p.reject(new WecomError(p.cmd, f.errcode!, f.errmsg ?? ''));
    else p.resolve(f);
  }

  /** Send a request; resolves with the response body, rejects on errcode, timeout or link loss. */
  async request(cmd: string, body: Record<string, unknown> = {}, timeoutMs = this.o.requestTimeoutMs): Promise<Record<string, unknown>> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) throw new LinkDownError('cloud link is not open');
    const req_id = `${this.bootId}-${++this.seq}`;
    const frame = await new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(req_id);
        reject(new LinkDownError(`${cmd}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(req_id, { resolve, reject, timer, cmd });
      ws.send(stringifyFrame({ cmd, headers: { req_id }, body }), (err) => {
        if (!err) return;
        clearTimeout(timer);
        this.pending.delete(req_id);
        reject(new LinkDownError(`${cmd}: send failed: ${err.message}`));
      });
    });
    return frame.body ?? {};
  }

  /**
   * A binary request (protocols.md §9.2, §11 `upload_log`): format_version 1, then cmd, req_id and
   * the data, each after its 4-byte little-endian length. The cloud answers with a text frame.
   */
  async requestBinary(cmd: string, data: Buffer, timeoutMs = this.o.requestTimeoutMs): Promise<Record<string, unknown>> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) throw new LinkDownError('cloud link is not open');
    const req_id = `${this.bootId}-${++this.seq}`;
    const frame = encodeBinaryFrame(1, [Buffer.from(cmd), Buffer.from(req_id), data]);
    const reply = await new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(req_id);
        reject(new LinkDownError(`${cmd}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(req_id, { resolve, reject, timer, cmd });
      ws.send(frame, { binary: true }, (err) => {
        if (!err) return;
        clearTimeout(timer);
        this.pending.delete(req_id);
        reject(new LinkDownError(`${cmd}: send failed: ${err.message}`));
      });
    });
    return reply.body ?? {};
  }

  /** Answer a push (errcode 0, or the error we could not act on). */
  reply(push: Frame, errcode = 0, errmsg = 'ok', body?: Record<string, unknown>): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const f: Frame = { headers: { req_id: push.headers.req_id }, errcode, errmsg };
    if (push.cmd) f.cmd = push.cmd;
    if (body) f.body = body;
    ws.send(stringifyFrame(f));
  }

  /** Keepalive after login: a ping every interval ± jitter; two missed answers drop the link. */
  startPing(intervalMs: number, jitterMs: number): void {
    this.stopPing();
    this.missedPings = 0;
    const tick = (): void => {
      const next = intervalMs - jitterMs + Math.random() * 2 * jitterMs;
      this.pingTimer = setTimeout(() => {
        this.request('ping', {}, intervalMs).then(
          () => (this.missedPings = 0),
          () => {
            if (++this.missedPings >= 2) this.drop('two pings unanswered');
          },
        );
        tick();
      }, next);
      this.pingTimer.unref();
    };
    tick();
  }

  private stopPing(): void {
    if (this.pingTimer) clearTimeout(this.pingTimer);
    this.pingTimer = null;
  }

  private failPending(e: Error): void {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(e);
    }
    this.pending.clear();
  }
}
