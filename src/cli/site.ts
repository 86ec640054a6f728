/**
 * `doorgw site …`: signing keys, and the operator's tools on the site bus — threat levels, blocks,
 * site users, door modes, signed opens and the convergence view (site-tool.ts does the work).
 */
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { Config } from '../config/schema.js';
import { UsageError } from '../control/errors.js';
import { checkInstant, hashPin, validPin } from '../domain/local-directory.js';
import { keyIdOf, rawPublicKey, type SiteScope } from '../domain/site-envelope.js';
import { localStamp } from '../domain/localtime.js';
import { intArg, todayWindow } from './args.js';
import { readSigner, scopeOf, SiteTool } from './site-tool.js';
import type { CliDeps } from './wecom.js';

interface BusOpts {
  config?: string;
  broker?: string;
  username?: string;
  key?: string;
  area?: string[];
  door?: string[];
  json?: boolean;
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

/** The options every site-bus command takes. */
function busCommand(parent: Command, name: string, d: CliDeps, description: string): Command {
  return parent
    .command(name)
    .description(description)
    .addOption(d.configOpt())
    .option('--broker <url>', 'the site broker (default: mqtt.url of the configuration)')
    .option('--username <name>', 'broker account (default: $DOORGW_SITE_USERNAME); the password comes from $DOORGW_SITE_PASSWORD, never the command line')
    .option('--key <file>', 'your signing key (default: $DOORGW_SITE_KEY)')
    .option('--json', 'machine-readable output');
}

async function withTool<T>(d: CliDeps, o: BusOpts, needKey: boolean, fn: (tool: SiteTool, config: Config) => Promise<T>): Promise<T> {
  const config = await d.configFrom(o.config);
  if (!config.site.enabled && config.site.keys.length === 0) throw new UsageError('this configuration has no site (site.enabled, site.keys): the tool verifies what it reads with the doors\' trusted keys');
  const keyFile = o.key ?? process.env.DOORGW_SITE_KEY;
  if (needKey && !keyFile) throw new UsageError('a signing key is needed: --key <file> or $DOORGW_SITE_KEY (doorgw site key new)');
  // Never the configuration's broker account: on a door that is the gateway's own, and the broker
  // (use_username_as_clientid) would end the gateway's session for the tool's.
  const username = o.username ?? (process.env.DOORGW_SITE_USERNAME || undefined);
  if (username === undefined) throw new UsageError('the site tool logs in under its own broker account: --username or $DOORGW_SITE_USERNAME, password in $DOORGW_SITE_PASSWORD (not the gateway\'s account: the broker would end the gateway\'s session for the tool\'s)');
  const signer = needKey && keyFile ? readSigner(keyFile) : null;
  const { ToolClient } = await import('../io/mqtt/client.js');
  const client = await ToolClient.connect({
    url: o.broker ?? config.mqtt.url,
    username,
    password: process.env.DOORGW_SITE_PASSWORD,
    ca: config.mqtt.ca,
    clientId: `doorgw-site-tool-${process.pid}-${Date.now()}`,
  });
  try {
    return await fn(new SiteTool(client, config, signer), config);
  } finally {
    await client.end();
  }
}

function describeScope(s: SiteScope): string {
  return 'site' in s ? 'the whole site' : 'areas' in s ? `area ${s.areas.join(', ')}` : `door ${s.doors.join(', ')}`;
}

export function addSiteCommands(program: Command, d: CliDeps): void {
  const site = program.command('site').description('the site: many doors as one system (signed site messages)');
  const key = site.command('key').description('signing keys of operators and services');
  key
    .command('new')
    .description('make an Ed25519 key: the private key goes into <file> (mode 0600, never printed); prints the key id and the public key for the doors\' trusted keys')
    .argument('<file>', 'where to write the private key (PEM); an existing file is refused')
    .option('--name <name>', 'who holds it (shown in the doors\' journals as the signer)', 'operator')
    .option('--json', 'machine-readable output')
    .action((file: string, o: { name: string; json?: boolean }) => {
      if (existsSync(file)) throw new UsageError(`${file} exists: a key is never overwritten (move it away first)`, 'conflict');
      const { privateKey, publicKey } = generateKeyPairSync('ed25519');
      writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
      const out = { kid: keyIdOf(publicKey), name: o.name, public_key: rawPublicKey(publicKey), file };
      if (o.json) return d.json(out);
      d.out(`key ${out.kid} for ${out.name} written to ${file} (mode 0600; keep it off the doors)`);
      d.out(`trust it on the doors with: { kid: ${out.kid}, name: ${out.name}, public_key: ${out.public_key}, roles: [guard] }`);
    });

  site
    .command('door-key')
    .description('this gateway\'s own key on the site bus (it signs the door\'s reports; made on first use, kept in the data directory, never printed): its entry for the site\'s site.door_keys')
    .addOption(d.configOpt())
    .option('--json', 'machine-readable output')
    .action(async (o: { config: string; json?: boolean }) => {
      const config = await d.configFrom(o.config);
      const { doorKey } = await import('../io/door-key.js');
      const k = doorKey(config.data_dir);
      const out = { gateway: config.gateway_id, kid: k.kid, public_key: k.publicKey };
      if (o.json) return d.json(out);
      d.out(`list it in site.door_keys (the site tool's configuration, every door's): { gateway: ${out.gateway}, kid: ${out.kid}, public_key: ${out.public_key} }`);
    });

  const stated = (o: BusOpts, r: { fact: { subject: string; version?: number; scope: SiteScope }; manifest: { version?: number } }): void => {
    if (o.json) return d.json({ subject: r.fact.subject, version: r.fact.version, scope: r.fact.scope, manifest_version: r.manifest.version });
    d.out(`${r.fact.subject} version ${r.fact.version} published for ${describeScope(r.fact.scope)} (manifest ${r.manifest.version}); doorgw site status shows which doors hold it`);
  };

  busCommand(site, 'level', d, 'set the threat level of the site, or of areas (--area); the most severe level of a door\'s site and areas holds')
    .argument('<level>', 'a level of site.levels (e.g. normal, elevated, lockdown, fire)')
    .option('--area <name>', 'an area (repeat for several); default: the whole site', collect)
    .option('--reason <text>', 'why (shown on every door)')
    .action(async (level: string, o: BusOpts & { reason?: string }) =>
      withTool(d, o, true, async (tool, config) => {
        if (!config.site.levels.some((l) => l.name === level)) throw new UsageError(`no level '${level}' (site.levels: ${config.site.levels.map((l) => l.name).join(', ')})`);
        const targets = o.area?.length ? o.area : ['site'];
        for (const t of targets) stated(o, await tool.state(`threat_level/${t}`, t === 'site' ? { site: true } : { areas: [t] }, { level, ...(o.reason ? { reason: o.reason } : {}) }));
      }),
    );

  busCommand(site, 'lockdown', d, 'threat level lockdown for the site or areas (the same as site level lockdown)')
    .option('--area <name>', 'an area (repeat for several); default: the whole site', collect)
    .option('--reason <text>', 'why (shown on every door)')
    .action(async (o: BusOpts & { reason?: string }) =>
      withTool(d, o, true, async (tool) => {
        for (const t of o.area?.length ? o.area : ['site']) stated(o, await tool.state(`threat_level/${t}`, t === 'site' ? { site: true } : { areas: [t] }, { level: 'lockdown', ...(o.reason ? { reason: o.reason } : {}) }));
      }),
    );

  const blockTarget = (o: { card?: string; user?: string }): string => {
    if ((o.card === undefined) === (o.user === undefined)) throw new UsageError('give --card <number> or --user <userid>');
    return o.card !== undefined ? `block/card:${o.card}` : `block/user:${o.user}`;
  };
  busCommand(site, 'block', d, 'block a card or a person at every door of the scope (at once, and at doors that are away when they return)')
    .option('--card <number>', 'a card number')
    .option('--user <userid>', 'a person (cloud, site or local)')
    .option('--until <time>', 'until then (ISO-8601 with an offset); default: until unblocked')
    .option('--reason <text>', 'why (journaled)')
    .option('--area <name>', 'only in this area (repeat)', collect)
    .option('--door <id>', 'only at this door or gateway (repeat)', collect)
    .action(async (o: BusOpts & { card?: string; user?: string; until?: string; reason?: string }) =>
      withTool(d, o, true, async (tool) => stated(o, await tool.state(blockTarget(o), scopeOf(o), { ...(o.until ? { until: checkInstant('until', o.until) } : {}), ...(o.reason ? { reason: o.reason } : {}) }))),
    );
  busCommand(site, 'unblock', d, 'lift a site block (a deletion every door takes, however late)')
    .option('--card <number>', 'a card number')
    .option('--user <userid>', 'a person')
    .action(async (o: BusOpts & { card?: string; user?: string }) => withTool(d, o, true, async (tool) => stated(o, await tool.state(blockTarget(o), { site: true }, null))));

  const users = site.command('users').description('site users: people every door of the scope knows (contractors, cleaners, guards)');
  busCommand(users, 'add', d, 'add or replace a site user')
    .argument('<userid>')
    .option('--name <name>')
    .option('--card <number>', 'a card (repeat)', collect)
    .option('--group <name>', 'a group for door policies and threat levels (repeat)', collect)
    .option('--pin <digits>', 'a PIN (hashed here; the PIN never crosses the bus)')
    .option('--valid-from <time>', 'ISO-8601 with an offset')
    .option('--valid-until <time>', 'ISO-8601 with an offset')
    .option('--rule <rule>', 'a pass rule, e.g. "8:00-18:00 * * 1-5 *" (repeat); none: the user type\'s default', collect)
    .option('--visitor', 'a visitor (default: employee)')
    .option('--area <name>', 'only in this area (repeat)', collect)
    .option('--door <id>', 'only at this door or gateway (repeat)', collect)
    .option('--max-uses <n>', 'a temporary credential: at most n passages across the site (counted by every door)')
    .option('--sponsor <who>', 'who vouches for this person: named in the journal of each passage')
    .option('--today', 'valid today only (the gateway zone of this configuration)')
    .action(async (userid: string, o: BusOpts & { name?: string; card?: string[]; group?: string[]; pin?: string; validFrom?: string; validUntil?: string; rule?: string[]; visitor?: boolean; maxUses?: string; sponsor?: string; today?: boolean }) => {
      if (o.pin !== undefined && !validPin(o.pin)) throw new UsageError('a PIN is 4 to 12 digits');
      if (o.today && (o.validFrom || o.validUntil)) throw new UsageError('--today sets --valid-from and --valid-until: give one or the other');
      const today = o.today ? todayWindow((await d.configFrom(o.config)).timezone) : null;
      const maxUses = o.maxUses === undefined ? null : intArg('--max-uses', o.maxUses);
      if (maxUses !== null && (maxUses < 1 || maxUses > 100_000)) throw new UsageError('--max-uses must be 1 to 100000');
      const body = {
        name: o.name ?? null,
        user_type: o.visitor ? 1 : 0,
        cards: o.card ?? [],
        groups: o.group ?? [],
        rules: o.rule ?? [],
        ...(o.validFrom ? { valid_from: checkInstant('valid_from', o.validFrom) } : {}),
        ...(o.validUntil ? { valid_until: checkInstant('valid_until', o.validUntil) } : {}),
        ...(today ? { valid_from: today[0], valid_until: today[1] } : {}),
        ...(o.pin ? { pin_hash: hashPin(o.pin) } : {}),
        // A fresh count from now: the same person issued again starts from zero at every door.
        ...(maxUses !== null ? { max_uses: maxUses, uses_since: Date.now() } : {}),
        ...(o.sponsor ? { sponsor: o.sponsor } : {}),
      };
      return withTool(d, o, true, async (tool) => stated(o, await tool.state(`user/${userid}`, scopeOf(o), body)));
    });
  busCommand(users, 'remove', d, 'remove a site user from every door')
    .argument('<userid>')
    .action(async (userid: string, o: BusOpts) => withTool(d, o, true, async (tool) => stated(o, await tool.state(`user/${userid}`, { site: true }, null))));
  busCommand(users, 'list', d, 'the site users as the site broker holds them').action(async (o: BusOpts) =>
    withTool(d, o, false, async (tool) => {
      const snap = await tool.snapshot();
      const list = [...snap.facts.values()].filter((e) => e.subject.startsWith('user/') && e.body !== null).map((e) => ({ userid: e.subject.slice(5), version: e.version, scope: e.scope, ...(e.body as object) }));
      if (o.json) return d.json(list.map(({ pin_hash, ...u }: Record<string, unknown>) => ({ ...u, pin: pin_hash ? 'set' : null })));
      for (const u of list) d.out(`${u.userid}  v${u.version}  ${describeScope(u.scope)}`);
      if (list.length === 0) d.out('no site users');
    }),
  );

  busCommand(site, 'mode', d, 'a door\'s mode as a site fact (held across restarts, until cleared)')
    .argument('<door>')
    .argument('<mode>', 'normal, passage, lockdown, or clear')
    .action(async (door: string, mode: string, o: BusOpts) => withTool(d, o, true, async (tool) => stated(o, await tool.state(`door_mode/${door}`, { doors: [door] }, mode === 'clear' ? null : { mode })))); 

  busCommand(site, 'open', d, 'open a door once, by a signed command valid for seconds (a late delivery opens nothing)')
    .argument('<door>')
    .option('--life <s>', 'seconds it stays valid (1 to 60)', '10')
    .action(async (door: string, o: BusOpts & { life: string }) => {
      const life = Number(o.life);
      if (!Number.isInteger(life) || life < 1 || life > 60) throw new UsageError('--life is 1 to 60 seconds');
      return withTool(d, o, true, async (tool) => {
        const e = await tool.command(`open/${door}`, { doors: [door] }, {}, life);
        if (o.json) return d.json({ id: e.id, exp: e.exp });
        d.out(`open ${door} sent (valid ${life} s); the door journals it with your key's name`);
      });
    });

  busCommand(site, 'fire-reset', d, 'end a latched fire release at a door, by a signed command (refused by the door while its fire alarm is still active)')
    .argument('<door>')
    .action(async (door: string, o: BusOpts) =>
      withTool(d, o, true, async (tool) => {
        const e = await tool.command(`fire_reset/${door}`, { doors: [door] }, {}, 10);
        if (o.json) return d.json({ id: e.id, exp: e.exp });
        d.out(`fire reset of ${door} sent; the door journals it with your key's name (doorgw status there shows whether it took)`);
      }),
    );

  busCommand(site, 'manifest', d, 'publish the manifest again from the facts the broker holds (after concurrent changes left doors "differs")').action(async (o: BusOpts) =>
    withTool(d, o, true, async (tool) => {
      const m = await tool.publishManifest(await tool.snapshot());
      if (o.json) return d.json({ version: m.version, ...(m.body as object) });
      d.out(`manifest ${m.version}: ${(m.body as { count: number }).count} facts`);
    }),
  );

  busCommand(site, 'status', d, 'the convergence view: the site\'s facts and levels, and which doors hold exactly them (doors that have not confirmed are listed)').action(async (o: BusOpts) =>
    withTool(d, o, false, async (tool, config) => {
      const s = await tool.status();
      if (o.json) return d.json(s);
      d.out(s.manifest ? `site: ${s.facts} facts, manifest ${s.manifest.version} (${s.manifest.count} facts, digest ${s.manifest.digest.slice(0, 12)})` : `site: ${s.facts} facts, no manifest yet`);
      for (const l of s.levels) d.out(`level ${l.subject.slice(13)}: ${l.level} (set by ${l.by}, v${l.version})`);
      for (const r of s.doors) {
        const lv = r.levels.filter((l) => l.level).map((l) => `${l.door}:${l.level}`).join(' ') || 'no level';
        d.out(`${r.confirmed ? 'ok ' : '.. '} ${r.gateway.padEnd(20)}${r.signed ? '' : ' (unsigned)'} ${String(r.facts).padStart(6)} facts  ${r.complete === null ? 'no manifest' : r.confirmed ? 'confirmed' : r.manifest && r.manifest.version < (s.manifest?.version ?? 0) ? 'behind' : 'differs'}  ${lv}  (reported ${localStamp(r.at, config.timezone)}, ${r.age_s} s ago)`);
      }
      d.out(s.unconfirmed.length ? `not confirmed: ${s.unconfirmed.join(', ')}` : `every door that reports holds the site's facts`);
      if (s.refused.length) d.out(`refused on the broker: ${s.refused.length} (${s.refused.slice(0, 3).map((r) => `${r.topic}: ${r.reason}`).join('; ')})`);
    }),
  );
}
