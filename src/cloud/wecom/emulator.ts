/**
 * A WeCom device-protocol emulator: a real WebSocket server speaking the frames of protocols.md §1
 * with the behaviour the adapter must survive — pagination, versions moving mid-sync, pushes,
 * notify history, fail_list, unbinding, slow and dropped connections. Used by the tests, the demo,
 * the sync benchmark and `doorgw wecom emulator`.
 */
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { compressedPoint, encodeQrBody, signQr } from '../../domain/qr.js';
import { decodeBinaryFrame, dynamicLoginUrl, encodeBinaryFrame, ERR, parseFrame, registerSignature, stringifyFrame, type Frame } from './protocol.js';

/** A user as the cloud holds it (the `userinfo` shape, openvid as a decimal string). */
export interface CloudUser {
  userid: string;
  openvid: string;
  user_type: 0 | 1 | 2;
  name: string;
  public_key?: string;
  pass_rule_list?: { id: number; rule: string; effect_time: number }[];
  fp?: { id: number; data: string }[];
  /** The algorithm the fingerprint templates were made by. */
  fp_algorithm?: string;
  fa_list?: { id: number; data: string }[];
  fp_ver?: number;
  fa_ver?: number;
}

export interface Checkin {
  userid: string;
  user_type: number;
  timestamp: number;
  pass_type: number;
  pass_method: number;
}

type Fault = 'drop' | 'ignore' | { delayMs: number } | { errcode: number; errmsg: string } | undefined;

export interface EmulatorOptions {
  port?: number;
  host?: string;
  /** Bind devices as soon as they register (no operator step). */
  autoBind?: boolean;
  /** Delay before answering each request (a slow network). */
  latencyMs?: number;
  /** How many versions of notify history the cloud keeps. */
  historyLimit?: number;
  /** Cloud clock minus real clock, seconds. */
  clockOffsetS?: number;
}

interface Device {
  sn: string;
  secretNo: string;
  registered: boolean;
  bound: boolean;
  secret: string | null;
}

interface Conn {
  ws: WebSocket;
  sn: string | null;
  loggedIn: boolean;
}

interface Change {
  perm_version: number;
  create_user: { userid: string; user_type: number }[];
  update_user: { userid: string; user_type: number }[];
  delete_user: { userid: string; user_type: number }[];
}

export class WecomEmulator {
  readonly users = new Map<string, CloudUser>();
  permVersion = 1;
  visitorVersion = 1;
  readonly history: Change[] = [];
  readonly checkins: Checkin[] = [];
  /** Every checkin record as received, resends included (what the de-duplication hides). */
  readonly received: Checkin[] = [];
  private readonly checkinKeys = new Set<string>();
  /** Userids whose checkin records the cloud refuses (returned in fail_list). */
  readonly failUserids = new Set<string>();
  readonly devices = new Map<string, Device>();
  /** Every request received, for assertions: [cmd, body]. */
  readonly requests: [string, Record<string, unknown>][] = [];
  /** Tests inject faults per request; return undefined to answer normally. */
  fault: (cmd: string, body: Record<string, unknown>, n: number) => Fault = () => undefined;
  /** Called before each get_userinfo_by_page answer (e.g. to change the directory mid-sync). */
  onPage: (offset: number) => void = () => undefined;
  /** Called for every checkin record received, as `received` has them (`duplicate`: one the cloud had already taken). */
  onCheckin: (r: Checkin, duplicate: boolean) => void = () => undefined;
  private readonly conns = new Set<Conn>();
  private wss: WebSocketServer | null = null;
  private requestCount = 0;
  private pendingReplies = new Map<string, (f: Frame) => void>();
  private pushSeq = 0;

  constructor(private readonly o: EmulatorOptions = {}) {}

  async start(): Promise<string> {
    this.wss = new WebSocketServer({ port: this.o.port ?? 0, host: this.o.host ?? '127.0.0.1', maxPayload: 32 * 1024 * 1024 });
    await new Promise<void>((r) => this.wss!.once('listening', () => r()));
    this.wss.on('connection', (ws) => {
      const c: Conn = { ws, sn: null, loggedIn: false };
      this.conns.add(c);
      ws.on('message', (data: Buffer, isBinary: boolean) => (isBinary ? this.onBinary(c, data) : void this.onMessage(c, data.toString())));
      ws.on('close', () => this.conns.delete(c));
      ws.on('error', () => undefined);
    });
    return this.url;
  }

