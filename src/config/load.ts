/** Load configuration: YAML file, then DOORGW_* environment overrides, then schema validation. */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { configSchema, type Config } from './schema.js';
import { ConfigError, DEFAULT_CONFIG_PATH } from './errors.js';

/** DOORGW_ variables that are not configuration overrides: the site tool's account and key among them. */
const NOT_OVERRIDES = new Set(['DOORGW_CONFIG', 'DOORGW_TEST_LOG', 'DOORGW_SITE_USERNAME', 'DOORGW_SITE_PASSWORD', 'DOORGW_SITE_KEY', 'DOORGW_COLLECTOR_CONFIG', 'DOORGW_COLLECTOR_PASSWORD']);

type Tree = Record<string, unknown>;

/** `doors[0].relay.pin` style path for messages. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `${out ? '.' : ''}${String(p)}`;
  return out || '(root)';
}

/** The scalar kinds an env value may be converted to, from the schema at its key path. */
type Kind = 'string' | 'number' | 'boolean' | 'json';

interface ZodLike {
  _zod: { def: { type: string; shape?: Record<string, ZodLike>; element?: ZodLike; innerType?: ZodLike; in?: ZodLike; out?: ZodLike; options?: ZodLike[]; values?: unknown[] } };
}

/** The schema node at a key path (defaults, optionals and pipes unwrapped); null when there is no such key. */
function schemaAt(root: ZodLike, segs: readonly string[]): ZodLike | null {
  let node: ZodLike | undefined = root;
  for (let i = 0; ; i++) {
    node = unwrap(node);
    if (i === segs.length) return node;
    const def: ZodLike['_zod']['def'] = node._zod.def;
    if (def.type === 'object') node = def.shape?.[segs[i]!];
    else if (def.type === 'array' && /^\d+$/.test(segs[i]!)) node = def.element;
    else return null;
    if (!node) return null;
  }
}

function unwrap(n: ZodLike): ZodLike {
  for (;;) {
    const d = n._zod.def;
    if ((d.type === 'default' || d.type === 'optional' || d.type === 'nullable') && d.innerType) n = d.innerType;
    else if (d.type === 'pipe' && d.in && d.out) n = d.in._zod.def.type === 'transform' ? d.out : d.in;
    else return n;
  }
}

/** What scalar kinds a node accepts (a union may accept several). */
function kindsOf(n: ZodLike): Set<Kind> {
  const d = unwrap(n)._zod.def;
  switch (d.type) {
    case 'number': return new Set(['number']);
    case 'boolean': return new Set(['boolean']);
    case 'literal': return new Set((d.values ?? []).map((v) => (typeof v === 'number' ? 'number' : typeof v === 'boolean' ? 'boolean' : 'string')));
    case 'union': return new Set((d.options ?? []).flatMap((o) => [...kindsOf(o)]));
    case 'object': case 'array': case 'record': return new Set(['json']);
    default: return new Set(['string']);
  }
}

/**
 * Type an env value by the schema, never by its look: a password `1e3` stays the string `1e3`,
 * a number key takes only a plain decimal, a list or section takes JSON.
 */
function envValue(raw: string, kinds: Set<Kind>): unknown {
  if (kinds.has('number') && /^-?\d+(\.\d+)?$/.test(raw.trim())) return Number(raw.trim());
  if (kinds.has('boolean') && /^(true|false)$/.test(raw.trim())) return raw.trim() === 'true';
  if (kinds.has('json') && !kinds.has('string')) {
    try {
      return JSON.parse(raw);
    } catch {
      return raw; // the schema names the key and what it expects
    }
  }
  return raw;
}

/**
 * Apply `DOORGW_<SEGMENT>__<SEGMENT>=value` overrides: segments are lower-cased keys, numeric
 * segments index arrays. `DOORGW_DATA_DIR` → data_dir, `DOORGW_MQTT__URL` → mqtt.url,
 * `DOORGW_DOORS__0__RELAY__PULSE_MS` → doors[0].relay.pulse_ms.
 */
export function applyEnvOverrides(tree: Tree, env: NodeJS.ProcessEnv): string[] {
  const applied: string[] = [];
  const unknown: string[] = [];
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith('DOORGW_') || raw === undefined || NOT_OVERRIDES.has(name)) continue;
    const segs = name.slice('DOORGW_'.length).toLowerCase().split('__');
    if (segs.some((s) => s === '' || s === '__proto__' || s === 'constructor' || s === 'prototype')) {
      unknown.push(`${name}: not a configuration key`);
      continue;
    }
    const target = schemaAt(configSchema as unknown as ZodLike, segs);
    if (!target) {
      unknown.push(`${name}: no configuration key ${formatPath(segs.map((x) => (/^\d+$/.test(x) ? Number(x) : x)))} (variables starting DOORGW_ are configuration overrides)`);
      continue;
    }
    const kinds = kindsOf(target);
    let node: Tree = tree;
    segs.forEach((seg, i) => {
      const key = /^\d+$/.test(seg) && Array.isArray(node) ? Number(seg) : seg;
      if (i === segs.length - 1) {
        (node as Record<string | number, unknown>)[key] = envValue(raw, kinds);
      } else {
        let next = (node as Record<string | number, unknown>)[key];
        if (typeof next !== 'object' || next === null) {
          next = /^\d+$/.test(segs[i + 1]!) ? [] : {};
          (node as Record<string | number, unknown>)[key] = next;
        }
        node = next as Tree;
      }
    });
    applied.push(name);
  }
  if (unknown.length) throw new ConfigError('the environment', unknown);
  return applied;
}

/** Validate a raw tree; throws ConfigError naming each key path and problem. */
export function validateConfig(raw: unknown, source: string): Config {
  const r = configSchema.safeParse(raw);
  if (r.success) return r.data;
  throw new ConfigError(source, r.error.issues.map((i) => `${formatPath(i.path)}: ${i.message}${kindHint(raw, i)}`));
}

/** A key of another reader kind (`d0` on a USB scanner) says whose it is not. */
function kindHint(raw: unknown, i: { code: string; path: readonly PropertyKey[] }): string {
  const [doors, d, readers, r] = i.path;
  if (i.code !== 'unrecognized_keys' || doors !== 'doors' || readers !== 'readers' || i.path.length !== 4) return '';
  const type = (raw as { doors?: { readers?: { type?: unknown }[] }[] }).doors?.[d as number]?.readers?.[r as number]?.type;
  return typeof type === 'string' ? ` (not a key of a ${type} reader)` : '';
}

export interface LoadedConfig {
  config: Config;
  path: string;
  envApplied: string[];
}

/** Read, override and validate. Relative `data_dir` and socket paths resolve against the working directory. */
export function loadConfig(path = DEFAULT_CONFIG_PATH, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(path, [`cannot read the file: ${(e as Error).message}`]);
  }
  let tree: unknown;
  try {
    tree = parseYaml(text) ?? {};
  } catch (e) {
    throw new ConfigError(path, [`not valid YAML: ${(e as Error).message.split('\n')[0]}`]);
  }
  if (typeof tree !== 'object' || tree === null || Array.isArray(tree)) throw new ConfigError(path, ['(root): must be a mapping of keys']);
  const envApplied = applyEnvOverrides(tree as Tree, env);
  const config = validateConfig(tree, path);
  config.data_dir = isAbsolute(config.data_dir) ? config.data_dir : resolve(config.data_dir);
  return { config, path, envApplied };
}

/** The control socket: configured, or `doorgw.sock` in the data directory. */
export function controlSocketPath(config: Config): string {
  return config.control.socket ?? resolve(config.data_dir, 'doorgw.sock');
}
