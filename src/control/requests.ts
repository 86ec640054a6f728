/**
 * The management requests integrators send over MQTT (`<base>/<gateway>/request/<name>`), mapped
 * onto the one GatewayApi the control socket and the CLI use. Each names the API method it calls,
 * whose role (roles.ts) is the broker ACL role allowed to send it: the shipped ACL grants `operator` exactly the operator requests' topics and `admin`
 * all of them (a test keeps the two in step). The broker enforces the role: an MQTT message carries
 * no trustworthy sender, so `by` in the journal is the channel, never a claimed name.
 */
import type { GatewayApi } from './api.js';
import { UsageError } from './errors.js';
import { API_ROLES } from './roles.js';
import { z } from 'zod';

export type Role = 'operator' | 'admin';

type Params = Record<string, unknown>;
interface RequestDef {
  /** The API method it calls: its role comes from the one table (roles.ts), as on every transport. */
  method: keyof GatewayApi;
  /** What the request takes (unknown keys pass: the API checks the fields it reads, the same for every transport). */
  params: z.ZodType<Params>;
  call: (api: GatewayApi, p: Params, by: string) => Promise<unknown>;
  /** What else it passes on to the method (for the reference). */
  more?: string;
}

/** The broker role a request needs: MQTT has no viewer, so reading is an operator's. */
export function roleOf(def: RequestDef): Role {
  return API_ROLES[def.method] === 'admin' ? 'admin' : 'operator';
}

// Field schemas with the messages integrators see (the first problem is the answer's error).
const str = (k: string) => z.string({ error: `${k} is required (a string)` }).min(1, `${k} is required (a string)`);
const int = (k: string) => z.number({ error: `${k} must be a whole number` }).int(`${k} must be a whole number`).refine(Number.isSafeInteger, `${k} must be a whole number`);
const seqs = z.array(z.number(), { error: 'seqs must be a list of record numbers' });
const params = <S extends z.ZodRawShape>(shape: S) => z.looseObject(shape);
/** Everything but the fields the caller may not set (the journal's `by`, our own `transaction`). */
const own = (p: Params): Params => {
  const { by: _b, transaction: _t, ...rest } = p;
  return rest;
};
const opt = <K extends string, V>(k: K, v: V | undefined): { [P in K]?: V } => (v === undefined ? {} : ({ [k]: v } as { [P in K]: V }));

/** A request: its method, its parameters' schema, and the call with them parsed. */
function req<S extends z.ZodType<Params>>(method: keyof GatewayApi, schema: S, call: (api: GatewayApi, p: z.output<S>, by: string) => Promise<unknown>, more?: string): RequestDef {
  return { method, params: schema, call: (api, p, by) => call(api, parseParams(schema, p), by), ...(more ? { more } : {}) };
}

/** Parsed, or a UsageError naming the first problem (with its key when the message does not). */
export function parseParams<S extends z.ZodType<Params>>(schema: S, p: unknown): z.output<S> {
  const r = schema.safeParse(p ?? {});
  if (r.success) return r.data;
  const i = r.error.issues[0]!;
  const key = i.path.join('.');
  throw new UsageError(key && !i.message.startsWith(key) ? `${key}: ${i.message}` : i.message);
}

const none = params({});
/** Passed on whole: the API method checks every field (users/add, journal/query, …). */
const any = z.record(z.string(), z.unknown());

export const REQUESTS: Record<string, RequestDef> = {
  status: req('status', none, (api) => api.status()),
  sync: req('sync', none, (api) => api.sync()),
  journal: req('journal', params({ limit: int('limit').optional() }), (api, p) => api.journal({ limit: Math.min(500, p.limit ?? 50) })),
  'journal/query': req('journalQuery', any, (api, p) => api.journalQuery(own(p))),
  'users/list': req('usersList', any, (api, p) => api.usersList(own(p))),
  'users/show': req('usersShow', params({ userid: str('userid') }), async (api, p) => {
    const u = await api.usersShow({ userid: p.userid });
    if (!u) throw new UsageError(`no user '${p.userid}'`, 'not_found');
    return u;
  }),
  'users/conflicts': req('usersConflicts', none, (api) => api.usersConflicts({})),
  // Blocking only ever denies: a guard may block a lost card at once.
  'users/block': req('usersBlock', any, (api, p, by) => api.usersBlock({ ...own(p), by })),
  'users/unblock': req('usersUnblock', any, (api, p, by) => api.usersUnblock({ ...own(p), by })),
  'users/add': req('usersAdd', any, (api, p, by) => api.usersAdd({ ...own(p), by })),
  'users/set': req('usersSet', params({ userid: str('userid') }), (api, p, by) => api.usersSet({ ...own(p), userid: p.userid, by }), 'and every field the method takes'),
  'users/remove': req('usersRemove', params({ userid: str('userid') }), (api, p, by) => api.usersRemove({ userid: p.userid, by })),
  'users/import': req('usersImport', params({ records: z.array(z.unknown(), { error: 'records must be a list' }), layer: z.enum(['local', 'cloud'], { error: 'layer must be local or cloud' }).optional() }), (api, p, by) =>
    api.usersImport({ records: p.records, ...opt('layer', p.layer), by }),
  ),
  'users/export': req('usersExport', none, (api) => api.usersExport({})),
  'door/open': req('open', params({ door: str('door') }), (api, p, by) => api.open({ door: p.door, by })),
  'door/mode': req('setMode', params({ door: str('door'), mode: str('mode'), duration_s: int('duration_s').optional() }), (api, p, by) =>
    api.setMode({ door: p.door, mode: p.mode as 'normal', ...opt('duration_s', p.duration_s), by }),
  ),
  muster: req('muster', params({ area: str('area').optional() }), (api, p) => api.muster({ ...opt('area', p.area) })),
  'muster/start': req('musterStart', params({ area: str('area'), end: z.boolean({ error: 'end must be true or false' }).optional() }), (api, p, by) => api.musterStart({ area: p.area, ...(p.end === true ? { end: true } : {}), by })),
  'muster/safe': req('musterSafe', params({ area: str('area'), userid: str('userid') }), (api, p, by) => api.musterSafe({ area: p.area, userid: p.userid, by })),
  'fire/reset': req('fireReset', params({ door: str('door').optional() }), (api, p, by) => api.fireReset({ ...opt('door', p.door), by })),
  'outbox/list': req('outbox', params({ limit: int('limit').optional() }), (api, p) => api.outbox({ limit: Math.min(1000, Math.max(1, p.limit ?? 100)) })),
  'outbox/requeue': req('requeue', params({ seqs: seqs.optional() }), (api, p, by) => api.requeue({ ...opt('seqs', p.seqs), by })),
  'outbox/discard': req('discard', params({ seqs: seqs.optional(), reason: str('reason').optional() }), (api, p, by) => api.discard({ ...opt('seqs', p.seqs), ...opt('reason', p.reason), by })),
  // Never forced over MQTT, and only into backup.dir (the API refuses otherwise).
  backup: req('backup', params({ file: str('file') }), (api, p, by) => api.backup({ file: p.file, by })),
};

/** Request names a role may send (what the shipped ACL grants). */
export function requestsFor(role: Role): string[] {
  return Object.entries(REQUESTS)
    .filter(([, d]) => role === 'admin' || roleOf(d) === 'operator')
    .map(([n]) => n);
}
