#!/usr/bin/env node
/**
 * The `doorgw` command. Exit codes: 0 success / valid / match / grant, 1 not valid / no match /
 * deny / not found, 2 usage or configuration error.
 */
import { existsSync, statSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { ConfigError, DEFAULT_CONFIG_PATH } from '../config/errors.js';
import type { Config } from '../config/schema.js';
import type { GatewayApi } from '../control/api.js';
import { RemoteError, UsageError } from '../control/errors.js';
import { DOOR_MODES, type DoorMode } from '../domain/types.js';
import { VERSION } from '../version.js';
import { cliActor, durationArg, intArg, localStamp } from './args.js';
import { addCloudCommands } from './wecom.js';
import { addHidCommands } from './hid.js';
import { addUserCommands } from './users.js';
import { addJournalCommands } from './journal.js';
import { addWebCommands } from './web.js';
import { addHwCommands } from './hw.js';
import { addOsdpCommands, readerLine } from './osdp.js';
import { addSiteCommands } from './site.js';
import { addCollectorCommands } from './collector.js';
import { addMusterCommands } from './muster.js';
import { addFeishuCommands } from './feishu.js';

// Everything else is imported by the command that needs it: `doorgw --help` and the health check
// must not pay for the gateway, MQTT, the clouds and LevelDB (a Pi is several times slower).

class CliError extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
  }
}

const out = (s: string): void => void process.stdout.write(`${s}\n`);
const json = (v: unknown): void => out(JSON.stringify(v, null, 2));

/** `--at`: unix seconds, or ISO-8601 with an explicit offset (a bare local time is ambiguous). */
export function parseAt(v: string): number {
  if (/^\d+$/.test(v)) return Number(v);
  if (!/(Z|[+-]\d{2}:?\d{2})$/i.test(v)) throw new UsageError(`--at '${v}': give unix seconds or ISO-8601 with an offset (e.g. 2024-06-03T09:30:00+08:00)`);
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new UsageError(`--at '${v}' is not a valid date`);
  return Math.floor(t / 1000);
}

const unixArg = (name: string, v: string): number => intArg(name, v, 'unix seconds');

async function configFrom(path: string | undefined): Promise<Config> {
  const { loadConfig } = await import('../config/load.js');
  const config = loadConfig(path ?? DEFAULT_CONFIG_PATH).config;
  actAsOwnerOf(config.data_dir);
  return config;
}

/**
 * Run as root (sudo doorgw …), act as the user that owns the data directory — the service user —
 * so nothing the CLI writes there (database files, the device secret) becomes unreadable to the
 * gateway. Permanent for this process.
 */
function actAsOwnerOf(dir: string): void {
  if (process.getuid?.() !== 0 || !existsSync(dir)) return;
  const st = statSync(dir);
  if (st.uid === 0) return;
  process.setgid!(st.gid);
  process.setuid!(st.uid);
}

export interface ApiOptions {
  /** May create the data directory (commands that write: import, demo seed). Read-only commands never do. */
  create?: boolean;
}

/** Run `fn` against the running gateway (control socket) or, if none runs, the store directly. */
async function withApi<T>(configPath: string | undefined, fn: (api: GatewayApi) => Promise<T>, opts: ApiOptions = {}): Promise<T> {
  const { loadConfig, controlSocketPath } = await import('../config/load.js');
  const { config, envApplied } = loadConfig(configPath ?? DEFAULT_CONFIG_PATH);
  actAsOwnerOf(config.data_dir);
  const socket = controlSocketPath(config);
  const { connectControl } = await import('../control/socket.js');
  const remote = await connectControl(socket);
  if (remote) {
    // The gateway answers with its own configuration: say so when the caller's differs from it.
    if (envApplied.length) process.stderr.write(`note: answered by the running gateway with its own configuration; your environment overrides (${envApplied.join(', ')}) do not apply to it\n`);
    try {
      return await fn(remote);
    } finally {
      remote.close();
    }
  }
  const { Store, StoreLockedError } = await import('../store/store.js');
  const { localApi } = await import('../control/api.js');
  if (!opts.create && !Store.exists(config.data_dir)) {
    throw new CliError(`no gateway data in ${config.data_dir} (the gateway has not run with this configuration, or --config points elsewhere)`, 1);
  }
  let store: Awaited<ReturnType<typeof Store.open>>;
  try {
    store = await Store.open(config.data_dir);
  } catch (e) {
    if (e instanceof StoreLockedError) throw new CliError(`${e.message}, but nothing answers on its control socket ${socket}`, 1);
    throw e;
  }
  try {
    return await fn(localApi(store, config, VERSION));
  } finally {
    await store.close();
  }
}


