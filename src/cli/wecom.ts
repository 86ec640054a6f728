/** `doorgw wecom …` and `doorgw sync` / `doorgw outbox`: the cloud-facing commands. */
import { createInterface } from 'node:readline';
import type { Command, Option } from 'commander';
import { readSecret, secretPath, writeSecret } from '../cloud/wecom/secret.js';
import type { Config } from '../config/schema.js';
import type { GatewayApi } from '../control/api.js';
import { zonedMidnight } from '../cloud/wecom-app/reconcile.js';
import { UsageError } from '../control/errors.js';
import { cliActor, intArg, localStamp, validDate } from './args.js';

/** A date for --since/--until: YYYY-MM-DD (midnight in the configured zone), ISO with offset, or unix s. */
export function parseDay(v: string, zone: string, name: string): number {
  if (/^\d+$/.test(v)) return Number(v);
  const d = /^(\d{4})-(\d{2})-(\d{2})$/.exec(v);
  if (d) {
    if (!validDate(Number(d[1]), Number(d[2]), Number(d[3]))) throw new UsageError(`${name} '${v}' is not a date that exists`);
    return zonedMidnight(Number(d[1]), Number(d[2]), Number(d[3]), zone);
  }
  if (!/(Z|[+-]\d{2}:?\d{2})$/i.test(v)) throw new UsageError(`${name} '${v}': give YYYY-MM-DD, ISO-8601 with an offset, or unix seconds`);
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new UsageError(`${name} '${v}' is not a valid date and time`);
  return Math.floor(t / 1000);
}

export interface CliDeps {
  configOpt: () => Option;
  configFrom: (path: string | undefined) => Promise<Config>;
  withApi: <T>(configPath: string | undefined, fn: (api: GatewayApi) => Promise<T>, opts?: { create?: boolean }) => Promise<T>;
  out: (s: string) => void;
  json: (v: unknown) => void;
}

