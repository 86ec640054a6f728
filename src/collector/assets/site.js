// The site console: plain ES module, no build step; the server's CSP allows nothing inline.
const T = {
  en: {},
  zh: {
    title: 'doorgw 园区', logout: '退出', user: '用户', password: '密码', login: '登录', doors: '门', journal: '通行记录', muster: '集合点名',
    any: '全部', grant: '通过', deny: '拒绝', search: '查询', csv: '导出 CSV', time: '时间', door: '门', decision: '结果', reason: '原因', person: '人员',
    more: '更多', start_muster: '开始点名', end_muster: '结束点名', area: '区域', since: '进入时间', safe: '安全', mark_safe: '标记安全',
    online: '在线', offline: '离线', last: '最近', missing: '缺失记录', inside: '人在内', marked: '已标记安全', unaccounted: '未确认',
    muster_on: '点名进行中', from: '开始 (YYYY-MM-DD)', to: '结束', level: '威胁等级', none: '无',
    fire: '火警释放', normal: '正常', passage: '常开', lockdown: '封锁', held_open: '门未关', forced_open: '强行开门', held_open_prealarm: '门未关预警',
  },
};
const EN = {
  online: 'online', offline: 'offline', last: 'last', missing: 'missing records', inside: 'inside', marked: 'marked safe', unaccounted: 'unaccounted',
  muster_on: 'Muster in progress', mark_safe: 'Mark safe', level: 'threat level', none: 'none', fire: 'fire release',
};
let lang = localStorage.getItem('doorgw-site-lang') ?? (navigator.language.startsWith('zh') ? 'zh' : 'en');
let session = null;
let next = null;
const $ = (s) => document.querySelector(s);
const t = (k, fallback) => (lang === 'zh' ? T.zh[k] : null) ?? EN[k] ?? fallback ?? k;
const el = (tag, props = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) if (k === 'class') e.className = v; else if (k.startsWith('data-')) e.setAttribute(k, v); else e[k] = v;
  for (const c of kids) e.append(c);
  return e;
};

function translate() {
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  $('#lang').textContent = lang === 'zh' ? 'English' : '中文';
  for (const e of document.querySelectorAll('[data-t]')) {
    e.dataset.en ??= e.textContent;
    e.textContent = lang === 'zh' ? (T.zh[e.dataset.t] ?? e.dataset.en) : e.dataset.en;
  }
  for (const e of document.querySelectorAll('[data-ph]')) {
    e.dataset.enPh ??= e.placeholder;
    e.placeholder = lang === 'zh' ? (T.zh[e.dataset.ph] ?? e.dataset.enPh) : e.dataset.enPh;
  }
}

