/**
 * The dependency direction of shared/docs/architecture.md, enforced: cli → gateway → pipeline →
 * control → cloud → io → store → (config, log) → domain, with web (console, metrics) between the
 * gateway and the pipeline, and the collector (a composition root of its own) beside the gateway. No module imports one of a higher layer.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, resolve, dirname } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = new URL('../src', import.meta.url).pathname;
const LAYERS = ['domain', 'config', 'log', 'version', 'store', 'io', 'cloud', 'control', 'pipeline', 'web', 'gateway', 'collector', 'cli'];

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
      // Static imports and exports, and dynamic import() (lazy loads obey the layers too).
      for (const m of readFileSync(f, 'utf8').matchAll(/(?:^(?:import|export)[^'"]*from |\bimport\()'(\.[^']+)'/gm)) {
        const to = layerOf(resolve(dirname(f), m[1]!.replace(/\.js$/, '.ts')));
        if (LAYERS.indexOf(to) > LAYERS.indexOf(from)) upward.push(`${relative(SRC, f)} → ${m[1]}`);
      }
    }
    expect(upward).toEqual([]);
  });

  it('has one importer per hardware or network library (style.md §4)', () => {
    const OWNERS: Record<string, string[]> = {
      level: ['store/store.ts', 'store/generation-worker.ts'], // the worker shares the store's handle
      mqtt: ['io/mqtt/client.ts'],
      onoff: ['io/gpio/onoff.ts'],
      'node-hid': ['io/hid/device.ts'],
      serialport: ['io/serial.ts'],
      ws: ['cloud/wecom/session.ts', 'cloud/wecom/emulator.ts'], // the client, and the emulator's server
      'prom-client': ['web/metrics.ts'],
      'unix-dgram': ['io/sd-notify.ts'],
      pino: ['log.ts'],
      pg: ['store/site-journal-db.ts'],
      qrcode: ['web/kiosk.ts'],
      '@electric-sql/pglite': ['store/site-journal-db.ts'],
    };
    const found: Record<string, string[]> = {};
    for (const f of files(SRC)) {
      for (const m of readFileSync(f, 'utf8').matchAll(/(?:^(?:import|export)[^'"]*from |\bimport\()'([^.'][^']*)'/gm)) {
        const lib = m[1]!.startsWith('@') ? m[1]!.split('/').slice(0, 2).join('/') : m[1]!.split('/')[0]!;
        if (lib in OWNERS) (found[lib] ??= []).push(relative(SRC, f));
      }
    }
    for (const [lib, owners] of Object.entries(OWNERS)) expect([...new Set(found[lib] ?? [])].sort(), lib).toEqual([...owners].sort());
  });

  it('keeps the domain free of I/O', () => {
    const io = /from 'node:(fs|net|child_process|dgram|http|https)'|from '(level|mqtt|onoff|node-hid|ws|rxjs)'/;
    const offenders = files(join(SRC, 'domain')).filter((f) => io.test(readFileSync(f, 'utf8')));
    expect(offenders.map((f) => relative(SRC, f))).toEqual([]);
  });
});
