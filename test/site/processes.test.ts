/**
 * A site of 20 gateway processes (`doorgw start`, as deployed) on one site Mosquitto with the
 * shipped site ACL (issue 23): 15 connect to it directly, 5 sit behind their own local Mosquitto
 * bridged as the role configures it. Seen as the operator sees it — each door's signed report on
 * the site bus (`doorgw site status`):
 *
 * - a lockdown reaches every door;
 * - 5 doors cut off — two local brokers frozen (SIGSTOP), one killed, two gateways killed -9 —
 *   while a card is blocked, a site user deleted and the lockdown lifted: the 15 others take it,
 *   and when the 5 heal every one of them holds exactly the site's facts (its digest equals the
 *   manifest's) and reports the level lifted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lobbyMode, ProcessSite, type SiteStatus } from '../helpers/site-processes.js';
import { until } from '../helpers/wait.js';

const s = new ProcessSite({ doors: 20, bridged: 5 });
const IDS = s.ids;
beforeAll(() => s.start(), 60_000);
afterAll(() => s.stop());

describe('a site of 20 gateway processes', () => {
  it('a lockdown reaches every door; 5 doors cut off (frozen and killed brokers, gateways killed -9) converge on the block, the deletion and the lifted level when they heal', async () => {
    const { tool: op, close } = await s.operator();
    const waitAll = (what: string, ok: (st: SiteStatus) => boolean, ms = 60_000) =>
      until(async () => {
        const st = await op.status();
        return ok(st) ? st : null;
      }, what, ms).catch((e: unknown) => {
        throw new Error(`${(e as Error).message}\n${s.output.slice(-4000)}`);
      });
    try {
      await op.state('user/bob', { site: true }, { name: 'Bob', cards: ['2002'] });
      await waitAll('20 doors report, each holding the site user', (st) => st.doors.length === 20 && st.unconfirmed.length === 0);

      await op.state('threat_level/site', { site: true }, { level: 'lockdown' });
      const locked = await waitAll('lockdown at every door', (st) => st.unconfirmed.length === 0 && IDS.every((id) => lobbyMode(st, id) === 'lockdown'));
      expect(locked.doors.every((d) => d.signed)).toBe(true);

      // Cut off: gw16 and gw17's brokers frozen, gw18's killed; gw01 and gw02 killed -9.
      const cut = ['gw01', 'gw02', 'gw16', 'gw17', 'gw18'];
      s.locals.get('gw16')!.pause();
      s.locals.get('gw17')!.pause();
      const gw18Port = s.locals.get('gw18')!.port;
      await s.locals.get('gw18')!.stop();
      await Promise.all(['gw01', 'gw02'].map((id) => s.kill(id)));

      await op.state('block/card:1001', { site: true }, { reason: 'lost' });
      await op.state('user/bob', { site: true }, null);
      await op.state('threat_level/site', { site: true }, { level: 'normal' });
      const split = await waitAll('the 15 connected doors take all three', (st) => IDS.filter((id) => !cut.includes(id)).every((id) => st.doors.find((d) => d.gateway === id)?.confirmed && lobbyMode(st, id) === 'normal'));
      // The cut-off doors still report what they held: the older facts, lockdown.
      expect(split.unconfirmed.sort()).toEqual(cut);
      for (const id of cut) expect(lobbyMode(split, id)).toBe('lockdown');

      // Healed: the brokers thawed and started again, the gateways started again.
      s.locals.get('gw16')!.resume();
      s.locals.get('gw17')!.resume();
      await s.locals.get('gw18')!.start(gw18Port);
      s.startGateway('gw01');
      s.startGateway('gw02');
      const healed = await waitAll('every door converged', (st) => st.doors.length === 20 && st.unconfirmed.length === 0 && IDS.every((id) => lobbyMode(st, id) === 'normal'));
      expect(healed.doors.every((d) => d.complete === true && d.manifest?.version === healed.manifest?.version)).toBe(true);
      expect(healed.refused).toEqual([]);
    } finally {
      await close();
    }
  }, 180_000);
});
