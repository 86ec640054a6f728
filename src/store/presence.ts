/** Area presence for anti-passback (presence/<area>\0<userid>): where each person last was. */
import { delOp, putOp, SEP } from './directory-writer.js';
import type { StoreDb } from './db.js';

export interface Presence {
  where: 'in' | 'out';
  at: number;
}

export class PresenceRepo {
  constructor(private readonly db: StoreDb) {}
  private get sub() {
    return this.db.sub<Presence>('presence');
  }

  /** Record (or, with null, forget) a person's presence in an area. */
  async put(area: string, userid: string, p: Presence | null): Promise<void> {
    const key = `${area}${SEP}${userid}`;
    await this.db.batch([p ? putOp(this.sub, key, p) : delOp(this.sub, key)]);
  }

  /** Every recorded presence, by area. */
  async load(): Promise<Map<string, Map<string, Presence>>> {
    const out = new Map<string, Map<string, Presence>>();
    for await (const [k, v] of this.sub.iterator()) {
      const [area, userid] = k.split(SEP) as [string, string];
      let m = out.get(area);
      if (!m) out.set(area, (m = new Map<string, Presence>()));
      m.set(userid, v);
    }
    return out;
  }
}
