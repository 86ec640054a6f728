/**
 * OSDP latency: an emulated reader on a real pty pair, the gateway polling it on the other end
 * (secure channel on, as deployed), a card presented at random moments; measured in one process
 * (same clock) to the relay command:
 *   wire → relay      from the first byte of the reader's card reply on the wire (and from its last byte:
 *                     what the gateway adds to the wire time)
 *   present → relay   from the card touching the reader (includes waiting for the next poll)
 * A pty has no baud rate, so the emulated reader paces its bytes and hears commands only after
 * their wire time (8N1 at the given speed): what a real line costs is in the figures, with timer
 * granularity (~1 ms) on top. Last line of output is JSON.
 *
 *   npm run bench:osdp [-- --samples 100 --baud 115200,9600 --poll 30]
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { validateConfig } from '../../src/config/load.js';
import { encodeCard } from '../../src/domain/cards.js';
import { normalizeWecomUser } from '../../src/domain/user.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { Store } from '../../src/store/store.js';
import { OsdpBusEmulator } from '../../src/io/osdp/emulator.js';
import { pct, r2, TimingRelay } from './common.js';

const { values } = parseArgs({ options: { samples: { type: 'string', default: '100' }, baud: { type: 'string', default: '115200,9600' }, poll: { type: 'string', default: '30' } } });
const SAMPLES = Number(values.samples);

/** A linked pty pair (socat), outside vitest. */
async function ptyPair(): Promise<{ gateway: string; device: string; stop: () => void; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'doorgw-bench-pty-'));
  const gateway = join(dir, 'gw');
  const device = join(dir, 'dev');
  const socat = spawn('socat', [`pty,raw,echo=0,link=${gateway}`, `pty,raw,echo=0,link=${device}`], { stdio: 'ignore' });
  for (let i = 0; !(existsSync(gateway) && existsSync(device)); i++) {
    if (i > 250) throw new Error('socat did not make the pty pair (apt-get install socat)');
    await new Promise((r) => setTimeout(r, 20));
  }
  return { gateway, device, dir, stop: () => socat.kill() };
}

const results: Record<string, unknown>[] = [];
for (const baud of values.baud.split(',').map(Number)) {
  const pty = await ptyPair();
  const emu = await OsdpBusEmulator.open(pty.device, baud, { emulateWire: true });
  const key = Buffer.alloc(16, 0x42);
  const pd = emu.add({ address: 0, scbk: key, installMode: false });
  const dir = mkdtempSync(join(tmpdir(), 'doorgw-bench-osdp-'));
  const seed = await Store.open(dir);
  const users = Array.from({ length: 1000 }, (_, i) => {
    const r = normalizeWecomUser({ userid: `u${i}`, cards: [(5 << 16) | (1000 + i)] });
    if (!r.ok) throw new Error(r.error);
    return r.user;
  });
  await seed.replaceDirectory(users);
  await seed.close();
  const { OsdpKeyFile } = await import('../../src/io/osdp/keys.js');
  new OsdpKeyFile(dir).ring('front-osdp').confirm(key);
  const relay = new TimingRelay();
  const gw = await Gateway.start({
    config: validateConfig(
      {
        gateway_id: 'bench',
        data_dir: dir,
        policy: { debounce_ms: 0 },
        doors: [{ id: 'front', readers: [{ id: 'front-osdp', type: 'osdp', path: pty.gateway, baud_rate: baud, poll_interval_ms: Number(values.poll), rate_limit: { per_s: 1000, burst: 1000 } }] }],
      },
      'bench',
    ),
    log: createLogger({ level: 'silent', pretty: false }),
    relayFactory: () => relay,
    controlSocket: false,
  });
  const reader = async () => (await gw.api.status()).readers!.find((r) => r.id === 'front-osdp')!;
  for (let t0 = Date.now(); (await reader()).state !== 'online' || !(await reader()).secure; ) {
    if (Date.now() - t0 > 10_000) throw new Error(`the reader did not come online at ${baud} baud: ${(await reader()).detail}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const wire: number[] = [];
  const last: number[] = [];
  const present: number[] = [];
  for (let i = 0; i < SAMPLES + 10; i++) {
    // After the last person's feedback (LED, beep, text) has left, at a random moment in the poll cycle.
    await new Promise((r) => setTimeout(r, 400 + Math.random() * 2 * Number(values.poll)));
    const done = new Promise<bigint>((resolve) => (relay.onPulse = () => resolve(process.hrtime.bigint())));
    const t0 = process.hrtime.bigint();
    pd.presentCard(encodeCard('h10301', 5, BigInt(1000 + (i % 1000))));
    const t1 = await done;
    if (i < 10) continue;
    present.push(Number(t1 - t0) / 1e6);
    wire.push(Number(t1 - emu.cardReplyStartedAt!) / 1e6);
    last.push(Number(t1 - emu.cardReplyEndedAt!) / 1e6);
  }
  const counters = (await reader()).counters;
  await gw.stop();
  await emu.close();
  pty.stop();
  rmSync(dir, { recursive: true, force: true });
  rmSync(pty.dir, { recursive: true, force: true });
  const r = { baud, samples: wire.length, poll_interval_ms: Number(values.poll), wire_to_relay_p50_ms: r2(pct(wire, 50)), wire_to_relay_p99_ms: r2(pct(wire, 99)), last_byte_to_relay_p50_ms: r2(pct(last, 50)), last_byte_to_relay_p99_ms: r2(pct(last, 99)), present_to_relay_p50_ms: r2(pct(present, 50)), present_to_relay_p99_ms: r2(pct(present, 99)), link: counters };
  process.stdout.write(`osdp ${baud} baud, secure channel, poll every ${r.poll_interval_ms} ms, ${r.samples} cards: wire → relay p50 ${r.wire_to_relay_p50_ms} ms p99 ${r.wire_to_relay_p99_ms} ms (last byte → relay p50 ${r.last_byte_to_relay_p50_ms} p99 ${r.last_byte_to_relay_p99_ms}); presented → relay p50 ${r.present_to_relay_p50_ms} ms p99 ${r.present_to_relay_p99_ms} ms\n`);
  results.push(r);
}
process.stdout.write(`${JSON.stringify({ bench: 'osdp', results })}\n`);
