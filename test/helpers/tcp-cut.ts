/** A TCP relay in front of a broker that a test can cut (every connection dropped, new ones refused) and heal: a door's network failing. */
import { createServer, connect, type Server, type Socket } from 'node:net';

export class TcpCut {
  private server: Server | null = null;
  private readonly open = new Set<Socket>();
  private cut_ = false;
  port = 0;

  constructor(private readonly targetPort: number) {}

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.server = createServer((inbound) => {
      if (this.cut_) return void inbound.destroy();
      const outbound = connect(this.targetPort, '127.0.0.1');
      for (const [a, b] of [[inbound, outbound], [outbound, inbound]] as const) {
        this.open.add(a);
        a.on('error', () => b.destroy());
        a.on('close', () => {
          this.open.delete(a);
          b.destroy();
        });
        a.pipe(b);
      }
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as { port: number }).port;
  }

  cut(): void {
    this.cut_ = true;
    for (const s of this.open) s.destroy();
  }

  heal(): void {
    this.cut_ = false;
  }

  async stop(): Promise<void> {
    this.cut();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}
