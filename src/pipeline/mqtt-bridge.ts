/**
 * The gateway on MQTT (a start/stop unit): reader credentials in, door commands and requests in,
 * access events, door state and gateway state out, Home Assistant discovery. Retained commands and
 * retained credentials are ignored (a retained OPEN would open the door at every restart); every
 * payload is validated; nothing here can delay the relay.
 */
import { Subject, Subscription, distinctUntilChanged, interval, map, merge, skip, type Observable } from 'rxjs';
import type { CloudAdapter } from '../cloud/adapter.js';
import type { Config } from '../config/schema.js';
import type { GatewayApi } from '../control/api.js';
import { UsageError } from '../control/errors.js';
import { REQUESTS } from '../control/requests.js';
import { normalizeCard } from '../domain/user.js';
import { WiegandFrames } from '../io/readers/wiegand-frames.js';
import type { Credential } from '../domain/types.js';
import type { Relay } from '../io/relay.js';
import { MqttLink, type MqttMessage } from '../io/mqtt/client.js';
import { discoveryConfigs } from '../io/mqtt/discovery.js';
import { parseDoorCommand, parseReaderCredential, Topics, type DoorEventPayload, type DoorStatePayload, type GatewayStatePayload, type ResponsePayload } from '../io/mqtt/topics.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/store.js';
import type { AccessPipeline } from './access.js';
import { doorStatus, type DoorStateMachine } from './door-state.js';
import { SiteCommands } from './site-commands.js';
import { SiteJournal } from './site-journal.js';
import { SiteInbox } from './site-inbox.js';
import { SitePresence } from './site-presence.js';
import { SiteUses } from './site-uses.js';
import type { SiteFacts } from './site-facts.js';
import type { GatewayIo } from './gateway-io.js';
import { credentialEvent, type CredentialEvent, type DecisionEvent, type DoorEvent } from '../domain/events.js';

export interface MqttBridgeContext {
  config: Config;
  version: string;
  store: Store;
  pipeline: AccessPipeline;
  relays: ReadonlyMap<string, Relay>;
  doors: ReadonlyMap<string, DoorStateMachine>;
  api: GatewayApi;
  cloud: () => CloudAdapter | null;
  log: Logger;
  started: number;
  /** Supervised readers' events (online/offline, tamper, power, secure channel): published, and the state with them. */
  readerEvents?: Observable<DoorEvent>;
  /** The site's facts (site.enabled): their topics are subscribed here and routed to it. */
  siteFacts?: SiteFacts | null;
  /** Named inputs, outputs and fire release. */
  io?: GatewayIo | null;
}

interface MqttReader {
  door: string;
  direction: 'in' | 'out' | 'unknown';
  frames: WiegandFrames;
}

export class MqttBridge {
  /** Credentials from MQTT readers, merged into the pipeline's sources. */
  readonly credentials$ = new Subject<CredentialEvent>();
  readonly topics: Topics;
  readonly link: MqttLink;
  private readonly subs = new Subscription();
  private readonly readers: Map<string, MqttReader>;
  /** Wiegand frames that were not a card or a key (parity, length), per reader: dropped, never guessed. */
  readonly badFrames = new Map<string, number>();
  private readonly log: Logger;
  /** Signed site commands (site.enabled). */
  private site: SiteCommands | null = null;
  /** This door's journal on the site bus (site.enabled, site.publish_journal). */
  readonly siteJournal: SiteJournal | null = null;
  /** Site messages, handled in slices behind decisions. */
  readonly siteInbox: SiteInbox;
  /** Anti-passback across gateways (areas with site: true). */
  readonly sitePresence: SitePresence | null = null;
  readonly siteUses: SiteUses | null = null;

