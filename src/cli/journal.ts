/** `doorgw journal`, `doorgw backup`, `doorgw restore`: the record of what happened, and keeping it safe. */
import { createWriteStream, type WriteStream } from 'node:fs';
import { resolve } from 'node:path';
import { once } from 'node:events';
import { Option, type Command } from 'commander';
import type { JournalQuery, JournalRow } from '../control/api.js';
import { UsageError } from '../control/errors.js';
import { cliActor, intArg, localStamp } from './args.js';
import { csvRow } from '../domain/csv.js';
import type { CliDeps } from './wecom.js';

const DECISION_COLUMNS = ['time_local', 'at_ms', 'seq', 'door', 'decision', 'reason', 'method', 'userid', 'user_type', 'reader', 'direction', 'detail', 'latency_us'];
const EVENT_COLUMNS = ['time_local', 'at_ms', 'seq', 'door', 'type', 'reader', 'detail'];

interface JournalOpts {
  from?: string;
  to?: string;
  user?: string;
  door?: string;
  decision?: string;
  reason?: string;
  method?: string;
  between?: string;
  doorEvents?: boolean;
  type?: string;
  limit?: string;
  format: 'table' | 'csv' | 'jsonl' | 'json';
  out?: string;
  config: string;
  json?: boolean;
}

