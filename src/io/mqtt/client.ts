/**
 * The broker link — the only module that imports `mqtt`. Availability with a retained last will,
 * `online` on every connect, subscriptions renewed on every connect, retained state kept as the
 * latest value per topic and re-published after an outage, and a bounded queue for events while
 * the broker is away (MQTT.js's own QoS 0 queue is unbounded, so it is switched off). Nothing here
 * ever waits for the broker: callers publish and move on.
 */
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { BehaviorSubject, Subject } from 'rxjs';
import { backoffDelay } from '../../domain/backoff.js';
import { SlidingWindow } from '../../domain/rate-limit.js';
import { redactUrl, type Logger } from '../../log.js';
import { assertPublishable } from './topics.js';

export interface MqttMessage {
  topic: string;
  payload: string;
  retain: boolean;
  /** MQTT 5 request/response properties, when the publisher set them. */
  responseTopic?: string;
  correlationData?: Buffer;
}

export interface MqttLinkOptions {
  url: string;
  protocolVersion: 4 | 5;
  clientId: string;
  username?: string | undefined;
  password?: string | undefined;
  ca?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
  rejectUnauthorized: boolean;
  keepaliveS: number;
  offlineQueue: number;
  /** Largest packet the gateway accepts (MQTT 5: the broker drops larger messages for us). */
  maxPacketSize: number;
  /**
   * Largest packet the broker accepts from us (Mosquitto's max_packet_size). A broker that
   * advertises a smaller limit in its MQTT 5 CONNACK lowers it. A packet above it would make the
   * broker disconnect us, and MQTT.js resends an unacknowledged QoS 1 packet on every reconnect:
   * one oversized reply kept the gateway off the broker in a loop. So nothing larger is ever sent.
   */
  brokerMaxPacketSize: number;
  availabilityTopic: string;
  subscriptions: string[];
  log: Logger;
  /** First reconnect delay; doubles while the broker stays away, up to `reconnectMaxMs`. */
  reconnectMs?: number;
  reconnectMaxMs?: number;
}

/** Losses of an established session within this window that count as a takeover fight. */
const TAKEOVER_WINDOW_MS = 60_000;
const TAKEOVER_LOSSES = 3;
/** MQTT 5 DISCONNECT reason: another client connected with this client id. */
const RC_SESSION_TAKEN_OVER = 0x8e;

/**
 * The size of a PUBLISH packet on the wire (MQTT 3.1.1 and 5, QoS 1): fixed header, topic, packet
 * id, properties, payload. Exact for what this module sends.
 */
export function publishPacketSize(topic: string, payload: string, protocolVersion: 4 | 5, correlationData?: Buffer): number {
  const varint = (n: number): number => (n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4);
  let props = 0;
  if (correlationData) props += 1 + 2 + correlationData.length;
  const rest = 2 + Buffer.byteLength(topic) + 2 + (protocolVersion === 5 ? varint(props) + props : 0) + Buffer.byteLength(payload);
  return 1 + varint(rest) + rest;
}

export class MqttLink {
  readonly connected$ = new BehaviorSubject(false);
  readonly messages$ = new Subject<MqttMessage>();
  /** Events dropped because the offline queue was full. */
  dropped = 0;
  /** Times another client took this gateway's session over (or it was lost right after connecting repeatedly). */
  takeovers = 0;
  private readonly sessionLosses = new SlidingWindow(TAKEOVER_WINDOW_MS);
  private outage: { since: number; attempts: number; error: string | null } | null = null;
  private client: MqttClient | null = null;
  private readonly retained = new Map<string, string>();
  /** Retained topics to clear, kept until a connection has carried the clear. */
  private readonly clears = new Set<string>();
  private queue: { topic: string; payload: string }[] = [];
  /** The broker's limit for what we send: configured, lowered by the broker's CONNACK. */
  private sendLimit: number;
  /** Messages not sent because they exceeded the broker's limit. */
  oversized = 0;
  /** Since when (monotonic ms) the link has been down; null while connected. Monotonic: a wall-clock step must not make an outage look long or short. */
  private downSince: number | null = performance.now();

  /** Seconds the link has been down (0 while connected). */
  get downS(): number {
    return this.downSince === null ? 0 : Math.round((performance.now() - this.downSince) / 1000);
  }

  constructor(private readonly o: MqttLinkOptions) {
    this.sendLimit = o.brokerMaxPacketSize;
  }

  /** The largest packet the broker takes from us (bytes). */
  get maxSendBytes(): number {
    return this.sendLimit;
  }