  get url(): string {
    const a = this.wss!.address() as AddressInfo;
    return `ws://${a.address}:${a.port}`;
  }

  async stop(): Promise<void> {
    for (const c of this.conns) c.ws.terminate();
    await new Promise<void>((r) => (this.wss ? this.wss.close(() => r()) : r()));
  }

  /** Drop every connection (network cut). */
  dropConnections(): void {
    for (const c of this.conns) c.ws.terminate();
  }

  get loggedInCount(): number {
    return [...this.conns].filter((c) => c.loggedIn).length;
  }

  // ---------------------------------------------------------------------------------------------
  // Directory changes (each is one version, pushed to logged-in devices unless push is false)

  private change(c: Omit<Change, 'perm_version'>, push: boolean): number {
    const ch: Change = { perm_version: ++this.permVersion, ...c };
    this.history.push(ch);
    const limit = this.o.historyLimit ?? 10_000;
    if (this.history.length > limit) this.history.splice(0, this.history.length - limit);
    if (push) this.pushAll('push_change_contact', { timestamp: Math.floor(Date.now() / 1000), ...ch });
    return ch.perm_version;
  }

  /** Load users without history (the initial directory). */
  seed(users: Iterable<CloudUser>): void {
    for (const u of users) this.users.set(u.userid, u);
    this.listing = null;
  }

  /** The directory as a list for paging, copied once per change, not once per page (1M users: 5,000 pages). */
  private listing: CloudUser[] | null = null;
  private list(): CloudUser[] {
    this.listing ??= [...this.users.values()];
    return this.listing;
  }

  upsertUsers(users: CloudUser[], o: { push?: boolean } = {}): number {
    const create: Change['create_user'] = [];
    const update: Change['update_user'] = [];
    for (const u of users) {
      (this.users.has(u.userid) ? update : create).push({ userid: u.userid, user_type: u.user_type });
      this.users.set(u.userid, u);
    }
    this.listing = null;
    return this.change({ create_user: create, update_user: update, delete_user: [] }, o.push ?? true);
  }

  deleteUsers(userids: string[], o: { push?: boolean } = {}): number {
    const del = userids.filter((id) => this.users.has(id)).map((id) => ({ userid: id, user_type: this.users.get(id)!.user_type }));
    for (const d of del) this.users.delete(d.userid);
    this.listing = null;
    return this.change({ create_user: [], update_user: [], delete_user: del }, o.push ?? true);
  }

  renameUser(from: string, to: string): void {
    const u = this.users.get(from);
    if (!u) throw new Error(`no user ${from}`);
    this.users.delete(from);
    this.users.set(to, { ...u, userid: to });
    this.listing = null;
    this.pushAll('push_change_userid', { old_userid: from, new_userid: to, user_type: u.user_type });
  }

  bumpVisitors(): void {
    this.visitorVersion++;
    this.pushAll('push_visitor_list_change', { visitor_version: this.visitorVersion });
  }

  /** The corp unbinds the device: its secret stops working. */
  unbind(sn: string): void {
    const d = this.devices.get(sn);
    if (d) {
      d.bound = false;
      d.secret = null;
    }
    for (const c of this.conns) if (c.sn === sn) c.loggedIn = false;
  }

  /** An operator binds a registered device (when autoBind is off). */
  bind(sn: string): void {
    const d = this.devices.get(sn);
    if (d) d.bound = true;
  }

  /** Provision a device directly (tests that start logged-in). Returns its secret. */
  provision(sn: string): string {
    const secret = randomBytes(16).toString('hex');
    this.devices.set(sn, { sn, secretNo: randomBytes(8).toString('hex'), registered: true, bound: true, secret });
    return secret;
  }

  /** Ask the door to open; resolves with its report_remote_open_door body and how long it took. */
  remoteOpen(userid: string, operId = randomBytes(6).toString('hex')): Promise<{ report: Record<string, unknown>; ms: number }> {
    const t0 = Date.now();
    const p = this.awaitReply(`report:${operId}`);
    this.pushAll('push_remote_open_door', { userid, oper_id: operId });
    return p.then((f) => ({ report: f.body ?? {}, ms: Date.now() - t0 }));
  }

