/** `doorgw users …`: the directory across both layers, and the local layer's changes. */
import { readFileSync, writeFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import type { GatewayApi, UserRow } from '../control/api.js';
import type { LocalExportEntry } from '../control/users-api.js';
import { UsageError } from '../control/errors.js';
import { USER_TYPE_NAMES } from '../domain/types.js';
import { cliActor, intArg, localStamp, timeArg, todayWindow } from './args.js';
import { csvRow, csvUnescape, parseCsv } from '../domain/csv.js';
import type { CliDeps } from './wecom.js';


const collect = (v: string, prev: string[] = []): string[] => [...prev, v];
const typeName = (t: number | null): string => (t === null ? '-' : (USER_TYPE_NAMES[t as 0 | 1 | 2] ?? String(t)));

function readStdin(): string {
  try {
    return readFileSync(0, 'utf8');
  } catch {
    return '';
  }
}

export const LOCAL_CSV_COLUMNS = ['kind', 'userid', 'name', 'user_type', 'cards', 'add_cards', 'rules', 'groups', 'valid_from', 'valid_until', 'doors', 'extended_unlock_s', 'note', 'blocked_until', 'blocked_reason', 'blocked_cards', 'max_uses', 'sponsor'] as const;

function toCsvRow(e: LocalExportEntry): unknown[] {
  const blockedCards = Object.entries(e.blocked_cards).map(([c, b]) => `${c}@${b.until ?? 'forever'}`);
  return [e.kind, e.userid, e.name ?? '', e.user_type ?? '', e.cards ?? [], e.add_cards ?? [], (e.rules ?? []).join('|'), e.groups, e.valid_from ?? '', e.valid_until ?? '', e.doors ?? '', e.extended_unlock_s ?? '', e.note ?? '', e.blocked ? (e.blocked.until ?? 'forever') : '', e.blocked?.reason ?? '', blockedCards, e.max_uses ?? '', e.sponsor ?? ''];
}

/** CSV rows (with a header of LOCAL_CSV_COLUMNS names, any order, any subset) into export entries. */
export function fromCsv(text: string): Record<string, unknown>[] {
  const rows = parseCsv(text);
  if (rows.length === 0) return [];
  const header = rows[0]!.map((h) => h.trim().toLowerCase());
  const unknown = header.filter((h) => !(LOCAL_CSV_COLUMNS as readonly string[]).includes(h));
  if (unknown.length) throw new UsageError(`unknown CSV column ${unknown.join(', ')} (columns: ${LOCAL_CSV_COLUMNS.join(', ')})`);
  if (!header.includes('userid')) throw new UsageError('the CSV needs a userid column');
  const list = (s: string, sep = ';'): string[] => s.split(sep).map((x) => x.trim()).filter(Boolean);
  return rows.slice(1).map((cells) => {
    const c = Object.fromEntries(header.map((h, i) => [h, csvUnescape((cells[i] ?? '').trim())]));
    const e: Record<string, unknown> = { kind: c.kind || 'local_user', userid: c.userid };
    if (c.name) e.name = c.name;
    if (c.user_type) e.user_type = c.user_type;
    if (c.cards) e.cards = list(c.cards);
    if (c.add_cards) e.add_cards = list(c.add_cards);
    if (c.rules) e.rules = list(c.rules, '|');
    if (c.groups) e.groups = list(c.groups);
    if (c.valid_from) e.valid_from = c.valid_from;
    if (c.valid_until) e.valid_until = c.valid_until;
    if (c.doors) e.doors = list(c.doors);
    if (c.extended_unlock_s) e.extended_unlock_s = Number(c.extended_unlock_s);
    if (c.note) e.note = c.note;
    if (c.max_uses) e.max_uses = Number(c.max_uses);
    if (c.sponsor) e.sponsor = c.sponsor;
    if (c.blocked_until) e.blocked = { until: c.blocked_until === 'forever' ? null : c.blocked_until, reason: c.blocked_reason || null };
    if (c.blocked_cards) e.blocked_cards = Object.fromEntries(list(c.blocked_cards).map((x) => {
      const [card, until] = x.split('@');
      return [card, { until: !until || until === 'forever' ? null : until, reason: null }];
    }));
    return e;
  });
}

/** WeCom userinfo records from a JSON array, a response body (`body.userinfo`/`userinfo`), or a frame. */
export function extractUserinfo(v: unknown): unknown[] | null {
  if (Array.isArray(v)) return v as unknown[];
  if (typeof v !== 'object' || v === null) return null;
  const o = v as { userinfo?: unknown; body?: { userinfo?: unknown } };
  if (Array.isArray(o.userinfo)) return o.userinfo as unknown[];
  if (Array.isArray(o.body?.userinfo)) return o.body.userinfo as unknown[];
  return null;
}

function showRow(u: UserRow): string {
  return [u.layer, u.userid, typeName(u.user_type), u.name ?? '', u.cards.join(';'), u.openvid ?? '', u.key_id ? 'yes' : 'no', u.rules.length, u.local?.blocked ? 'BLOCKED' : ''].join('\t');
}

export function addUserCommands(program: Command, d: CliDeps): void {
  const users = program.command('users').description('the directory: cloud users and the local layer (local users, blocks, added cards)');

  users
    .command('import')
    .description('import people: WeCom userinfo records (JSON) or local-layer entries (JSON, JSON lines or CSV as `users export` writes them); one atomic write')
    .argument('<file>', 'file (.json, .jsonl or .csv)')
    .addOption(new Option('--layer <layer>', 'local (kept across cloud syncs) or cloud (replaced by the next full sync)').choices(['local', 'cloud']).default('local'))
    .addOption(d.configOpt())
    .option('--json', 'machine-readable report')
    .action(async (file: string, o: { layer: 'local' | 'cloud'; config: string; json?: boolean }) => {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (e) {
        throw new UsageError(`cannot read ${file}: ${(e as Error).message}`);
      }
      let records: unknown[] | null;
      if (/\.csv$/i.test(file)) {
        try {
          records = fromCsv(text);
        } catch (e) {
          throw new UsageError(`${file}: ${(e as Error).message}`);
        }
      } else if (/\.jsonl$/i.test(file)) {
        records = [];
        for (const [i, line] of text.split('\n').entries()) {
          if (!line.trim()) continue;
          try {
            records.push(JSON.parse(line));
          } catch {
            throw new UsageError(`${file}: line ${i + 1} is not JSON`);
          }
        }
      } else {
        let parsed: unknown;
        try {
          parsed = (await import('../domain/json.js')).parseJsonKeepingIds(text);
        } catch (e) {
          throw new UsageError(`${file} is not JSON: ${(e as Error).message}`);
        }
        records = extractUserinfo(parsed);
        if (!records) throw new UsageError(`${file}: expected an array of userinfo records or local entries, or an object with body.userinfo / userinfo`);
      }
      const report = await d.withApi(o.config, (api) => api.usersImport({ records, layer: o.layer, by: cliActor() }), { create: true });
      if (o.json) d.json(report);
      else {
        const where = report.layer === 'local' ? 'the local layer (kept across cloud syncs)' : 'the cloud layer (replaced by the next full sync)';
        d.out(`imported ${report.imported} entr${report.imported === 1 ? 'y' : 'ies'} into ${where}, rejected ${report.rejected.length}`);
        for (const r of report.rejected) d.out(`  rejected record ${r.index}: ${r.error}`);
        for (const w of report.warnings) d.out(`  warning: ${w}`);
        for (const c of report.conflicts ?? []) d.out(`  conflict: ${c.kind} ${c.value} is held by ${c.userids.join(', ')} (denied until resolved: doorgw users conflicts)`);
      }
      process.exitCode = report.rejected.length ? 1 : 0;
    });

  users
    .command('export')
    .description('export the local layer (local users and adjustments of cloud users; PINs are never exported)')
    .addOption(new Option('--format <format>', 'csv, json or jsonl').choices(['csv', 'json', 'jsonl']).default('json'))
    .option('--out <file>', 'write to a file (default: standard output)')
    .addOption(d.configOpt())
    .action(async (o: { format: 'csv' | 'json' | 'jsonl'; out?: string; config: string }) => {
      const entries = await d.withApi(o.config, (api) => api.usersExport({}));
      const text =
        o.format === 'json' ? `${JSON.stringify(entries, null, 2)}\n` : o.format === 'jsonl' ? entries.map((e) => `${JSON.stringify(e)}\n`).join('') : csvRow(LOCAL_CSV_COLUMNS) + entries.map((e) => csvRow(toCsvRow(e))).join('');
      if (o.out) writeFileSync(o.out, text);
      else process.stdout.write(text);
    });

  users
    .command('list')
    .description('list people of both layers (paging with --after)')
    .addOption(new Option('--layer <layer>', 'all, cloud or local').choices(['all', 'cloud', 'local']).default('all'))
    .option('--search <text>', 'userid or name containing this, or this card number')
    .option('--limit <n>', 'at most this many', '1000')
    .option('--after <userid>', 'start after this userid (paging)')
    .addOption(d.configOpt())
    .option('--json', 'machine-readable output')
    .action(async (o: { layer: 'all' | 'cloud' | 'local'; search?: string; config: string; limit: string; after?: string; json?: boolean }) => {
      const p: Parameters<GatewayApi['usersList']>[0] = { limit: intArg('--limit', o.limit), layer: o.layer };
      if (o.after !== undefined) p.after = o.after;
      if (o.search !== undefined) p.query = o.search;
      const page = await d.withApi(o.config, (api) => api.usersList(p));
      if (o.json) return d.json(page);
      d.out(['LAYER', 'USERID', 'TYPE', 'NAME', 'CARDS', 'OPENVID', 'KEY', 'RULES', ''].join('\t'));
      for (const u of page.users) d.out(showRow(u));
      if (page.next !== null) process.stderr.write(`more: --after ${page.next}\n`);
    });

  users
    .command('show')
    .description('show one person, which layer decides for them, and their conflicts (exit 1 if unknown)')
    .argument('<userid>')
    .addOption(d.configOpt())
    .option('--json', 'machine-readable output')
    .action(async (userid: string, o: { config: string; json?: boolean }) => {
      const config = await d.configFrom(o.config);
      const u = await d.withApi(o.config, (api) => api.usersShow({ userid }));
      if (!u) {
        if (o.json) d.json(null);
        else process.stderr.write(`no user '${userid}'\n`);
        process.exitCode = 1;
        return;
      }
      if (o.json) return d.json(u);
      const r = u.record;
      const t = (ms: number | null): string => (ms === null ? '-' : localStamp(ms, config.timezone));
      d.out(`userid     ${r.userid}\ndecided by ${u.decided_by}\ntype       ${typeName(r.user_type)}\nname       ${r.name ?? ''}\nopenvid    ${r.openvid ?? ''}\nkey        ${r.key_id ?? 'none'}\ncards      ${r.cards.join(', ')}\nsource     ${r.source}`);
      d.out(`rules      ${r.rules.length === 0 && r.invalid_rules.length === 0 ? 'none (type default applies)' : ''}`);
      for (const x of r.rules) d.out(`  [${x.id}] ${x.source}${x.effect_time ? `  (from ${new Date(x.effect_time * 1000).toISOString()})` : ''}`);
      for (const x of r.invalid_rules) d.out(`  [${x.id}] INVALID ${x.rule}: ${x.error}`);
      const f = r.local;
      if (f) {
        if (f.blocked) d.out(`BLOCKED    ${f.blocked.until === null ? 'until lifted' : `until ${t(f.blocked.until)}`}${f.blocked.reason ? ` (${f.blocked.reason})` : ''}, by ${f.blocked.by} at ${t(f.blocked.at)}`);
        for (const [c, b] of Object.entries(f.blocked_cards)) d.out(`card ${c} BLOCKED ${b.until === null ? 'until lifted' : `until ${t(b.until)}`}${b.reason ? ` (${b.reason})` : ''}`);
        if (f.cards_added.length) d.out(`added      cards ${f.cards_added.join(', ')} (local)`);
        if (f.valid_from !== null || f.valid_until !== null) d.out(`valid      ${t(f.valid_from)} → ${t(f.valid_until)}`);
        if (f.doors !== null) d.out(`doors      ${f.doors.join(', ') || 'none'}`);
        if (f.groups.length) d.out(`groups     ${f.groups.join(', ')}`);
        if (f.extended_unlock_ms !== null) d.out(`unlock     ${f.extended_unlock_ms / 1000} s`);
        d.out(`pin        ${f.pin_set ? 'set' : 'none'}`);
        if (f.note) d.out(`note       ${f.note}`);
        if (f.max_uses != null) d.out(`uses       at most ${f.max_uses} since ${t(f.uses_since ?? null)}`);
        if (f.sponsor) d.out(`sponsor    ${f.sponsor}`);
        d.out(`changed    ${t(f.updated_at)} by ${f.updated_by}`);
      }
      d.out(`templates  ${u.templates.map((x) => `${x.kind}/${x.id} (${x.bytes} B)`).join(', ') || 'none'}`);
      for (const c of u.conflicts) d.out(`CONFLICT   ${c.detail}`);
    });

  const fieldOptions = (c: Command): Command =>
    c
      .option('--name <name>', 'display name')
      .addOption(new Option('--type <type>', 'user type').choices(['employee', 'visitor', 'student']))
      .option('--card <number>', 'a card number (repeat for several; replaces the list)', collect)
      .option('--pin-stdin', 'read a PIN (4-12 digits) from standard input (never on the command line)')
      .option('--group <name>', 'a configured group (repeat; replaces the list)', collect)
      .option('--from <time>', 'valid from: YYYY-MM-DD [HH:MM] in the gateway zone, or ISO-8601')
      .option('--until <time>', 'valid until (exclusive)')
      .option('--door <id>', 'may pass only this door (repeat; replaces the list)', collect)
      .option('--rule <rule>', 'a pass rule, WeCom syntax, e.g. "8:00-18:00 * * 1-5 *" (repeat; replaces the list)', collect)
      .option('--extended-unlock <s>', 'a longer unlock, seconds')
      .option('--note <text>', 'a note for operators')
      .option('--max-uses <n>', 'a temporary credential: at most n passages from now (a fresh count each time it is set)')
      .option('--sponsor <who>', 'who vouches for this person (a visitor\'s host): named in the journal of each passage')
      .option('--today', 'valid today only: from the start of today to midnight, in the gateway zone')
      .addOption(d.configOpt())
      .option('--json', 'machine-readable output');

  type FieldOpts = { name?: string; type?: string; card?: string[]; pinStdin?: boolean; group?: string[]; from?: string; until?: string; door?: string[]; rule?: string[]; extendedUnlock?: string; note?: string; maxUses?: string; sponsor?: string; today?: boolean; config: string; json?: boolean };
  const fields = async (o: FieldOpts): Promise<Record<string, unknown>> => {
    const config = await d.configFrom(o.config);
    const p: Record<string, unknown> = {};
    if (o.name !== undefined) p.name = o.name;
    if (o.type !== undefined) p.user_type = o.type;
    if (o.card) p.cards = o.card;
    if (o.pinStdin) p.pin = readStdin().trim();
    if (o.group) p.groups = o.group;
    if (o.from !== undefined) p.valid_from = timeArg('--from', o.from, config.timezone);
    if (o.until !== undefined) p.valid_until = timeArg('--until', o.until, config.timezone);
    if (o.door) p.doors = o.door;
    if (o.rule) p.rules = o.rule;
    if (o.extendedUnlock !== undefined) p.extended_unlock_s = intArg('--extended-unlock', o.extendedUnlock);
    if (o.note !== undefined) p.note = o.note;
    if (o.maxUses !== undefined) p.max_uses = intArg('--max-uses', o.maxUses);
    if (o.sponsor !== undefined) p.sponsor = o.sponsor;
    if (o.today) {
      if (o.from !== undefined || o.until !== undefined) throw new UsageError('--today sets --from and --until: give one or the other');
      [p.valid_from, p.valid_until] = todayWindow(config.timezone);
    }
    return p;
  };
  const printChange = (r: { user: UserRow; conflicts: { detail: string }[] }, o: { json?: boolean }, verb: string): void => {
    if (o.json) return d.json(r);
    d.out(`${verb} ${r.user.layer === 'local' ? 'local user' : 'local adjustments of cloud user'} ${r.user.userid}`);
    for (const c of r.conflicts) d.out(`  CONFLICT: ${c.detail}`);
  };

  fieldOptions(users.command('add').description('add a local user (kept across cloud syncs)').argument('<userid>')).action(async (userid: string, o: FieldOpts) => {
    const p = await fields(o);
    printChange(await d.withApi(o.config, (api) => api.usersAdd({ ...p, userid, by: cliActor() }), { create: true }), o, 'added');
  });

  fieldOptions(users.command('set').description('change a local user, or the local adjustments of a cloud user (cards added, PIN, groups, validity, doors)').argument('<userid>'))
    .option('--add-card <number>', 'add a card (repeat)', collect)
    .option('--remove-card <number>', 'remove a card (a local one; block a cloud card instead)', collect)
    .option('--clear-pin', 'remove the PIN')
    .option('--clear-validity', 'remove valid from / until')
    .option('--all-doors', 'may pass every door again')
    .action(async (userid: string, o: FieldOpts & { addCard?: string[]; removeCard?: string[]; clearPin?: boolean; clearValidity?: boolean; allDoors?: boolean }) => {
      const p = await fields(o);
      if (o.addCard) p.add_cards = o.addCard;
      if (o.removeCard) p.remove_cards = o.removeCard;
      if (o.clearPin) p.pin = null;
      if (o.clearValidity) Object.assign(p, { valid_from: null, valid_until: null });
      if (o.allDoors) p.doors = null;
      printChange(await d.withApi(o.config, (api) => api.usersSet({ ...p, userid, by: cliActor() })), o, 'changed');
    });

  users
    .command('block')
    .description('block a person, or one card (a lost card), now: denied `blocked` until the time given or until unblocked')
    .argument('[userid]')
    .option('--card <number>', 'block only this card (the person keeps their others); without a userid, whoever holds it')
    .option('--until <time>', 'lift the block at: YYYY-MM-DD [HH:MM] in the gateway zone, or ISO-8601 (default: until unblocked)')
    .option('--reason <text>', 'why (shown and journaled)')
    .addOption(d.configOpt())
    .option('--json', 'machine-readable output')
    .action(async (userid: string | undefined, o: { card?: string; until?: string; reason?: string; config: string; json?: boolean }) => {
      const config = await d.configFrom(o.config);
      const p: Parameters<GatewayApi['usersBlock']>[0] = { by: cliActor() };
      if (userid !== undefined) p.userid = userid;
      if (o.card !== undefined) p.card = o.card;
      if (o.until !== undefined) p.until = timeArg('--until', o.until, config.timezone);
      if (o.reason !== undefined) p.reason = o.reason;
      const r = await d.withApi(o.config, (api) => api.usersBlock(p));
      if (o.json) return d.json(r);
      for (const b of r.blocked) d.out(`blocked ${b.card !== null ? `card ${b.card} of ` : ''}${b.userid} ${b.until === null ? 'until unblocked' : `until ${localStamp(b.until, config.timezone)}`}`);
    });

  users
    .command('unblock')
    .description('lift a block (a person, or one card)')
    .argument('[userid]')
    .option('--card <number>', 'the card to unblock')
    .addOption(d.configOpt())
    .option('--json', 'machine-readable output')
    .action(async (userid: string | undefined, o: { card?: string; config: string; json?: boolean }) => {
      const p: Parameters<GatewayApi['usersUnblock']>[0] = { by: cliActor() };
      if (userid !== undefined) p.userid = userid;
      if (o.card !== undefined) p.card = o.card;
      const r = await d.withApi(o.config, (api) => api.usersUnblock(p));
      if (o.json) return d.json(r);
      for (const b of r.unblocked) d.out(`unblocked ${b.card !== null ? `card ${b.card} of ` : ''}${b.userid}`);
    });

  users
    .command('remove')
    .description('remove a local user, or all local adjustments of a cloud user (cloud users themselves are removed in the cloud)')
    .argument('<userid>')
    .addOption(d.configOpt())
    .action(async (userid: string, o: { config: string }) => {
      const r = await d.withApi(o.config, (api) => api.usersRemove({ userid, by: cliActor() }));
      d.out(r.removed === 'local_user' ? `removed local user ${userid}` : `removed the local adjustments of ${userid} (the cloud user stays)`);
    });

  users
    .command('conflicts')
    .description('cards or openvids claimed by more than one person, local users shadowing cloud users, adjustments of users the cloud no longer has (exit 1 if any)')
    .addOption(d.configOpt())
    .option('--json', 'machine-readable output')
    .action(async (o: { config: string; json?: boolean }) => {
      const list = await d.withApi(o.config, (api) => api.usersConflicts({}));
      if (o.json) d.json(list);
      else if (!list.length) d.out('no conflicts');
      else for (const c of list) d.out(`${c.kind}\t${c.value}\t${c.detail}`);
      process.exitCode = list.length ? 1 : 0;
    });
}