  /** True when this message fits the broker's packet limit. */
  fits(topic: string, payload: string, correlationData?: Buffer): boolean {
    return publishPacketSize(topic, payload, this.o.protocolVersion, correlationData) <= this.sendLimit;
  }

  /** Refuse (and count, and log) a message the broker would disconnect us for. */
  private tooLarge(topic: string, payload: string, correlationData?: Buffer): boolean {
    if (this.fits(topic, payload, correlationData)) return false;
    this.oversized++;
    this.o.log.error({ topic, bytes: publishPacketSize(topic, payload, this.o.protocolVersion, correlationData), limit: this.sendLimit }, 'message not published: larger than the broker accepts (it would disconnect the gateway)');
    return true;
  }

  start(): void {
    const o = this.o;
    const opts: IClientOptions = {
      clientId: o.clientId,
      protocolVersion: o.protocolVersion,
      keepalive: o.keepaliveS,
      clean: true,
      reconnectPeriod: o.reconnectMs ?? 1000,
      connectTimeout: 10_000,
      resubscribe: false, // renewed on every connect below
      queueQoSZero: false,
      will: { topic: o.availabilityTopic, payload: Buffer.from('offline'), qos: 1, retain: true },
      rejectUnauthorized: o.rejectUnauthorized,
    };
    // MQTT 5: the broker must not send us more than this (a huge publish would sit in memory).
    // MQTT 3.1.1 has no such field: there only the broker's max_packet_size protects.
    if (o.protocolVersion === 5) opts.properties = { maximumPacketSize: o.maxPacketSize };
    if (o.username !== undefined) opts.username = o.username;
    if (o.password !== undefined) opts.password = o.password;
    if (o.ca) opts.ca = readFileSync(o.ca);
    if (o.cert) opts.cert = readFileSync(o.cert);
    if (o.key) opts.key = readFileSync(o.key);
    const client = mqtt.connect(o.url, opts);
    this.client = client;
    client.on('connect', (connack) => {
      const brokerMax = connack.properties?.maximumPacketSize;
      this.sendLimit = brokerMax ? Math.min(o.brokerMaxPacketSize, brokerMax) : o.brokerMaxPacketSize;
      this.downSince = null;
      // Small messages must not wait for Nagle's algorithm (40 ms with delayed ACKs): a reader's
      // credential is one small packet that someone is standing at the door for.
      (client.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
      client.options.reconnectPeriod = o.reconnectMs ?? 1000;
      const outage = this.outage;
      this.outage = null;
      if (outage) {
        this.o.log.info({ url: redactUrl(o.url), client_id: o.clientId, outage_s: Math.round((Date.now() - outage.since) / 1000), attempts: outage.attempts }, 'mqtt connected after an outage');
      } else this.o.log.info({ url: redactUrl(o.url), client_id: o.clientId }, 'mqtt connected');
      this.connected$.next(true);
      client.publish(o.availabilityTopic, 'online', { qos: 1, retain: true });
      // MQTT 5 "retain as published": a retained command published live still carries its flag,
      // so it is ignored like one replayed at subscription time.
      client.subscribe(o.subscriptions, { qos: 1, ...(o.protocolVersion === 5 ? { rap: true } : {}) }, (err) => {
        if (err) this.o.log.error({ err: err.message }, 'mqtt subscribe failed');
      });
      for (const topic of this.clears) this.sendClear(client, topic);
      // The broker's limit may be lower than on the last connect: what no longer fits stays unsent.
      for (const [topic, payload] of this.retained) if (!this.tooLarge(topic, payload)) client.publish(topic, payload, { qos: 1, retain: true });
      const pending = this.queue;
      this.queue = [];
      for (const m of pending) if (!this.tooLarge(m.topic, m.payload)) client.publish(m.topic, m.payload, { qos: 1 });
      if (this.dropped) this.o.log.warn({ dropped: this.dropped }, 'events dropped while the broker was unreachable (offline queue full)');
    });
    client.on('disconnect', (packet) => {
      if (packet.reasonCode === RC_SESSION_TAKEN_OVER) this.sessionLost(true);
    });
    client.on('close', () => {
      if (this.connected$.value) {
        this.o.log.warn('mqtt disconnected; the door keeps working, state is re-published on reconnect');
        this.sessionLost(false);
      }
      this.connected$.next(false);
      this.downSince ??= performance.now();
      // Back off while the broker stays away, and say so once, not every attempt.
      if (!this.outage) this.outage = { since: Date.now(), attempts: 0, error: null };
      this.outage.attempts++;
      client.options.reconnectPeriod = backoffDelay(this.outage.attempts - 1, { initialMs: o.reconnectMs ?? 1000, maxMs: o.reconnectMaxMs ?? 30_000 });
    });
    client.on('error', (e) => {
      if (this.outage) {
        if (this.outage.error === e.message) return;
        this.outage.error = e.message;
        return void this.o.log.warn({ err: e.message }, 'mqtt broker unreachable; retrying with backoff, logged again when it changes or ends');
      }
      this.o.log.warn({ err: e.message }, 'mqtt error');
    });
    client.on('message', (topic, payload, packet) => {
      const m: MqttMessage = { topic, payload: payload.toString('utf8'), retain: packet.retain };
      const props = packet.properties;
      if (props?.responseTopic) m.responseTopic = props.responseTopic;
      if (props?.correlationData) m.correlationData = Buffer.from(props.correlationData);
      this.messages$.next(m);
    });
  }

  /**
   * An established session ended. Another client logging in with this gateway's client id (or,
   * where the broker binds ids to accounts, its account) knocks it off again and again: report it.
   */
  private sessionLost(takenOver: boolean): void {
    const losses = this.sessionLosses.add(performance.now()); // a window: monotonic, whatever the wall clock does
    if (takenOver || losses >= TAKEOVER_LOSSES) {
      this.takeovers++;
      this.o.log.error(
        { client_id: this.o.clientId, losses_in_window: losses, taken_over: takenOver },
        'mqtt session taken over: another client is connecting with this gateway\'s client id or account; check the broker accounts (use_username_as_clientid) and the gateway password',
      );
      this.sessionLosses.clear();
    }
  }

  private get live(): MqttClient | null {
    return this.client?.connected ? this.client : null;
  }

  /** Retained state: remembered as the latest value and (re)published whenever connected. */
  publishRetained(topic: string, payload: string): void {
    assertPublishable(topic);
    if (this.tooLarge(topic, payload)) return;
    this.retained.set(topic, payload);
    this.live?.publish(topic, payload, { qos: 1, retain: true });
  }

  /** Publish now if connected, remembering nothing (a site repair): false when not sent. */
  publishNow(topic: string, payload: string, retain: boolean): boolean {
    assertPublishable(topic);
    const c = this.live;
    if (!c || this.tooLarge(topic, payload)) return false;
    c.publish(topic, payload, { qos: 1, retain });
    return true;
  }

  /** Subscribe to a filter again: the broker sends its retained messages once more (MQTT 3.1.8.4). */
  resubscribe(filter: string): void {
    this.live?.subscribe(filter, { qos: 1, ...(this.o.protocolVersion === 5 ? { rap: true } : {}) }, (err) => {
      if (err) this.o.log.error({ err: err.message, filter }, 'mqtt subscribe failed');
    });
  }

  /** Remove a retained message (e.g. a stale discovery config). */
  clearRetained(topic: string): void {
    assertPublishable(topic);
    this.retained.delete(topic);
    this.clears.add(topic);
    const c = this.live;
    if (c) this.sendClear(c, topic);
  }

  private sendClear(c: MqttClient, topic: string): void {
    c.publish(topic, '', { qos: 1, retain: true }, (err) => {
      if (!err && !this.retained.has(topic)) this.clears.delete(topic);
    });
  }

  /** An event: published now, or queued (bounded, oldest dropped) until the broker returns. */
  publishEvent(topic: string, payload: string): void {
    assertPublishable(topic);
    if (this.tooLarge(topic, payload)) return;
    const c = this.live;
    if (c) return void c.publish(topic, payload, { qos: 1 });
    if (this.o.offlineQueue === 0) return void this.dropped++;
    if (this.queue.length >= this.o.offlineQueue) {
      this.queue.shift();
      this.dropped++;
    }
    this.queue.push({ topic, payload });
  }

  /** A reply; dropped when not connected (its requester is gone too). */
  publishReply(topic: string, payload: string, correlationData?: Buffer): void {
    assertPublishable(topic);
    if (this.tooLarge(topic, payload, correlationData)) return;
    this.live?.publish(topic, payload, { qos: 1, ...(correlationData ? { properties: { correlationData } } : {}) });
  }

  get queued(): number {
    return this.queue.length;
  }

  /**
   * Say `offline` and disconnect — within bounded time: if the connection drops meanwhile (a broker
   * restart, a session taken over), an unacknowledged publish would otherwise hold the stop forever.
   */
  async stop(timeoutMs = 2000): Promise<void> {
    const c = this.client;
    this.client = null;
    if (!c) return;
    const within = (p: Promise<void>): Promise<boolean> => Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs).unref())]);
    if (c.connected) await within(new Promise<void>((r) => c.publish(this.o.availabilityTopic, 'offline', { qos: 1, retain: true }, () => r())));
    if (!(await within(new Promise<void>((r) => c.end(false, {}, () => r()))))) await new Promise<void>((r) => c.end(true, {}, () => r()));
    this.connected$.next(false);
  }
}


