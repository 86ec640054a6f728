/** Site facts held (sf/<subject>): the newest signed envelope of each subject, as verified when received. */
import type { SiteEnvelope } from '../domain/site-envelope.js';
import { putOp } from './directory-writer.js';
import type { StoreDb } from './db.js';

export class SiteFactsRepo {
  constructor(private readonly db: StoreDb) {}
  private get sub() {
    return this.db.sub<SiteEnvelope>('sf');
  }

  async *all(): AsyncGenerator<SiteEnvelope> {
    for await (const e of this.sub.values()) yield e;
  }

  /** Write facts (the newest envelope of each subject) in one synced batch. */
  async put(facts: readonly SiteEnvelope[]): Promise<void> {
    await this.db.batch(facts.map((e) => putOp(this.sub, e.subject, e)), true);
  }

  get(subject: string): Promise<SiteEnvelope | undefined> {
    return this.sub.get(subject);
  }
}