export function addCloudCommands(program: Command, d: CliDeps): void {
  const wecom = program.command('wecom').description('WeCom device protocol');

  wecom
    .command('static-code')
    .description('the static scan-to-open code of a door for printing (gen_login_qrcode; the running gateway asks the cloud), written to a file')
    .requiredOption('--door <id>', 'the door whose code it is')
    .requiredOption('--out <file>', 'where to write the image')
    .addOption(d.configOpt())
    .action(async (o: { door: string; out: string; config: string }) => {
      const r = await d.withApi(o.config, (api) => api.staticScanCode({ door: o.door }));
      const { writeFileSync } = await import('node:fs');
      writeFileSync(o.out, Buffer.from(r.image_b64, 'base64'));
      d.out(`the static code of ${r.door} written to ${o.out} (${r.bytes} bytes); it stays valid until the device is bound to another corp`);
    });

  wecom
    .command('activate')
    .description('provision this device (get_secret_no, register, wait for a corp to bind it) and store its secret (mode 0600)')
    .addOption(d.configOpt())
    .option('--url <ws-url>', 'device-protocol WebSocket (default: cloud.wecom.url)')
    .option('--sn <serial>', 'device serial number (default: cloud.wecom.sn, else gateway_id)')
    .option('--force', 'replace an existing secret')
    .action(async (o: { config: string; url?: string; sn?: string; force?: boolean }) => {
      const config = await d.configFrom(o.config);
      const url = o.url ?? config.cloud.wecom?.url;
      const sn = o.sn ?? config.cloud.wecom?.sn ?? config.gateway_id;
      if (!url) throw new Error('no WebSocket URL: set cloud.wecom.url or pass --url');
      if (readSecret(config.data_dir) && !o.force) {
        d.out(`already activated (${secretPath(config.data_dir)}); use --force to activate again`);
        return;
      }
      const { createLogger } = await import('../log.js');
      const { WecomSession } = await import('../cloud/wecom/session.js');
      const { activate } = await import('../cloud/wecom/provision.js');
      const log = createLogger({ level: 'warn', pretty: 'auto', destination: process.stderr });
      const session = new WecomSession({ url, log, requestTimeoutMs: 10_000, backoffMs: [1000, 10_000] });
      session.start();
      try {
        await new Promise<void>((resolve, reject) => {
          const t = setTimeout(() => reject(new Error(`cannot reach ${url}`)), 15_000);
          session.opened$.subscribe(() => {
            clearTimeout(t);
            resolve();
          });
        });
        d.out(`registering ${sn} at ${url} …`);
        let waited = false;
        const secret = await activate(session, sn, log, {
          onWaiting: () => {
            if (!waited) d.out('registered; waiting for a corp administrator to bind the device (polling every 5 s) …');
            waited = true;
          },
        });
        writeSecret(config.data_dir, { sn, secret });
        d.out(`activated: secret stored in ${secretPath(config.data_dir)} (mode 0600). A running gateway logs in within 5 s.`);
      } finally {
        await session.stop();
      }
    });

  wecom
    .command('emulator-qr')
    .description("sign a QR code for a user of an emulator's --state-dir, as the WeCom app would show it (development, demos)")
    .argument('<userid>', 'a user of the emulated directory')
    .requiredOption('--state-dir <dir>', 'the emulator\'s state directory')
    .option('--expires <s>', 'validity in seconds (employee codes)', '300')
    .action(async (userid: string, o: { stateDir: string; expires: string }) => {
      const { WecomEmulator, signQrFor } = await import('../cloud/wecom/emulator.js');
      const { loadEmulatorState } = await import('../cloud/wecom/emulator-state.js');
      const emu = new WecomEmulator();
      const keys = loadEmulatorState(o.stateDir, emu);
      if (!keys) throw new UsageError(`${o.stateDir}: no emulator state (run doorgw wecom emulator --state-dir ${o.stateDir} first)`);
      const u = emu.users.get(userid);
      if (!u?.public_key || !keys.get(u.public_key)) throw new UsageError(`no user '${userid}' with a key in ${o.stateDir}`, 'not_found');
      d.out(signQrFor(u, keys.get(u.public_key)!, Math.floor(Date.now() / 1000), Number(o.expires)));
    });

  wecom
    .command('emulator')
    .description('run a WeCom device-protocol emulator (development, demos)')
    .option('--port <n>', 'listen port', '8765')
    .option('--host <addr>', 'listen address', '127.0.0.1')
    .option('--users <n>', 'generated directory size', '1000')
    .option('--templates', 'give every user two 1 KB fingerprint templates')
    .option('--provision <sn:secret>', 'pre-provision a device with this secret (benchmarks, scripts)')
    .option('--no-auto-bind', 'wait for an explicit bind instead of binding devices at registration')
    .option('--state-dir <dir>', 'keep the directory, corp keys, devices and versions here across runs, and append every checkin record received to received.jsonl')
    .action(async (o: { port: string; host: string; users: string; templates?: boolean; provision?: string; autoBind: boolean; stateDir?: string }) => {
      const { WecomEmulator, generateDirectory } = await import('../cloud/wecom/emulator.js');
      const state = o.stateDir ? await import('../cloud/wecom/emulator-state.js') : null;
      const emu = new WecomEmulator({ port: Number(o.port), host: o.host, autoBind: o.autoBind });
      let keys = o.stateDir ? state!.loadEmulatorState(o.stateDir, emu) : null;
      if (!keys) {
        const generated = generateDirectory(Number(o.users), { templates: o.templates === true });
        emu.seed(generated.users);
        keys = generated.keys;
      }
      if (o.stateDir) {
        state!.recordReceived(o.stateDir, emu);
        state!.saveEmulatorState(o.stateDir, emu, keys);
        // Devices register and bind while it runs: kept every few seconds, not only at a clean stop.
        const k = keys;
        setInterval(() => state!.saveEmulatorState(o.stateDir!, emu, k), 5000).unref();
      }
      if (o.provision) {
        const [sn, secret] = o.provision.split(':');
        if (!sn || !secret) throw new Error('--provision takes sn:secret');
        emu.provision(sn);
        emu.devices.get(sn)!.secret = secret;
      }
      const url = await emu.start();
      d.out(`WeCom emulator on ${url} with ${emu.users.size} users (perm_version ${emu.permVersion}); Ctrl-C stops it`);
      let rl: ReturnType<typeof createInterface> | null = null;
      if (!o.autoBind) {
        // Play the corp administrator: bind registered devices by hand.
        d.out("devices wait for a bind: type 'bind <sn>' (or 'devices' to list them)");
        rl = createInterface({ input: process.stdin, terminal: false });
        rl.on('line', (line) => {
          const [cmd, sn] = line.trim().split(/\s+/);
          if (cmd === 'devices') {
            for (const dev of emu.devices.values()) d.out(`  ${dev.sn}: ${dev.bound ? 'bound' : dev.registered ? 'registered, waiting for a bind' : 'asked for a secret number'}`);
          } else if (cmd === 'bind' && sn) {
            if (!emu.devices.has(sn)) d.out(`no device '${sn}' has registered (devices: ${[...emu.devices.keys()].join(', ') || 'none'})`);
            else {
              emu.bind(sn);
              d.out(`bound ${sn}`);
            }
          } else if (cmd) d.out("commands: 'bind <sn>', 'devices'");
        });
      }
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      rl?.close();
      if (o.stateDir) state!.saveEmulatorState(o.stateDir, emu, keys);
      await emu.stop();
    });

  program
    .command('sync')
    .description('full directory sync from the cloud now (the gateway must be running)')
    .addOption(d.configOpt())
    .option('--json', 'machine-readable output')
    .action(async (o: { config: string; json?: boolean }) => {
      // Progress: a second connection polls the gateway while the sync request runs.
      let done = false;
      const tty = process.stderr.isTTY && !o.json;
      const progress = tty
        ? d.withApi(o.config, async (api) => {
            const t0 = Date.now();
            while (!done) {
              const s = await api.status();
              // Neither cloud says how many users there are in all: a count and a rate, not a bar.
              const n = s.cloud?.sync_progress ?? 0;
              const rate = Math.round(n / Math.max(0.001, (Date.now() - t0) / 1000));
              process.stderr.write(`\r${n} users fetched, ${rate}/s, ${Math.round((Date.now() - t0) / 1000)} s `);
              await new Promise((r) => setTimeout(r, 200));
            }
            process.stderr.write('\n');
          })
        : Promise.resolve();
      try {
        const r = await d.withApi(o.config, (api) => api.sync());
        done = true;
        await progress;
        if (o.json) d.json(r);
        else d.out(`synced ${r.users} users (directory version ${r.version}) in ${r.seconds.toFixed(1)} s`);
      } finally {
        done = true;
      }
    });

  const records = program.command('records').description('pass records in the cloud');
  records
    .command('reconcile')
    .description("compare this door's journal with WeCom's pass records (get_accesscontrol_data): what the cloud has, lacks, and has alone")
    .requiredOption('--since <date>', 'start: YYYY-MM-DD (midnight in the configured zone), ISO-8601 with offset, or unix s')
    .option('--until <date>', 'end (exclusive), same forms; default now')
    .option('--requeue', 'put passes the cloud lacks back into the outbox')
    .addOption(d.configOpt())
    .option('--json', 'machine-readable report')
    .action(async (o: { since: string; until?: string; requeue?: boolean; config: string; json?: boolean }) => {
      const config = await d.configFrom(o.config);
      const since = parseDay(o.since, config.timezone, '--since');
      const until = o.until === undefined ? Math.floor(Date.now() / 1000) : parseDay(o.until, config.timezone, '--until');
      // The caller's job with the caller's configuration, whether or not a gateway answers.
      const app = config.cloud.wecom_app;
      const r = await d.withApi(o.config, (api) => api.reconcile({ since, until, requeue: o.requeue === true, zone: config.timezone, ...(app ? { app } : {}) }));
      if (o.json) return d.json(r);
      const iso = (s: number): string => localStamp(s * 1000, config.timezone);
      d.out(`device ${r.device_sn}, ${iso(r.since)} → ${iso(r.until)} in ${r.spans.length} month span${r.spans.length === 1 ? '' : 's'}`);
      d.out(`local passes ${r.local}, cloud records ${r.cloud}: matched ${r.matched.length}, missing in cloud ${r.missing_in_cloud.length}, only in cloud ${r.cloud_only.length}`);
      if (r.missing_in_cloud.length) {
        d.out('\nMISSING IN CLOUD\ttime\t\t\t\tuserid\tpass_type\tpass_method');
        for (const m of r.missing_in_cloud) d.out(`  #${m.seq}\t${iso(m.timestamp)}\t${m.userid}\t${m.pass_type}\t${m.pass_method}`);
      }
      if (r.cloud_only.length) {
        d.out('\nONLY IN CLOUD\ttime\t\t\t\topen_userid\tpass_type\tpass_method');
        for (const c of r.cloud_only) d.out(`  \t${iso(c.timestamp)}\t${c.open_userid}\t${c.pass_type}\t${c.pass_method}`);
      }
      if (o.requeue) d.out(`\nrequeued ${r.requeued} pass${r.requeued === 1 ? '' : 'es'} for upload`);
      process.exitCode = r.missing_in_cloud.length ? 1 : 0;
    });

  const outbox = program.command('outbox').description('pass records waiting for the cloud, and those held aside');
  outbox
    .command('list', { isDefault: true })
    .description('queued and held records')
    .addOption(d.configOpt())
    .option('--limit <n>', 'at most this many of each', '50')
    .option('--json', 'machine-readable output')
    .action(async (o: { config: string; limit: string; json?: boolean }) => {
      const config = await d.configFrom(o.config);
      const limit = intArg('--limit', o.limit);
      const r = await d.withApi(o.config, (api) => api.outbox({ limit }));
      if (o.json) return d.json(r);
      const at = (s: number): string => localStamp(s * 1000, config.timezone);
      d.out(`queued: ${r.queued.length}${r.queued.length === limit ? '+' : ''}`);
      for (const q of r.queued) d.out(`  #${q.seq} ${at(q.timestamp)} ${q.door} ${q.direction} ${q.method} ${q.userid}`);
      d.out(`held: ${r.held.length}`);
      for (const h of r.held) d.out(`  #${h.seq} ${at(h.timestamp)} ${h.method} ${h.userid}: ${h.held_reason}`);
    });
  outbox
    .command('requeue')
    .description('put held records back in the outbox (all, or the given sequence numbers)')
    .argument('[seq...]', 'sequence numbers (default: all)')
    .addOption(d.configOpt())
    .action(async (seqs: string[], o: { config: string }) => {
      const p = { ...(seqs.length ? { seqs: seqs.map((x) => intArg('seq', x, 'a sequence number')) } : {}), by: cliActor() };
      const r = await d.withApi(o.config, (api) => api.requeue(p));
      d.out(`requeued ${r.requeued} record${r.requeued === 1 ? '' : 's'}`);
    });
  outbox
    .command('discard')
    .description('delete held records the cloud will never take (e.g. card passes under WeCom); the journal keeps the passes')
    .argument('[seq...]', 'sequence numbers')
    .option('--all', 'every held record')
    .requiredOption('--reason <text>', 'why (journaled with the discard)')
    .addOption(d.configOpt())
    .action(async (seqs: string[], o: { config: string; all?: boolean; reason: string }) => {
      if (!seqs.length && !o.all) throw new UsageError('name the held records to discard, or --all');
      const p = { ...(seqs.length ? { seqs: seqs.map((x) => intArg('seq', x, 'a sequence number')) } : {}), reason: o.reason, by: cliActor() };
      const r = await d.withApi(o.config, (api) => api.discard(p));
      d.out(`discarded ${r.discarded} held record${r.discarded === 1 ? '' : 's'}`);
    });
}