export function addJournalCommands(program: Command, d: CliDeps): void {
  program
    .command('journal')
    .description('decisions (or door events) by time, person, door, decision, reason, method; newest first, or exported oldest first (csv, jsonl) however many there are')
    .option('--from <time>', 'from: YYYY-MM-DD [HH:MM] in the door\'s zone (with --door) else the gateway\'s, or ISO-8601')
    .option('--to <time>', 'to (exclusive), same forms')
    .option('--user <userid>', 'only this person')
    .option('--door <id>', 'only this door')
    .addOption(new Option('--decision <d>', 'grant or deny').choices(['grant', 'deny']))
    .option('--reason <reason>', 'only this reason (e.g. outside_schedule)')
    .option('--method <method>', 'qr, card, userid, face, fingerprint, remote, exit, operator')
    .option('--between <HH:MM-HH:MM>', 'only this time of day in the door\'s zone (22:00-06:00 wraps past midnight)')
    .option('--door-events', 'door events (contact, alarms, mode changes, operator actions) instead of decisions')
    .option('--type <type>', 'door events of this type (e.g. forced_open, operator_action)')
    .option('--limit <n>', 'at most this many (default 20 for the table, all for exports)')
    .addOption(new Option('--format <format>', 'table, csv, jsonl or json').choices(['table', 'csv', 'jsonl', 'json']).default('table'))
    .option('--out <file>', 'write to this file instead of standard output')
    .addOption(d.configOpt())
    .option('--json', 'the same as --format json')
    .action(async (o: JournalOpts) => {
      const config = await d.configFrom(o.config);
      const format = o.json ? 'json' : o.format;
      const exporting = format === 'csv' || format === 'jsonl';
      const limit = o.limit !== undefined ? intArg('--limit', o.limit) : exporting ? Infinity : 20;
      if (limit < 1) throw new UsageError('--limit must be at least 1');
      const q: JournalQuery = { kind: o.doorEvents ? 'door_events' : 'decisions', order: exporting ? 'asc' : 'desc' };
      if (o.from !== undefined) q.from = o.from;
      if (o.to !== undefined) q.to = o.to;
      if (o.user !== undefined) q.userid = o.user;
      if (o.door !== undefined) q.door = o.door;
      if (o.decision !== undefined) q.decision = o.decision as 'grant' | 'deny';
      if (o.reason !== undefined) q.reason = o.reason;
      if (o.method !== undefined) q.method = o.method;
      if (o.between !== undefined) q.time_of_day = o.between;
      if (o.type !== undefined) q.type = o.type;
      if (o.type !== undefined && !o.doorEvents) throw new UsageError('--type goes with --door-events');
      const zone = (door: string): string => config.doors.find((x) => x.id === door)?.timezone ?? config.timezone;

      const file: WriteStream | null = o.out ? createWriteStream(o.out) : null;
      const write = async (s: string): Promise<void> => {
        if (file) {
          if (!file.write(s)) await once(file, 'drain');
        } else if (!process.stdout.write(s)) await once(process.stdout, 'drain');
      };
      const events = q.kind === 'door_events';
      if (format === 'csv') await write(csvRow(events ? EVENT_COLUMNS : DECISION_COLUMNS));
      const line = (e: JournalRow): string => {
        const t = localStamp(e.at, zone(e.door));
        if (format === 'jsonl' || format === 'json') return JSON.stringify({ ...e, time_local: t });
        if (format === 'csv') return e.kind === 'decision' ? csvRow([t, e.at, e.seq, e.door, e.decision, e.reason, e.method, e.userid, e.user_type, e.reader, e.direction, e.detail, e.latency_us]) : csvRow([t, e.at, e.seq, e.door, e.type, e.reader, e.detail]);
        if (e.kind === 'door_event') return `${t}  ${e.door}  ${e.type}${e.reader ? `  reader ${e.reader}` : ''}${e.detail ? `  ${e.detail}` : ''}\n`;
        return `${t}  ${e.door}  ${e.decision.padEnd(5)} ${e.reason.padEnd(22)} ${e.method.padEnd(6)} ${e.userid ?? '-'}${e.detail ? `  ${e.detail}` : ''}\n`;
      };
      let n = 0;
      // Page by page through the gateway (or the store), written as it comes: a year of a busy door
      // never sits in memory, whatever the format.
      if (format === 'json') await write('[');
      await d.withApi(o.config, async (api) => {
        let after: string | undefined;
        for (;;) {
          const page = await api.journalQuery({ ...q, limit: Math.min(1000, limit - n), ...(after !== undefined ? { after } : {}) });
          for (const e of page.entries) {
            if (format === 'json') await write(`${n ? ',' : ''}\n  ${line(e)}`);
            else if (format === 'jsonl') await write(`${line(e)}\n`);
            else await write(line(e));
            n++;
          }
          if (page.next === null || n >= limit) break;
          after = page.next;
        }
      });
      if (format === 'json') await write(n ? '\n]\n' : ']\n');
      if (file) {
        file.end();
        await once(file, 'finish');
        process.stderr.write(`${n} ${events ? 'door event' : 'decision'}${n === 1 ? '' : 's'} written to ${o.out}\n`);
      }
    });

  program
    .command('backup')
    .description('write a consistent backup of the data directory (directory, local layer, keys, journal, outbox, held records, replay memory, door modes, the device secret) into one file; works while the gateway runs')
    .argument('<file>', 'the backup file (written by the gateway\'s user; mode 0600: it holds the device secret)')
    .addOption(d.configOpt())
    .option('--force', 'replace an existing file')
    .option('--json', 'machine-readable output')
    .action(async (file: string, o: { config: string; json?: boolean; force?: boolean }) => {
      const r = await d.withApi(o.config, (api) => api.backup({ file: resolve(file), by: cliActor(), ...(o.force ? { force: true } : {}) }));
      if (o.json) return d.json(r);
      d.out(`backup written: ${r.file} (${(r.bytes / 1024).toFixed(0)} KiB, ${r.entries} database entries, ${r.files} file${r.files === 1 ? '' : 's'}, sha256 ${r.sha256.slice(0, 16)}…)`);
    });

  program
    .command('restore')
    .description('restore a backup onto this configuration\'s data directory (the gateway must be stopped; a directory with data needs --force)')
    .argument('<file>', 'a file written by doorgw backup')
    .option('--force', 'replace the data directory\'s database')
    .option('--check', 'only verify the file (format, version, checksum)')
    .addOption(d.configOpt())
    .option('--json', 'machine-readable output')
    .action(async (file: string, o: { force?: boolean; check?: boolean; config: string; json?: boolean }) => {
      const { verifyBackup, restoreBackup, BackupError } = await import('../store/backup.js');
      try {
        if (o.check) {
          const info = await verifyBackup(file);
          if (o.json) return d.json(info);
          return d.out(`${file}: a complete doorgw backup of ${info.gateway_id} taken ${new Date(info.created).toISOString()}, ${info.entries} entries, checksum good`);
        }
        const config = await d.configFrom(o.config);
        const { controlSocketPath } = await import('../config/load.js');
        const { probe } = await import('../control/socket.js');
        if (await probe(controlSocketPath(config))) throw new UsageError('the gateway is running on this data directory: stop it first (systemctl stop doorgw)', 'conflict');
        const info = await restoreBackup(file, config.data_dir, { force: o.force === true });
        if (o.json) return d.json(info);
        d.out(`restored ${info.entries} entries of ${info.gateway_id} (backup taken ${new Date(info.created).toISOString()}) into ${config.data_dir}`);
        if (info.gateway_id !== config.gateway_id) d.out(`note: the backup is of gateway '${info.gateway_id}', this configuration is '${config.gateway_id}'`);
      } catch (e) {
        if (e instanceof BackupError) throw new UsageError(e.message);
        throw e;
      }
    });
}
