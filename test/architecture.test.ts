/**
 * The dependency direction of shared/docs/architecture.md, enforced: cli → gateway → pipeline →
 * control → cloud → io → store → (config, log) → domain, with web (console, metrics) between the
 * gateway and the pipeline. No module imports one of a higher layer.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, resolve, dirname } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = new URL('../src', import.meta.url).pathname;
const LAYERS = ['domain', 'config', 'log', 'version', 'store', 'io', 'cloud', 'control', 'pipeline', 'web', 'gateway', 'cli'];

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') && !p.endsWith('.d.ts') ? [p] : [];
  });
}

/** `domain/qr.ts` → domain, `gateway.ts` → gateway, `log.ts` → log. */
const layerOf = (file: string): string => relative(SRC, file).split('/')[0]!.replace(/\.ts$/, '');

describe('architecture', () => {
  it('has no upward import', () => {
    const upward: string[] = [];
    for (const f of files(SRC)) {
      const from = layerOf(f);
      expect(LAYERS, `unknown layer of ${relative(SRC, f)}`).toContain(from);
      for (const m of readFileSync(f, 'utf8').matchAll(/^(?:import|export)[^'"]*from '(\.[^']+)'/gm)) {
        const to = layerOf(resolve(dirname(f), m[1]!.replace(/\.js$/, '.ts')));
        if (LAYERS.indexOf(to) > LAYERS.indexOf(from)) upward.push(`${relative(SRC, f)} → ${m[1]}`);
      }
    }
    expect(upward).toEqual([]);
  });

  it('keeps the domain free of I/O', () => {
    const io = /from 'node:(fs|net|child_process|dgram|http|https)'|from '(level|mqtt|onoff|node-hid|ws|rxjs)'/;
    const offenders = files(join(SRC, 'domain')).filter((f) => io.test(readFileSync(f, 'utf8')));
    expect(offenders.map((f) => relative(SRC, f))).toEqual([]);
  });
});
