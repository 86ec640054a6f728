/**
 * Who may call each GatewayApi method — one table for every transport, so roles cannot drift
 * between them: the web console checks a session's role against it, the MQTT request table takes
 * its roles from it (MQTT knows `operator` and `admin`: a viewer's method is an operator request
 * there), and the control socket (the machine's own CLI, root or the service user) may call every
 * method listed. A GatewayApi method missing here does not compile.
 */
import type { GatewayApi } from './api.js';

export type ApiRole = 'viewer' | 'operator' | 'admin';

export const API_ROLES: Record<keyof GatewayApi, ApiRole> = {
  // Reading: any console session; operator over MQTT.
  status: 'viewer',
  check: 'viewer',
  journal: 'viewer',
  journalQuery: 'viewer',
  doorEvents: 'viewer',
  usersList: 'viewer',
  usersShow: 'viewer',
  usersConflicts: 'viewer',
  outbox: 'viewer',
  muster: 'viewer',
  // Acting at a door, and what only ever denies.
  open: 'operator',
  lock: 'operator',
  setMode: 'operator',
  sync: 'operator',
  usersBlock: 'operator',
  forgive: 'operator',
  // A muster: begun (a fire release begins one by itself), ended, people marked safe.
  musterStart: 'operator',
  musterSafe: 'operator',
  // Ends a fire release only once the alarm has cleared (refused while it is active).
  fireReset: 'operator',
  // Changing who may pass, records, keys and accounts.
  usersUnblock: 'admin',
  usersAdd: 'admin',
  usersSet: 'admin',
  usersRemove: 'admin',
  usersImport: 'admin',
  usersExport: 'admin',
  requeue: 'admin',
  discard: 'admin',
  backup: 'admin',
  reconcile: 'admin',
  webUsers: 'admin',
  webUserPut: 'admin',
  webUserRemove: 'admin',
  osdpEnroll: 'admin',
  staticScanCode: 'admin',
  osdpForget: 'admin',
};

/** Every method the control socket answers. */
export const API_METHODS = new Set(Object.keys(API_ROLES) as (keyof GatewayApi)[]);
