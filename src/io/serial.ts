/**
 * Serial ports (USB serial adapters, the Pi's UART) — the only module that imports `serialport`,
 * loaded only when a serial device is configured. 8N1, no flow control.
 */
import { Subject } from 'rxjs';

export interface SerialLink {
  readonly data$: Subject<Buffer>;
  /** Emits once when the port goes away on its own (a USB adapter unplugged); not on close(). */
  readonly lost$: Subject<Error>;
  write(b: Buffer): void;
  close(): Promise<void>;
}

export class SerialUnavailableError extends Error {}

/**
 * Node >= 26.4 no longer runs promise continuations after a native callback that is not made
 * through MakeCallback, and @serialport/bindings-cpp 13 delivers its poller's "readable" that way
 * (bindings-cpp PR #239, open): a read waiting for data stalled until some other I/O happened — on
 * Node 26 an OSDP reader or R30x module answered once, then went silent. A macrotask scheduled from
 * each poller event makes Node run the pending continuations (reproduced on a pty pair: without
 * it the second reply never arrives on Node 26.12; with it every reply does). Harmless elsewhere.
 */
function wakeOnPollerEvents(port: unknown): void {
  const poller = (port as { port?: { poller?: { on?: (e: string, f: () => void) => void } } }).port?.poller;
  if (typeof poller?.on !== 'function') return;
  const wake = (): void => void setImmediate(() => undefined);
  for (const e of ['readable', 'writable', 'disconnect']) poller.on(e, wake);
}

export async function openSerial(path: string, baudRate: number): Promise<SerialLink> {
  let SerialPort: typeof import('serialport').SerialPort;
  try {
    ({ SerialPort } = await import('serialport'));
  } catch (e) {
    throw new SerialUnavailableError(`the serial library could not load: ${(e as Error).message} (npm ci on this machine)`);
  }
  const port = new SerialPort({ path, baudRate, dataBits: 8, parity: 'none', stopBits: 1, autoOpen: false });
  await new Promise<void>((resolve, reject) =>
    port.open((e) => {
      if (!e) return resolve();
      const code = (e as NodeJS.ErrnoException).code ?? /\b(E[A-Z]+)\b/.exec(e.message)?.[1];
      reject(new SerialUnavailableError(code === 'EACCES' || /Permission denied/.test(e.message) ? `${path}: permission denied; the service user needs the dialout group` : `${path}: ${e.message}`));
    }),
  );
  wakeOnPollerEvents(port);
  const data$ = new Subject<Buffer>();
  const lost$ = new Subject<Error>();
  let closing = false;
  port.on('data', (b: Buffer) => data$.next(b));
  port.on('error', () => undefined);
  port.on('close', (e: Error | null) => {
    if (closing) return;
    lost$.next(e ?? new Error(`${path} closed`));
    lost$.complete();
  });
  return {
    data$,
    lost$,
    // A write to a port that just went away is dropped (its loss is reported on lost$).
    write: (b) => {
      if (port.isOpen) port.write(b);
    },
    close: () =>
      new Promise<void>((resolve) => {
        closing = true;
        data$.complete();
        lost$.complete();
        if (!port.isOpen) return resolve();
        port.close(() => resolve());
      }),
  };
}
