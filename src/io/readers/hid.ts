/** Reader kind `hid`: a USB QR scanner (node-hid, loaded only when configured). */
import { Subject } from 'rxjs';
import { credentialEvent, type CredentialEvent } from '../../domain/events.js';
import type { ReaderFactory } from './reader.js';

export const openHidReader: ReaderFactory<'hid'> = async (r, ctx) => {
  const { HidReader } = await import('../hid/device.js');
  const scans = new Subject<CredentialEvent>();
  const reader = await HidReader.open({
    name: r.id,
    selector: { vendorId: r.vendor_id, productId: r.product_id, serial: r.serial, path: r.path },
    mode: r.mode,
    layout: r.layout,
    terminator: r.terminator,
    idleMs: r.idle_ms,
    onScan: (text) => scans.next(credentialEvent(ctx.door.id, r.id, r.direction, { type: 'qr', text })),
    log: ctx.log.child({ module: 'hid', reader: r.id }),
  });
  return {
    credentials$: scans,
    close: () => {
      reader.close();
      scans.complete();
    },
  };
};
