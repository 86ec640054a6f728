/** Load configuration: YAML file, then DOORGW_* environment overrides, then schema validation. */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { configSchema, type Config } from './schema.js';

/** `--config` default: $DOORGW_CONFIG (the installed `doorgw` wrapper sets it), else the laptop config. */
export const DEFAULT_CONFIG_PATH = process.env.DOORGW_CONFIG ?? 'config/doorgw.yaml';
/** Environment variables that are not configuration overrides. */
const NOT_OVERRIDES = new Set(['DOORGW_CONFIG', 'DOORGW_TEST_LOG']);

export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`invalid configuration in ${source}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

type Tree = Record<string, unknown>;

/** `doors[0].relay.pin` style path for messages. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `${out ? '.' : ''}${String(p)}`;
  return out || '(root)';
}

/** An env value: JSON when it parses (numbers, booleans, lists), otherwise the raw string. */
function envValue(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

/**
 * Apply `DOORGW_<SEGMENT>__<SEGMENT>=value` overrides: segments are lower-cased keys, numeric
 * segments index arrays. `DOORGW_DATA_DIR` → data_dir, `DOORGW_MQTT__URL` → mqtt.url,
 * `DOORGW_DOORS__0__RELAY__PULSE_MS` → doors[0].relay.pulse_ms.
 */
export function applyEnvOverrides(tree: Tree, env: NodeJS.ProcessEnv): string[] {
  const applied: string[] = [];
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith('DOORGW_') || raw === undefined || NOT_OVERRIDES.has(name)) continue;
    const segs = name.slice('DOORGW_'.length).toLowerCase().split('__');
    if (segs.some((s) => s === '' || s === '__proto__' || s === 'constructor' || s === 'prototype')) continue;
    let node: Tree = tree;
    segs.forEach((seg, i) => {
      const key = /^\d+$/.test(seg) && Array.isArray(node) ? Number(seg) : seg;
      if (i === segs.length - 1) {
        (node as Record<string | number, unknown>)[key] = envValue(raw);
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
  return applied;
}

/** Validate a raw tree; throws ConfigError naming each key path and problem. */
export function validateConfig(raw: unknown, source: string): Config {
  const r = configSchema.safeParse(raw);
  if (r.success) return r.data;
  throw new ConfigError(source, r.error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`));
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