export function buildProgram(): Command {
  const program = new Command('doorgw')
    .description('Door access gateway: local decisions from a cached WeCom/Feishu directory')
    .version(VERSION)
    .showHelpAfterError()
    .exitOverride();
  const configOpt = (): Option => new Option('-c, --config <file>', 'configuration file').default(DEFAULT_CONFIG_PATH);

  program
    .command('start')
    .description('run the gateway')
    .addOption(configOpt())
    .action(async (o: { config: string }) => {
      const { loadConfig } = await import('../config/load.js');
      const { createLogger, secretValues } = await import('../log.js');
      const { Gateway } = await import('../gateway.js');
      const { SdNotify } = await import('../io/sd-notify.js');
      const { config, envApplied } = loadConfig(o.config);
      const log = createLogger({ ...config.log, secrets: secretValues(config) });
      if (envApplied.length) log.info({ overrides: envApplied }, 'environment overrides applied');
      // Signals are taken from before the start: one that arrives while the gateway starts (or
      // between its ready line and the rest of this function) stops it as soon as it is up, cleanly,
      // instead of killing the process with the default action.
      let requested: string | null = null;
      let onSignal: ((signal: string) => void) | null = null;
      const signalled = (signal: string): void => (onSignal ? onSignal(signal) : void (requested ??= signal));
      process.once('SIGINT', () => signalled('SIGINT'));
      process.once('SIGTERM', () => signalled('SIGTERM'));
      let gw: Awaited<ReturnType<typeof Gateway.start>>;
      try {
        gw = await Gateway.start({ config, log });
      } catch (e) {
        log.fatal({ err: e }, 'gateway failed to start');
        // What had started was stopped; should anything still hold the process (a library's
        // handle), it must still end, non-zero, and a signal must end it at once.
        onSignal = () => process.exit(1);
        setTimeout(() => process.exit(1), 3000).unref();
        throw new CliError(`gateway failed to start: ${(e as Error).message}`, 1);
      }
      let sd: Awaited<ReturnType<typeof SdNotify.fromEnv>> = null;
      let stopping = false;
      const stopped = new Promise<void>((resolve) => {
        onSignal = (signal: string): void => {
          if (stopping) return;
          stopping = true;
          log.info({ signal }, 'stopping');
          setTimeout(() => process.exit(1), 10_000).unref(); // hard exit if shutdown hangs
          sd?.stopping();
          gw.stop().then(() => {
            sd?.close();
            resolve();
          }, (e: unknown) => {
            log.error({ err: e }, 'error while stopping');
            resolve();
          });
        };
      });
      if (requested) {
        onSignal!(requested);
        return stopped;
      }
      // A restart the cloud asked for: stop as for a signal; systemd (Restart=always) starts it again.
      gw.restartRequested$.subscribe((reason) => {
        log.warn({ reason }, 'restart requested');
        onSignal?.('restart');
      });
      sd = await SdNotify.fromEnv(log.child({ module: 'systemd' }));
      if (!stopping) sd?.ready(`deciding for ${config.doors.map((d) => d.id).join(', ')}`);
      if (config.doors.some((d) => d.readers.some((r) => r.type === 'terminal')) && process.stdin.isTTY) {
        log.info('terminal reader: paste a QR code, or type card:<number>, userid:<id> or exit');
      }
      await stopped;
    });

  const cfg = program.command('config').description('configuration tools');
  cfg
    .command('check')
    .description('validate a configuration file (exit 0 valid, 2 invalid)')
    .argument('[file]', 'configuration file', DEFAULT_CONFIG_PATH)
    .option('--json', 'print the effective configuration as JSON')
    .action(async (file: string, o: { json?: boolean }) => {
      const { loadConfig } = await import('../config/load.js');
      const { redactSecrets } = await import('../log.js');
      const { config } = loadConfig(file);
      if (o.json) json(redactSecrets(config));
      else out(`${file}: valid (${config.doors.length} door${config.doors.length === 1 ? '' : 's'}: ${config.doors.map((d) => d.id).join(', ')})`);
    });

  const qr = program.command('qr').description('WeCom offline QR codes');
  qr.command('verify')
    .description('verify a scanned QR payload with a public key (exit 0 valid, 1 not valid, 2 unusable key or usage)')
    .argument('<payload>', 'the base64 text the scanner produced')
    .requiredOption('--key <base64>', "the user's public_key (base64 EC point, compressed or uncompressed)")
    .option('--at <unix>', 'verify as of this unix time (default now)')
    .option('--skew <seconds>', 'clock-skew margin', '30')
    .option('--json', 'machine-readable output')
    .action(async (payload: string, o: { key: string; at?: string; skew: string; json?: boolean }) => {
      const { decodeQr, importPublicKey, parsePublicKeyPoint, verifyQr } = await import('../domain/qr.js');
      const point = parsePublicKeyPoint(o.key);
      if (!point.ok) throw new UsageError(`--key: ${point.detail}`);
      let key;
      try {
        key = importPublicKey(point.value);
      } catch {
        throw new UsageError('--key: the point is not on the P-256 curve');
      }
      const now = o.at === undefined ? Math.floor(Date.now() / 1000) : unixArg('--at', o.at);
      const decoded = decodeQr(payload);
      const r = decoded.ok ? verifyQr(decoded.value, key, { now, skewS: intArg('--skew', o.skew, 'seconds') }) : decoded;
      const code = decoded.ok ? decoded.value : null;
      const report = {
        valid: r.ok,
        reason: r.ok ? null : r.reason,
        type: code?.type ?? null,
        openvid: code?.openvid ?? null,
        start_time: code?.type === 'employee' ? code.startTime : null,
        expires_in: code?.type === 'employee' ? code.expiresIn : null,
        state_hex: code?.type === 'visitor' ? code.state.toString('hex') : null,
      };
      if (o.json) json(report);
      else out(r.ok ? `valid ${report.type} code, openvid ${report.openvid}` : `not valid: ${r.reason} (${r.detail})`);
      process.exitCode = r.ok ? 0 : 1;
    });

  const rule = program.command('rule').description('WeCom pass rules');
  rule
    .command('eval')
    .description('evaluate a pass rule at an instant (exit 0 match, 1 no match, 2 invalid rule or usage)')
    .argument('<rule>', "e.g. '9:00-18:00 * * 1-5 *'")
    .requiredOption('--at <time>', 'ISO-8601 with offset, or unix seconds')
    .option('--effect-time <unix>', "the rule's effect_time", '0')
    .option('--tz <zone>', 'IANA time zone', 'Asia/Shanghai')
    .option('--json', 'machine-readable output')
    .action(async (text: string, o: { at: string; effectTime: string; tz: string; json?: boolean }) => {
      const { isValidTimeZone } = await import('../domain/localtime.js');
      const { parseRule, ruleMatches } = await import('../domain/rules.js');
      if (!isValidTimeZone(o.tz)) throw new UsageError(`--tz '${o.tz}' is not a known IANA time zone`);
      const at = parseAt(o.at);
      const parsed = parseRule(text, 0, unixArg('--effect-time', o.effectTime));
      if (!parsed.ok) {
        if (o.json) json({ match: false, error: parsed.error });
        else process.stderr.write(`invalid rule: ${parsed.error}\n`);
        process.exitCode = 2;
        return;
      }
      const match = ruleMatches(parsed.rule, at * 1000, o.tz);
      if (o.json) json({ match, error: null });
      else out(match ? 'match' : 'no match');
      process.exitCode = match ? 0 : 1;
    });

  program
    .command('check')
    .description('decide a credential against the local store without opening the door (exit 0 grant, 1 deny)')
    .option('--qr <payload>', 'scanned QR text')
    .option('--card <number>', 'card number')
    .option('--userid <id>', 'user id (as a face terminal reports it)')
    .option('--door <id>', 'door (default: the first configured)')
    .option('--at <time>', 'decide as of this time: unix seconds or ISO-8601 with offset')
    .addOption(configOpt())
    .option('--json', 'machine-readable output')
    .action(async (o: { qr?: string; card?: string; userid?: string; door?: string; at?: string; config: string; json?: boolean }) => {
      const p: Parameters<GatewayApi['check']>[0] = {};
      if (o.qr !== undefined) p.qr = o.qr;
      if (o.card !== undefined) p.card = o.card;
      if (o.userid !== undefined) p.userid = o.userid;
      if (o.door !== undefined) p.door = o.door;
      if (o.at !== undefined) p.at = parseAt(o.at);
      if ([p.qr, p.card, p.userid].filter((x) => x !== undefined).length !== 1) throw new UsageError('give exactly one of --qr, --card, --userid');
      const d = await withApi(o.config, (api) => api.check(p));
      if (o.json) json(d);
      else out(`${d.decision.toUpperCase()} ${d.reason}${d.userid ? ` user ${d.userid}` : ''}${d.detail ? ` (${d.detail})` : ''}`);
      process.exitCode = d.decision === 'grant' ? 0 : 1;
    });

  program
    .command('door')
    .description('door modes')
    .command('mode')
    .description('set a door\'s mode on the running gateway: normal, passage (lock held released) or lockdown; with --for it returns to its configured mode after that long')
    .argument('<door>', 'door id')
    .argument('<mode>', 'normal | passage | lockdown')
    .option('--for <duration>', 'e.g. 30m, 2h, 1d (default: until changed)')
    .addOption(configOpt())
    .option('--json', 'machine-readable output')
    .action(async (door: string, mode: string, o: { for?: string; config: string; json?: boolean }) => {
      if (!(DOOR_MODES as readonly string[]).includes(mode)) throw new UsageError(`mode '${mode}': normal, passage or lockdown`);
      const duration = o.for === undefined ? undefined : durationArg('--for', o.for);
      const config = await configFrom(o.config);
      const r = await withApi(o.config, (api) => api.setMode({ door, mode: mode as DoorMode, ...(duration !== undefined ? { duration_s: duration } : {}), by: cliActor() }));
      if (o.json) return json(r);
      const zone = config.doors.find((d) => d.id === door)?.timezone ?? config.timezone;
      out(`${r.door}: ${r.mode}${r.until !== null ? ` until ${localStamp(r.until, zone)}` : ''}`);
    });

  const fire = program.command('fire').description('fire release (io.fire, the site\'s fire level)');
  fire
    .command('reset')
    .description('end a latched fire release on the running gateway (every released door, or one): refused while the fire alarm is still active; doors return to their modes')
    .option('--door <id>', 'only this door')
    .addOption(configOpt())
    .option('--json', 'machine-readable output')
    .action(async (o: { door?: string; config: string; json?: boolean }) => {
      const r = await withApi(o.config, (api) => api.fireReset({ ...(o.door !== undefined ? { door: o.door } : {}), by: cliActor() }));
      if (o.json) return json(r);
      if (r.reset.length) out(`reset: ${r.reset.join(', ')} (back to their modes)`);
      for (const x of r.refused) out(`refused: ${x.door}: ${x.reason}`);
      if (!r.reset.length && !r.refused.length) out('no door is released by fire');
      process.exitCode = r.refused.length ? 1 : 0;
    });
  fire
    .command('status')
    .description('which doors a fire alarm holds released, by which source, latched or not; the named inputs')
    .addOption(configOpt())
    .option('--json', 'machine-readable output')
    .action(async (o: { config: string; json?: boolean }) => {
      const config = await configFrom(o.config);
      const st = await withApi(o.config, (api) => api.status());
      if (!st.io) throw new UsageError('the gateway is not running: fire status is the running gateway\'s', 'unavailable');
      if (o.json) return json(st.io);
      if (!st.io.fire.released.length) out('no door is released by fire');
      for (const d of st.io.fire.doors.filter((x) => x.released)) {
        const why = [...d.active.map((a) => `${a.cause} since ${localStamp(a.since, config.timezone)}`), ...(d.latched && !d.active.length ? [`latched (${d.latched.cause} since ${localStamp(d.latched.since, config.timezone)}): doorgw fire reset`] : [])];
        out(`${d.door}: RELEASED — ${why.join('; ')}`);
      }
      for (const i of st.io.inputs) out(`input ${i.name}${i.label !== i.name ? ` (${i.label})` : ''}: ${i.active ? 'ACTIVE' : 'inactive'}${i.alarm !== 'none' ? ` [${i.alarm}]` : ''}`);
    });

  program
    .command('apb')
    .description('area anti-passback')
    .command('forgive')
    .description('forget where a person is (all areas, or one): their next passage is allowed either way')
    .argument('<userid>')
    .option('--area <name>', 'only this area')
    .addOption(configOpt())
    .action(async (userid: string, o: { area?: string; config: string }) => {
      const r = await withApi(o.config, (api) => api.forgive({ userid, ...(o.area !== undefined ? { area: o.area } : {}) }));
      out(r.forgiven ? `forgave ${userid} in ${r.forgiven} area${r.forgiven === 1 ? '' : 's'}` : `${userid} had no presence to forgive`);
    });

  program
    .command('status')
    .description('gateway status and health (exit 0 healthy, 1 not running, 3 running but unhealthy)')
    .addOption(configOpt())
    .option('--max-link-down <s>', 'unhealthy when the cloud link has been down longer', '600')
    .option('--max-outbox-age <s>', 'unhealthy when the oldest queued pass record is older (outbox not draining)', '900')
    .option('--max-skew <s>', 'unhealthy when the clock differs from the cloud by more (default: qr.clock_skew_s)')
    .option('--json', 'machine-readable output')
    .action(async (o: { config: string; json?: boolean; maxLinkDown: string; maxOutboxAge: string; maxSkew?: string }) => {
      const { quickStatus } = await import('./quick-status.js');
      const quick = await quickStatus(o.config, actAsOwnerOf);
      const config = quick ? null : await configFrom(o.config);
      const zone = config?.timezone ?? quick?.status.timezone ?? 'UTC';
      const limits = { maxLinkDownS: intArg('--max-link-down', o.maxLinkDown, 'seconds'), maxOutboxAgeS: intArg('--max-outbox-age', o.maxOutboxAge, 'seconds'), maxSkewS: o.maxSkew === undefined ? (config?.qr.clock_skew_s ?? quick!.skewS) : intArg('--max-skew', o.maxSkew, 'seconds') };
      const s = quick?.status ?? (await withApi(o.config, (api) => api.status()));
      const { healthProblems } = await import('../control/health.js');
      const problems = s.running ? healthProblems(s, limits) : ['not running'];
      process.exitCode = !s.running ? 1 : problems.length ? 3 : 0;
      if (o.json) return json({ ...s, healthy: problems.length === 0, problems });
      {
        out(`${s.gateway_id} ${s.running ? `running ${s.uptime_s}s` : 'not running'}, version ${s.version}, ${s.users} users, outbox ${s.outbox_depth} (held ${s.held}), doors ${s.doors.map((d) => `${d.id}(${d.mode}${d.until !== null ? ` until ${localStamp(d.until, zone)}` : ''}${d.why && d.why !== 'configured' && d.until === null ? `: ${d.why}` : ''})`).join(' ')}`);
        if (s.cloud) {
          const c = s.cloud;
          out(`cloud ${c.provider}: ${c.link} since ${new Date(c.since).toISOString()}, directory version ${c.directory_version ?? '-'}, clock skew ${c.clock_skew_s ?? '?'} s${c.last_error ? `, last error: ${c.last_error}` : ''}`);
          if (c.corp_name) out(`  corp ${c.corp_name}`);
          if (c.permission_groups) out(`  permission groups ${c.permission_groups}`);
          if (c.events) out(`  cloud events ${c.events.received} taken, ${c.events.refused} refused${c.events.last_at ? `, newest ${c.events.last_type} at ${new Date(c.events.last_at).toISOString()}` : ''}`);
          if (c.firmware_offered) out(`  firmware offered ${c.firmware_offered.version} (not installed: updates go through the Ansible role)`);
        }
        if (s.io?.fire.released.length) out(`FIRE RELEASE: ${s.io.fire.released.join(', ')} released (doorgw fire status)`);
        for (const r of s.readers ?? []) out(readerLine(r));
        out(problems.length ? `UNHEALTHY: ${problems.join('; ')}` : 'healthy');
      }
    });

  const deps = { configOpt, configFrom, withApi, out, json };
  addCloudCommands(program, deps);
  addUserCommands(program, deps);
  addJournalCommands(program, deps);
  addWebCommands(program, deps);
  addHwCommands(program, deps);
  addOsdpCommands(program, deps);
  addSiteCommands(program, deps);
  addCollectorCommands(program, deps);
  addMusterCommands(program, deps);
  addFeishuCommands(program, deps);
  addHidCommands(program, out, json);

  const demo = program.command('demo').description('try the gateway without a cloud');
  demo
    .command('run')
    .description('WeCom emulator + gateway + scripted scanner: sync, decisions with latency, uploads (what `npm run demo` runs)')
    .option('--users <n>', 'directory size', '3000')
    .option('--pause <ms>', 'pause between scans', '400')
    .action(async (o: { users: string; pause: string }) => {
      const { runDemo } = await import('./demo-run.js');
      await runDemo({ users: intArg('--users', o.users), pauseMs: intArg('--pause', o.pause, 'milliseconds'), out });
    });
  demo
    .command('seed')
    .description('import three demo users signed by a throwaway key and print QR codes to paste into `npm start`')
    .addOption(configOpt())
    .option('--json', 'machine-readable output')
    .action(async (o: { config: string; json?: boolean }) => {
      const config = await configFrom(o.config);
      const demo = (await import('./demo.js')).demoCodes(config.data_dir);
      const report = await withApi(o.config, (api) => api.usersImport({ records: demo.users }), { create: true });
      if (o.json) return json({ imported: report.imported, codes: demo.codes });
      out(`imported ${report.imported} demo users into ${config.data_dir}. Paste these into \`npm start\` (codes stay valid 10 minutes; run again for fresh ones):\n`);
      for (const c of demo.codes) out(`# ${c.label} → expect ${c.expect}\n${c.text}\n`);
    });

  return program;
}

/** Accept a bare array, a response body `{userinfo}` or a whole frame `{body: {userinfo}}`. */

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      return e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help' ? 0 : 2;
    }
    if (e instanceof UsageError || (e instanceof RemoteError && e.usage)) {
      process.stderr.write(`doorgw: ${e.message}\n`);
      // "No such user/record" is an answer (exit 1, like grep); a wrong request is a usage error (2).
      return e.code === 'not_found' ? 1 : 2;
    }
    if (e instanceof ConfigError) {
      process.stderr.write(`doorgw: ${e.message}\n`);
      return 2;
    }
    if (e instanceof CliError) {
      process.stderr.write(`doorgw: ${e.message}\n`);
      return e.code;
    }
    process.stderr.write(`doorgw: ${(e as Error).message}\n`);
    return 1;
  }
}

// `doorgw users list | head -1`: the reader went away; that is the end of the output, not a crash.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`doorgw: ${String(e)}\n`);
    process.exitCode = 1;
  },
);
