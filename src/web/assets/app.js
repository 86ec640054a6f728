// The doorgw console: plain ES modules, no build step, no CDN. Text from the gateway is only ever
// set as text (never as HTML), so a userid or a reader's detail cannot inject markup.
import { EVENTS, REASONS, STRINGS } from './i18n.js';

const $ = (sel) => document.querySelector(sel);
let lang = localStorage.getItem('doorgw.lang') || ((navigator.language || 'en').toLowerCase().startsWith('zh') ? 'zh' : 'en');
let session = null;
let journalNext = null;
let stream = null;

const t = (k) => STRINGS[lang][k] ?? STRINGS.en[k] ?? k;
const reasonText = (r) => REASONS[lang][r] ?? REASONS.en[r] ?? r;
const eventText = (e) => EVENTS[lang][e] ?? EVENTS.en[e] ?? e;
const ALARMS = new Set(['forced_open', 'held_open', 'held_open_prealarm', 'duress', 'storage_failure', 'disk_low', 'reader_claim_refused', 'reader_flood', 'anti_passback_violation', 'reader_offline', 'reader_tamper', 'reader_power_failure', 'reader_secure_channel_failure']);

/** Element builder: h('li', {class: 'x'}, 'text', child). Strings become text nodes. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function zoneOf(door) {
  return session?.doors.find((d) => d.id === door)?.timezone ?? session?.timezone ?? 'UTC';
}
function stamp(ms, zone) {
  return new Intl.DateTimeFormat(lang === 'zh' ? 'zh-CN' : 'en-GB', { timeZone: zone, month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' }).format(ms);
}
function flash(msg, bad = false) {
  const f = $('#flash');
  f.textContent = msg;
  f.className = bad ? 'bad' : '';
}

async function call(path, opts = {}) {
  const init = { method: opts.method ?? 'GET', headers: {}, credentials: 'same-origin' };
  if (init.method === 'POST') {
    init.headers['Content-Type'] = 'application/json';
    if (session) init.headers['X-CSRF-Token'] = session.csrf;
    init.body = JSON.stringify(opts.body ?? {});
  }
  const res = await fetch(path, init);
  const body = res.headers.get('content-type')?.includes('json') ? await res.json() : null;
  if (res.status === 401 && path !== '/api/login') {
    showLogin();
    throw new Error(body?.error ?? 'log in first');
  }
  if (!res.ok) throw new Error(body?.error ?? `HTTP ${res.status}`);
  return body;
}

function translate() {
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
  $('#lang').value = lang;
}

function showLogin() {
  session = null;
  stream?.close();
  stream = null;
  $('#app').hidden = true;
  $('#doors').replaceChildren();
  $('#logout').hidden = true;
  $('#who').textContent = '';
  $('#login').hidden = false;
}

async function start() {
  translate();
  $('#lang').addEventListener('change', () => {
    lang = $('#lang').value;
    localStorage.setItem('doorgw.lang', lang);
    translate();
    $('#doors').replaceChildren();
    if (session) show(currentTab);
  });
  $('#login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('#login-error').textContent = '';
    try {
      session = await call('/api/login', { method: 'POST', body: { user: $('#login-user').value, password: $('#login-password').value } });
      $('#login-password').value = '';
      enter();
    } catch (e) {
      $('#login-error').textContent = e.message === 'wrong user or password' ? t('wrong_login') : e.message;
    }
  });
  $('#logout').addEventListener('click', async () => {
    await call('/api/logout', { method: 'POST' }).catch(() => undefined);
    showLogin();
  });
  for (const b of document.querySelectorAll('nav button')) b.addEventListener('click', () => show(b.dataset.tab));
  $('#journal-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    searchJournal(false);
  });
  $('#j-more').addEventListener('click', () => searchJournal(true));
  $('#u-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    searchUsers();
  });
  $('#sync-now').addEventListener('click', async () => {
    try {
      await call('/api/sync', { method: 'POST' });
      flash(t('done'));
      showCloud();
    } catch (e) {
      flash(e.message, true);
    }
  });
  try {
    session = await call('/api/session');
    enter();
  } catch {
    showLogin();
  }
}

function enter() {
  $('#doors').replaceChildren();
  $('#login').hidden = true;
  $('#app').hidden = false;
  $('#logout').hidden = false;
  $('#who').textContent = `${session.gateway_id} · ${session.user} (${session.role})`;
  $('#j-door').replaceChildren(h('option', { value: '' }, t('any')), ...session.doors.map((d) => h('option', { value: d.id }, d.name)));
  $('#j-reason').replaceChildren(h('option', { value: '' }, t('any')), ...Object.keys(REASONS.en).map((r) => h('option', { value: r }, reasonText(r))));
  connectStream();
  show('dashboard');
}

let currentTab = 'dashboard';
function show(tab) {
  currentTab = tab;
  for (const b of document.querySelectorAll('nav button')) b.classList.toggle('active', b.dataset.tab === tab);
  for (const el of document.querySelectorAll('.tab')) el.hidden = el.id !== `tab-${tab}`;
  flash('');
  if (tab === 'dashboard') showDoors();
  if (tab === 'cloud') showCloud();
  if (tab === 'system') showSystem();
}

// ---------------------------------------------------------------------------------------------
// Doors

async function showDoors() {
  const [st, recent] = await Promise.all([call('/api/status'), call('/api/journal?limit=30')]);
  const canOperate = session.role !== 'viewer';
  fireBanner(st.io?.fire, canOperate);
  const container = $('#doors');
  for (const d of st.doors) {
    // A card is built once and then updated in place: a mode being chosen is not reset by an event.
    let card = container.querySelector(`.door[data-door="${CSS.escape(d.id)}"]`);
    if (!card) {
      card = doorCard(d, canOperate);
      container.append(card);
    }
    card.querySelector('.badges').replaceChildren(
      h('span', { class: `badge lock ${d.lock === 'unlocked' ? 'warn' : 'ok'}` }, t(d.lock ?? 'locked')),
      h('span', { class: 'badge contact' }, t(`contact_${d.contact ?? 'unknown'}`)),
      h('span', { class: `badge mode ${d.mode === 'lockdown' ? 'bad' : d.mode === 'passage' ? 'warn' : ''}` }, t(`mode_${d.mode}`) + (d.until ? ` → ${stamp(d.until, zoneOf(d.id))}` : '')),
      ...(d.alarm ? [h('span', { class: 'badge bad alarm' }, `${t('alarm')}: ${eventText(d.alarm)}`)] : []),
      ...(st.io?.fire.released.includes(d.id) ? [h('span', { class: 'badge bad fire' }, t('fire_badge'))] : []),
      // The site's threat level in force here, with who set it as a tooltip.
      ...(st.site?.levels ?? [])
        .filter((l) => l.door === d.id && l.level && l.level !== 'normal')
        .map((l) => h('span', { class: 'badge bad level', title: `${l.by ?? ''}${l.reason ? `: ${l.reason}` : ''}` }, `${t('threat_level')}: ${l.level}`)),
      // Supervised (OSDP) readers: their link, with the reason as a tooltip.
      ...(st.readers ?? [])
        .filter((r) => r.door === d.id)
        .map((r) => h('span', { class: `badge reader ${r.state === 'online' && !r.tamper ? 'ok' : r.state === 'install' ? 'warn' : 'bad'}`, title: r.detail }, `${r.id}: ${t(`reader_${r.state}`)}${r.secure ? ' 🔒' : ''}${r.tamper ? ` · ${t('tamper')}` : ''}`)),
    );
    const mine = recent.entries.filter((e) => e.door === d.id).slice(0, 5);
    card.querySelector('.recent').replaceChildren(...(mine.length ? mine.map(decisionItem) : [h('li', {}, t('none'))]));
  }
}

/** The gateway's named inputs and outputs and its lift cars (System tab): what each is doing now. */
function ioPanel(io) {
  const inputs = io?.inputs ?? [];
  const outputs = io?.outputs ?? [];
  const lifts = io?.lifts ?? [];
  const list = (id, items) => h('ul', { class: 'io', id }, ...items);
  $('#sys-io').replaceChildren(
    ...(inputs.length ? [h('h2', {}, t('inputs')), list('io-inputs', inputs.map((i) => h('li', { class: i.active && i.alarm !== 'none' ? 'bad' : '' }, `${i.label}: ${t(i.active ? 'active' : 'inactive')}${i.alarm !== 'none' ? ` (${i.alarm})` : ''}`)))] : []),
    ...(outputs.length ? [h('h2', {}, t('outputs')), list('io-outputs', outputs.map((o) => h('li', {}, `${o.label}: ${t(o.on ? 'on' : 'off')}`)))] : []),
    ...lifts.map((l) => h('div', {}, h('h2', {}, `${t('lift')} ${l.door}`), list(`io-lift-${l.door}`, l.floors.map((f) => h('li', {}, `${f.floor}: ${t(f.on ? 'on' : 'off')}${f.why.length ? ` (${f.why.join(', ')})` : ''}`))))),
  );
}