  /**
   * Someone scans a door's login code in the WeCom app: the emulated cloud checks the code as the
   * real one does (its signature over the device's SecretNo, and at most 1800 s old on the cloud's
   * clock), then pushes push_user_scan and resolves with the door's report and how long it took.
   */
  scan(codeText: string, userid: string, o: { operId?: string; laterS?: number } = {}): Promise<{ refused: string } | { report: Record<string, unknown>; ms: number }> {
    const operId = o.operId ?? randomBytes(6).toString('hex');
    let u: URL;
    try {
      u = new URL(codeText);
    } catch {
      return Promise.resolve({ refused: 'not a URL' });
    }
    const q = u.searchParams;
    const d = this.devices.get(q.get('sn') ?? '');
    if (!d || q.get('type') !== 'dynamic_login') return Promise.resolve({ refused: 'unknown device or not a login code' });
    const ts = Number(q.get('timestamp'));
    const expected = dynamicLoginUrl(d.sn, d.secretNo, ts, q.get('nonce') ?? '', q.get('state') ?? '');
    if (new URL(expected).searchParams.get('signature') !== q.get('signature')) return Promise.resolve({ refused: 'bad signature' });
    const nowS = Math.floor(Date.now() / 1000) + (this.o.clockOffsetS ?? 0) + (o.laterS ?? 0);
    if (nowS - ts > 1800) return Promise.resolve({ refused: 'expired (older than 1800 s)' });
    const t0 = Date.now();
    const p = this.awaitReply(`report:${operId}`);
    this.pushAll('push_user_scan', { userid, op_type: 'scan_qrcode_open', oper_id: operId, state: q.get('state'), user_type: 0 });
    return p.then((f) => ({ report: f.body ?? {}, ms: Date.now() - t0 }));
  }

  /** Ask the door to enrol; resolves with its upload_userinfo body. */
  enterPage(userid: string, pageType: 'fp' | 'fa', operId = randomBytes(6).toString('hex'), userType = 0): Promise<Record<string, unknown>> {
    const p = this.awaitReply(`upload:${operId}`);
    this.pushAll('push_enter_page', { page_type: pageType, oper_id: operId, userid, user_type: userType });
    return p.then((f) => f.body ?? {});
  }

  exitPage(operId: string): void {
    this.pushAll('push_exit_page', { oper_id: operId });
  }

  /** Send a raw text frame to every connected device (a headerless error frame, garbage). */
  sendRaw(text: string): void {
    for (const c of this.conns) c.ws.send(text);
  }

  /** Logs the doors uploaded (upload_log), decoded from their binary frames. */
  readonly logs: { cmd: string; data: Buffer }[] = [];
  /** error_report bodies the doors sent. */
  readonly errorReports: { errcode: unknown; errmsg: unknown }[] = [];
  /** What get_firmware_info answers (an admin's "upgrade" offers it). */
  firmware = { firmware_version: '9.9.9', md5sum: 'd41d8cd98f00b204e9800998ecf8427e', size: 1024, download_url: 'https://example.invalid/fw.bin' };

  /** Ask the door for its log (push_fetch_log); resolves with the uploaded bytes. */
  fetchLog(hint: string): Promise<Buffer> {
    const before = this.logs.length;
    this.pushAll('push_fetch_log', { hint });
    return new Promise((resolve) => {
      const t = setInterval(() => {
        if (this.logs.length > before) {
          clearInterval(t);
          resolve(this.logs[before]!.data);
        }
      }, 10);
    });
  }

