/** A logger whose JSON lines the test reads: `lines` (emptied after each test), `logged(msg)` those containing msg. */
import { Writable } from 'node:stream';
import { afterEach } from 'vitest';
import { createLogger, type Logger } from '../../src/log.js';

export function capturedLog(level = 'info'): { log: Logger; lines: string[]; logged: (msg: string) => string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  afterEach(() => void lines.splice(0));
  return { log: createLogger({ level, pretty: false, destination: sink }), lines, logged: (msg) => lines.filter((l) => l.includes(msg)) };
}
