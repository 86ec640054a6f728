import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configJsonSchema } from '../../src/config/json-schema.js';

describe('docs/config.schema.json', () => {
  it('is what the configuration schema generates now (npm run config-schema after a schema change)', () => {
    const committed = JSON.parse(readFileSync(new URL('../../docs/config.schema.json', import.meta.url), 'utf8')) as unknown;
    expect(committed).toEqual(JSON.parse(JSON.stringify(configJsonSchema())));
  });

  it('carries the defaults, enums and ranges, and refuses unknown keys as doorgw does', () => {
    const s = configJsonSchema() as { properties: Record<string, { properties?: Record<string, unknown>; additionalProperties?: unknown }>; additionalProperties?: unknown };
    expect(s.additionalProperties).toBe(false);
    expect(s.properties.journal!.properties!.durability).toMatchObject({ default: 'batched', enum: ['batched', 'strict'] });
    expect(s.properties.io!.properties!.site_fire_latch).toMatchObject({ default: true, type: 'boolean' });
  });
});
