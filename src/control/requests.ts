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

export type Role = 'operator' | 'admin';

type Params = Record<string, unknown>;
interface RequestDef {
  /** The API method it calls: its role comes from the one table (roles.ts), as on every transport. */
  method: keyof GatewayApi;
  call: (api: GatewayApi, p: Params, by: string) => Promise<unknown>;
}

/** The broker role a request needs: MQTT has no viewer, so reading is an operator's. */
export function roleOf(def: RequestDef): Role {
  return API_ROLES[def.method] === 'admin' ? 'admin' : 'operator';
}

const str = (p: Params, k: string, required = true): string | undefined => {
  const v = p[k];
  if (v === undefined && !required) return undefined;
  if (typeof v !== 'string' || v.length === 0) throw new UsageError(`${k} is required (a string)`);
  return v;
};
const int = (p: Params, k: string): number | undefined => {
  const v = p[k];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new UsageError(`${k} must be a whole number`);
  return v;
};
const seqs = (p: Params): number[] | undefined => {
  const v = p.seqs;
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'number')) throw new UsageError('seqs must be a list of record numbers');
  return v as number[];
};
/** Everything but the fields the caller may not set (the journal's `by`, our own `transaction`). */
const own = (p: Params): Params => {
  const { by: _b, transaction: _t, ...rest } = p;
  return rest;
};
const opt = <K extends string, V>(k: K, v: V | undefined): { [P in K]?: V } => (v === undefined ? {} : ({ [k]: v } as { [P in K]: V }));

export const REQUESTS: Record<string, RequestDef> = {
  status: { method: 'status', call: (api) => api.status() },
  sync: { method: 'sync', call: (api) => api.sync() },
  journal: { method: 'journal', call: (api, p) => api.journal({ limit: Math.min(500, int(p, 'limit') ?? 50) }) },
  'journal/query': { method: 'journalQuery', call: (api, p) => api.journalQuery(own(p)) },
  'users/list': { method: 'usersList', call: (api, p) => api.usersList(own(p)) },
  'users/show': {
    method: 'usersShow',
    call: async (api, p) => {
      const u = await api.usersShow({ userid: str(p, 'userid')! });
      if (!u) throw new UsageError(`no user '${String(p.userid)}'`, 'not_found');
      return u;
    },
  },
  'users/conflicts': { method: 'usersConflicts', call: (api) => api.usersConflicts({}) },
  // Blocking only ever denies: a guard may block a lost card at once.
  'users/block': { method: 'usersBlock', call: (api, p, by) => api.usersBlock({ ...own(p), by }) },
  'users/unblock': { method: 'usersUnblock', call: (api, p, by) => api.usersUnblock({ ...own(p), by }) },
  'users/add': { method: 'usersAdd', call: (api, p, by) => api.usersAdd({ ...own(p), by }) },
  'users/set': { method: 'usersSet', call: (api, p, by) => api.usersSet({ ...own(p), userid: str(p, 'userid')!, by }) },
  'users/remove': { method: 'usersRemove', call: (api, p, by) => api.usersRemove({ userid: str(p, 'userid')!, by }) },
  'users/import': {
    method: 'usersImport',
    call: (api, p, by) => {
      if (!Array.isArray(p.records)) throw new UsageError('records must be a list');
      if (p.layer !== undefined && p.layer !== 'local' && p.layer !== 'cloud') throw new UsageError('layer must be local or cloud');
      const layer = p.layer;
      return api.usersImport({ records: p.records as unknown[], ...(layer ? { layer } : {}), by });
    },
  },
  'users/export': { method: 'usersExport', call: (api) => api.usersExport({}) },
  'door/open': { method: 'open', call: (api, p, by) => api.open({ door: str(p, 'door')!, by }) },
  'door/mode': {
    method: 'setMode',
    call: (api, p, by) => api.setMode({ door: str(p, 'door')!, mode: str(p, 'mode') as 'normal', ...opt('duration_s', int(p, 'duration_s')), by }),
  },
  muster: { method: 'muster', call: (api, p) => api.muster({ ...opt('area', str(p, 'area', false)) }) },
  'muster/start': { method: 'musterStart', call: (api, p, by) => api.musterStart({ area: str(p, 'area')!, ...(p.end === true ? { end: true } : {}), by }) },
  'muster/safe': { method: 'musterSafe', call: (api, p, by) => api.musterSafe({ area: str(p, 'area')!, userid: str(p, 'userid')!, by }) },
  'fire/reset': { method: 'fireReset', call: (api, p, by) => api.fireReset({ ...opt('door', str(p, 'door', false)), by }) },
  'outbox/list': { method: 'outbox', call: (api, p) => api.outbox({ limit: Math.min(1000, Math.max(1, int(p, 'limit') ?? 100)) }) },
  'outbox/requeue': { method: 'requeue', call: (api, p, by) => api.requeue({ ...opt('seqs', seqs(p)), by }) },
  'outbox/discard': { method: 'discard', call: (api, p, by) => api.discard({ ...opt('seqs', seqs(p)), ...opt('reason', str(p, 'reason', false)), by }) },
  // Never forced over MQTT, and only into backup.dir (the API refuses otherwise).
  backup: { method: 'backup', call: (api, p, by) => api.backup({ file: str(p, 'file')!, by }) },
};

/** Request names a role may send (what the shipped ACL grants). */
export function requestsFor(role: Role): string[] {
  return Object.entries(REQUESTS)
    .filter(([, d]) => role === 'admin' || roleOf(d) === 'operator')
    .map(([n]) => n);
}