/** Fire release: on every page, above the doors, until it is reset (refused while the alarm is active). */
function fireBanner(fire, canOperate) {
  const released = fire?.released ?? [];
  $('#fire-banner').hidden = released.length === 0;
  if (!released.length) return;
  const latched = fire.doors.filter((d) => d.released && d.active.length === 0).map((d) => d.door);
  $('#fire-doors').textContent = `${released.join(', ')}${latched.length === released.length ? ` (${t('fire_latched')})` : ''}`;
  const btn = $('#fire-reset');
  btn.disabled = !canOperate;
  btn.onclick = async () => {
    try {
      const r = await call('/api/fire/reset', { method: 'POST', body: {} });
      flash(r.refused.length ? `${t('fire_refused')}: ${r.refused[0].reason}` : t('done'), r.refused.length > 0);
    } catch (e) {
      flash(e.message, true);
    }
    setTimeout(showDoors, 150);
  };
}

function doorCard(d, canOperate) {
  const cfg = session.doors.find((x) => x.id === d.id);
  const mode = h('select', { class: 'mode-select', 'aria-label': 'mode', disabled: !canOperate }, ...['normal', 'passage', 'lockdown'].map((m) => h('option', { value: m, selected: m === d.mode }, t(`mode_${m}`))));
  const dur = h('select', { class: 'mode-duration', 'aria-label': 'duration', disabled: !canOperate }, h('option', { value: '' }, t('until_changed')), h('option', { value: '900' }, t('min15')), h('option', { value: '3600' }, t('h1')), h('option', { value: '28800' }, t('h8')));
  return h(
    'article',
    { class: 'door', 'data-door': d.id },
    h('h2', {}, d.name),
    h('div', { class: 'badges' }),
    h('div', { class: 'hint' }, `${t('readers')}: ${cfg?.readers.map((r) => `${r.id} (${r.type}, ${r.direction})`).join(', ') || t('none')}`),
    h(
      'div',
      { class: 'actions' },
      h('button', { class: 'primary open', disabled: !canOperate, onclick: () => doorAction(d.id, 'open') }, t('open')),
      h('button', { class: 'lock-btn', disabled: !canOperate, onclick: () => doorAction(d.id, 'lock') }, t('lock')),
      mode,
      dur,
      h('button', { class: 'wide mode-apply', disabled: !canOperate, onclick: () => doorAction(d.id, 'mode', { mode: mode.value, ...(dur.value ? { duration_s: Number(dur.value) } : {}) }) }, t('apply')),
    ),
    h('h3', {}, t('recent')),
    h('ul', { class: 'recent' }),
  );
}