  /** A binary frame: format_version, then cmd, req_id and data, each after its 4-byte LE length (protocols.md §11). */
  private onBinary(c: Conn, b: Buffer): void {
    try {
      const { version, fields, trailing } = decodeBinaryFrame(b, 3);
      if (version !== 1) throw new Error('format_version');
      if (trailing !== 0) throw new Error('trailing bytes');
      const [cmdB, reqB, data] = fields as [Buffer, Buffer, Buffer];
      const cmd = cmdB.toString();
      const req_id = reqB.toString();
      this.logs.push({ cmd, data: Buffer.from(data) });
      c.ws.send(stringifyFrame({ headers: { req_id }, errcode: cmd === 'upload_log' ? 0 : 600099, errmsg: cmd === 'upload_log' ? 'ok' : `unknown binary command ${cmd}` }));
    } catch (e) {
      c.ws.send(stringifyFrame({ headers: { req_id: '' }, errcode: 600001, errmsg: `bad binary frame: ${(e as Error).message}` }));
    }
  }

  private awaitReply(key: string): Promise<Frame> {
    return new Promise((resolve) => this.pendingReplies.set(key, resolve));
  }

  /** Send a push to every logged-in device; returns the req_ids used. */
  pushAll(cmd: string, body: Record<string, unknown>): string[] {
    const ids: string[] = [];
    for (const c of this.conns) {
      if (!c.loggedIn) continue;
      const req_id = `push-${++this.pushSeq}`;
      ids.push(req_id);
      c.ws.send(stringifyFrame({ cmd, headers: { req_id }, body }));
    }
    return ids;
  }

  // ---------------------------------------------------------------------------------------------