async function api(path, body) {
  const r = await fetch(path, body === undefined ? {} : { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': session?.csrf ?? '' }, body: JSON.stringify(body) });
  const j = await r.json().catch(() => ({}));
  if (r.status === 401 && path !== '/api/login') showLogin();
  if (!r.ok) throw new Error(j.error ?? r.statusText);
  return j;
}

function showLogin() {
  session = null;
  $('#app').hidden = true;
  $('#logout').hidden = true;
  $('#login-form').hidden = false;
  $('#who').textContent = '';
}

function showApp(s) {
  session = s;
  $('#login-form').hidden = true;
  $('#app').hidden = false;
  $('#logout').hidden = false;
  $('#who').textContent = `${s.collector} · ${s.user} (${s.role})`;
  const operator = s.role !== 'viewer';
  $('#muster-start').hidden = !operator;
  tab('doors');
}

function tab(name) {
  for (const b of document.querySelectorAll('.tab')) b.classList.toggle('active', b.dataset.tab === name);
  for (const p of document.querySelectorAll('.panel')) p.hidden = p.id !== name;
  if (name === 'doors') void doors();
  if (name === 'journal') void journal(true);
  if (name === 'muster') void muster();
}

async function doors() {
  const r = await api('/api/doors');
  const box = $('#doors');
  box.replaceChildren(
    ...r.gateways.map((g) =>
      el('article', { class: 'gateway', 'data-gateway': g.gateway },
        el('h3', {}, el('span', {}, g.gateway), el('span', { class: `badge ${g.online ? 'ok' : 'bad'}` }, t(g.online ? 'online' : 'offline'))),
        el('ul', {}, ...g.doors.map((d) => el('li', { 'data-door': d.id }, d.id, ' ',
          d.fire ? el('span', { class: 'badge bad fire' }, t('fire')) : '',
          d.alarm ? el('span', { class: 'badge bad alarm' }, t(d.alarm, d.alarm)) : '',
          d.mode ? el('span', { class: `badge mode${d.mode === 'lockdown' ? ' bad' : ''}` }, t(d.mode, d.mode)) : '',
          el('span', { class: `badge${d.level && d.level !== 'normal' ? ' level' : ''}` }, `${t('level')}: ${d.level ?? t('none')}`)))),
        el('div', { class: 'muted' }, g.last ? `${t('last')}: ${g.last.time_local} ${g.last.door} ${g.last.kind === 'decision' ? `${g.last.decision} ${g.last.userid ?? ''}` : g.last.type}` : '—'),
        g.missing ? el('div', { class: 'muted' }, `${t('missing')}: ${g.missing}`) : '',
      ),
    ),
  );
}

function journalParams() {
  const p = new URLSearchParams();
  const add = (k, sel) => $(sel).value.trim() && p.set(k, $(sel).value.trim());
  add('from', '#q-from');
  add('to', '#q-to');
  add('userid', '#q-user');
  add('door', '#q-door');
  add('decision', '#q-decision');
  return p;
}

async function journal(fresh) {
  const p = journalParams();
  $('#q-csv').href = `/api/journal.csv?${p}`;
  if (!fresh && next) p.set('after', next);
  $('#journal-error').textContent = '';
  try {
    const r = await api(`/api/journal?${p}`);
    const body = $('#journal-table tbody');
    if (fresh) body.replaceChildren();
    for (const e of r.entries) body.append(el('tr', { class: e.decision === 'deny' ? 'deny' : '' }, el('td', {}, e.time_local), el('td', {}, `${e.gateway}/${e.door}`), el('td', {}, e.decision ?? e.type ?? ''), el('td', {}, e.reason ?? ''), el('td', {}, e.userid ?? '')));
    next = r.next;
    $('#journal-more').hidden = !next;
  } catch (err) {
    $('#journal-error').textContent = err.message;
  }
}

async function muster() {
  const r = await api('/api/muster');
  const on = r.muster !== null;
  const safe = r.inside.filter((p) => p.safe).length;
  $('#muster-banner').hidden = !on;
  if (on) $('#muster-banner').textContent = `${t('muster_on')}: ${r.muster.time_local} — ${r.muster.cause}`;
  $('#muster-summary').textContent = `${r.inside.length} ${t('inside')}${on ? ` · ${safe} ${t('marked')} · ${r.inside.length - safe} ${t('unaccounted')}` : ''}`;
  const operator = session.role !== 'viewer';
  $('#muster-start').hidden = !operator || on;
  $('#muster-end').hidden = !operator || !on;
  $('#muster-table tbody').replaceChildren(
    ...r.inside.map((p) =>
      el('tr', { 'data-person': p.userid },
        el('td', {}, p.area), el('td', {}, p.userid), el('td', {}, p.since_local), el('td', {}, `${p.gateway}/${p.door}`),
        el('td', {}, p.safe ? `✓ ${p.safe.by}` : on && operator ? el('button', { type: 'button', class: 'mark-safe', onclick: () => markSafe(p) }, t('mark_safe')) : ''),
      ),
    ),
  );
}

async function markSafe(p) {
  $('#muster-error').textContent = '';
  try {
    await api('/api/muster/safe', { area: p.area, userid: p.userid });
  } catch (err) {
    $('#muster-error').textContent = err.message;
  }
  await muster();
}

$('#login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('#login-error').textContent = '';
  try {
    showApp(await api('/api/login', { user: $('#login-user').value, password: $('#login-password').value }));
  } catch (err) {
    $('#login-error').textContent = err.message;
  }
});
$('#logout').addEventListener('click', async () => {
  await api('/api/logout', {}).catch(() => undefined);
  showLogin();
});
$('#lang').addEventListener('click', () => {
  lang = lang === 'zh' ? 'en' : 'zh';
  localStorage.setItem('doorgw-site-lang', lang);
  translate();
  if (session) tab(document.querySelector('.tab.active')?.dataset.tab ?? 'doors');
});
for (const b of document.querySelectorAll('.tab')) b.addEventListener('click', () => tab(b.dataset.tab));
$('#journal-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  void journal(true);
});
$('#journal-more').addEventListener('click', () => void journal(false));
$('#muster-start').addEventListener('click', async () => {
  await api('/api/muster/start', {}).catch((e) => ($('#muster-error').textContent = e.message));
  await muster();
});
$('#muster-end').addEventListener('click', async () => {
  await api('/api/muster/end', {}).catch((e) => ($('#muster-error').textContent = e.message));
  await muster();
});
translate();
api('/api/session').then(showApp, showLogin);
