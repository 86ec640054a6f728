/**
 * docs/api-reference.md from the code: every GatewayApi method (the one API the CLI, the control
 * socket, MQTT requests and the console call) with its role, its MQTT request, its parameters and
 * result as the TypeScript types say, and its doc comment. `npm run api-reference` writes it; a
 * test fails when it is stale.
 */
import { writeFileSync } from 'node:fs';
import ts from 'typescript';
import { API_ROLES } from '../src/control/roles.js';
import { z } from 'zod';
import { REQUESTS, roleOf } from '../src/control/requests.js';

export function apiReference(root = new URL('..', import.meta.url).pathname): string {
  const file = `${root}src/control/api.ts`;
  const program = ts.createProgram([file], { strict: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, skipLibCheck: true });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(file)!;
  let api: ts.InterfaceDeclaration | undefined;
  ts.forEachChild(source, (n) => {
    if (ts.isInterfaceDeclaration(n) && n.name.text === 'GatewayApi') api = n;
  });
  if (!api) throw new Error('no GatewayApi in src/control/api.ts');
  const type = checker.getTypeAtLocation(api);
  const mqtt = new Map<string, string[]>();
  for (const [name, def] of Object.entries(REQUESTS)) mqtt.set(def.method, [...(mqtt.get(def.method) ?? []), name]);
  const flags = ts.TypeFormatFlags.NoTruncation | ts.TypeFormatFlags.UseAliasDefinedOutsideCurrentScope;
  const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\s+/g, ' ');
  const rows = checker
    .getPropertiesOfType(type)
    .map((p) => {
      const sig = checker.getSignaturesOfType(checker.getTypeOfSymbol(p), ts.SignatureKind.Call)[0]!;
      const param = sig.parameters[0];
      const params = param ? checker.typeToString(checker.getTypeOfSymbol(param), api, flags) : '—';
      const result = checker.typeToString(sig.getReturnType(), api, flags).replace(/^Promise<(.*)>$/, '$1');
      const doc = ts.displayPartsToString(p.getDocumentationComment(checker));
      const name = p.getName() as keyof typeof API_ROLES;
      return `| \`${name}\` | ${API_ROLES[name]} | ${(mqtt.get(name) ?? []).map((r) => `\`${r}\``).join(', ') || '—'} | \`${cell(params)}\` | \`${cell(result)}\` | ${cell(doc) || ''} |`;
    })
    .sort();
  return [
    '# API reference',
    '',
    'Generated from `src/control/api.ts` (`npm run api-reference`; a test keeps it current). One API',
    'for every transport: the CLI over the control socket, MQTT requests (`<base>/<gateway>/request/<name>`,',
    'see [api.md](api.md#mqtt-api)) and the web console. The role is the least one that may call the',
    'method (`src/control/roles.ts`); over MQTT a viewer\'s method is an operator\'s request.',
    '',
    '| method | role | MQTT request | parameters | result | what it does |',
    '|---|---|---|---|---|---|',
    ...rows,
    '',
    '## MQTT requests',
    '',
    'From the request table (`src/control/requests.ts`): each request\'s broker role and the parameters its',
    'schema reads before the call (`?`: optional). "as the method" passes every field on to the API',
    'method, which checks them (the same checks on every transport); `by` is never taken from a payload.',
    '',
    '| request | broker role | method | parameters |',
    '|---|---|---|---|',
    ...Object.entries(REQUESTS)
      .map(([name, def]) => `| \`${name}\` | ${roleOf(def)} | \`${def.method}\` | ${cell(paramsOf(def.params))}${def.more ? ` ${def.more}` : ''} |`)
      .sort(),
    '',
  ].join('\n');
}

/** A request schema's fields as `name: type` (`?` optional), from its JSON Schema. */
function paramsOf(schema: z.ZodType): string {
  const j = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as { properties?: Record<string, { type?: string; items?: { type?: string }; enum?: string[] }>; required?: string[]; propertyNames?: unknown };
  if (j.propertyNames) return 'as the method';
  const props = Object.entries(j.properties ?? {});
  if (props.length === 0) return '—';
  const type = (p: { type?: string; items?: { type?: string }; enum?: string[] }): string => (p.enum ? p.enum.join(' | ') : p.type === 'array' ? `${p.items?.type ?? 'any'}[]` : (p.type ?? 'any'));
  return props.map(([k, p]) => `\`${k}${j.required?.includes(k) ? '' : '?'}\`: ${type(p)}`).join(', ');
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) writeFileSync(new URL('../docs/api-reference.md', import.meta.url), apiReference());
