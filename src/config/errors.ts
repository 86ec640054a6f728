/** What the CLI needs of the configuration before loading it (kept light: no schema, no YAML). */

/** `--config` default: $DOORGW_CONFIG (the installed `doorgw` wrapper sets it), else the laptop config. */
export const DEFAULT_CONFIG_PATH = process.env.DOORGW_CONFIG ?? 'config/doorgw.yaml';

/** Defaults the schema applies, which `doorgw status` reads without the schema (see cli/quick-status). */
export const DEFAULT_DATA_DIR = './data';
export const DEFAULT_QR_CLOCK_SKEW_S = 30;

export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`invalid configuration in ${source}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

