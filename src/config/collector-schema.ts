/**
 * The collector's configuration (`doorgw collector`, issue 24): its own file, apart from a door's —
 * it runs on a server, not at a door. YAML, the password from `$DOORGW_COLLECTOR_PASSWORD`, validated
 * with key-path errors like the gateway's.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError } from './errors.js';
import { formatPath } from './load.js';
import { doorKeysSchema } from './schema.js';

export const DEFAULT_COLLECTOR_CONFIG_PATH = process.env.DOORGW_COLLECTOR_CONFIG ?? 'config/collector.yaml';

const str = () => z.string().min(1);

export const collectorConfigSchema = z.strictObject({
  /** This collector's name: its broker client id and how the doors' logs name it. */
  collector_id: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).default('collector'),
  /** The site broker (persistent session, QoS 1). */
  site: z.strictObject({
    url: str(),
    username: str().optional(),
    /** Better from $DOORGW_COLLECTOR_PASSWORD than in the file. */
    password: str().optional(),
    ca: str().optional(),
    base_topic: str().default('doorgw-site'),
  }),
  /** The collector's Ed25519 private key (doorgw site key new; listed in every door's site.keys with role collector). */
  key_file: str(),
  /** Every door's key (doorgw site door-key on each door): a batch is believed only when signed by its gateway's. */
  door_keys: doorKeysSchema(),
  database: z
    .strictObject({
      /** A PostgreSQL URL (postgres://user@host/db). Without it, an embedded PostgreSQL (PGlite) in `dir`. */
      url: str().optional(),
      dir: str().default('./collector-db'),
    })
    .default({ dir: './collector-db' }),
  /** Months of the site journal kept (whole months are dropped). */
  retention_months: z.number().int().min(1).max(240).default(24),
  /** The site's zone: local times in queries, and the day of a time-of-day filter. */
  timezone: str().default('UTC'),
  /** The site console: every door, the site journal, presence and muster (the door console's account, session and CSRF rules). */
  web: z
    .strictObject({
      enabled: z.boolean().default(false),
      bind: str().default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(8090),
      tls: z.strictObject({ cert: str(), key: str() }).optional(),
      /** Mark cookies Secure (behind a TLS-terminating proxy). Default: with tls. */
      cookie_secure: z.boolean().optional(),
      session_idle_min: z.number().int().min(1).max(24 * 60).default(30),
      session_max_h: z.number().int().min(1).max(168).default(12),
      login_max_failures: z.number().int().min(1).max(100).default(5),
      login_lockout_s: z.number().int().min(1).max(86_400).default(300),
      trusted_proxies: z.array(str()).default([]),
      max_connections: z.number().int().min(4).max(10_000).default(256),
      /** A gateway is shown offline when its report is older than this (s; reports come every site.report_interval_s). */
      offline_after_s: z.number().int().min(10).max(86_400).default(180),
    })
    .default({ enabled: false, bind: '127.0.0.1', port: 8090, session_idle_min: 30, session_max_h: 12, login_max_failures: 5, login_lockout_s: 300, trusted_proxies: [], max_connections: 256, offline_after_s: 180 }),
  gaps: z
    .strictObject({
      /** A range asked of a door at most (records). */
      max_records: z.number().int().min(100).max(10_000).default(10_000),
      /** A request unanswered this long is asked again (doubling to 60 s while the door stays silent). */
      retry_s: z.number().min(0.2).max(600).default(5),
    })
    .default({ max_records: 10_000, retry_s: 5 }),
});

export type CollectorConfig = z.output<typeof collectorConfigSchema>;

export function loadCollectorConfig(path = DEFAULT_COLLECTOR_CONFIG_PATH, env: NodeJS.ProcessEnv = process.env): CollectorConfig {
  let tree: unknown;
  try {
    tree = parseYaml(readFileSync(path, 'utf8')) ?? {};
  } catch (e) {
    throw new ConfigError(path, [`cannot read it: ${(e as Error).message.split('\n')[0]}`]);
  }
  if (typeof tree !== 'object' || tree === null || Array.isArray(tree)) throw new ConfigError(path, ['(root): must be a mapping of keys']);
  const t = tree as { site?: Record<string, unknown> };
  if (env.DOORGW_COLLECTOR_PASSWORD && typeof t.site === 'object' && t.site !== null) t.site.password = env.DOORGW_COLLECTOR_PASSWORD;
  const r = collectorConfigSchema.safeParse(tree);
  if (!r.success) throw new ConfigError(path, r.error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`));
  const c = r.data;
  // Relative paths from the working directory, as the gateway's data_dir (systemd sets it).
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(p));
  c.key_file = abs(c.key_file);
  c.database.dir = abs(c.database.dir);
  return c;
}
