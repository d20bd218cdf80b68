// Anju dashboard: plain JavaScript, no build step, no external resources.
// Live open alerts over Server-Sent Events (/api/stream); every POST carries the session's CSRF
// token in X-CSRF-Token. Chinese (default) and English, remembered in localStorage.
'use strict';

const I18N = {
  'zh-CN': {
    title: '安居 · 物业值班', nav_alerts: '告警', nav_devices: '设备', nav_events: '事件查询',
    nav_status: '链路', logout: '退出', login: '登录', user: '用户名', password: '密码',
    login_button: '登录', open_alerts: '未关闭告警', no_alerts: '当前没有未关闭的告警',
    back: '← 返回', devices: '设备状态', event_search: '事件查询', from: '开始', to: '结束',
    kind: '类型', device: '设备', building: '楼栋', limit: '条数', search: '查询',
    link_status: '城市平台链路', online: '实时', offline: '未连接', note: '备注（可选）',
    ack: '确认', handle: '处置', close: '关闭', false_alarm: '误报', suspend: '挂起', resume: '恢复',
    sev: '级', count: '次', since: '发生于', state: '状态',
    raised: '待确认', acknowledged: '已确认', handled: '已处置', closed: '已关闭', suspended: '已挂起',
    suppressed: '维护中（未上报）', cleared: '已恢复正常', timeline: '处置记录', events: '相关事件',
    evidence: '现场图像', play_clip: '播放片段',
    by: '操作人', via: '来源', time: '时间', seq: '序号', battery: '电量', last_seen: '最后上报',
    online_state: '在线', offline_state: '离线', unknown: '未知', never: '从未上报',
    no_building: '未分配楼栋', uplink: '城市平台', connected: '已连接', disconnected: '已断开',
    disabled: '未启用', outbox: '待上报队列', rows: '条', evicted: '已淘汰', queue: '接入队列',
    local_bus: '本地总线', last_error: '最近错误', wrong_login: '用户名或密码错误',
    locked: '登录失败次数过多，请 {s} 秒后再试', failed: '操作失败', results: '条结果',
    confirm_close: '确定关闭该告警？', role_viewer: '只读', role_operator: '值班员', role_admin: '管理员',
  },
  en: {
    title: 'Anju · Control room', nav_alerts: 'Alerts', nav_devices: 'Devices',
    nav_events: 'Events', nav_status: 'Link', logout: 'Log out', login: 'Log in', user: 'User',
    password: 'Password', login_button: 'Log in', open_alerts: 'Open alerts',
    no_alerts: 'No open alerts', back: '← Back', devices: 'Devices', event_search: 'Event search',
    from: 'From', to: 'To', kind: 'Kind', device: 'Device', building: 'Building', limit: 'Limit',
    search: 'Search', link_status: 'City link', online: 'Live', offline: 'Offline',
    note: 'Note (optional)', ack: 'Acknowledge', handle: 'Handled', close: 'Close',
    false_alarm: 'False alarm', suspend: 'Suspend', resume: 'Resume', sev: 'sev', count: 'x',
    since: 'since', state: 'State', raised: 'Raised', acknowledged: 'Acknowledged',
    handled: 'Handled', closed: 'Closed', suspended: 'Suspended',
    suppressed: 'Maintenance (not reported)', cleared: 'condition cleared', timeline: 'Timeline',
    evidence: 'Camera evidence', play_clip: 'Play clip',
    events: 'Events', by: 'By', via: 'Via', time: 'Time', seq: 'Seq', battery: 'Battery',
    last_seen: 'Last seen', online_state: 'online', offline_state: 'offline', unknown: 'unknown',
    never: 'never reported', no_building: 'No building', uplink: 'City platform',
    connected: 'connected', disconnected: 'disconnected', disabled: 'disabled',
    outbox: 'Outbox', rows: 'rows', evicted: 'evicted', queue: 'Ingest queue',
    local_bus: 'Local bus', last_error: 'Last error', wrong_login: 'Wrong user name or password',
    locked: 'Too many failed logins; try again in {s} s', failed: 'Failed', results: 'results',
    confirm_close: 'Close this alert?', role_viewer: 'viewer', role_operator: 'operator',
    role_admin: 'admin',
  },
};