async function doorAction(door, action, body) {
  try {
    const r = await call(`/api/doors/${encodeURIComponent(door)}/${action}`, { method: 'POST', body });
    if (action === 'open') flash(r.decision === 'grant' ? t('opened_by_you') : reasonText(r.reason), r.decision !== 'grant');
    else flash(action === 'mode' ? t('mode_set') : t('done'));
  } catch (e) {
    flash(e.message, true);
  }
  setTimeout(showDoors, 150);
}

function decisionItem(e) {
  const who = e.userid ?? '—';
  return h('li', { class: e.decision }, h('span', { class: 'when' }, stamp(e.at, zoneOf(e.door))), h('span', { class: 'what' }, e.decision === 'grant' ? t('granted') : t('denied')), ` · ${who} · ${reasonText(e.reason)}`);
}

// ---------------------------------------------------------------------------------------------
// Live events

function connectStream() {
  stream?.close();
  stream = new EventSource('/api/events');
  stream.addEventListener('decision', (m) => {
    const d = JSON.parse(m.data);
    addLive(h('li', { class: `${d.decision} live-decision` }, h('span', { class: 'when' }, stamp(d.at, zoneOf(d.door))), h('span', { class: 'what' }, d.decision === 'grant' ? t('granted') : t('denied')), ` · ${d.door} · ${d.userid ?? '—'} · ${reasonText(d.reason)} · ${d.method}`));
    if (currentTab === 'dashboard') refreshDoorsSoon();
  });
  stream.addEventListener('door_event', (m) => {
    const e = JSON.parse(m.data);
    addLive(h('li', { class: ALARMS.has(e.type) ? 'alarm' : '' }, h('span', { class: 'when' }, stamp(e.at, zoneOf(e.door))), `${e.door} · ${eventText(e.type)}${e.detail ? ` · ${e.detail}` : ''}`));
    if (currentTab === 'dashboard') refreshDoorsSoon();
  });
  stream.addEventListener('door_state', () => currentTab === 'dashboard' && refreshDoorsSoon());
}

