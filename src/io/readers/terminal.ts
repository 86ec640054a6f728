/**
 * A simulated scanner for development: each line typed or pasted on the terminal is a scan.
 * `card:<n>`, `userid:<id>`, `face:<userid>`, `fingerprint:<userid>` and `exit` present the other
 * credential kinds (face and fingerprint as a terminal that identified the person would report them).
 */
import { createInterface } from 'node:readline';
import { Observable } from 'rxjs';
import type { Readable } from 'node:stream';
import type { Credential, Direction } from '../../domain/types.js';
import { credentialEvent, type CredentialEvent } from '../../domain/events.js';
import type { ReaderFactory } from './reader.js';

export function parseTerminalLine(line: string): Credential | null {
  const t = line.trim();
  if (t === '') return null;
  if (t === 'exit') return { type: 'exit' };
  const m = /^(card|userid|face|fingerprint):\s*(.+)$/.exec(t);
  if (m) {
    const value = m[2]!.trim();
    if (m[1] === 'card') return { type: 'card', value };
    return m[1] === 'userid' ? { type: 'userid', value } : { type: 'userid', value, method: m[1] as 'face' | 'fingerprint' };
  }
  return { type: 'qr', text: t };
}

export function terminalReader(input: Readable, door: string, reader: string, direction: Direction): Observable<CredentialEvent> {
  return new Observable<CredentialEvent>((sub) => {
    const rl = createInterface({ input, terminal: false });
    rl.on('line', (line) => {
      const c = parseTerminalLine(line);
      if (c) sub.next(credentialEvent(door, reader, direction, c));
    });
    rl.on('close', () => sub.complete());
    return () => rl.close();
  });
}

/** Reader kind `terminal`: the console (process.stdin unless the gateway was given another input). */
export const openTerminalReader: ReaderFactory<'terminal'> = (r, ctx) =>
  Promise.resolve({ credentials$: terminalReader(ctx.terminalInput, ctx.door.id, r.id, r.direction), close: () => undefined });
