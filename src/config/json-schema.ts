/**
 * The configuration schema as JSON Schema (draft 2020-12), generated from the one zod schema: for
 * editors (`# yaml-language-server: $schema=…/docs/config.schema.json`) and integrators' tooling.
 * Types, enums, ranges and defaults come through; meanings are in docs/configuration.md. Checks zod
 * runs in code (time zones, rules, cross-references) are left out of it (`doorgw config check` runs
 * them all).
 */
import { z } from 'zod';
import { configSchema } from './schema.js';

export function configJsonSchema(): Record<string, unknown> {
  const s = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return { ...s, $id: 'https://doorgw.invalid/config.schema.json', title: 'doorgw configuration (version 1)' };
}