  private async onMessage(c: Conn, text: string): Promise<void> {
    let f: Frame;
    try {
      f = parseFrame(text);
    } catch {
      return; // a real cloud ignores garbage
    }
    if (!f.cmd) return; // an answer to one of our pushes
    if (f.cmd.startsWith('push_')) {
      return; // acknowledgements of pushes
    }
    const body = f.body ?? {};
    this.requests.push([f.cmd, body]);
    if (f.cmd === 'gen_login_qrcode' && c.loggedIn) {
      // The static login code comes back as a binary frame (protocols.md §10.1); the "image" here
      // is a PNG signature and the code's text, enough to tell which door's it is.
      const img = Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), Buffer.from(`static_login sn=${c.sn ?? ''} state=${String(body.state)}`)]);
      return void c.ws.send(encodeBinaryFrame(1, [Buffer.from(f.headers.req_id), img]), { binary: true });
    }
    const fault = this.fault(f.cmd, body, ++this.requestCount);
    if (fault === 'drop') return void c.ws.terminate();
    if (fault === 'ignore') return;
    const latency = (this.o.latencyMs ?? 0) + (fault && 'delayMs' in fault ? fault.delayMs : 0);
    if (latency > 0) await new Promise((r) => setTimeout(r, latency));
    const answer = (errcode: number, errmsg: string, out?: Record<string, unknown>): void => {
      const reply: Frame = { headers: { req_id: f.headers.req_id }, errcode, errmsg };
      if (out) reply.body = out;
      if (c.ws.readyState === c.ws.OPEN) c.ws.send(stringifyFrame(reply));
    };
    if (fault && 'errcode' in fault) return answer(fault.errcode, fault.errmsg);
    try {
      const r = this.handle(c, f.cmd, body);
      if ('errcode' in r) answer(r.errcode, r.errmsg);
      else answer(0, 'ok', r.body);
    } catch (e) {
      answer(600099, `bad request: ${(e as Error).message}`);
    }
  }

  private handle(c: Conn, cmd: string, b: Record<string, unknown>): { body: Record<string, unknown> } | { errcode: number; errmsg: string } {
    const ok = (body: Record<string, unknown> = {}) => ({ body });
    const err = (errcode: number, errmsg: string) => ({ errcode, errmsg });
    switch (cmd) {
      case 'get_secret_no': {
        const sn = typeof b.sn === 'string' ? b.sn : '';
        if (!sn) return err(600099, 'sn required');
        let d = this.devices.get(sn);
        if (!d) {
          d = { sn, secretNo: randomBytes(8).toString('hex'), registered: false, bound: false, secret: null };
          this.devices.set(sn, d);
        }
        return ok({ secret_no: d.secretNo });
      }
      case 'register': {
        const d = this.devices.get(String(b.sn));
        if (!d) return err(ERR.NOT_REGISTERED, 'call get_secret_no first');
        const ts = Number(b.timestamp);
        if (Math.abs(ts - Date.now() / 1000) > 300) return err(ERR.BAD_ACTIVATION, 'timestamp outside 5 minutes');
        const expected = registerSignature(d.sn, d.secretNo, ts, String(b.nonce));
        if (b.signature !== expected) return err(ERR.BAD_ACTIVATION, 'bad signature');
        d.registered = true;
        if (this.o.autoBind) d.bound = true;
        return ok();
      }
      case 'active': {
        const d = this.devices.get(String(b.sn));
        if (!d?.registered) return err(ERR.NOT_REGISTERED, 'not registered');
        if (!d.bound) return err(ERR.NOT_ACTIVATED, 'not bound to a corp yet');
        d.secret ??= randomBytes(16).toString('hex');
        return ok({ secret: d.secret });
      }
      case 'subscribe_corp': {
        const d = [...this.devices.values()].find((x) => x.secret !== null && x.secret === b.secret);
        if (!d?.bound) return err(ERR.NOT_AUTHORISED, 'corp not authorised or device unbound');
        c.sn = d.sn;
        c.loggedIn = true;
        return ok({ corpid: 'wwEMULATOR' });
      }
      case 'get_timestamp':
        return ok({ timestamp: Math.floor(Date.now() / 1000) + (this.o.clockOffsetS ?? 0) });
      default:
        break;
    }
    if (!c.loggedIn) {
      const d = c.sn ? this.devices.get(c.sn) : undefined;
      return d && !d.bound ? err(ERR.NOT_AUTHORISED, 'device unbound') : err(ERR.NOT_LOGGED_IN, 'not logged in');
    }
    const withFields = (u: CloudUser): Record<string, unknown> => {
      const out: Record<string, unknown> = { ...u };
      if (b.is_req_public_key !== 1) delete out.public_key;
      if (b.is_req_fp_info === 0) delete out.fp;
      if (b.is_req_fa_info === 0) delete out.fa_list;
      return out;
    };
    switch (cmd) {
      case 'error_report':
        this.errorReports.push({ errcode: b.errcode, errmsg: b.errmsg });
        return ok();
      case 'get_open_self_input':
        return ok({ open_self_input_fp: true, open_self_input_fa: false });
      case 'get_corp_info':
        return ok({ corp_name: 'Emulated Corp' });
      case 'get_firmware_info':
        return ok({ ...this.firmware });
      case 'ping':
        return ok();
      case 'get_perm_version':
        return ok({ perm_version: this.permVersion });
      case 'get_visitor_version':
        return ok({ visitor_version: this.visitorVersion });
      case 'get_userinfo_by_page': {
        const offset = Number(b.offset ?? 0);
        const limit = Number(b.limit ?? 0);
        if (!Number.isInteger(limit) || limit < 1 || limit > 200) return err(600099, 'limit must be 1-200');
        this.onPage(offset);
        const all = this.list();
        const page = all.slice(offset, offset + limit);
        return ok({ is_last: offset + limit >= all.length, perm_version: this.permVersion, userinfo: page.map(withFields) });
      }
      case 'get_userinfo_by_ids':
      case 'get_visitor_by_ids': {
        const items = Array.isArray(b.user_item) ? (b.user_item as { userid: string }[]).map((x) => x.userid) : ((b.userids ?? []) as string[]);
        if (items.length > 200) return err(600099, 'at most 200 ids');
        const found = items.map((id) => this.users.get(id)).filter((u): u is CloudUser => u !== undefined);
        return ok({ userinfo: (cmd === 'get_visitor_by_ids' ? found.filter((u) => u.user_type === 1) : found).map(withFields) });
      }
      case 'get_notify_history': {
        const from = Number(b.perm_version);
        const oldest = this.history[0]?.perm_version ?? this.permVersion + 1;
        if (from + 1 < oldest) return err(600099, 'history no longer available for that version');
        const items = this.history.filter((h) => h.perm_version > from);
        const offset = Number(b.offset ?? 0);
        const limit = Math.min(Number(b.limit ?? 100), 100);
        const page = items.slice(offset, offset + limit);
        return ok({ item: page.map((h) => ({ perm_version: h.perm_version, data: JSON.stringify(h) })), is_last: offset + limit >= items.length });
      }
      case 'check_userid': {
        const ids = ((b.userid_item ?? []) as { userid: string }[]).map((x) => x.userid);
        return ok({ legal_list: ids.filter((id) => this.users.has(id)), illegal_list: ids.filter((id) => !this.users.has(id)) });
      }
      case 'checkin': {
        const data = (b.checkin_data ?? []) as Checkin[];
        if (!Array.isArray(data) || data.length > 200) return err(600099, 'checkin_data must be an array of at most 200');
        const fail_list: { userid: string; user_type: number; timestamp: number }[] = [];
        for (const r of data) {
          const rec: Checkin = { userid: r.userid, user_type: r.user_type, timestamp: r.timestamp, pass_type: r.pass_type, pass_method: r.pass_method };
          const key = `${r.userid}|${r.timestamp}|${r.pass_type}|${r.pass_method}`;
          this.received.push(rec);
          this.onCheckin(rec, this.checkinKeys.has(key));
          if (this.failUserids.has(r.userid)) {
            fail_list.push({ userid: r.userid, user_type: r.user_type, timestamp: r.timestamp });
            continue;
          }
          if (r.timestamp < 1_514_764_800) continue; // before 2018: silently ignored, as the vendor says
          if (this.checkinKeys.has(key)) continue; // the cloud de-duplicates resends
          this.checkinKeys.add(key);
          this.checkins.push(rec);
        }
        return ok({ fail_list });
      }
      case 'report_remote_open_door': {
        this.pendingReplies.get(`report:${String(b.oper_id)}`)?.({ headers: { req_id: '' }, body: b });
        return ok();
      }
      case 'upload_userinfo': {
        const key = `upload:${String(b.oper_id)}`;
        this.pendingReplies.get(key)?.({ headers: { req_id: '' }, body: b });
        this.pendingReplies.delete(key);
        return ok({ fail_list: [] });
      }
      default:
        return err(600099, `unknown command ${cmd}`);
    }
  }
}