/**
 * A short-lived client for a tool (doorgw site …): connect, read what the broker holds retained
 * under some filters, publish and wait for the broker's acknowledgement, leave. Unlike MqttLink it
 * waits for the broker — a person is waiting for the answer — but never longer than `timeoutMs`.
 */
/** A tool takes no packet larger than this (a site envelope is at most 64 KiB). */
const TOOL_MAX_PACKET = 256 * 1024;
/** Nor more retained messages than this in one read (MAX_SITE_FACTS, a report per door, and room). */
const TOOL_MAX_RETAINED = 150_000;

export class ToolClient {
  /** Rejects once the broker closes the connection (e.g. another session took this account's client id). */
  private readonly closed: Promise<never>;

  private constructor(private readonly c: MqttClient, private readonly timeoutMs: number) {
    this.closed = new Promise<never>((_, reject) => c.once('close', () => reject(new Error('the broker closed the connection (another session with this account took it over, or the broker went away)'))));
    this.closed.catch(() => undefined);
  }

  /** `p`, or the broker's silence past timeoutMs, or the connection closed: never a wait without end. */
  private async within<T>(p: Promise<T>, what: string): Promise<T> {
    let t: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => (t = setTimeout(() => reject(new Error(`the broker did not ${what} within ${this.timeoutMs} ms`)), this.timeoutMs)));
    try {
      return await Promise.race([p, timeout, this.closed]);
    } finally {
      clearTimeout(t);
    }
  }

  static async connect(o: { url: string; username?: string | undefined; password?: string | undefined; ca?: string | undefined; clientId: string; timeoutMs?: number }): Promise<ToolClient> {
    const timeoutMs = o.timeoutMs ?? 10_000;
    // What a tool reads comes from accounts it does not trust: nothing larger than a site message
    // can be (the broker drops a bigger one for us, MQTT 5), and a bounded count (retained()).
    const opts: IClientOptions = { clientId: o.clientId, protocolVersion: 5, clean: true, reconnectPeriod: 0, connectTimeout: timeoutMs, properties: { maximumPacketSize: TOOL_MAX_PACKET } };
    if (o.username !== undefined) opts.username = o.username;
    if (o.password !== undefined) opts.password = o.password;
    if (o.ca) opts.ca = readFileSync(o.ca);
    const c = mqtt.connect(o.url, opts);
    await new Promise<void>((resolve, reject) => {
      c.once('connect', () => resolve());
      c.once('error', (e) => reject(new Error(`broker ${redactUrl(o.url)}: ${e.message}`)));
      c.once('close', () => reject(new Error(`broker ${redactUrl(o.url)}: connection closed (refused, or unreachable)`)));
    });
    c.removeAllListeners('error');
    c.on('error', () => undefined);
    return new ToolClient(c, timeoutMs);
  }

  /**
   * Every retained message under the filters, as the broker holds them now. The end of the
   * retained flood is marked by a message of our own published after the subscription was
   * acknowledged: the broker delivers in order on one session, so it arrives after them.
   */
  async retained(filters: string[], marker: string): Promise<MqttMessage[]> {
    const out: MqttMessage[] = [];
    const done = new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`the broker did not deliver its retained messages within ${this.timeoutMs} ms`)), this.timeoutMs);
      const on = (topic: string, payload: Buffer, packet: { retain: boolean }): void => {
        if (topic === marker) {
          clearTimeout(t);
          this.c.removeListener('message', on);
          return resolve();
        }
        if (payload.length === 0) return;
        if (out.length >= TOOL_MAX_RETAINED) {
          clearTimeout(t);
          this.c.removeListener('message', on);
          return reject(new Error(`the broker holds more than ${TOOL_MAX_RETAINED} retained messages under ${filters.join(', ')}: something is filling it (a door's account writes facts and reports); clear them on the broker`));
        }
        out.push({ topic, payload: payload.toString('utf8'), retain: packet.retain });
      };
      this.c.on('message', on);
    });
    done.catch(() => undefined); // awaited below; a failed subscribe must not leave it unhandled
    await this.within(this.c.subscribeAsync([...filters, marker], { qos: 1 }), 'acknowledge the subscription');
    await this.within(this.c.publishAsync(marker, 'end', { qos: 1 }), 'acknowledge the end marker');
    await Promise.race([done, this.closed]);
    await this.within(this.c.unsubscribeAsync([...filters, marker]), 'acknowledge the unsubscription');
    return out;
  }

  /** Publish and wait for the broker to take it (QoS 1). */
  async publish(topic: string, payload: string, retain: boolean): Promise<void> {
    assertPublishable(topic);
    await this.within(this.c.publishAsync(topic, payload, { qos: 1, retain }), `acknowledge ${topic}`);
  }

  /** Leave: politely if the broker answers, else at once (a closed or silent connection never holds a tool). */
  async end(): Promise<void> {
    const polite = new Promise<boolean>((r) => this.c.end(false, {}, () => r(true)));
    const ok = await Promise.race([polite, new Promise<boolean>((r) => setTimeout(() => r(false), Math.min(2000, this.timeoutMs)).unref())]);
    if (!ok) await new Promise<void>((r) => this.c.end(true, {}, () => r()));
  }
}

