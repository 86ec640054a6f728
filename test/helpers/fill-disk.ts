import { closeSync, openSync, writeSync } from 'node:fs';

/** Write a filler file at `path` until its filesystem refuses another byte; returns bytes written. */
export function fillDisk(path: string): number {
  const fd = openSync(path, 'a');
  let written = 0;
  for (const size of [1 << 20, 64 << 10, 4 << 10, 512, 1]) {
    const chunk = Buffer.alloc(size, 0x78);
    for (;;) {
      try {
        written += writeSync(fd, chunk);
      } catch {
        break;
      }
    }
  }
  closeSync(fd);
  return written;
}
