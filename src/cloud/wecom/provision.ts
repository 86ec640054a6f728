/** Provisioning (protocols.md §1 Lifecycle 1): get_secret_no → register → poll active → secret. */
import { randomBytes } from 'node:crypto';
import type { Logger } from '../../log.js';
import { ERR, registerSignature, WecomError } from './protocol.js';
import type { WecomSession } from './session.js';

export async function activate(
  session: WecomSession,
  sn: string,
  log: Logger,
  o: { pollMs?: number; timeoutMs?: number; onWaiting?: () => void } = {},
): Promise<string> {
  const { secret_no } = await session.request('get_secret_no', { sn });
  if (typeof secret_no !== 'string') throw new Error('get_secret_no returned no secret_no');
  const timestamp = Math.floor(Date.now() / 1000);
  const nonce = randomBytes(8).toString('hex');
  try {
    await session.request('register', { sn, secret_no, timestamp, nonce, signature: registerSignature(sn, secret_no, timestamp, nonce) });
  } catch (e) {
    if (!(e instanceof WecomError && (e.errcode === ERR.ALREADY_REGISTERED || e.errcode === ERR.REGISTERED_KEEPALIVE))) throw e;
  }
  log.info({ sn }, 'device registered; waiting for a corp to bind it');
  const deadline = Date.now() + (o.timeoutMs ?? 30 * 60_000);
  for (;;) {
    try {
      const { secret } = await session.request('active', { sn });
      if (typeof secret !== 'string' || secret === '') throw new Error('active returned no secret');
      return secret;
    } catch (e) {
      if (!(e instanceof WecomError && e.errcode === ERR.NOT_ACTIVATED)) throw e;
    }
    if (Date.now() > deadline) throw new Error('no corp bound the device in time');
    o.onWaiting?.();
    await new Promise((r) => setTimeout(r, o.pollMs ?? 5000));
  }
}
