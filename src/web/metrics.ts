/**
 * Prometheus metrics (prom-client, one registry per gateway). Counters move with decisions, relay
 * pulses and door events (subscribers: they run after the relay); gauges are read at scrape time
 * from the gateway's state, so a scrape costs the door nothing between scrapes.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { DecisionEvent, DoorEvent } from '../domain/events.js';
import type { Status } from '../control/api.js';

export interface MetricsSource {
  status(): Promise<Status>;
  doorState(door: string): { lock: 'locked' | 'unlocked'; contact: string; alarm: string | null; mode: string };
  mqttConnected(): boolean | null;
  /** The fingerprint module answering (null: none configured). */
  fingerprintOnline(): boolean | null;
  /** Unusable frames per reader (Wiegand readers and bridges). */
  badFrames(): Map<string, number>;
  doors: readonly string[];
  started: number;
}

const MODES = ['normal', 'passage', 'lockdown'];

export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly decisions: Counter<'door' | 'decision' | 'reason'>;
  private readonly latency: Histogram<'door'>;
  private readonly relay: Counter<'door'>;
  private readonly alarms: Counter<'door' | 'type'>;
  private readonly readerSeen = new Map<string, number>();

  constructor(private readonly src: MetricsSource) {
    const r = this.registry;
    collectDefaultMetrics({ register: r, eventLoopMonitoringPrecision: 10 });
    // prom-client names three gauges *_total (nodejs_active_handles_total …), which Prometheus
    // reserves for counters (promtool check metrics fails them); the same counts are kept by type
    // in nodejs_active_handles, nodejs_active_requests and nodejs_active_resources.
    for (const m of r.getMetricsAsArray()) if (m.name.endsWith('_total') && (m as { type?: unknown }).type === 'gauge') r.removeSingleMetric(m.name);
    this.decisions = new Counter({ name: 'doorgw_decisions_total', help: 'Access decisions by door, decision and reason.', labelNames: ['door', 'decision', 'reason'], registers: [r] });
    this.latency = new Histogram({
      name: 'doorgw_decision_latency_seconds',
      help: 'Credential to decision (relay commanded) latency.',
      labelNames: ['door'],
      buckets: [0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05],
      registers: [r],
    });
    this.relay = new Counter({ name: 'doorgw_relay_activations_total', help: 'Relay pulses (the lock released).', labelNames: ['door'], registers: [r] });
    this.alarms = new Counter({ name: 'doorgw_door_events_total', help: 'Door events (contact changes, alarms, mode changes, operator actions) by type.', labelNames: ['door', 'type'], registers: [r] });
    for (const door of src.doors) {
      for (const d of ['grant', 'deny']) this.decisions.inc({ door, decision: d, reason: d === 'grant' ? 'rule_match' : 'unknown_user' }, 0);
      this.relay.inc({ door }, 0);
    }

    const doorGauge = (name: string, help: string, value: (s: ReturnType<MetricsSource['doorState']>) => number): void => {
      new Gauge({
        name,
        help,
        labelNames: ['door'],
        registers: [r],
        collect() {
          for (const door of src.doors) this.set({ door }, value(src.doorState(door)));
        },
      });
    };
    doorGauge('doorgw_door_unlocked', '1 while the lock is released.', (s) => (s.lock === 'unlocked' ? 1 : 0));
    doorGauge('doorgw_door_open', '1 while the door contact reports open (-1: no contact wired).', (s) => (s.contact === 'open' ? 1 : s.contact === 'closed' ? 0 : -1));
    doorGauge('doorgw_door_alarm', '1 while the door is in alarm (held or forced open).', (s) => (s.alarm ? 1 : 0));
    new Gauge({
      name: 'doorgw_door_mode',
      help: '1 for the door\'s current mode.',
      labelNames: ['door', 'mode'],
      registers: [r],
      collect() {
        for (const door of src.doors) {
          const m = src.doorState(door).mode;
          for (const mode of MODES) this.set({ door, mode }, m === mode ? 1 : 0);
        }
      },
    });
    new Gauge({
      name: 'doorgw_reader_last_seen_timestamp_seconds',
      help: 'When a reader last presented a credential.',
      labelNames: ['reader'],
      registers: [r],
      collect: () => {
        const g = this.registry.getSingleMetric('doorgw_reader_last_seen_timestamp_seconds') as Gauge<'reader'>;
        for (const [reader, at] of this.readerSeen) g.set({ reader }, at / 1000);
      },
    });
    // Gauges of things a gateway may not have are registered only when it has them.
    if (src.mqttConnected() !== null) {
      new Gauge({
        name: 'doorgw_mqtt_connected',
        help: '1 while connected to the MQTT broker (absent without MQTT).',
        registers: [r],
        collect() {
          this.set(src.mqttConnected() ? 1 : 0);
        },
      });
    }
    if (src.fingerprintOnline() !== null) {
      new Gauge({
        name: 'doorgw_fingerprint_module_up',
        help: '1 while the fingerprint module answers (absent without one).',
        registers: [r],
        collect() {
          this.set(src.fingerprintOnline() ? 1 : 0);
        },
      });
    }
    new Counter({
      name: 'doorgw_reader_bad_frames_total',
      help: 'Frames a reader sent that were dropped (parity, length, impossible timing).',
      labelNames: ['reader'],
      registers: [r],
      collect() {
        this.reset();
        for (const [reader, n] of src.badFrames()) this.inc({ reader }, n);
      },
    });
    new Gauge({ name: 'doorgw_start_time_seconds', help: 'When the gateway started.', registers: [r], collect() { this.set(src.started / 1000); } });

    // Everything from one status call per scrape.
    let snapshot: Promise<Status> | null = null;
    const status = (): Promise<Status> => (snapshot ??= src.status().finally(() => setImmediate(() => (snapshot = null))));
    const fromStatus = (name: string, help: string, labelNames: string[], fill: (g: Gauge, s: Status) => void): void => {
      new Gauge({
        name,
        help,
        labelNames,
        registers: [r],
        async collect() {
          fill(this, await status());
        },
      });
    };
    fromStatus('doorgw_directory_users', 'People the door knows, by layer.', ['layer'], (g, s) => {
      g.set({ layer: 'cloud' }, s.users - s.local_users);
      g.set({ layer: 'local' }, s.local_users);
    });
    fromStatus('doorgw_outbox_depth', 'Pass records waiting for the cloud.', [], (g, s) => g.set(s.outbox_depth));
    fromStatus('doorgw_outbox_oldest_age_seconds', 'Age of the oldest record waiting (0 when empty).', [], (g, s) => g.set(s.outbox_oldest === null ? 0 : (s.outbox_waiting_s ?? Math.max(0, Date.now() / 1000 - s.outbox_oldest))));
    fromStatus('doorgw_held_records', 'Pass records held aside.', [], (g, s) => g.set(s.held));
    fromStatus('doorgw_cloud_link_up', '1 while the cloud link is online (absent without a cloud).', ['provider'], (g, s) => s.cloud && g.set({ provider: s.cloud.provider }, s.cloud.link === 'online' ? 1 : 0));
    fromStatus('doorgw_last_full_sync_timestamp_seconds', 'When the directory was last fully synced.', [], (g, s) => s.cloud?.last_full_sync && g.set(s.cloud.last_full_sync / 1000));
    fromStatus('doorgw_clock_skew_seconds', 'Clock difference to the cloud.', [], (g, s) => typeof s.cloud?.clock_skew_s === 'number' && g.set(s.cloud.clock_skew_s));
    fromStatus('doorgw_storage_writable', '1 while the database can be written.', [], (g, s) => s.storage && g.set(s.storage.writable ? 1 : 0));
    fromStatus('doorgw_reader_up', '1 while a supervised (OSDP) reader is online and, where configured, secured.', ['reader', 'door'], (g, s) => {
      for (const x of s.readers ?? []) g.set({ reader: x.id, door: x.door }, x.state === 'online' ? 1 : 0);
    });
    fromStatus('doorgw_reader_session_restarts_last_minute', 'Secure-channel session restarts of a supervised reader in the last minute (a reader that cannot keep a session).', ['reader', 'door'], (g, s) => {
      for (const x of s.readers ?? []) if (x.restarts_last_minute !== undefined) g.set({ reader: x.id, door: x.door }, x.restarts_last_minute);
    });
    fromStatus('doorgw_reader_tamper', '1 while a supervised reader reports tamper.', ['reader', 'door'], (g, s) => {
      for (const x of s.readers ?? []) if (x.tamper !== null) g.set({ reader: x.id, door: x.door }, x.tamper ? 1 : 0);
    });
    fromStatus('doorgw_fire_release', '1 while a fire alarm holds the door released (latched included).', ['door'], (g, s) => {
      for (const d of s.io?.fire.doors ?? []) g.set({ door: d.door }, d.released ? 1 : 0);
    });
    fromStatus('doorgw_input_active', '1 while a named input (io.inputs) is active.', ['input', 'alarm'], (g, s) => {
      for (const i of s.io?.inputs ?? []) g.set({ input: i.name, alarm: i.alarm }, i.active ? 1 : 0);
    });
    fromStatus('doorgw_output_on', '1 while a named output (io.outputs) is on.', ['output'], (g, s) => {
      for (const o of s.io?.outputs ?? []) g.set({ output: o.name }, o.on ? 1 : 0);
    });
    fromStatus('doorgw_storage_free_bytes', 'Free space on the data directory\'s disk.', [], (g, s) => typeof s.storage?.free_bytes === 'number' && g.set(s.storage.free_bytes));
  }

  decision(d: DecisionEvent): void {
    this.decisions.inc({ door: d.door, decision: d.decision, reason: d.reason });
    this.latency.observe({ door: d.door }, d.latency_us / 1e6);
    if (d.reader) this.readerSeen.set(d.reader, d.at);
  }

  relayPulse(door: string): void {
    this.relay.inc({ door });
  }

  doorEvent(e: DoorEvent): void {
    this.alarms.inc({ door: e.door, type: e.type });
  }

  metricsText(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