  constructor(private readonly ctx: MqttBridgeContext) {
    const m = ctx.config.mqtt;
    this.log = ctx.log.child({ module: 'mqtt' });
    this.siteInbox = new SiteInbox(this.log.child({ module: 'site' }));
    this.topics = new Topics(m.base_topic, ctx.config.gateway_id);
    this.readers = new Map(
      ctx.config.doors.flatMap((d) =>
        d.readers
          .filter((r) => r.type === 'mqtt')
          .map((r) => {
            const frames = WiegandFrames.forReader(r, d, (e) => this.credentials$.next(e), (error, bits) => {
              this.badFrames.set(r.id, (this.badFrames.get(r.id) ?? 0) + 1);
              this.log.warn({ reader: r.id, bits, error }, 'wiegand frame dropped');
            });
            return [r.id, { door: d.id, direction: r.direction, frames }] as const;
          }),
      ),
    );
    const subscriptions = this.topics.subscriptions();
    if (m.home_assistant.enabled) subscriptions.push(`${m.home_assistant.prefix}/status`);
    if (ctx.config.site.enabled) {
      const facts = ctx.siteFacts ?? null;
      const journal = ctx.config.site.publish_journal ? new SiteJournal({ config: ctx.config, store: ctx.store, log: this.log.child({ module: 'site-journal' }) }) : null;
      this.siteJournal = journal;
      this.site = new SiteCommands({
        config: ctx.config,
        api: ctx.api,
        log: this.log.child({ module: 'site' }),
        doorEvent: (e) => ctx.pipeline.doorEvents$.next(e),
        ...(facts ? { refusals: facts.refusals } : {}),
        ...(journal ? { journalRange: (from: number, to: number) => journal.requestRange(from, to) } : {}),
      });
      subscriptions.push(this.site.topic);
      if (facts) {
        subscriptions.push(facts.factFilter, facts.manifestTopic);
        const uses = new SiteUses({ config: ctx.config, pipeline: ctx.pipeline, store: ctx.store, log: this.log.child({ module: 'site-uses' }) });
        this.siteUses = uses;
        facts.userGone = (userid) => uses.forget(userid);
        subscriptions.push(this.siteUses.filter);
      }
      if (Object.values(ctx.config.areas).some((a) => a.site)) {
        this.sitePresence = new SitePresence({ config: ctx.config, pipeline: ctx.pipeline, log: this.log.child({ module: 'site-presence' }) });
        subscriptions.push(this.sitePresence.filter);
      }
    }
    this.link = new MqttLink({
      url: m.url,
      protocolVersion: m.protocol_version,
      clientId: m.client_id ?? `doorgw-${ctx.config.gateway_id}`,
      username: m.username,
      password: m.password,
      ca: m.ca,
      cert: m.cert,
      key: m.key,
      rejectUnauthorized: m.reject_unauthorized,
      keepaliveS: m.keepalive_s,
      offlineQueue: m.offline_queue,
      maxPacketSize: m.max_packet_size,
      brokerMaxPacketSize: m.broker_max_packet_size,
      availabilityTopic: this.topics.availability(),
      subscriptions,
      log: this.log,
    });
  }

  /** The MQTT readers: heard only through the broker. */
  get readerIds(): string[] {
    return [...this.readers.keys()];
  }

  start(): void {
    const { ctx } = this;
    this.subs.add(this.link.messages$.subscribe((m) => this.onMessage(m)));
    this.subs.add(ctx.pipeline.decisions$.subscribe((d) => this.publishEvent(d)));
    for (const [id, sm] of ctx.doors) {
      this.subs.add(
        merge(sm.state$.pipe(map(() => id)), ctx.pipeline.modes$.pipe(map((x) => x.door)))
          .subscribe((door) => door === id && this.publishDoorState(id)),
      );
      this.subs.add(sm.events$.subscribe((e) => this.publishDoorEvent(e)));
    }
    this.subs.add(
      ctx.pipeline.doorEvents$.subscribe((e) => {
        this.publishDoorEvent(e);
        if (e.type === 'threat_level') void this.publishState(); // the levels in the gateway's state
      }),
    );
    if (ctx.readerEvents) {
      this.subs.add(
        ctx.readerEvents.subscribe((e) => {
          this.publishDoorEvent(e);
          void this.publishState();
        }),
      );
    }
    const cloud = ctx.cloud();
    if (cloud) {
      this.subs.add(cloud.state$.pipe(map((s) => `${s.link}|${s.directory_version}|${s.last_error}`), distinctUntilChanged()).subscribe(() => void this.publishState()));
    }
    const io = ctx.io;
    if (io) {
      this.subs.add(io.fire.changed$.subscribe(({ door }) => {
        this.publishDoorState(door);
        void this.publishState();
      }));
      this.subs.add(merge(io.inputs$, ...[...io.outputs.values()].map((o) => o.state$.pipe(skip(1)))).subscribe(() => void this.publishState()));
    }
    this.subs.add(interval(60_000).subscribe(() => void this.publishState()));
    this.subs.add(this.link.connected$.pipe(distinctUntilChanged()).subscribe((up) => up && void this.publishState()));
    if (ctx.config.mqtt.home_assistant.enabled) void this.publishDiscovery();
    ctx.siteFacts?.attach(this.link);
    const presence = this.sitePresence;
    if (presence) {
      presence.attach(this.link);
      this.subs.add(this.link.connected$.pipe(distinctUntilChanged()).subscribe((up) => up && presence.connected()));
    }
    const uses = this.siteUses;
    if (uses) {
      uses.attach(this.link);
      this.subs.add(this.link.connected$.pipe(distinctUntilChanged()).subscribe((up) => up && uses.connected()));
    }
    const journal = this.siteJournal;
    if (journal) {
      journal.attach(this.link);
      this.subs.add(this.link.connected$.pipe(distinctUntilChanged()).subscribe((up) => up && journal.connected()));
    }
    this.link.start();
  }

