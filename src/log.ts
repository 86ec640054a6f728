/**
 * Logging: pino, JSON lines in production, pretty on a terminal. Secrets are redacted wherever
 * they appear in logged objects; modules log through child loggers (`{ module: 'store' }`).
 */
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

export const REDACT_PATHS = [
  'secret', '*.secret', '*.*.secret',
  'password', '*.password', '*.*.password',
  'app_secret', '*.app_secret', '*.*.app_secret',
  'corpsecret', '*.corpsecret', '*.*.corpsecret',
  'token', '*.token', 'access_token', '*.access_token', 'tenant_access_token', '*.tenant_access_token',
  'private_key', '*.private_key',
];

export interface LogOptions {
  level: string;
  pretty: boolean | 'auto';
  /** Where to write; stdout by default. */
  destination?: NodeJS.WritableStream;
}

export function createLogger(opts: LogOptions): Logger {
  const dest = opts.destination ?? process.stdout;
  const isTty = (dest as { isTTY?: boolean }).isTTY === true;
  const usePretty = opts.pretty === 'auto' ? isTty : opts.pretty;
  const base = { level: opts.level, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, base: { pid: process.pid } };
  if (usePretty) {
    return pino(base, pretty({ destination: dest, colorize: isTty, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', singleLine: true, sync: true }));
  }
  return pino(base, dest);
}
