/**
 * The Feishu user access token an admin granted once (`doorgw feishu authorize`), with its
 * refresh token: permission groups can be read only with it (protocols.md §15). A file in the
 * data directory, mode 0600, replaced atomically, never logged, in backups. A refresh token works
 * once: the next one is written to disk before the new access token is used, so a crash between
 * the two never leaves the gateway holding a spent refresh token.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FeishuClient } from './client.js';

export interface UserToken {
  access_token: string;
  /** Unix ms. */
  access_expires_at: number;
  refresh_token: string;
  refresh_expires_at: number;
  scope: string;
  granted_at: number;
}

export const USER_TOKEN_FILE = 'feishu-user-token.json';
/** What permission groups need, and a refresh token (offline_access). */
export const USER_TOKEN_SCOPES = 'acs:device:write acs:users offline_access';
const REFRESH_AHEAD_MS = 5 * 60_000;

export function readUserToken(dataDir: string): UserToken | null {
  const p = join(dataDir, USER_TOKEN_FILE);
  if (!existsSync(p)) return null;
  const v = JSON.parse(readFileSync(p, 'utf8')) as Partial<UserToken>;
  if (typeof v.access_token !== 'string' || typeof v.refresh_token !== 'string' || typeof v.access_expires_at !== 'number') throw new Error(`${p} is not a Feishu user token: authorise again (doorgw feishu authorize)`);
  return v as UserToken;
}

export function writeUserToken(dataDir: string, t: UserToken): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const p = join(dataDir, USER_TOKEN_FILE);
  writeFileSync(`${p}.tmp`, JSON.stringify(t), { mode: 0o600 });
  chmodSync(`${p}.tmp`, 0o600);
  renameSync(`${p}.tmp`, p);
}

export function authorizeUrl(appId: string, redirectUri: string, state: string): string {
  const q = new URLSearchParams({ client_id: appId, redirect_uri: redirectUri, scope: USER_TOKEN_SCOPES, state, response_type: 'code' });
  return `https://accounts.feishu.cn/open-apis/authen/v1/authorize?${q.toString()}`;
}

const fromGrant = (g: Awaited<ReturnType<FeishuClient['oauthToken']>>, now: number, grantedAt: number): UserToken => ({
  access_token: g.access_token,
  access_expires_at: now + g.expires_in * 1000,
  refresh_token: g.refresh_token,
  refresh_expires_at: now + g.refresh_token_expires_in * 1000,
  scope: g.scope,
  granted_at: grantedAt,
});

/** The admin's code (valid 5 minutes, once) for the first token pair, written to disk. */
export async function exchangeCode(client: FeishuClient, dataDir: string, code: string, redirectUri: string): Promise<UserToken> {
  const now = Date.now();
  const t = fromGrant(await client.oauthToken({ code, redirectUri }), now, now);
  writeUserToken(dataDir, t);
  return t;
}

/** A valid access token: the one on disk, or a refreshed one (its successor written first). */
export async function validUserToken(client: FeishuClient, dataDir: string): Promise<string> {
  const t = readUserToken(dataDir);
  if (!t) throw new Error('not authorised');
  const now = Date.now();
  if (t.access_expires_at - REFRESH_AHEAD_MS > now) return t.access_token;
  const next = fromGrant(await client.oauthToken({ refreshToken: t.refresh_token }), now, t.granted_at);
  writeUserToken(dataDir, next);
  return next.access_token;
}
