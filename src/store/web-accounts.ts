/** Console accounts (webaccounts/<name>): the password only as its scrypt hash. */
import { delOp, putOp } from './directory-writer.js';
import type { StoreDb } from './db.js';

export interface WebAccount {
  name: string;
  role: 'viewer' | 'operator' | 'admin';
  hash: string;
  created_at: number;
  updated_at: number;
}

export class WebAccounts {
  constructor(private readonly db: StoreDb) {}
  private get sub() {
    return this.db.sub<WebAccount>('webaccounts');
  }

  async all(): Promise<WebAccount[]> {
    const out: WebAccount[] = [];
    for await (const v of this.sub.values()) out.push(v);
    return out;
  }
  get(name: string): Promise<WebAccount | undefined> {
    return this.sub.get(name);
  }
  /** Synced: an account change (a password, a removal) is on disk when this resolves. */
  async put(a: WebAccount | { name: string; delete: true }): Promise<void> {
    await this.db.batch(['delete' in a ? delOp(this.sub, a.name) : putOp(this.sub, a.name, a)], true);
  }
}