// A burst of events (a queue at the door, a reader flood) refreshes the dashboard once, not per event.
let refreshTimer = null;
function refreshDoorsSoon() {
  refreshTimer ??= setTimeout(() => {
    refreshTimer = null;
    showDoors();
  }, 300);
}

function addLive(li) {
  const list = $('#live-list');
  list.prepend(li);
  while (list.children.length > 200) list.lastChild.remove();
}

// ---------------------------------------------------------------------------------------------
// Journal

function journalQuery() {
  const q = new URLSearchParams();
  const local = (v) => v.replace('T', ' ');
  if ($('#j-from').value) q.set('from', local($('#j-from').value));
  if ($('#j-to').value) q.set('to', local($('#j-to').value));
  if ($('#j-user').value.trim()) q.set('userid', $('#j-user').value.trim());
  if ($('#j-door').value) q.set('door', $('#j-door').value);
  if ($('#j-decision').value) q.set('decision', $('#j-decision').value);
  if ($('#j-reason').value) q.set('reason', $('#j-reason').value);
  return q;
}

async function searchJournal(more) {
  const q = journalQuery();
  $('#j-csv').href = `/api/journal.csv?${q}`;
  q.set('limit', '50');
  if (more && journalNext) q.set('after', journalNext);
  try {
    const page = await call(`/api/journal?${q}`);
    const rows = page.entries.map((e) => h('tr', { class: e.decision }, h('td', {}, stamp(e.at, zoneOf(e.door))), h('td', {}, e.door), h('td', {}, e.decision === 'grant' ? t('granted') : t('denied')), h('td', {}, e.userid ?? '—'), h('td', {}, reasonText(e.reason))));
    const body = $('#j-results tbody');
    if (more) body.append(...rows);
    else body.replaceChildren(...rows);
    journalNext = page.next;
    $('#j-more').hidden = page.next === null;
    flash('');
  } catch (e) {
    flash(e.message, true);
  }
}

// ---------------------------------------------------------------------------------------------
// People

