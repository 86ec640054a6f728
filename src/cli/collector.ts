/**
 * `doorgw collector …` (issue 24): run the site's collector, and read the site journal it keeps.
 * Its configuration is its own file (--collector-config, $DOORGW_COLLECTOR_CONFIG).
 */
import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { Option, type Command } from 'commander';
import { UsageError } from '../control/errors.js';
import { csvRow } from '../domain/csv.js';
import { localStamp } from '../domain/localtime.js';
import { intArg } from './args.js';
import { readSigner } from './site-tool.js';
import type { CliDeps } from './wecom.js';

const COLUMNS = ['time_local', 'at_ms', 'gateway', 'seq', 'door', 'kind', 'decision', 'reason', 'method', 'userid', 'user_type', 'reader', 'direction', 'type', 'detail'];

interface JournalOpts {
  collectorConfig?: string;
  from?: string;
  to?: string;
  user?: string;
  door?: string;
  gateway?: string;
  decision?: string;
  reason?: string;
  method?: string;
  between?: string;
  doorEvents?: boolean;
  all?: boolean;
  type?: string;
  limit?: string;
  format: string;
  out?: string;
  json?: boolean;
}

export function addCollectorCommands(program: Command, d: CliDeps): void {
  const col = program.command('collector').description('the site journal: every door\'s decisions and events in PostgreSQL (run on a server, not at a door)');
  const cfgOpt = () => new Option('--collector-config <file>', 'the collector\'s configuration (default: $DOORGW_COLLECTOR_CONFIG or config/collector.yaml)');
  const load = async (path: string | undefined) => {
    const { loadCollectorConfig, DEFAULT_COLLECTOR_CONFIG_PATH } = await import('../config/collector-schema.js');
    return loadCollectorConfig(path ?? DEFAULT_COLLECTOR_CONFIG_PATH);
  };
  const openDb = async (config: Awaited<ReturnType<typeof load>>) => {
    const { SiteJournalDb, EmbeddedBusyError } = await import('../store/site-journal-db.js');
    try {
      return await SiteJournalDb.open(config.database.url ? { url: config.database.url } : { dir: config.database.dir });
    } catch (e) {
      if (e instanceof EmbeddedBusyError) throw new UsageError(e.message, 'unavailable');
      throw e;
    }
  };

  col
    .command('check')
    .description('validate the collector\'s configuration (exit 0 valid, 2 invalid)')
    .addOption(cfgOpt())
    .action(async (o: { collectorConfig?: string }) => {
      const c = await load(o.collectorConfig);
      d.out(`valid (${c.door_keys.length} door key${c.door_keys.length === 1 ? '' : 's'}, database ${c.database.url ? 'postgresql' : `embedded in ${c.database.dir}`}, broker ${c.site.url})`);
    });

  col
    .command('run')
    .description('take every door\'s journal from the site broker into PostgreSQL (or the embedded one), asking doors for what it missed')
    .addOption(cfgOpt())
    .action(async (o: { collectorConfig?: string }) => {
      const config = await load(o.collectorConfig);
      const { createLogger } = await import('../log.js');
      const log = createLogger({ level: (process.env.DOORGW_LOG_LEVEL as 'info' | undefined) ?? 'info', pretty: 'auto', secrets: config.site.password ? [config.site.password] : [] });
      const signer = readSigner(config.key_file);
      const db = await openDb(config);
      const { Collector } = await import('../collector/collector.js');
      const c = new Collector({ config, signer, db, log });
      await c.start();
      let web: { stop(): Promise<void> } | null = null;
      if (config.web.enabled) {
        const { SiteConsole } = await import('../collector/console.js');
        const { VERSION } = await import('../version.js');
        const sc = new SiteConsole({ config, db, collector: c, log: log.child({ module: 'site-console' }), version: VERSION });
        await sc.start();
        web = sc;
      }
      log.info({ database: config.database.url ? 'postgresql' : `embedded (${config.database.dir})`, doors: config.door_keys.length }, 'collector started');
      await new Promise<void>((resolve) => {
        const stop = (signal: string): void => {
          log.info({ signal }, 'stopping');
          setTimeout(() => process.exit(1), 10_000).unref();
          void (web?.stop() ?? Promise.resolve())
            .then(() => c.stop())
            .then(() => db.close())
            .finally(resolve);
        };
        process.once('SIGINT', () => stop('SIGINT'));
        process.once('SIGTERM', () => stop('SIGTERM'));
      });
    });

  col
    .command('user')
    .description('site console accounts')
    .command('add <name>')
    .description('add an account, or change its role and password (read from the terminal, or standard input; hashed here, scrypt)')
    .addOption(new Option('--role <role>', 'viewer, operator or admin').choices(['viewer', 'operator', 'admin']).makeOptionMandatory())
    .addOption(cfgOpt())
    .action(async (name: string, o: { role: string; collectorConfig?: string }) => {
      if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) throw new UsageError('an account name is 1-64 letters, digits, _ . or -');
      const config = await load(o.collectorConfig);
      const { readPassword } = await import('./web.js');
      const { hashPassword, passwordProblem } = await import('../domain/password.js');
      const password = await readPassword();
      const problem = passwordProblem(password);
      if (problem) throw new UsageError(`the password needs ${problem}`);
      const db = await openDb(config);
      try {
        await db.putWebAccount(name, o.role, await hashPassword(password));
      } finally {
        await db.close();
      }
      d.out(`account ${name} (${o.role}) saved`);
    });

  col
    .command('status')
    .description('per door: its newest sequence number, how far the site journal holds it without a gap, and what is missing')
    .addOption(cfgOpt())
    .option('--json', 'machine-readable output')
    .action(async (o: { collectorConfig?: string; json?: boolean }) => {
      const config = await load(o.collectorConfig);
      const db = await openDb(config);
      try {
        const { contiguous, missing } = await import('../domain/coverage.js');
        const rows = (await db.gateways()).map((g) => ({ gateway: g.gateway, head: g.head, held_to: contiguous(g.covered), missing: missing(g.covered, g.head), doors: g.doors, last_seen: g.last_seen?.toISOString() ?? null }));
        const counts = await db.counts();
        if (o.json) return d.json({ gateways: rows, rows: counts.rows });
        for (const r of rows) d.out(`${r.gateway.padEnd(20)} head ${r.head}  held to ${r.held_to}  missing ${r.missing}  last heard ${r.last_seen ?? 'never'}`);
        d.out(`${counts.rows} records in the site journal`);
      } finally {
        await db.close();
      }
    });

  col
    .command('journal')
    .description('the site journal across every door: by time (the site\'s zone), person, door, decision, reason, method; newest first, or exported oldest first (csv, jsonl)')
    .addOption(cfgOpt())
    .option('--from <time>', 'from: YYYY-MM-DD [HH:MM] in the site\'s zone, ISO-8601, or unix ms')
    .option('--to <time>', 'to (exclusive), same forms')
    .option('--user <userid>', 'only this person')
    .option('--door <id>', 'only this door')
    .option('--gateway <id>', 'only this gateway')
    .addOption(new Option('--decision <d>', 'grant or deny').choices(['grant', 'deny']))
    .option('--reason <reason>', 'only this reason')
    .option('--method <method>', 'qr, card, userid, face, fingerprint, remote, exit, operator')
    .option('--between <HH:MM-HH:MM>', 'only this time of day in the site\'s zone (22:00-06:00 wraps past midnight)')
    .option('--door-events', 'door events instead of decisions')
    .option('--all', 'decisions and door events')
    .option('--type <type>', 'door events of this type')
    .option('--limit <n>', 'at most this many (default 20 for the table, all for exports)')
    .addOption(new Option('--format <format>', 'table, csv, jsonl or json').choices(['table', 'csv', 'jsonl', 'json']).default('table'))
    .option('--out <file>', 'write to this file instead of standard output')
    .option('--json', 'the same as --format json')
    .action(async (o: JournalOpts) => {
      const config = await load(o.collectorConfig);
      const format = o.json ? 'json' : o.format;
      const exporting = format === 'csv' || format === 'jsonl';
      const limit = o.limit !== undefined ? intArg('--limit', o.limit) : exporting ? Infinity : 20;
      if (limit < 1) throw new UsageError('--limit must be at least 1');
      const { siteJournalFilter } = await import('../collector/query.js');
      const f = siteJournalFilter(
        {
          kind: o.all ? 'all' : o.doorEvents ? 'door_events' : 'decisions',
          ...(o.from !== undefined ? { from: o.from } : {}),
          ...(o.to !== undefined ? { to: o.to } : {}),
          ...(o.user !== undefined ? { userid: o.user } : {}),
          ...(o.door !== undefined ? { door: o.door } : {}),
          ...(o.gateway !== undefined ? { gateway: o.gateway } : {}),
          ...(o.decision !== undefined ? { decision: o.decision } : {}),
          ...(o.reason !== undefined ? { reason: o.reason } : {}),
          ...(o.method !== undefined ? { method: o.method } : {}),
          ...(o.type !== undefined ? { type: o.type } : {}),
          ...(o.between !== undefined ? { time_of_day: o.between } : {}),
        },
        config.timezone,
      );
      const file: WriteStream | null = o.out ? createWriteStream(o.out) : null;
      const write = async (s: string): Promise<void> => {
        if (file) {
          if (!file.write(s)) await once(file, 'drain');
        } else if (!process.stdout.write(s)) await once(process.stdout, 'drain');
      };
      const db = await openDb(config);
      let n = 0;
      try {
        if (format === 'csv') await write(csvRow(COLUMNS));
        if (format === 'json') await write('[');
        const order = exporting ? 'asc' : 'desc';
        let after: [number, string, number] | null = null;
        // Page by page (keyset): an export of a year never sits in memory.
        for (;;) {
          const rows = await db.page(f, Math.min(1000, limit - n), after, order);
          for (const r of rows) {
            const t = localStamp(r.at, f.zone);
            if (format === 'csv') await write(csvRow([t, r.at, r.gateway, r.seq, r.door, r.kind, r.decision, r.reason, r.method, r.userid, r.user_type, r.reader, r.direction, r.type, r.detail]));
            else if (format === 'jsonl') await write(`${JSON.stringify({ ...r, time_local: t })}\n`);
            else if (format === 'json') await write(`${n ? ',' : ''}\n  ${JSON.stringify({ ...r, time_local: t })}`);
            else await write(`${t}  ${r.gateway}/${r.door}  ${r.kind === 'decision' ? `${(r.decision ?? '').padEnd(5)} ${(r.reason ?? '').padEnd(22)} ${(r.method ?? '').padEnd(6)} ${r.userid ?? '-'}` : r.type}${r.detail ? `  ${r.detail}` : ''}\n`);
            n++;
          }
          const last = rows[rows.length - 1];
          if (!last || n >= limit) break;
          after = [last.at, last.gateway, last.seq];
        }
        if (format === 'json') await write(n ? '\n]\n' : ']\n');
      } finally {
        await db.close();
      }
      if (file) {
        file.end();
        await once(file, 'finish');
        process.stderr.write(`${n} record${n === 1 ? '' : 's'} written to ${o.out}\n`);
      }
    });
}