  async stop(): Promise<void> {
    for (const r of this.readers.values()) r.frames.close();
    this.subs.unsubscribe();
    this.credentials$.complete();
    this.siteInbox.stop();
    this.siteJournal?.stop(); // its last batch goes out before the link closes
    this.sitePresence?.stop();
    this.siteUses?.stop();
    await this.link.stop();
  }

  // ---------------------------------------------------------------------------------------------
  // Out

  private publishEvent(d: DecisionEvent): void {
    const fields = this.ctx.config.mqtt.event_user_fields;
    const e: DoorEventPayload = {
      event_type: d.decision === 'grant' ? 'granted' : 'denied',
      decision: d.decision,
      reason: d.reason,
      door: d.door,
      reader: d.reader,
      direction: d.direction,
      method: d.method,
      latency_us: Math.round(d.latency_us),
      at: new Date(d.at).toISOString(),
    };
    if (fields.includes('userid')) e.userid = d.userid;
    if (fields.includes('user_type')) e.user_type = d.user_type;
    if (fields.includes('name')) e.name = d.userid ? (this.ctx.store.directory.user(d.userid)?.name ?? null) : null;
    this.link.publishEvent(this.topics.doorEvent(d.door), JSON.stringify(e));
  }

  private publishDoorEvent(e: DoorEvent): void {
    const p: Record<string, unknown> = { event_type: e.type, door: e.door, at: new Date(e.at).toISOString() };
    if (e.reader !== undefined) p.reader = e.reader;
    if (e.detail !== undefined) p.detail = e.detail;
    this.link.publishEvent(this.topics.doorEvent(e.door), JSON.stringify(p));
  }

  private publishDoorState(door: string): void {
    const d = doorStatus(this.ctx.relays.get(door), this.ctx.doors.get(door), this.ctx.pipeline.modeOf(door));
    const s: DoorStatePayload = { door, lock: d.lock, contact: d.contact, mode: d.mode, alarm: d.alarm, fire: this.ctx.io?.fire.released(door) ?? false };
    this.link.publishRetained(this.topics.doorState(door), JSON.stringify(s));
  }