async function searchUsers() {
  const q = $('#u-query').value.trim();
  try {
    const page = await call(`/api/users?limit=50${q ? `&query=${encodeURIComponent(q)}` : ''}`);
    $('#u-results').replaceChildren(...page.users.map((u) => h('li', { onclick: () => showUser(u.userid) }, `${u.name ?? u.userid} · ${u.userid} · ${t(`layer_${u.layer}`)}${u.local?.blocked ? ` · ${t('blocked')}` : ''}`)));
  } catch (e) {
    flash(e.message, true);
  }
}

/** A compiled pass rule in words: "Mon–Fri 09:00–18:00", "每天 08:00–12:00", with the source beside it. */
function ruleWords(r) {
  const hm = (m) => `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;
  const times = r.times.map(([a, b]) => `${hm(a)}–${hm(b)}`).join(', ');
  const names = lang === 'zh' ? ['周日', '周一', '周二', '周三', '周四', '周五', '周六'] : ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  const bits = (mask, from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i).filter((v) => mask & (1 << v));
  /** Consecutive values as ranges: Mon–Fri, Sat. */
  const spans = (vals, label) => {
    const out = [];
    for (let i = 0; i < vals.length; i++) {
      let j = i;
      while (j + 1 < vals.length && vals[j + 1] === vals[j] + 1) j++;
      out.push(j > i + 1 ? `${label(vals[i])}–${label(vals[j])}` : vals.slice(i, j + 1).map(label).join(', '));
      i = j;
    }
    return out.join(', ');
  };
  const parts = [];
  if (r.dow !== null) {
    const days = bits(r.dow, 0, 6);
    parts.push(spans(days.includes(0) && days.length > 1 ? [...days.filter((d) => d > 0), 7] : days, (d) => names[d % 7]));
  }
  if (r.dom && 'mask' in r.dom) parts.push(`${lang === 'zh' ? '每月' : 'days'} ${spans(bits(r.dom.mask, 1, 31), String)}${lang === 'zh' ? '日' : ''}`);
  if (r.dom && 'every_days' in r.dom) parts.push(lang === 'zh' ? `每 ${r.dom.every_days} 天` : `every ${r.dom.every_days} days`);
  if (r.month !== null) parts.push(`${lang === 'zh' ? '月份' : 'months'} ${spans(bits(r.month, 1, 12), String)}`);
  if (r.year && 'ranges' in r.year) parts.push(r.year.ranges.map(([a, b]) => (a === b ? String(a) : `${a}–${b}`)).join(', '));
  if (!parts.length) parts.push(t('every_day'));
  return `${parts.join(' · ')} ${times} (${r.source})`;
}

async function showUser(userid) {
  const u = await call(`/api/users/${encodeURIComponent(userid)}`);
  const r = u.record;
  const f = r.local;
  const zone = session.timezone;
  const items = [
    [t('decided_by'), u.decided_by],
    [t('type'), ['employee', 'visitor', 'student'][r.user_type] ?? r.user_type],
    [t('cards'), r.cards.join(', ') || t('none')],
    [t('rules'), r.rules.length ? r.rules.map(ruleWords).join('; ') : t('none')],
  ];
  if (f && (f.valid_from || f.valid_until)) items.push([t('validity'), `${f.valid_from ? stamp(f.valid_from, zone) : '…'} → ${f.valid_until ? stamp(f.valid_until, zone) : '…'}`]);
  if (f?.blocked) items.push([t('blocked'), f.blocked.reason ?? '✓']);
  const canBlock = session.role !== 'viewer';
  $('#u-detail').replaceChildren(
    h('h2', {}, r.name ?? r.userid),
    h('dl', {}, ...items.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
    canBlock && !f?.blocked ? h('button', { class: 'danger', onclick: () => blockUser(r.userid) }, t('block')) : null,
    session.role === 'admin' && f?.blocked ? h('button', { onclick: () => unblockUser(r.userid) }, t('unblock')) : null,
    h('h3', {}, t('recent')),
    h('ul', { class: 'recent' }, ...(u.last.length ? u.last.map(decisionItem) : [h('li', {}, t('none'))])),
  );
}

async function blockUser(userid) {
  try {
    await call('/api/users/block', { method: 'POST', body: { userid } });
    showUser(userid);
  } catch (e) {
    flash(e.message, true);
  }
}
async function unblockUser(userid) {
  try {
    await call('/api/users/unblock', { method: 'POST', body: { userid } });
    showUser(userid);
  } catch (e) {
    flash(e.message, true);
  }
}

// ---------------------------------------------------------------------------------------------
// Cloud and system

async function showCloud() {
  const [st, ob] = await Promise.all([call('/api/status'), call('/api/outbox')]);
  const c = st.cloud;
  const rows = c
    ? [
        [t('link'), c.link],
        [t('since'), stamp(c.since, session.timezone)],
        [t('directory'), `${st.users} ${t('users')} · v${c.directory_version ?? '—'}`],
        [t('last_sync'), c.last_full_sync ? stamp(c.last_full_sync, session.timezone) : '—'],
        [t('skew'), c.clock_skew_s === null ? '—' : `${c.clock_skew_s} s`],
        [t('outbox'), `${st.outbox_depth}`],
      ]
    : [[t('link'), t('no_cloud')], [t('directory'), `${st.users} ${t('users')}`], [t('outbox'), `${st.outbox_depth}`]];
  if (c?.corp_name) rows.push([t('corp'), c.corp_name]);
  if (c?.permission_groups) rows.push([t('groups'), c.permission_groups]);
  if (c?.events) rows.push([t('cloud_events'), `${c.events.received} · ${c.events.refused} ✕${c.events.last_at ? ` · ${c.events.last_type} ${stamp(c.events.last_at, session.timezone)}` : ''}`]);
  if (c?.firmware_offered) rows.push([t('firmware'), c.firmware_offered.version]);
  if (c?.last_error) rows.push(['!', c.last_error]);
  $('#cloud-info').replaceChildren(...rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
  $('#sync-now').hidden = !c || session.role === 'viewer';
  const admin = session.role === 'admin';
  $('#held tbody').replaceChildren(
    ...ob.held.map((r) =>
      h('tr', {}, h('td', {}, `#${r.seq}`), h('td', {}, r.userid), h('td', {}, stamp(r.timestamp * 1000, zoneOf(r.door))), h('td', {}, r.held_reason), h('td', {}, admin ? h('button', { onclick: () => held('requeue', r.seq) }, t('requeue')) : '', admin ? h('button', { onclick: () => held('discard', r.seq) }, t('discard')) : '')),
    ),
  );
}

