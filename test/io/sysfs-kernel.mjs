// Plays the kernel for an emulated sysfs GPIO tree (run inside a private mount namespace):
// a number written to export creates gpioN/; writing "high"/"low" to direction sets the value,
// as gpiolib does. Every value change is appended to <root>/../value-log as "ms gpio value".
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = process.argv[2];
const log = join(root, '..', 'value-log');
const t0 = Date.now();
const last = new Map();
const lastDir = new Map();
setInterval(() => {
  const exp = readFileSync(join(root, 'export'), 'utf8').trim();
  if (exp) {
    writeFileSync(join(root, 'export'), '');
    const dir = join(root, `gpio${exp}`);
    if (!existsSync(dir)) {
      mkdirSync(dir);
      writeFileSync(join(dir, 'direction'), 'in');
      writeFileSync(join(dir, 'value'), '0');
      writeFileSync(join(dir, 'active_low'), '0');
      writeFileSync(join(dir, 'edge'), 'none');
    }
  }
  for (const d of readdirSync(root).filter((n) => /^gpio\d+$/.test(n))) {
    const n = d.slice(4);
    const direction = readFileSync(join(root, d, 'direction'), 'utf8').trim();
    if (direction !== lastDir.get(n)) {
      lastDir.set(n, direction);
      if (direction === 'high' || direction === 'low') {
        writeFileSync(join(root, d, 'value'), direction === 'high' ? '1' : '0');
        writeFileSync(join(root, d, 'direction'), 'out');
        lastDir.set(n, 'out');
      }
    }
    const v = readFileSync(join(root, d, 'value'), 'utf8').trim();
    if (v !== last.get(n)) {
      last.set(n, v);
      appendFileSync(log, `${Date.now() - t0} ${n} ${v}\n`);
    }
  }
}, 1);
