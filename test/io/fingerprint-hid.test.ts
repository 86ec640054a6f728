import { describe, expect, it } from 'vitest';
import { CMD, encodeFrame, FrameDecoder, HidFingerprint, toReports, type Frame, type HidTransport } from '../../src/io/fingerprint-hid.js';

/** A module on the other end of the reports: answers frames as a module speaking the protocol would. */
class ModuleEnd implements HidTransport {
  private cb: ((r: Buffer) => void) | null = null;
  readonly received: Frame[] = [];
  private readonly decoder = new FrameDecoder((f) => this.received.push(f));
  on(_ev: 'data', cb: (r: Buffer) => void): void {
    this.cb = cb;
  }
  write(report: number[]): void {
    this.decoder.push(Buffer.from(report.slice(1))); // strip report id
  }
  close(): void {}
  send(f: Frame): void {
    for (const r of toReports(encodeFrame(f))) this.cb?.(r);
  }
}

describe('framed protocol', () => {
  it('round-trips frames split across 64-byte reports', () => {
    const got: Frame[] = [];
    const d = new FrameDecoder((f) => got.push(f));
    const big = { cmd: CMD.ENROLLED, payload: Buffer.alloc(300, 7) };
    for (const r of [...toReports(encodeFrame({ cmd: CMD.MATCH, payload: Buffer.from([3]) })), ...toReports(encodeFrame(big))]) d.push(r);
    expect(got.map((f) => [f.cmd, f.payload.length])).toEqual([[CMD.MATCH, 1], [CMD.ENROLLED, 300]]);
    expect(d.errors).toBe(0);
  });

  it('resynchronises after garbage and a corrupted frame', () => {
    const got: Frame[] = [];
    const d = new FrameDecoder((f) => got.push(f));
    const bad = encodeFrame({ cmd: CMD.MATCH, payload: Buffer.from([1]) });
    bad[bad.length - 1]! ^= 0xff;
    const stream = Buffer.concat([Buffer.from([1, 2, 3]), bad, encodeFrame({ cmd: CMD.MATCH, payload: Buffer.from([2]) })]);
    for (const r of toReports(stream)) d.push(r);
    d.push(Buffer.from([99])); // a report claiming 99 bytes
    expect(got.map((f) => f.payload[0])).toEqual([2]);
    expect(d.errors).toBeGreaterThanOrEqual(2);
  });
});

describe('HidFingerprint', () => {
  it('enrols into a free slot, then reports matches as the enrolled user', async () => {
    const m = new ModuleEnd();
    const fp = new HidFingerprint(m);
    const matched: string[] = [];
    fp.matches$.subscribe((x) => matched.push(x.userid));
    const p = fp.enroll('alice', new AbortController().signal);
    expect(m.received).toEqual([{ cmd: CMD.ENROLL, payload: Buffer.from([0]) }]);
    m.send({ cmd: CMD.ENROLLED, payload: Buffer.concat([Buffer.from([0]), Buffer.from('TEMPLATE')]) });
    await expect(p).resolves.toEqual({ slot: 0, template: Buffer.from('TEMPLATE') });
    m.send({ cmd: CMD.MATCH, payload: Buffer.from([0]) });
    m.send({ cmd: CMD.MATCH, payload: Buffer.from([9]) }); // an unknown slot is nobody
    expect(matched).toEqual(['alice']);
  });

  it('reports module errors and cancels on abort', async () => {
    const m = new ModuleEnd();
    const fp = new HidFingerprint(m);
    const p = fp.enroll('bob', new AbortController().signal);
    m.send({ cmd: CMD.ERROR, payload: Buffer.concat([Buffer.from([4]), Buffer.from('finger moved')]) });
    await expect(p).rejects.toThrow('finger moved');
    const ctl = new AbortController();
    const q = fp.enroll('bob', ctl.signal);
    ctl.abort();
    await expect(q).rejects.toThrow('cancelled');
    expect(m.received.at(-1)).toEqual({ cmd: CMD.CANCEL, payload: Buffer.alloc(0) });
  });

  it('loads synced templates into slots and deletes them', async () => {
    const m = new ModuleEnd();
    const fp = new HidFingerprint(m);
    await fp.load('carol', [{ slot: 0, template: Buffer.from('A') }, { slot: 1, template: Buffer.from('B') }]);
    expect(m.received.map((f) => [f.cmd, [...f.payload]])).toEqual([[CMD.LOAD, [0, 65]], [CMD.LOAD, [1, 66]]]);
    const matched: { userid: string; slot: number }[] = [];
    fp.matches$.subscribe((x) => matched.push(x));
    m.send({ cmd: CMD.MATCH, payload: Buffer.from([1]) });
    expect(matched).toEqual([{ userid: 'carol', slot: 1 }]);
    await fp.delete('carol');
    expect(m.received.slice(2).map((f) => [f.cmd, [...f.payload]])).toEqual([[CMD.DELETE, [0]], [CMD.DELETE, [1]]]);
  });
});