  private async publishState(): Promise<void> {
    try {
      const st = await this.ctx.api.status();
      const c = st.cloud;
      const p: GatewayStatePayload = {
        gateway_id: st.gateway_id,
        version: st.version,
        users: st.users,
        local_users: st.local_users,
        started: new Date(this.ctx.started).toISOString(),
        outbox_depth: st.outbox_depth,
        held: st.held,
        uptime_s: Math.round((Date.now() - this.ctx.started) / 1000),
        cloud: c ? { provider: c.provider, link: c.link, directory_version: c.directory_version, clock_skew_s: c.clock_skew_s, last_error: c.last_error, last_full_sync: c.last_full_sync === null ? null : new Date(c.last_full_sync).toISOString() } : null,
        storage: st.storage ? { writable: st.storage.writable, free_bytes: st.storage.free_bytes, held_in_memory: st.storage.held_in_memory } : null,
        ...(st.readers?.length ? { readers: Object.fromEntries(st.readers.map((r) => [r.id, { door: r.door, state: r.state, secure: r.secure, tamper: r.tamper, power_failure: r.power_failure }])) } : {}),
        ...(st.site ? { levels: Object.fromEntries(st.site.levels.map((l) => [l.door, l.level])) } : {}),
        ...(st.io ? { fire: { released: st.io.fire.released, latched: st.io.fire.doors.filter((d) => d.latched).map((d) => d.door) } } : {}),
        ...(st.io?.inputs.length ? { inputs: Object.fromEntries(st.io.inputs.map((i) => [i.name, i.active])) } : {}),
        ...(st.io?.outputs.length ? { outputs: Object.fromEntries(st.io.outputs.map((i) => [i.name, i.on])) } : {}),
      };
      this.link.publishRetained(this.topics.state(), JSON.stringify(p));
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'gateway state not published');
    }
  }

  /** Publish discovery configs; clear those published before that no longer exist. */
  private async publishDiscovery(): Promise<void> {
    const { config, version, store } = this.ctx;
    const readers = config.doors.flatMap((d) => d.readers.filter((r) => r.type === 'osdp').map((r) => ({ id: r.id, door: d.name ?? d.id })));
    const all = config.doors.map((d) => d.id);
    const governed = new Set(config.site.enabled ? all : config.io.fire.flatMap((f) => f.doors ?? all));
    const fireDoors = all.filter((d) => governed.has(d));
    const inputs = Object.entries(config.io.inputs).map(([name, i]) => ({ name, label: i.name ?? name, alarm: i.alarm }));
    const configs = discoveryConfigs({ prefix: config.mqtt.home_assistant.prefix, topics: this.topics, gatewayId: config.gateway_id, version, doors: config.doors, cloud: config.cloud.provider !== 'none', readers, fireDoors, inputs, site: config.site.enabled });
    const before = (await store.getMeta<string[]>('mqtt.discovery_topics')) ?? [];
    for (const stale of before.filter((t) => !configs.has(t))) {
      this.log.info({ topic: stale }, 'removing a stale Home Assistant entity');
      this.link.clearRetained(stale);
    }
    for (const [topic, cfg] of configs) this.link.publishRetained(topic, JSON.stringify(cfg));
    await store.putMeta('mqtt.discovery_topics', [...configs.keys()]);
  }

  // ---------------------------------------------------------------------------------------------
  // In

  private onMessage(m: MqttMessage): void {
    const ha = this.ctx.config.mqtt.home_assistant;
    if (ha.enabled && m.topic === `${ha.prefix}/status`) {
      if (m.payload === 'online') void this.publishDiscovery();
      return;
    }
    // Site messages are trusted by their signature alone (the broker account that sent them proves
    // nothing), and wait their turn behind decisions (site-inbox.ts).
    const site = this.site;
    if (site && m.topic === site.topic) return this.siteInbox.push(() => void site.onMessage(m.payload, m.retain));
    const presence = this.sitePresence;
    if (presence && m.topic.startsWith(presence.filter.slice(0, -1))) return this.siteInbox.push(() => presence.onMessage(m.topic, m.payload, m.retain));
    const uses = this.siteUses;
    if (uses && m.topic.startsWith(uses.filter.slice(0, -1))) return this.siteInbox.push(() => uses.onMessage(m.topic, m.payload, m.retain));
    const facts = this.ctx.siteFacts;
    if (facts && (m.topic === facts.manifestTopic || m.topic.startsWith(facts.factFilter.slice(0, -1)))) return this.siteInbox.push(() => facts.onMessage(m.topic, m.payload, m.retain));
    const t = this.topics.parse(m.topic);
    if (!t) return void this.log.warn({ topic: m.topic }, 'message on a topic this gateway does not own ignored');
    if (m.retain) {
      // Never act on retained commands or reads: they are replays of the past.
      return void this.log.warn({ topic: m.topic }, `retained ${t.kind} ignored`);
    }
    if (t.kind === 'set') return this.onCommand(t.door, m.payload);
    if (t.kind === 'credential') return this.onCredential(t.reader, m.payload);
    void this.onRequest(t.name, m);
  }

  private onCommand(door: string, payload: string): void {
    if (!this.ctx.relays.has(door)) return void this.log.warn({ door }, 'command for an unknown door ignored');
    const c = parseDoorCommand(payload);
    if (!c.ok) return void this.log.warn({ door, error: c.error }, 'invalid door command ignored');
    const cmd = c.cmd;
    // Through the API, like every other transport: the same checks and the same audit entry.
    const done =
      cmd.command === 'open'
        ? this.ctx.api.open({ door, by: 'mqtt' }).then((d) => this.log.info({ door, decision: d.decision, reason: d.reason }, 'open command'))
        : cmd.command === 'lock'
          ? this.ctx.api.lock({ door, by: 'mqtt' })
          : this.ctx.api.setMode({ door, mode: cmd.mode, ...(cmd.duration_s !== undefined ? { duration_s: cmd.duration_s } : {}), by: 'mqtt' });
    done.catch((e: unknown) => this.log.warn({ door, command: cmd.command, err: (e as Error).message }, 'door command refused'));
  }

  private onCredential(reader: string, payload: string): void {
    const r = this.readers.get(reader);
    if (!r) return void this.log.warn({ reader }, 'credential from a reader not configured as an mqtt reader ignored');
    const p = parseReaderCredential(payload);
    if (!p.ok) return void this.log.warn({ reader, error: p.error }, 'invalid reader credential ignored');
    const v = p.cred.value;
    let cred: Credential;
    if (p.cred.type === 'wiegand') return r.frames.frame(String(v));
    if (p.cred.type === 'qr') cred = { type: 'qr', text: String(v) };
    else if (p.cred.type === 'card') {
      const card = normalizeCard(v);
      if (card === null) return void this.log.warn({ reader }, 'card value is not a non-negative integer; ignored');
      cred = p.cred.pin !== undefined ? { type: 'card', value: card, pin: p.cred.pin } : { type: 'card', value: card };
    } else cred = p.cred.type === 'userid' ? { type: 'userid', value: String(v) } : { type: 'userid', value: String(v), method: p.cred.type };
    if (p.cred.duress) cred.duress = true;
    this.credentials$.next(credentialEvent(r.door, reader, r.direction, cred));
  }

  private async onRequest(name: string, m: MqttMessage): Promise<void> {
    let params: Record<string, unknown> = {};
    if (m.payload.trim()) {
      try {
        const v: unknown = JSON.parse(m.payload);
        if (typeof v === 'object' && v !== null && !Array.isArray(v)) params = v as Record<string, unknown>;
      } catch {
        /* answered below as an error */
        params = { __invalid: true };
      }
    }
    // A reply reaches only whoever asked: it goes to the requester's own response topic, which the
    // shipped ACL lets only that account read. No response topic: carried out, answered to nobody.
    const replyTo = this.replyTopic(m, params);
    if (replyTo === false) return void this.log.warn({ request: name, response_topic: m.responseTopic ?? params.response_topic }, `request ignored: its response topic is not under ${this.topics.base}/response/<account>/`);
    const reply: ResponsePayload = { status: 'ok' };
    if (params.transaction !== undefined) reply.transaction = params.transaction;
    const handler = REQUESTS[name];
    try {
      if (params.__invalid) throw new UsageError('request payload is not a JSON object');
      if (!handler) throw new UsageError(`unknown request '${name}' (${Object.keys(REQUESTS).join(', ')})`, 'not_found');
      const { response_topic: _r, ...rest } = params;
      reply.data = await handler.call(this.ctx.api, rest, 'mqtt');
    } catch (e) {
      reply.status = 'error';
      reply.error = (e as Error).message;
      reply.code = e instanceof UsageError ? e.code : 'internal';
      if (!(e instanceof UsageError)) this.log.error({ err: e, request: name }, 'request failed');
    }
    if (replyTo === null) return;
    let payload = JSON.stringify(reply);
    if (!this.link.fits(replyTo, payload, m.correlationData)) {
      const bytes = Buffer.byteLength(payload);
      this.log.warn({ request: name, bytes, limit: this.link.maxSendBytes }, 'reply larger than the broker accepts: answered with too_large');
      const err: ResponsePayload = { status: 'error', code: 'too_large', error: `the reply (${bytes} bytes) is larger than the broker accepts (${this.link.maxSendBytes} bytes): ask for less (a smaller limit, then after)` };
      if (reply.transaction !== undefined) err.transaction = reply.transaction;
      payload = JSON.stringify(err);
    }
    this.link.publishReply(replyTo, payload, m.correlationData);
  }

  /** The requester's response topic (MQTT 5 property, or `response_topic` in the payload); null: none; false: not ours. */
  private replyTopic(m: MqttMessage, params: Record<string, unknown>): string | null | false {
    const t = m.responseTopic ?? params.response_topic;
    if (t === undefined) return null;
    return typeof t === 'string' && this.topics.isResponseTopic(t) ? t : false;
  }
}