const state = {
  lang: localStorage.getItem('anju.lang') || 'zh-CN',
  session: null,      // {user, role, csrf, site}
  alerts: new Map(),  // alert_id → alert
  fresh: new Set(),
  source: null,
  view: 'alerts',
};

const $ = (sel) => document.querySelector(sel);
const t = (key) => (I18N[state.lang] && I18N[state.lang][key]) || I18N.en[key] || key;
const canAct = () => state.session && state.session.role !== 'viewer';

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function fmtTime(ms) {
  if (!ms) return '—';
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function where(loc) {
  if (!loc) return '';
  return [loc.building && `${loc.building}${state.lang === 'zh-CN' ? '栋' : ''}`,
          loc.unit && `${loc.unit}${state.lang === 'zh-CN' ? '单元' : ''}`, loc.room]
      .filter(Boolean).join(' ');
}

function applyI18n() {
  document.documentElement.lang = state.lang;
  for (const node of document.querySelectorAll('[data-i18n]')) node.textContent = t(node.dataset.i18n);
  $('#lang').textContent = state.lang === 'zh-CN' ? 'EN' : '中文';
  document.title = t('title');
  if (state.session) {
    $('#who').textContent = `${state.session.user} (${t('role_' + state.session.role)})`;
  }
  setLive(state.source && state.source.readyState === EventSource.OPEN);
  renderAlerts();
}

// ---- HTTP ------------------------------------------------------------------------------------

async function api(method, path, body) {
  const headers = {};
  if (method !== 'GET') {
    headers['Content-Type'] = 'application/json';
    if (state.session) headers['X-CSRF-Token'] = state.session.csrf;
  }
  const res = await fetch(path, {
    method, headers, credentials: 'same-origin',
    body: method === 'GET' ? undefined : JSON.stringify(body || {}),
  });
  let data = {};
  try { data = await res.json(); } catch (e) { data = {}; }
  if (res.status === 401 && path !== '/api/login') { loggedOut(); }
  return { status: res.status, data, retryAfter: res.headers.get('Retry-After') };
}

// ---- session ---------------------------------------------------------------------------------

async function login(ev) {
  ev.preventDefault();
  const f = ev.target;
  const r = await api('POST', '/api/login', { user: f.user.value, password: f.password.value });
  f.password.value = '';
  if (r.status === 200) {
    $('#login-error').textContent = '';
    await startSession();
  } else if (r.status === 429) {
    $('#login-error').textContent = t('locked').replace('{s}', r.retryAfter || '?');
  } else if (r.status === 401) {
    $('#login-error').textContent = t('wrong_login');
  } else {
    $('#login-error').textContent = r.data.error || t('failed');
  }
}

async function startSession() {
  const r = await api('GET', '/api/session');
  if (r.status !== 200) { loggedOut(); return; }
  state.session = r.data;
  $('#site').textContent = r.data.site || '';
  $('#nav').hidden = false;
  $('#logout').hidden = false;
  applyI18n();
  openStream();
  show(state.view === 'login' ? 'alerts' : state.view);
}

function loggedOut() {
  state.session = null;
  if (state.source) { state.source.close(); state.source = null; }
  state.alerts.clear();
  $('#nav').hidden = true;
  $('#logout').hidden = true;
  $('#who').textContent = '';
  setLive(false);
  show('login');
}

async function logout() {
  await api('POST', '/api/logout');
  loggedOut();
}

// ---- live alerts -----------------------------------------------------------------------------

function setLive(on) {
  const live = $('#live');
  live.className = 'live ' + (on ? 'on' : 'off');
  live.textContent = on ? t('online') : t('offline');
}

function openStream() {
  if (state.source) state.source.close();
  const src = new EventSource('/api/stream');
  state.source = src;
  src.onopen = () => setLive(true);
  src.onerror = async () => {
    setLive(false);
    // The browser reconnects by itself; if the session ended, stop.
    if (src.readyState === EventSource.CLOSED) {
      const r = await api('GET', '/api/session');
      if (r.status === 200) setTimeout(openStream, 2000);
    }
  };
  src.addEventListener('snapshot', (e) => {
    const data = JSON.parse(e.data);
    state.alerts.clear();
    for (const a of data.alerts) state.alerts.set(a.alert_id, a);
    renderAlerts();
  });
  src.addEventListener('alert', (e) => {
    const { change, alert } = JSON.parse(e.data);
    if (alert.state === 'closed') state.alerts.delete(alert.alert_id);
    else state.alerts.set(alert.alert_id, alert);
    if (change === 'raised' || change === 'escalated') state.fresh.add(alert.alert_id);
    renderAlerts();
    if (state.view === 'detail' && state.detailId === alert.alert_id) showDetail(alert.alert_id);
  });
}

function sortedAlerts() {
  return [...state.alerts.values()].sort((a, b) =>
    a.severity - b.severity || a.first_seen_ms - b.first_seen_ms || (a.alert_id < b.alert_id ? -1 : 1));
}

// Which actions make sense in each state (the gateway checks again and says why if not).
const ACTIONS = {
  raised: ['ack', 'handle', 'false_alarm'],
  acknowledged: ['handle', 'close', 'false_alarm'],
  handled: ['close', 'false_alarm'],
  suspended: ['resume'],
};

function renderAlerts() {
  const box = $('#alerts');
  if (!box) return;
  box.replaceChildren();
  const list = sortedAlerts();
  $('#alert-count').textContent = String(list.length);
  $('#no-alerts').hidden = list.length > 0;
  const tpl = $('#alert-template');
  for (const a of list) {
    const node = tpl.content.firstElementChild.cloneNode(true);
    node.classList.add('sev' + a.severity);
    node.dataset.alertId = a.alert_id;
    if (state.fresh.has(a.alert_id)) { node.classList.add('fresh'); state.fresh.delete(a.alert_id); }
    node.querySelector('.sev').textContent = `${a.severity}${t('sev')}`;
    const msg = node.querySelector('.msg');
    msg.textContent = a.message;
    msg.addEventListener('click', (ev) => { ev.preventDefault(); showDetail(a.alert_id); });
    const meta = node.querySelector('.meta');
    meta.append(el('span', { class: 'state' }, t(a.state)), ' ',
                `${where(a.location)} · ${a.device && (a.device.name || a.device.id) || ''} · ` +
                `${t('since')} ${fmtTime(a.first_seen_ms)} · ${a.count}${t('count')}`);
    if (a.suppressed) meta.append(' · ', t('suppressed'));
    if (a.condition_cleared) meta.append(' · ', t('cleared'));
    const actions = node.querySelector('.actions');
    if (!canAct()) {
      actions.remove();
    } else {
      const note = actions.querySelector('.note');
      note.placeholder = t('note');
      const allowed = ACTIONS[a.state] || [];
      for (const b of actions.querySelectorAll('button')) {
        b.textContent = t(b.dataset.action);
        b.hidden = !allowed.includes(b.dataset.action);
        b.addEventListener('click', () => act(a.alert_id, b.dataset.action, note.value, b));
      }
      if (a.state === 'suspended') {
        actions.append(el('button', { type: 'button', onclick: (e) => act(a.alert_id, 'resume', note.value, e.target) }, t('resume')));
      }
    }
    box.append(node);
  }
}

async function act(id, action, note, button) {
  if (action === 'close' && !window.confirm(t('confirm_close'))) return;
  if (button) button.disabled = true;
  const r = await api('POST', `/api/alerts/${encodeURIComponent(id)}/${action}`, { note });
  if (button) button.disabled = false;
  $('#action-error').textContent = r.status === 200 ? '' : `${t('failed')}: ${r.data.error || r.status}`;
  // The stream brings the change; a refused action changes nothing.
}

// ---- detail ------------------------------------------------------------------------------------

async function showDetail(id) {
  state.detailId = id;
  const r = await api('GET', `/api/alerts/${encodeURIComponent(id)}`);
  const box = $('#detail');
  box.replaceChildren();
  if (r.status !== 200) { box.append(el('p', { class: 'error' }, r.data.error || t('failed'))); show('detail'); return; }
  const a = r.data.alert;
  box.append(
    el('div', { class: `card alert sev${a.severity}` },
       el('div', { class: 'alert-head' }, el('span', { class: 'sev' }, `${a.severity}${t('sev')}`),
          el('strong', {}, a.message)),
       el('div', { class: 'kv' },
          el('span', {}, t('state')), el('span', {}, t(a.state) + (a.close_reason ? ` (${a.close_reason})` : '')),
          el('span', {}, t('device')), el('span', {}, `${a.device.name || a.device.id} · ${where(a.location)}`),
          el('span', {}, t('since')), el('span', {}, fmtTime(a.first_seen_ms)),
          el('span', {}, t('count')), el('span', {}, String(a.count)))));
  const tl = el('ul', { class: 'timeline' },
                el('li', {}, `${fmtTime(a.first_seen_ms)} · ${t('raised')}`));
  for (const s of a.history || []) {
    tl.append(el('li', {}, `${fmtTime(s.at_ms)} · ${t(s.action)} · ${t(s.from)} → ${t(s.to)} · ` +
                           `${s.by} (${s.via})${s.note ? ' · ' + s.note : ''}`));
  }
  box.append(el('h3', {}, t('timeline')), tl);
  const evidence = r.data.evidence || [];
  if (evidence.length) {
    const shots = el('div', { class: 'evidence' });
    for (const id of evidence.slice(0, 4)) shots.append(evidenceView(id));
    box.append(el('h3', {}, t('evidence')), shots);
  }
  box.append(el('h3', {}, t('events')), eventsTable(r.data.events || []));
  show('detail');
}

// A camera alert's snapshot; "play" shows its clip (the frames before and after) in place.
function evidenceView(id) {
  const base = `/api/evidence/${encodeURIComponent(id)}/`;
  const img = el('img', { src: base + 'snapshot.jpg', alt: t('evidence'), class: 'snapshot' });
  const play = el('button', { type: 'button' }, t('play_clip'));
  play.addEventListener('click', async () => {
    const r = await api('GET', base + 'evidence.json');
    if (r.status !== 200 || !r.data.frames || !r.data.frames.length) return;
    const frames = r.data.frames;
    let i = 0;
    play.disabled = true;
    const next = () => {
      img.src = base + frames[i].file;
      i += 1;
      if (i < frames.length) setTimeout(next, Math.max(40, frames[i].offset_ms - frames[i - 1].offset_ms));
      else setTimeout(() => { img.src = base + 'snapshot.jpg'; play.disabled = false; }, 1000);
    };
    next();
  });
  return el('figure', {}, img, el('figcaption', {}, play));
}

function eventsTable(events) {
  const table = el('table', {},
    el('thead', {}, el('tr', {}, ...['seq', 'time', 'kind', 'device', 'building', 'state'].map((k) => el('th', {}, t(k))))));
  const body = el('tbody');
  for (const e of events) {
    const detail = e.active === undefined ? (e.values || []).map((v) => `${v.value}${v.unit}`).join(' ')
                                          : (e.active ? 'ON' : 'off');
    const extra = e.kind === 'audit' || e.kind === 'alert_transition'
      ? Object.entries(e.attrs || {}).map(([k, v]) => `${k}=${v}`).join(' ') : detail;
    body.append(el('tr', {}, el('td', {}, String(e.seq)), el('td', {}, fmtTime(e.ts_ms)), el('td', {}, e.kind),
                   el('td', {}, (e.device && (e.device.name || e.device.id)) || ''),
                   el('td', {}, where(e.location)), el('td', {}, extra)));
  }
  table.append(body);
  return el('div', { class: 'table-wrap' }, table);
}

// ---- devices, events, status -----------------------------------------------------------------

async function showDevices() {
  const r = await api('GET', '/api/devices');
  const box = $('#devices');
  box.replaceChildren();
  if (r.status !== 200) return;
  const byBuilding = new Map();
  for (const d of r.data.devices) {
    const b = (d.location && d.location.building) || '';
    if (!byBuilding.has(b)) byBuilding.set(b, []);
    byBuilding.get(b).push(d);
  }
  for (const b of [...byBuilding.keys()].sort()) {
    const grid = el('div', { class: 'dev-grid' });
    for (const d of byBuilding.get(b)) {
      const online = d.online === null ? t('unknown') : (d.online ? t('online_state') : t('offline_state'));
      grid.append(el('div', { class: 'dev' + (d.online === false ? ' offline' : '') },
        el('strong', {}, d.name || d.id), el('br'),
        el('span', { class: 'muted' }, where(d.location)), el('br'),
        `${online} · ${t('battery')} ${d.battery === null ? '—' : d.battery + '%'}`, el('br'),
        `${t('last_seen')}: ${d.last_seen_ms ? fmtTime(d.last_seen_ms) : t('never')}`));
    }
    box.append(el('div', { class: 'building card' }, el('h3', {}, b ? where({ building: b }) : t('no_building')), grid));
  }
}

async function searchEvents(ev) {
  if (ev) ev.preventDefault();
  const f = $('#events-form');
  const q = new URLSearchParams();
  const ms = (v) => (v ? String(new Date(v).getTime()) : '');
  if (f.from.value) q.set('from', ms(f.from.value));
  if (f.to.value) q.set('to', ms(f.to.value));
  for (const k of ['kind', 'device', 'building', 'limit']) if (f[k].value) q.set(k, f[k].value.trim());
  const r = await api('GET', '/api/events?' + q.toString());
  const box = $('#events');
  box.replaceChildren();
  $('#events-error').textContent = r.status === 200 ? '' : (r.data.error || t('failed'));
  if (r.status !== 200) return;
  box.append(el('p', { class: 'muted' }, `${r.data.events.length} ${t('results')}`), eventsTable(r.data.events));
}

async function showStatus() {
  const r = await api('GET', '/api/status');
  const box = $('#status');
  box.replaceChildren();
  if (r.status !== 200) return;
  const s = r.data;
  const up = s.uplink || {};
  const link = up.enabled === false ? t('disabled') : (up.connected ? t('connected') : t('disconnected'));
  const kv = el('div', { class: 'kv card' },
    el('span', {}, t('uplink')), el('strong', {}, link),
    el('span', {}, t('local_bus')), el('span', {}, s.local_bus && s.local_bus.connected ? t('connected') : t('disconnected')),
    el('span', {}, t('queue')), el('span', {}, `${s.pipeline.queue_depth} / ${s.pipeline.queue_capacity}`));
  if (up.last_error) kv.append(el('span', {}, t('last_error')), el('span', {}, up.last_error));
  box.append(kv);
  const ob = el('div', { class: 'kv card' }, el('strong', {}, t('outbox')), el('span'));
  for (const [cls, v] of Object.entries(s.outbox || {})) {
    ob.append(el('span', {}, cls), el('span', {}, `${v.rows} ${t('rows')} · ${v.bytes} B · ${t('evicted')} ${v.evicted}`));
  }
  box.append(ob);
}

// ---- views -----------------------------------------------------------------------------------

function show(view) {
  state.view = view;
  for (const s of document.querySelectorAll('.view')) s.hidden = s.id !== 'view-' + view;
  for (const b of document.querySelectorAll('#nav button')) b.classList.toggle('active', b.dataset.view === view);
  if (view === 'devices') showDevices();
  if (view === 'status') showStatus();
  if (view === 'events' && !$('#events').children.length) searchEvents();
}

document.addEventListener('DOMContentLoaded', () => {
  $('#login-form').addEventListener('submit', login);
  $('#events-form').addEventListener('submit', searchEvents);
  $('#logout').addEventListener('click', logout);
  $('#back').addEventListener('click', () => show('alerts'));
  $('#lang').addEventListener('click', () => {
    state.lang = state.lang === 'zh-CN' ? 'en' : 'zh-CN';
    localStorage.setItem('anju.lang', state.lang);
    applyI18n();
  });
  for (const b of document.querySelectorAll('#nav button')) b.addEventListener('click', () => show(b.dataset.view));
  applyI18n();
  startSession();
});