/**
 * A service's durable subscription (the collector): a persistent session (clean false, an MQTT 5
 * session expiry), so what arrives while the service is down waits on the broker; and each QoS 1
 * message acknowledged only after `handle` resolves — a kill -9 before the write means the broker
 * sends it again. MQTT.js takes the next message only after the acknowledgement: handling is one
 * at a time, in order, and a slow handler slows the broker's delivery (never memory here).
 */
export class DurableSubscriber {
  readonly connected$ = new BehaviorSubject(false);
  private constructor(private readonly c: MqttClient) {}

  static start(o: {
    url: string;
    username?: string | undefined;
    password?: string | undefined;
    ca?: string | undefined;
    clientId: string;
    subscriptions: string[];
    /** How long the broker keeps the session (and its queue) while the service is away. */
    sessionExpiryS: number;
    log: Logger;
    handle: (m: MqttMessage) => Promise<void>;
    /** Each (re)connect, once the subscriptions stand: what the service missed meanwhile can be asked for now. */
    subscribed?: () => void;
  }): DurableSubscriber {
    const opts: IClientOptions = {
      clientId: o.clientId,
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: o.sessionExpiryS },
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
      resubscribe: false,
    };
    if (o.username !== undefined) opts.username = o.username;
    if (o.password !== undefined) opts.password = o.password;
    if (o.ca) opts.ca = readFileSync(o.ca);
    const c = mqtt.connect(o.url, opts);
    const s = new DurableSubscriber(c);
    let attempts = 0;
    c.handleMessage = (packet, done) => {
      const m: MqttMessage = { topic: packet.topic, payload: Buffer.from(packet.payload).toString('utf8'), retain: packet.retain };
      const props = packet.properties;
      if (props?.responseTopic) m.responseTopic = props.responseTopic;
      if (props?.correlationData) m.correlationData = Buffer.from(props.correlationData);
      o.handle(m).then(
        () => done(),
        (e: unknown) => {
          // The handler keeps what it must (it retries its own writes); a failure here is logged, and acknowledged.
          o.log.error({ err: (e as Error).message, topic: m.topic }, 'message not handled');
          done();
        },
      );
    };
    c.on('connect', (connack) => {
      attempts = 0;
      c.options.reconnectPeriod = 1000;
      o.log.info({ url: redactUrl(o.url), client_id: o.clientId, session_present: connack.sessionPresent }, 'site broker connected');
      s.connected$.next(true);
      c.subscribe(o.subscriptions, { qos: 1 }, (err) => (err ? o.log.error({ err: err.message }, 'subscribe failed') : o.subscribed?.()));
    });
    c.on('close', () => {
      if (s.connected$.value) o.log.warn('site broker disconnected; reconnecting with backoff');
      s.connected$.next(false);
      c.options.reconnectPeriod = backoffDelay(attempts++, { initialMs: 1000, maxMs: 30_000 });
    });
    c.on('error', (e) => o.log.warn({ err: e.message }, 'site broker error'));
    return s;
  }

  /** Publish (QoS 1, not retained) if connected: false when not sent. A reply carries its request's correlation data. */
  publish(topic: string, payload: string, correlationData?: Buffer): boolean {
    assertPublishable(topic);
    if (!this.c.connected) return false;
    this.c.publish(topic, payload, { qos: 1, ...(correlationData ? { properties: { correlationData } } : {}) });
    return true;
  }

  /** Leave within bounded time (a message being handled may hold a graceful end). */
  async stop(timeoutMs = 2000): Promise<void> {
    const graceful = new Promise<boolean>((r) => this.c.end(false, {}, () => r(true)));
    if (!(await Promise.race([graceful, new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs).unref())]))) await new Promise<void>((r) => this.c.end(true, {}, () => r()));
    this.connected$.next(false);
  }
}