// ---------------------------------------------------------------------------------------------
// Generated directories (tests, demo, benchmark)

export interface GeneratedDirectory {
  users: CloudUser[];
  /** Private keys by public_key, to sign QR codes as WeCom would. */
  keys: Map<string, KeyObject>;
}

/** `n` users sharing `keyCount` corp keys; every 4th has office hours, every 10th is a visitor. */
export function generateDirectory(n: number, o: { keyCount?: number; templates?: boolean; prefix?: string } = {}): GeneratedDirectory {
  const keys = new Map<string, KeyObject>();
  const pubs: string[] = [];
  for (let i = 0; i < (o.keyCount ?? 8); i++) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const pub = compressedPoint(publicKey).toString('base64');
    keys.set(pub, privateKey);
    pubs.push(pub);
  }
  const fp = o.templates ? [{ id: 0, data: randomBytes(1024).toString('base64') }, { id: 1, data: randomBytes(1024).toString('base64') }] : undefined;
  const users: CloudUser[] = [];
  for (let i = 0; i < n; i++) {
    const visitor = i % 10 === 9;
    const u: CloudUser = {
      userid: visitor ? `${o.prefix ?? 'u'}${i}/10001` : `${o.prefix ?? 'u'}${i}`,
      openvid: (10_000_000_000_000_000_000n + BigInt(i)).toString(),
      user_type: visitor ? 1 : 0,
      name: `User ${i}`,
      public_key: pubs[i % pubs.length]!,
      fp_ver: 1,
      fa_ver: 1,
    };
    if (visitor || i % 4 === 0) u.pass_rule_list = [{ id: 0, rule: '8:00-19:00 * * 1-5 *', effect_time: 1_600_000_000 }];
    if (fp) u.fp = fp;
    users.push(u);
  }
  return { users, keys };
}

/** Sign an employee (or visitor) QR code for a cloud user, as the WeCom app would show it. */
export function signQrFor(u: CloudUser, key: KeyObject, startTime: number, expiresIn = 300): string {
  const body = u.user_type === 1
    ? encodeQrBody({ type: 'visitor', openvid: u.openvid, state: Buffer.from('emu') })
    : encodeQrBody({ type: 'employee', openvid: u.openvid, startTime, expiresIn });
  return signQr(body, key);
}
