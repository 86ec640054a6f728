/**
 * Logging: pino, JSON lines in production, pretty on a terminal. Secrets are redacted wherever
 * they appear in logged objects; modules log through child loggers (`{ module: 'store' }`).
 */
import { pino, type Logger } from 'pino';
import { createRequire } from 'node:module';

// pino-pretty only on a terminal: loaded when needed (a service logs JSON and never pays for it).
const require = createRequire(import.meta.url);

export type { Logger };

export const REDACT_PATHS = [
  'secret', '*.secret', '*.*.secret',
  'password', '*.password', '*.*.password',
  'app_secret', '*.app_secret', '*.*.app_secret',
  'corpsecret', '*.corpsecret', '*.*.corpsecret',
  'token', '*.token', 'access_token', '*.access_token', 'tenant_access_token', '*.tenant_access_token',
  'private_key', '*.private_key',
  'verification_token', '*.verification_token', 'encrypt_key', '*.encrypt_key',
];

export interface LogOptions {
  level: string;
  pretty: boolean | 'auto';
  /** Where to write; stdout by default. */
  destination?: NodeJS.WritableStream;
  /** Secret values scrubbed from every line, wherever they appear (see secretValues). */
  secrets?: readonly string[];
}

/** Keys whose values are secrets, in configuration and in logged objects. */
export const SECRET_KEYS: ReadonlySet<string> = new Set(['password', 'app_secret', 'corpsecret', 'secret', 'token', 'access_token', 'tenant_access_token', 'refresh_token', 'private_key', 'verification_token', 'encrypt_key']);
const CENSOR = '[redacted]';
const URL_USERINFO = /([a-z][a-z0-9+.-]*:\/\/)[^@/\s"'?#]*@/gi;

/** A URL without its userinfo (`mqtt://user:pw@host` → `mqtt://[redacted]@host`). */
export function redactUrl(s: string): string {
  return s.includes('://') ? s.replace(URL_USERINFO, `$1${CENSOR}@`) : s;
}

/** Every secret value in a configuration tree: secret-named keys and passwords in URLs. */
export function secretValues(tree: unknown): string[] {
  const out = new Set<string>();
  const walk = (v: unknown, key: string | null): void => {
    if (typeof v === 'string') {
      if (key !== null && SECRET_KEYS.has(key) && v.length > 0) out.add(v);
      for (const m of v.matchAll(/[a-z][a-z0-9+.-]*:\/\/([^@/\s"'?#]*)@/gi)) {
        const info = m[1]!;
        const colon = info.indexOf(':');
        if (colon >= 0 && colon < info.length - 1) out.add(decodeURIComponentSafe(info.slice(colon + 1)));
      }
    } else if (Array.isArray(v)) v.forEach((x) => walk(x, null));
    else if (typeof v === 'object' && v !== null) for (const [k, x] of Object.entries(v)) walk(x, k);
  };
  walk(tree, null);
  // Very short values would censor ordinary text; such a secret is no secret anyway.
  return [...out].filter((x) => x.length >= 4);
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** A copy of `v` with secret-named keys, URL userinfo and known secret values replaced. */
export function redactSecrets(v: unknown, secrets: readonly string[] = secretValues(v)): unknown {
  if (typeof v === 'string') return scrub(v, secrets);
  if (Array.isArray(v)) return v.map((x) => redactSecrets(x, secrets));
  if (typeof v !== 'object' || v === null) return v;
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, SECRET_KEYS.has(k) && x !== undefined ? CENSOR : redactSecrets(x, secrets)]));
}

/** Replace URL userinfo and every occurrence of a secret (raw or JSON-escaped) in a text. */
export function scrub(text: string, secrets: readonly string[]): string {
  let t = redactUrl(text);
  for (const sec of secrets) {
    if (t.includes(sec)) t = t.split(sec).join(CENSOR);
    const esc = JSON.stringify(sec).slice(1, -1);
    if (esc !== sec && t.includes(esc)) t = t.split(esc).join(CENSOR);
  }
  return t;
}

/**
 * The log sink with scrubbing in front: redaction by key (pino's redact) is not enough, a secret
 * can sit in any string (a URL, an error message).
 */
function scrubbing(dest: { write(line: string): unknown }, secrets: readonly string[]): { write(line: string): void } {
  return {
    write: (line: string) => {
      const clean = scrub(line, secrets);
      RECENT_LOG.push(clean);
      dest.write(clean);
    },
  };
}

/**
 * The newest log lines of this process (JSON, already scrubbed), bounded by bytes: what a cloud that
 * asks for the device's log (WeCom push_fetch_log) is sent. Oldest lines go first.
 */
export class LogRing {
  private lines: string[] = [];
  private head = 0;
  private bytes = 0;
  constructor(private readonly maxBytes: number) {}

  push(raw: string): void {
    const line = raw.endsWith('\n') ? raw.slice(0, -1) : raw;
    this.lines.push(line);
    this.bytes += line.length;
    while (this.bytes > this.maxBytes && this.head < this.lines.length) this.bytes -= this.lines[this.head++]!.length;
    if (this.head > 4096) {
      this.lines = this.lines.slice(this.head);
      this.head = 0;
    }
  }

  /** The newest lines passing `keep`, oldest first, at most `maxBytes` in all. */
  newest(keep: (entry: { level?: number; module?: string }) => boolean, maxBytes: number): string[] {
    const out: string[] = [];
    let size = 0;
    for (let i = this.lines.length - 1; i >= this.head; i--) {
      const line = this.lines[i]!;
      let e: { level?: number; module?: string };
      try {
        e = JSON.parse(line) as { level?: number; module?: string };
      } catch {
        continue;
      }
      if (!keep(e)) continue;
      if (size + line.length > maxBytes) break;
      size += line.length;
      out.push(line);
    }
    return out.reverse();
  }
}

/** This process's recent log (4 MiB). */
export const RECENT_LOG = new LogRing(4 << 20);

export function createLogger(opts: LogOptions): Logger {
  const dest = opts.destination ?? process.stdout;
  const isTty = (dest as { isTTY?: boolean }).isTTY === true;
  const usePretty = opts.pretty === 'auto' ? isTty : opts.pretty;
  const base = { level: opts.level, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, base: { pid: process.pid } };
  if (usePretty) {
    const pretty = require('pino-pretty') as typeof import('pino-pretty');
    return pino(base, scrubbing(pretty({ destination: dest, colorize: isTty, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', singleLine: true, sync: true }), opts.secrets ?? []));
  }
  return pino(base, scrubbing(dest, opts.secrets ?? []));
}
