/**
 * `doorgw feishu authorize`: the admin grants the gateway a user access token once (permission
 * groups are readable only with one; protocols.md §15.1). Without --code it prints the URL to open;
 * with the code Feishu shows after consent (valid 5 minutes, once) it stores the token pair in the
 * data directory (mode 0600, never printed). The running gateway picks it up at its next read.
 */
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { UsageError } from '../control/errors.js';
import type { CliDeps } from './wecom.js';

export function addFeishuCommands(program: Command, d: CliDeps): void {
  const feishu = program.command('feishu').description('Feishu access control');
  feishu
    .command('authorize')
    .description('grant the gateway a user token for the permission groups: prints the URL to open, then takes the code (--code)')
    .option('--code <code>', 'the code Feishu showed after consent (5 minutes, once)')
    .addOption(d.configOpt())
    .option('--json', 'machine-readable output')
    .action(async (o: { code?: string; config: string; json?: boolean }) => {
      const config = await d.configFrom(o.config);
      const f = config.cloud.feishu;
      if (!f) throw new UsageError('this configuration has no cloud.feishu section');
      const { authorizeUrl, exchangeCode } = await import('../cloud/feishu/user-token.js');
      const redirect = f.permission_groups.redirect_uri;
      if (!o.code) {
        const url = authorizeUrl(f.app_id, redirect, randomBytes(8).toString('hex'));
        if (o.json) return d.json({ url });
        return d.out(`Open this as a Feishu admin, consent, then run again with the code:\n  ${url}\n  doorgw feishu authorize --code <code>`);
      }
      const { FeishuClient } = await import('../cloud/feishu/client.js');
      const { createLogger } = await import('../log.js');
      const client = new FeishuClient({ baseUrl: f.base_url.replace(/\/$/, ''), appId: f.app_id, appSecret: f.app_secret, log: createLogger({ level: 'silent', pretty: false }), timeoutMs: f.request_timeout_ms, maxRetries: 1 });
      try {
        const t = await exchangeCode(client, config.data_dir, o.code, redirect);
        if (o.json) return d.json({ authorised: true, scope: t.scope, access_expires_at: t.access_expires_at, refresh_expires_at: t.refresh_expires_at });
        d.out(`authorised (scope ${t.scope || '?'}); the refresh token lasts until ${new Date(t.refresh_expires_at).toISOString()} and renews itself while the gateway runs`);
      } catch (e) {
        throw new UsageError(`${(e as Error).message} (a code works once, for 5 minutes: start again without --code)`, 'forbidden');
      }
    });

  const visitor = feishu.command('visitor').description('Feishu visitors (with the authorised user token); a visitor passes a door once a permission group names them');
  const withClient = async (configPath: string) => {
    const config = await d.configFrom(configPath);
    const f = config.cloud.feishu;
    if (!f) throw new UsageError('this configuration has no cloud.feishu section');
    const { FeishuClient } = await import('../cloud/feishu/client.js');
    const { validUserToken } = await import('../cloud/feishu/user-token.js');
    const { createLogger } = await import('../log.js');
    const client = new FeishuClient({ baseUrl: f.base_url.replace(/\/$/, ''), appId: f.app_id, appSecret: f.app_secret, log: createLogger({ level: 'silent', pretty: false }), timeoutMs: f.request_timeout_ms, maxRetries: 1 });
    const token = async (): Promise<string> => {
      try {
        return await validUserToken(client, config.data_dir);
      } catch (e) {
        throw new UsageError(`no usable Feishu user token (${(e as Error).message}): doorgw feishu authorize first`, 'unavailable');
      }
    };
    return { client, token, idType: f.user_id_type };
  };
  visitor
    .command('add')
    .description('create a visitor in Feishu (prints its visitor id)')
    .requiredOption('--name <name>', 'the visitor\'s name')
    .option('--phone <number>', 'their phone number')
    .option('--user-id <id>', 'their user id, if they have one')
    .addOption(d.configOpt())
    .option('--json', 'machine-readable output')
    .action(async (o: { name: string; phone?: string; userId?: string; config: string; json?: boolean }) => {
      const { client, token, idType } = await withClient(o.config);
      const user = { user_type: 11, user_name: o.name, ...(o.phone ? { phone_num: o.phone } : {}), ...(o.userId ? { user_id: o.userId } : {}) };
      const data = await client.send('POST', '/open-apis/acs/v1/visitors', { user_id_type: idType }, { user }, token);
      if (o.json) return d.json(data);
      d.out(`visitor ${String(data.visitor_id)} created: add them to a permission group in Feishu (with its valid days) to let them through`);
    });
  visitor
    .command('remove <visitor_id>')
    .description('delete a visitor in Feishu')
    .addOption(d.configOpt())
    .action(async (id: string, o: { config: string }) => {
      const { client, token, idType } = await withClient(o.config);
      await client.send('DELETE', `/open-apis/acs/v1/visitors/${encodeURIComponent(id)}`, { user_id_type: idType }, undefined, token);
      d.out(`visitor ${id} removed`);
    });
}
