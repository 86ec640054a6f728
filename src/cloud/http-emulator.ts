/** A small JSON-over-HTTP server for the cloud emulators (real sockets, real HTTP). */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface JsonRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: unknown;
}

/** What a handler answers: a JSON body with a status, or raw text (to test non-JSON replies). */
export type JsonReply = { status?: number; body: unknown } | { status: number; text: string };

export class JsonHttpServer {
  private server: Server | null = null;

  constructor(private readonly handle: (req: JsonRequest) => JsonReply | Promise<JsonReply>) {}

  async start(port = 0, host = '127.0.0.1'): Promise<string> {
    this.server = createServer((req, res) => void this.serve(req, res));
    await new Promise<void>((r) => this.server!.listen(port, host, () => r()));
    return this.url;
  }

  get url(): string {
    const a = this.server!.address() as AddressInfo;
    return `http://${a.address}:${a.port}`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    let body: unknown = undefined;
    try {
      body = raw ? JSON.parse(raw) : undefined;
    } catch {
      body = raw;
    }
    const url = new URL(req.url ?? '/', 'http://emulator');
    let reply: JsonReply;
    try {
      reply = await this.handle({ method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, headers: req.headers, body });
    } catch (e) {
      reply = { status: 500, body: { code: 500, msg: (e as Error).message } };
    }
    if ('text' in reply) {
      res.writeHead(reply.status, { 'content-type': 'text/plain' }).end(reply.text);
    } else {
      res.writeHead(reply.status ?? 200, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(reply.body));
    }
  }
}
