/** Cloud adapters by `cloud.provider`. A new cloud: a folder under src/cloud, a line here, its schema keys. */
import type { CloudAdapter, CloudContext } from './adapter.js';
import { FeishuAdapter } from './feishu/adapter.js';
import { WecomAdapter } from './wecom/adapter.js';

export const CLOUD_ADAPTERS: Readonly<Record<string, (ctx: CloudContext) => CloudAdapter>> = {
  wecom: (ctx) => new WecomAdapter(ctx),
  feishu: (ctx) => new FeishuAdapter(ctx),
};
