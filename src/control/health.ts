/**
 * Health: why a running gateway is unhealthy, from its status alone. Its own module, importing only
 * types, so that `doorgw status` (the systemd health check, run every few seconds) loads no more
 * than the configuration and the control socket.
 */
import type { Status } from './api.js';

export interface HealthLimits {
  maxLinkDownS: number;
  maxOutboxAgeS: number;
  maxSkewS: number;
}

/** Seconds a broker link may be down before MQTT readers make it a health problem (a reconnect or two). */
export const MQTT_GRACE_S = 15;
/** A supervised reader `connecting` longer than this, or restarting its session this often a minute, is a health problem. */
export const READER_CONNECTING_S = 20;
export const READER_RESTARTS_PER_MIN = 5;

/** Why a running gateway is unhealthy (empty: healthy). */
export function healthProblems(s: Status, limits: HealthLimits, nowMs = Date.now()): string[] {
  const problems: string[] = [];
  const st = s.storage;
  if (st && !st.writable) problems.push(`database not writable (${st.error ?? 'write failed'}): ${st.held_in_memory} records held in memory${st.dropped ? `, ${st.dropped} dropped` : ''}`);
  if (st?.low) problems.push(`disk space low in the data directory: ${Math.round((st.free_bytes ?? 0) / 1024 / 1024)} MB free`);
  if (s.web_error) problems.push(`web console not serving: ${s.web_error}`);
  if (s.fingerprint_module === 'offline') problems.push('fingerprint module not answering (unplugged, unpowered, or its serial line: doorgw hw probe)');
  for (const r of s.readers ?? []) {
    if (r.state === 'offline' || r.state === 'refused' || r.state === 'install') problems.push(`reader ${r.id} ${r.state === 'install' ? 'awaits enrollment (doorgw osdp enroll ' + r.id + ')' : r.state}: ${r.detail}`);
    // `connecting` is healthy for a moment, not for long: a reader that cannot keep a session (noise
    // on the line, a failing handshake) reads nothing securely.
    else if (r.state === 'connecting' && (r.state_for_s ?? 0) > READER_CONNECTING_S) problems.push(`reader ${r.id} cannot establish a session (connecting for ${r.state_for_s} s): ${r.detail}`);
    if ((r.restarts_last_minute ?? 0) >= READER_RESTARTS_PER_MIN) problems.push(`reader ${r.id} restarted its session ${r.restarts_last_minute} times in the last minute (line noise, wiring or termination?): ${r.detail}`);
    if (r.tamper) problems.push(`reader ${r.id} reports tamper`);
    if (r.power_failure) problems.push(`reader ${r.id} reports a power failure`);
  }
  // MQTT readers are heard only through the broker: a link down beyond a reconnect or two is a door
  // that cannot read those credentials. (Without MQTT readers, status shows the link and no more.)
  if (s.mqtt && !s.mqtt.connected && s.mqtt.readers.length && s.mqtt.down_s > MQTT_GRACE_S) {
    problems.push(`mqtt broker unreachable for ${s.mqtt.down_s} s: readers ${s.mqtt.readers.join(', ')} cannot be heard`);
  }
  const c = s.cloud;
  if (c?.credentials_problem) problems.push(c.credentials_problem);
  else if (c?.link === 'unprovisioned') problems.push(`cloud ${c.provider}: device not activated (doorgw ${c.provider} activate)`);
  if (c && c.last_full_sync === null && c.directory_version === null && !c.credentials_problem && c.link !== 'unprovisioned') {
    problems.push(`cloud ${c.provider}: no directory synced yet (link ${c.link}${c.last_error ? `, last error: ${c.last_error}` : ''})`);
  }
  if (c && c.link !== 'online' && c.link !== 'unprovisioned') {
    const down = Math.round((nowMs - c.since) / 1000);
    if (down > limits.maxLinkDownS) problems.push(`cloud link ${c.link} for ${down} s (limit ${limits.maxLinkDownS} s)`);
  }
  if (s.outbox_oldest !== null) {
    const age = s.outbox_waiting_s ?? Math.round(nowMs / 1000 - s.outbox_oldest);
    if (age > limits.maxOutboxAgeS) problems.push(`outbox not draining: oldest record ${age} s old, ${s.outbox_depth} queued (limit ${limits.maxOutboxAgeS} s)`);
  }
  if (c?.clock_skew_s !== null && c?.clock_skew_s !== undefined && Math.abs(c.clock_skew_s) > limits.maxSkewS) {
    problems.push(`clock skew ${c.clock_skew_s} s against the cloud (limit ${limits.maxSkewS} s): QR validity depends on the clock`);
  }
  return problems;
}