async function held(action, seq) {
  const body = { seqs: [seq] };
  if (action === 'discard') {
    const reason = prompt(t('discard_reason'));
    if (!reason) return;
    body.reason = reason;
  }
  try {
    await call(`/api/outbox/${action}`, { method: 'POST', body });
    showCloud();
  } catch (e) {
    flash(e.message, true);
  }
}

async function showSystem() {
  const st = await call('/api/status');
  const rows = [
    [t('version'), `${st.version} (${st.gateway_id})`],
    [t('uptime'), st.uptime_s === null ? '—' : `${Math.floor(st.uptime_s / 3600)} h ${Math.floor((st.uptime_s % 3600) / 60)} min`],
    [t('users'), `${st.users} (${t('layer_local')}: ${st.local_users})`],
    [t('storage'), st.storage ? `${st.storage.writable ? 'ok' : '!'} · ${st.storage.free_bytes === null ? '—' : `${Math.round(st.storage.free_bytes / 1048576)} MB`}` : '—'],
    [t('healthy'), st.problems.length ? '✗' : '✓'],
  ];
  $('#sys-info').replaceChildren(...rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
  $('#sys-problems').replaceChildren(...st.problems.map((p) => h('li', {}, p)));
  ioPanel(st.io);
  if (session.role === 'admin') {
    const cfg = await call('/api/config');
    $('#sys-config').textContent = JSON.stringify(cfg, null, 2);
  } else $('#sys-config').textContent = t('no_access');
}

start();
