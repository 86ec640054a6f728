/** What the CLI needs of the configuration before loading it (kept light: no schema, no YAML). */

/** `--config` default: $DOORGW_CONFIG (the installed `doorgw` wrapper sets it), else the laptop config. */
export const DEFAULT_CONFIG_PATH = process.env.DOORGW_CONFIG ?? 'config/doorgw.yaml';

export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`invalid configuration in ${source}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

