/**
 * Cloud adapters by `cloud.provider`. A new cloud: a folder under src/cloud, a line here, its schema
 * keys. Each is loaded only when configured (a door without a cloud never loads WebSocket or HTTP clients).
 */
import type { CloudAdapter, CloudContext } from './adapter.js';

export const CLOUD_ADAPTERS: Readonly<Record<string, (ctx: CloudContext) => Promise<CloudAdapter>>> = {
  wecom: async (ctx) => new (await import('./wecom/adapter.js')).WecomAdapter(ctx),
  feishu: async (ctx) => new (await import('./feishu/adapter.js')).FeishuAdapter(ctx),
};

/** Providers whose adapter uploads pass records (the journal keeps them from the first decision). */
export const UPLOADS_RECORDS: Readonly<Record<string, boolean>> = { wecom: true, feishu: false };
