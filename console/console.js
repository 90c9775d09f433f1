// console.js: mqbroker's web console. Plain JavaScript, no build step, no
// library: the broker serves this file from its own binary.
//
// Everything it shows comes from one event stream (/console/api/stream):
// a snapshot of the broker every second (the replies of `stats`,
// `list destinations`, `list durables`, `list clients` and `list
// bridges`) and broker events as they happen. Everything it does is an
// admin command from the broker's one command table, sent to
// /console/api/command with the session's CSRF token: mqsh runs the same
// commands.
'use strict';

(() => {
  const HISTORY = 300; // points on a chart: five minutes, one a second
  const MAX_EVENTS = 500;
  const MAX_ROWS = 2000; // rows a table shows; the filter finds the rest
  const MAX_BRIDGE_HISTORY = 200; // bridges whose last minutes the page keeps

  const state = {
    session: null, // {login, admin, token}
    snap: null, // the latest snapshot
    stream: null, // the EventSource
    history: { time: [], rate_in: [], rate_out: [] },
    dest: null, // the destination page's {vhost, name, time, depth, unacked, rate_in, rate_out, shown}
    conn: null, // the connection page's id
    bridge: null, // the bridge page's {name, vhost, shown}
    bridgeHist: new Map(), // bridge name -> its figures of the last minutes (recordBridges)
    events: [],
    eventsPaused: false,
    route: 'overview',
  };

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  // ---- numbers ----

  const grouped = new Intl.NumberFormat('en-US');
  function fmtNum(v) {
    if (v === undefined || v === null || v === '') return '-';
    if (typeof v !== 'number') return String(v);
    if (Number.isInteger(v)) return grouped.format(v);
    return v < 10 ? v.toFixed(1) : grouped.format(Math.round(v));
  }
  function fmtBytes(n) {
    if (n === undefined || n === null) return '-';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)) + ' ' + units[i];
  }
  function fmtDuration(s) {
    if (s === undefined || s === null) return '-';
    const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    if (d) return `${d}d ${h}h`;
    if (h) return `${h}h ${m}m`;
    if (m) return `${m}m ${s % 60}s`;
    return `${s}s`;
  }
  function fmtTime(ms) {
    return new Date(ms).toLocaleTimeString('en-GB');
  }

  // ---- talking to the broker ----

  async function call(path, body) {
    const opts = { method: body === undefined ? 'GET' : 'POST', credentials: 'same-origin', headers: {} };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      if (state.session) opts.headers['X-CSRF-Token'] = state.session.token;
      opts.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, opts);
    } catch (e) {
      return { status: 0, ok: false, message: 'the broker does not answer: ' + e.message };
    }
    let reply;
    try {
      reply = await res.json();
    } catch (e) {
      reply = { status: res.status, ok: false, message: `HTTP ${res.status}` };
    }
    if (res.status === 401 && state.session && path !== '/console/api/login') {
      loggedOut(reply.message);
    }
    return reply;
  }

  // One admin command; the reply is {status, ok, message, data}.
  function command(...args) {
    return call('/console/api/command', { args });
  }

  // A command the user asked for: its one line goes to the notice.
  async function act(...args) {
    const r = await command(...args);
    notify(r.message || (r.ok ? 'done' : 'failed'), !r.ok);
    return r;
  }

  let noticeTimer = null;
  function notify(text, error) {
    const n = $('notice');
    n.textContent = text;
    n.className = error ? 'error' : '';
    n.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { n.hidden = true; }, error ? 9000 : 5000);
  }

  // ---- confirmation ----

  function confirmAction(title, text, withReason) {
    const d = $('confirm');
    $('confirm-title').textContent = title;
    $('confirm-text').textContent = text;
    $('confirm-reason-label').hidden = !withReason;
    $('confirm-reason').value = '';
    return new Promise((resolve) => {
      d.addEventListener('close', () => {
        resolve(d.returnValue === 'ok' ? { reason: $('confirm-reason').value.trim() } : null);
      }, { once: true });
      d.returnValue = '';
      d.showModal();
      (withReason ? $('confirm-reason') : $('confirm-ok')).focus();
    });
  }

  // ---- login ----

  function showLogin(message) {
    $('top').hidden = true;
    for (const s of document.querySelectorAll('main > section')) s.hidden = true;
    $('login-page').hidden = false;
    $('login-error').textContent = message || '';
    $('password').value = '';
    $('login').focus();
  }

  function loggedIn(session) {
    state.session = session;
    $('login-page').hidden = true;
    $('top').hidden = false;
    $('whoami').textContent = `${session.login}${session.admin ? ' (admin)' : ' (viewer)'}`;
    document.body.classList.toggle('viewer', !session.admin);
    for (const e of document.querySelectorAll('.admin-only')) e.hidden = !session.admin;
    $('ov-version').textContent = session.version ? `mqbroker ${session.version}` : '';
    openStream();
    route();
  }

  function loggedOut(reason) {
    state.session = null;
    if (state.stream) state.stream.close();
    state.stream = null;
    state.snap = null;
    showLogin(reason);
  }

  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('login-button').disabled = true;
    const r = await call('/console/api/login', { login: $('login').value, password: $('password').value });
    $('login-button').disabled = false;
    if (r.ok) loggedIn(r.data);
    else showLogin(r.message);
  });

  $('logout').addEventListener('click', async () => {
    await call('/console/api/logout', {});
    loggedOut('Logged out.');
  });

  // ---- the live stream ----

  function setLive(on, text) {
    const l = $('live');
    l.textContent = text;
    l.className = 'live ' + (on ? 'on' : 'off');
  }

  function openStream() {
    if (state.stream) state.stream.close();
    const es = new EventSource('/console/api/stream');
    state.stream = es;
    es.addEventListener('open', () => setLive(true, 'live'));
    es.addEventListener('history', (e) => {
      const h = JSON.parse(e.data);
      const col = (name) => h.fields.indexOf(name);
      state.history = {
        time: h.samples.map((s) => s[0]),
        rate_in: h.samples.map((s) => s[col('rate_in')]),
        rate_out: h.samples.map((s) => s[col('rate_out')]),
      };
    });
    es.addEventListener('snapshot', (e) => snapshot(JSON.parse(e.data)));
    es.addEventListener('event', (e) => brokerEvent(JSON.parse(e.data)));
    es.addEventListener('logout', (e) => {
      es.close();
      loggedOut(JSON.parse(e.data).reason);
    });
    es.addEventListener('error', async () => {
      if (es !== state.stream) return;
      setLive(false, es.readyState === EventSource.CLOSED ? 'stopped' : 'reconnecting');
      if (es.readyState === EventSource.CLOSED) {
        // refused (the session is gone) or the broker went away for good
        const r = await call('/console/api/session');
        if (r.ok && state.session) setTimeout(openStream, 3000);
        else if (!r.ok && r.status !== 401) setTimeout(openStream, 3000);
      }
    });
  }

  function push(arr, v) {
    arr.push(v);
    if (arr.length > HISTORY) arr.shift();
  }

  function snapshot(s) {
    state.snap = s;
    setLive(true, 'live');
    const h = state.history;
    if (!h.time.length || h.time[h.time.length - 1] < s.time_ms) {
      push(h.time, s.time_ms);
      push(h.rate_in, s.stats.rate_in);
      push(h.rate_out, s.stats.rate_out);
    }
    recordBridges(s);
    if (state.dest) {
      const row = findDest(state.dest.vhost, state.dest.name);
      if (row) {
        const d = state.dest;
        if (!d.time.length || d.time[d.time.length - 1] < s.time_ms) {
          push(d.time, s.time_ms);
          for (const k of ['depth', 'unacked', 'rate_in', 'rate_out']) push(d[k], row[k]);
        }
      }
    }
    render();
  }

  function brokerEvent(ev) {
    state.events.unshift(ev);
    if (state.events.length > MAX_EVENTS) state.events.pop();
    if (state.route === 'events' && !state.eventsPaused) renderEvents();
  }

  // ---- routes ----

  const pages = ['overview', 'destinations', 'destination', 'connections', 'connection', 'events', 'bridges', 'bridge',
                 'missing'];

  function route() {
    if (!state.session) return;
    const hash = location.hash.replace(/^#/, '') || '/';
    const parts = hash.split('/').slice(1).map(decodeURIComponent);
    let page = parts[0] || 'overview';
    state.dest = null;
    state.conn = null;
    state.bridge = null;
    if (page === 'destination' && parts.length >= 3) {
      openDest(parts[1], parts.slice(2).join('/'));
    } else if (page === 'connection' && parts.length === 2) {
      state.conn = parts[1];
    } else if (page === 'bridge' && parts.length === 2) {
      openBridge(parts[1]);
    } else if (!['overview', 'destinations', 'connections', 'events', 'bridges'].includes(page)) {
      $('missing-path').textContent = '#' + hash;
      page = 'missing';
    }
    state.route = page;
    for (const p of pages) $(p + '-page').hidden = p !== page;
    for (const a of document.querySelectorAll('header nav a')) {
      a.classList.toggle('current', a.dataset.page === page || a.dataset.page + 's' === page ||
                         (page === 'destination' && a.dataset.page === 'destinations') ||
                         (page === 'connection' && a.dataset.page === 'connections') ||
                         (page === 'bridge' && a.dataset.page === 'bridges'));
    }
    render();
  }
  window.addEventListener('hashchange', route);

  function destLink(vhost, name) {
    return `#/destination/${encodeURIComponent(vhost)}/${name.split('/').map(encodeURIComponent).join('/')}`;
  }

  function render() {
    if (!state.session) return;
    switch (state.route) {
      case 'overview': return renderOverview();
      case 'destinations': return renderDestinations();
      case 'destination': return renderDest();
      case 'connections': return renderConnections();
      case 'connection': return renderConnection();
      case 'events': return renderEvents();
      case 'bridges': return renderBridges();
      case 'bridge': return renderBridge();
    }
  }

  // ---- charts ----

  // Lines over time on an SVG of viewBox 800 x H: series [{values, cls}].
  function chart(svg, times, series) {
    const W = 800, H = svg.viewBox.baseVal.height, top = 8, bottom = H - 18, left = 0;
    let max = 0;
    for (const s of series) for (const v of s.values) if (v > max) max = v;
    const nice = niceMax(max);
    const now = times.length ? times[times.length - 1] : Date.now();
    const span = HISTORY * 1000;
    const x = (t) => left + (W - left) * (1 - (now - t) / span);
    const y = (v) => bottom - (bottom - top) * (v / nice);
    const kids = [];
    const ns = 'http://www.w3.org/2000/svg';
    const mk = (tag, attrs, text) => {
      const e = document.createElementNS(ns, tag);
      for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
      if (text !== undefined) e.textContent = text;
      return e;
    };
    for (let i = 0; i <= 4; i++) {
      const v = nice * i / 4, yy = y(v);
      kids.push(mk('line', { x1: 0, x2: W, y1: yy, y2: yy, class: 'grid-line' }));
      if (i) kids.push(mk('text', { x: 4, y: yy + 12, class: 'axis' }, fmtNum(v)));
    }
    kids.push(mk('text', { x: 4, y: H - 4, class: 'axis' }, '−5 min'));
    kids.push(mk('text', { x: W - 30, y: H - 4, class: 'axis' }, 'now'));
    for (const s of series) {
      const pts = [];
      for (let i = 0; i < times.length; i++) {
        if (now - times[i] > span) continue;
        pts.push(`${x(times[i]).toFixed(1)},${y(s.values[i] || 0).toFixed(1)}`);
      }
      if (pts.length) kids.push(mk('polyline', { points: pts.join(' '), class: s.cls }));
    }
    svg.replaceChildren(...kids);
  }

  // The top of the scale: four grid lines at round values (counts under
  // four still get whole numbers).
  function niceMax(v) {
    if (v <= 4) return 4;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 4, 8, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  // ---- tables ----

  // A sortable table: columns [{key, label, title, num, fmt(v, row), cell(row)}];
  // opts.after(row) may give a second line under a row (content for one
  // cell across the table).
  class Grid {
    constructor(table, columns, opts) {
      this.table = table;
      this.columns = columns;
      this.opts = opts || {};
      this.sortKey = this.opts.sortKey || columns[0].key;
      this.desc = false;
      const tr = el('tr');
      for (const c of columns) {
        const th = el('th', { class: c.num ? 'num' : '', 'data-key': c.key, text: c.label, title: c.title });
        if (c.key) {
          th.addEventListener('click', () => {
            if (this.sortKey === c.key) this.desc = !this.desc;
            else { this.sortKey = c.key; this.desc = !!c.num; }
            this.render(this.rows || []);
          });
        }
        tr.append(th);
      }
      this.thead = el('thead', {}, tr);
      this.tbody = el('tbody');
      table.replaceChildren(this.thead, this.tbody);
    }

    render(rows) {
      this.rows = rows;
      const key = this.sortKey, dir = this.desc ? -1 : 1;
      const sorted = rows.slice().sort((a, b) => {
        const x = a[key], y = b[key];
        if (x === y) return 0;
        if (x === undefined || x === null) return 1;
        if (y === undefined || y === null) return -1;
        if (typeof x === 'number' && typeof y === 'number') return (x - y) * dir;
        return String(x).localeCompare(String(y)) * dir;
      });
      for (const th of this.thead.querySelectorAll('th')) {
        th.classList.toggle('sorted', th.dataset.key === key);
        th.classList.toggle('asc', th.dataset.key === key && !this.desc);
        th.classList.toggle('desc', th.dataset.key === key && this.desc);
      }
      const trs = sorted.slice(0, MAX_ROWS).map((r) => {
        const tr = el('tr', this.opts.rowAttrs ? this.opts.rowAttrs(r) : {});
        for (const c of this.columns) {
          let content;
          if (c.cell) content = c.cell(r);
          else content = c.fmt ? c.fmt(r[c.key], r) : fmtNum(r[c.key]);
          tr.append(el('td', { class: (c.num ? 'num' : '') + (c.wrap ? ' wrap' : ''), 'data-key': c.key || '' }, content));
        }
        const more = this.opts.after && this.opts.after(r);
        if (!more) return [tr];
        tr.classList.add('has-after');
        return [tr, el('tr', Object.assign({ class: 'after' }, more.attrs),
                       el('td', { colspan: String(this.columns.length) }, more.content))];
      }).flat();
      if (!trs.length) trs.push(el('tr', { class: 'none' }, el('td', { colspan: String(this.columns.length), text: 'none' })));
      this.tbody.replaceChildren(...trs);
      return sorted.length;
    }
  }

  function matches(filter, ...fields) {
    if (!filter) return true;
    const f = filter.toLowerCase();
    return fields.some((v) => v !== undefined && v !== null && String(v).toLowerCase().includes(f));
  }

  // ---- overview ----

  function renderOverview() {
    const s = state.snap && state.snap.stats;
    if (!s) return;
    $('ov-connections').textContent = fmtNum(s.connections);
    $('ov-rate-in').textContent = fmtNum(s.rate_in);
    $('ov-rate-out').textContent = fmtNum(s.rate_out);
    $('ov-depth').textContent = fmtNum(s.depth);
    $('ov-unacked').textContent = `${fmtNum(s.unacked)} unacknowledged`;
    $('ov-destinations').textContent = fmtNum(s.destinations);
    $('ov-uptime').textContent = fmtDuration(s.uptime_s);
    chart($('ov-chart'), state.history.time, [
      { values: state.history.rate_in, cls: 'in' },
      { values: state.history.rate_out, cls: 'out' },
    ]);

    const high = s.memory_high_watermark || 0;
    const used = s.message_bytes || 0;
    const bar = $('ov-mem-bar');
    const frac = high ? used / high : 0;
    bar.style.width = high ? Math.min(100, frac * 100).toFixed(1) + '%' : '0';
    bar.className = s.memory_alarm ? 'over' : frac > 0.8 ? 'high' : '';
    $('ov-mem-text').textContent = high
      ? `${fmtBytes(used)} of messages held; the high-watermark is ${fmtBytes(high)} (${frac * 100 < 0.1 && used ? 'under 0.1' : (frac * 100).toFixed(1)}%)`
      : `${fmtBytes(used)} of messages held; no high-watermark is set`;
    details($('ov-memory'), [
      ['messages held', fmtNum(s.messages_held)],
      ['process memory (RSS)', fmtBytes(s.rss_bytes)],
    ]);
    if (s.journal_segments !== undefined) {
      details($('ov-journal'), [
        ['state', s.journal_failing ? 'failing' : 'writing'],
        ['segments', fmtNum(s.journal_segments)],
        ['on disk', fmtBytes(s.journal_disk_bytes)],
        ['live messages', fmtNum(s.journal_live_messages)],
        ['live bytes', fmtBytes(s.journal_live_bytes)],
        ['appends', fmtNum(s.journal_appends)],
        ['fsyncs', fmtNum(s.journal_fsyncs)],
        ['compactions', fmtNum(s.journal_compactions)],
      ]);
    } else {
      details($('ov-journal'), [['state', 'no journal: nothing is persisted']]);
    }
    const alarms = [];
    if (s.memory_alarm) alarms.push(['bad', 'Memory high-watermark reached: producers are paused until memory falls back']);
    if (s.journal_failing) alarms.push(['bad', 'The journal cannot write: persistent messages are refused']);
    const paused = (state.snap.destinations || []).filter((d) => d.paused).length;
    if (paused) alarms.push(['warn', `${paused} paused queue${paused === 1 ? '' : 's'}: delivery stopped`]);
    // bridges that need someone: failing or stalled first, then those held
    for (const r of state.snap.bridges || []) {
      if (r.state === 'failing') alarms.push(['bad', `Bridge ${r.name} failing: ${r.error || 'no reason given'}`]);
      if (r.stalled) {
        alarms.push(['bad', `Bridge ${r.name} stalled: ${fmtNum(r.lag_messages)} message${r.lag_messages === 1 ? '' : 's'} ` +
                     'waiting, nothing moves']);
      }
    }
    const held = (state.snap.bridges || []).filter((r) => r.state === 'paused' || r.state === 'blocked');
    for (const st of ['paused', 'blocked']) {
      const n = held.filter((r) => r.state === st).length;
      if (n) alarms.push(['warn', `${n} ${st} bridge${n === 1 ? '' : 's'}: ` + held.filter((r) => r.state === st).map((r) => r.name).join(', ')]);
    }
    const list = $('ov-alarms');
    list.replaceChildren(...(alarms.length
      ? alarms.map(([cls, text]) => el('li', { class: cls === 'warn' ? 'warn' : '', text }))
      : [el('li', { class: 'none', text: 'No alarms' })]));
  }

  function details(dl, pairs) {
    const kids = [];
    for (const [k, v] of pairs) kids.push(el('dt', { text: k }), el('dd', { text: v }));
    dl.replaceChildren(...kids);
  }

  // ---- destinations ----

  // Rows of every destination, durable subscriptions marked as such.
  function destRows() {
    const s = state.snap;
    if (!s) return [];
    const durable = new Map((s.durables || []).map((d) => [`${d.vhost}\n/durable/${d.name}`, d]));
    return (s.destinations || []).map((d) => {
      const du = durable.get(`${d.vhost}\n${d.name}`);
      const row = Object.assign({}, d);
      if (du) {
        row.type = 'durable';
        row.topic = du.topic;
      }
      row.state = d.paused ? 'paused' : '';
      return row;
    });
  }

  function findDest(vhost, name) {
    return destRows().find((d) => d.vhost === vhost && d.name === name);
  }

  const destGrid = new Grid($('dest-table'), [
    { key: 'name', label: 'Name', cell: (r) => el('a', { href: destLink(r.vhost, r.name), text: r.name }) },
    { key: 'type', label: 'Type', fmt: (v, r) => (r.topic ? `durable (${r.topic})` : v) },
    { key: 'vhost', label: 'Virtual host', fmt: (v) => v },
    { key: 'depth', label: 'Depth', num: true },
    { key: 'unacked', label: 'Unacked', num: true },
    { key: 'consumers', label: 'Consumers', num: true },
    { key: 'rate_in', label: 'In /s', num: true },
    { key: 'rate_out', label: 'Out /s', num: true },
    { key: 'messages_in', label: 'In total', num: true },
    { key: 'state', label: 'State', fmt: (v) => v },
  ], { rowAttrs: (r) => ({ 'data-name': r.name, 'data-vhost': r.vhost }) });

  function renderDestinations() {
    const filter = $('dest-filter').value.trim(), type = $('dest-type').value;
    const all = destRows();
    const rows = all.filter((d) => (!type || d.type === type) && matches(filter, d.name, d.type, d.vhost, d.topic));
    const n = destGrid.render(rows);
    $('dest-count').textContent = `${n} of ${all.length} destination${all.length === 1 ? '' : 's'}` +
      (n > MAX_ROWS ? ` (the first ${MAX_ROWS} shown: filter to see the others)` : '');
  }
  $('dest-filter').addEventListener('input', renderDestinations);
  $('dest-type').addEventListener('change', renderDestinations);

  $('create-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const args = ['create', $('create-kind').value, $('create-name').value.trim()];
    if ($('create-persistent').checked && $('create-kind').value === 'queue') args.push('persistent');
    const r = await act(...args);
    if (r.ok) $('create-name').value = '';
  });

  // ---- one destination ----

  function openDest(vhost, name) {
    const d = { vhost, name, time: [], depth: [], unacked: [], rate_in: [], rate_out: [], shown: null };
    state.dest = d;
    $('d-title').textContent = name;
    $('d-gone').hidden = true;
    $('d-publish-body').value = '';
    const q = new URLSearchParams({ name, vhost });
    call('/console/api/history?' + q).then((r) => {
      if (state.dest !== d || !r.samples) return;
      const col = (f) => r.fields.indexOf(f);
      // what the stream added meanwhile goes after the recorded minutes
      const last = r.samples.length ? r.samples[r.samples.length - 1][0] : 0;
      const later = d.time.map((t, i) => i).filter((i) => d.time[i] > last);
      const merged = { time: r.samples.map((s) => s[0]) };
      for (const k of ['depth', 'unacked', 'rate_in', 'rate_out']) merged[k] = r.samples.map((s) => s[col(k)]);
      for (const i of later) for (const k of ['time', 'depth', 'unacked', 'rate_in', 'rate_out']) merged[k].push(d[k][i]);
      for (const k of Object.keys(merged)) d[k] = merged[k].slice(-HISTORY);
      renderDest();
    });
    refreshShow();
  }

  function destArgs(...args) {
    const d = state.dest;
    return d.vhost === '/' ? args : args.concat(['vhost=' + d.vhost]);
  }

  let showPending = false;
  async function refreshShow() {
    const d = state.dest;
    if (!d || showPending) return;
    showPending = true;
    const r = await command(...destArgs('show', d.name));
    showPending = false;
    if (state.dest !== d) return;
    if (!r.ok) {
      d.shown = null;
      $('d-gone').textContent = r.message;
      $('d-gone').hidden = false;
      return;
    }
    $('d-gone').hidden = true;
    d.shown = r.data;
    // only what `show` gave: renderDest() would ask for `show` again, and
    // the page would poll the broker as fast as it answers
    renderShown();
  }

  const subGrid = new Grid($('d-subscribers'), [
    { key: 'client', label: 'Client', cell: (r) => el('a', { href: `#/connection/${r.client}`, text: String(r.client) }) },
    { key: 'id', label: 'Subscription', fmt: (v) => v },
    { key: 'ack', label: 'Ack', fmt: (v) => v },
    { key: 'unacked', label: 'Unacked', num: true },
    { key: 'priority', label: 'Priority', num: true },
  ]);
  const childGrid = new Grid($('d-children'), [
    { key: 'name', label: 'Child', cell: (r) => el('a', { href: destLink(state.dest.vhost, r.name), text: r.name }) },
    { key: '', label: '', cell: (r) => (state.session.admin
      ? el('button', { type: 'button', class: 'detach', 'data-child': r.name, text: 'Detach', onclick: () => detach(r.name) })
      : '') },
  ]);

  // The subscribers, children and details of the last `show` reply.
  function renderShown() {
    const shown = state.dest && state.dest.shown;
    if (!shown) return;
    subGrid.render(shown.subscribers || []);
    childGrid.render((shown.child_names || []).map((name) => ({ name })));
    const skip = new Set(['subscribers', 'child_names']);
    details($('d-details'), Object.entries(shown).filter(([k]) => !skip.has(k))
      .map(([k, v]) => [k.replace(/_/g, ' '), typeof v === 'number' ? fmtNum(v) : v === null ? '-' : String(v)]));
  }

  function renderDest() {
    const d = state.dest;
    if (!d) return;
    const row = findDest(d.vhost, d.name);
    const shown = d.shown;
    const type = row ? row.type : shown ? shown.type : '';
    $('d-type').textContent = row && row.topic ? `durable subscription of ${row.topic}` : type;
    $('d-state').textContent = row && row.paused ? 'paused' : '';
    $('d-state').className = 'tag' + (row && row.paused ? ' paused' : '');
    for (const k of ['depth', 'unacked', 'consumers']) $('d-' + k).textContent = row ? fmtNum(row[k]) : '-';
    $('d-rate-in').textContent = row ? fmtNum(row.rate_in) : '-';
    $('d-rate-out').textContent = row ? fmtNum(row.rate_out) : '-';
    const queue = type === 'queue' || type === 'durable', pubsub = type === 'pubsub';
    for (const e of document.querySelectorAll('#destination-page .queue-only')) e.hidden = !queue;
    for (const e of document.querySelectorAll('#destination-page .pubsub-only')) e.hidden = !pubsub;
    if (queue && row) {
      $('d-pause').disabled = !!row.paused;
      $('d-resume').disabled = !row.paused;
    }
    chart($('d-chart-depth'), d.time, [{ values: d.depth, cls: 'depth' }, { values: d.unacked, cls: 'unacked' }]);
    chart($('d-chart-rates'), d.time, [{ values: d.rate_in, cls: 'in' }, { values: d.rate_out, cls: 'out' }]);
    renderShown();
    if (!row && state.snap) {
      $('d-gone').textContent = `${d.name} does not exist (any more) in virtual host ${d.vhost}`;
      $('d-gone').hidden = false;
    }
    refreshShow();
  }

  $('d-publish-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const d = state.dest;
    const headers = $('d-publish-headers').value.split('\n').map((l) => l.trim()).filter((l) => l);
    for (const h of headers) {
      if (!/^[^=]+=/.test(h)) {
        notify(`header '${h}' is not NAME=VALUE`, true);
        return;
      }
    }
    if ($('d-publish-persistent').checked) headers.push('persistent=true');
    const r = await act(...destArgs('send', d.name, $('d-publish-body').value, ...headers));
    if (r.ok) refreshShow();
  });

  $('d-purge').addEventListener('click', async () => {
    const d = state.dest;
    if (!await confirmAction('Purge ' + d.name, 'Every message the queue holds is removed. Deliveries in flight stay.')) return;
    await act(...destArgs('purge', d.name));
  });
  $('d-pause').addEventListener('click', () => act(...destArgs('pause', state.dest.name)));
  $('d-resume').addEventListener('click', () => act(...destArgs('resume', state.dest.name)));
  $('d-redrive-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const target = $('d-redrive-target').value.trim();
    const d = state.dest;
    if (!await confirmAction('Move dead letters back', `Every message of ${d.name} goes back ` +
        (target ? `to ${target}.` : 'to the destination it came from.'))) return;
    await act(...destArgs('redrive', d.name, ...(target ? [target] : [])));
  });
  $('d-attach-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const r = await act(...destArgs('attach', state.dest.name, $('d-attach-child').value.trim()));
    if (r.ok) { $('d-attach-child').value = ''; refreshShow(); }
  });
  async function detach(child) {
    const r = await act(...destArgs('detach', state.dest.name, child));
    if (r.ok) refreshShow();
  }

  // ---- connections ----

  function disconnectButton(id) {
    return el('button', { type: 'button', class: 'danger disconnect', 'data-id': String(id), text: 'Disconnect…',
                          onclick: (ev) => { ev.stopPropagation(); disconnect(id); } });
  }

  const connGrid = new Grid($('conn-table'), [
    { key: 'id', label: 'Id', num: true, cell: (r) => el('a', { href: `#/connection/${r.id}`, text: String(r.id) }) },
    { key: 'login', label: 'Login', fmt: (v) => v || '(anonymous)' },
    { key: 'peer', label: 'Peer', fmt: (v) => v },
    { key: 'vhost', label: 'Virtual host', fmt: (v) => v },
    { key: 'version', label: 'Protocol', fmt: (v) => (v ? 'STOMP ' + v : '-') },
    { key: 'transport', label: 'Transport', fmt: (v) => v },
    { key: 'subscriptions', label: 'Subscriptions', num: true },
    { key: 'unacked', label: 'Unacked', num: true },
    { key: 'messages_in', label: 'In', num: true },
    { key: 'messages_out', label: 'Out', num: true },
    { key: 'connected_s', label: 'Connected', num: true, fmt: fmtDuration },
    { key: '', label: '', cell: (r) => (state.session.admin ? disconnectButton(r.id) : '') },
  ], { rowAttrs: (r) => ({ 'data-id': String(r.id) }) });

  function renderConnections() {
    const s = state.snap;
    if (!s) return;
    const filter = $('conn-filter').value.trim();
    const all = s.clients || [];
    const rows = all.filter((c) => matches(filter, c.id, c.login, c.peer, c.vhost, c.version, c.transport));
    const n = connGrid.render(rows);
    $('conn-count').textContent = `${n} of ${all.length} connection${all.length === 1 ? '' : 's'}`;
  }
  $('conn-filter').addEventListener('input', renderConnections);

  async function disconnect(id) {
    const answer = await confirmAction(`Disconnect client ${id}`,
      'The client gets an ERROR with the reason; its unacknowledged messages go back to their queues.', true);
    if (!answer) return;
    const r = await act('disconnect', String(id), ...(answer.reason ? [answer.reason] : []));
    if (r.ok && state.route === 'connection') location.hash = '#/connections';
  }

  const connSubGrid = new Grid($('c-subscriptions'), [
    { key: 'id', label: 'Subscription', fmt: (v) => v },
    { key: 'destination', label: 'Destination', fmt: (v) => v },
    { key: 'ack', label: 'Ack', fmt: (v) => v },
    { key: 'unacked', label: 'Unacked', num: true },
  ]);

  let connPending = false;
  async function renderConnection() {
    const id = state.conn;
    $('c-title').textContent = id;
    if (connPending) return;
    connPending = true;
    const r = await command('show', 'client', id);
    connPending = false;
    if (state.conn !== id) return;
    $('c-gone').hidden = r.ok;
    $('c-disconnect').disabled = !r.ok;
    if (!r.ok) {
      $('c-gone').textContent = r.message;
      return;
    }
    connSubGrid.render(r.data.subscription_list || []);
    details($('c-details'), Object.entries(r.data).filter(([k]) => k !== 'subscription_list')
      .map(([k, v]) => [k.replace(/_/g, ' '), typeof v === 'number' ? fmtNum(v) : typeof v === 'object' ? JSON.stringify(v) : String(v)]));
  }
  $('c-disconnect').addEventListener('click', () => disconnect(state.conn));

  // ---- events ----

  function renderEvents() {
    const filter = $('events-filter').value.trim();
    const shown = state.events.filter((e) => matches(filter, JSON.stringify(e)));
    $('events-list').replaceChildren(...shown.map((e) => {
      const rest = Object.entries(e).filter(([k, v]) => k !== 'event' && k !== 'time_ms' && v !== '')
        .map(([k, v]) => `${k}=${v}`);
      return el('li', {}, el('span', { class: 'time', text: fmtTime(e.time_ms) }),
        el('span', { class: 'name', text: e.event }), el('span', { text: rest.join(' ') }));
    }));
    $('events-count').textContent = `${shown.length} event${shown.length === 1 ? '' : 's'}` +
      (state.eventsPaused ? ' (paused)' : '');
  }
  $('events-filter').addEventListener('input', renderEvents);
  $('events-pause').addEventListener('click', () => {
    state.eventsPaused = !state.eventsPaused;
    $('events-pause').textContent = state.eventsPaused ? 'Resume' : 'Pause';
    renderEvents();
  });
  $('events-clear').addEventListener('click', () => { state.events = []; renderEvents(); });

  // ---- bridges ----

  // A bridge's state as a tag: running is well, paused and blocked held
  // back on purpose or by backpressure, connecting on its way, failing
  // wrong (docs/bridges.md, "States").
  function bridgeStateTag(state) {
    return el('span', { class: 'tag state-' + state, text: state });
  }

  function fmtSeconds(v) {
    if (v === undefined || v === null) return '-';
    return v < 60 ? `${v.toFixed(v < 10 ? 1 : 0)} s` : fmtDuration(Math.round(v));
  }

  // What each bridge did over the last minutes, from the snapshots this
  // page received: forwarded and acknowledged per second, lag, pending.
  function recordBridges(s) {
    const seen = new Set();
    for (const r of (s.bridges || []).slice(0, MAX_BRIDGE_HISTORY)) {
      seen.add(r.name);
      let h = state.bridgeHist.get(r.name);
      if (!h || (h.last && (r.forwarded < h.last.forwarded || r.acknowledged < h.last.acknowledged))) {
        // new, or deleted and added again: its counters started afresh
        h = { time: [], forwarded: [], acknowledged: [], lag: [], pending: [], last: null };
        state.bridgeHist.set(r.name, h);
      }
      if (h.last && s.time_ms <= h.last.time) continue;
      if (h.last) {
        const secs = (s.time_ms - h.last.time) / 1000;
        push(h.time, s.time_ms);
        push(h.forwarded, (r.forwarded - h.last.forwarded) / secs);
        push(h.acknowledged, (r.acknowledged - h.last.acknowledged) / secs);
        push(h.lag, r.lag_messages);
        push(h.pending, r.pending);
      }
      h.last = { time: s.time_ms, forwarded: r.forwarded, acknowledged: r.acknowledged };
    }
    for (const name of state.bridgeHist.keys()) if (!seen.has(name)) state.bridgeHist.delete(name);
  }

  function findBridge(name) {
    return ((state.snap && state.snap.bridges) || []).find((r) => r.name === name);
  }

  function bridgeActions(r) {
    const pause = r.paused
      ? el('button', { type: 'button', class: 'bridge-resume', 'data-name': r.name, text: 'Resume',
                       onclick: () => act('bridge', 'resume', r.name) })
      : el('button', { type: 'button', class: 'bridge-pause', 'data-name': r.name, text: 'Pause',
                       onclick: () => act('bridge', 'pause', r.name) });
    return el('span', { class: 'actions small' }, pause,
      el('button', { type: 'button', class: 'danger bridge-delete', 'data-name': r.name, text: 'Delete…',
                     onclick: () => deleteBridge(r.name) }));
  }

  // One row a bridge; a failing one has its reason on a line of its own
  // under it, where it cannot be missed.
  const bridgeGrid = new Grid($('bridges-table'), [
    { key: 'name', label: 'Name', cell: (r) => el('span', {},
      el('a', { href: `#/bridge/${encodeURIComponent(r.name)}`, text: r.name }), ' ',
      el('span', { class: 'tag direction', title: r.direction === 'out' ? 'outbound: local to remote' : 'inbound: remote to local',
                   text: r.direction })) },
    { key: 'state', label: 'State', cell: (r) => el('span', { class: 'tags' },
      bridgeStateTag(r.state), r.stalled ? el('span', { class: 'tag failing stalled', text: 'stalled' }) : null) },
    { key: 'from', label: 'From → to', wrap: true, cell: (r) => `${r.from} → ${r.to || r.from}` },
    { key: 'node', label: 'Node in use', fmt: (v) => v || '-' },
    { key: 'forwarded', label: 'Forwarded', num: true },
    { key: 'acknowledged', label: 'Acknowledged', num: true },
    { key: 'pending', label: 'Pending', num: true },
    { key: 'redelivered', label: 'Redelivered', num: true },
    { key: 'lag_messages', label: 'Lag', title: 'messages waiting · the age of the oldest', num: true, cell: (r) => el('span', {}, fmtNum(r.lag_messages),
      el('span', { class: 'muted lag-seconds', text: ` · ${fmtSeconds(r.lag_seconds)}` })) },
    { key: '', label: '', cell: (r) => (state.session.admin ? bridgeActions(r) : '') },
  ], {
    rowAttrs: (r) => ({ 'data-name': r.name, 'data-state': r.state, title: r.error ? 'last error: ' + r.error : null }),
    after: (r) => (r.state === 'failing' && r.error
      ? { attrs: { 'data-error-for': r.name }, content: el('span', { class: 'bridge-error', text: 'failing: ' + r.error }) }
      : null),
  });

  function renderBridges() {
    const all = (state.snap && state.snap.bridges) || [];
    const filter = $('bridges-filter').value.trim();
    $('bridges-empty').hidden = all.length > 0;
    $('bridges-table').hidden = all.length === 0;
    const rows = all.filter((r) => matches(filter, r.name, r.direction, r.state, r.from, r.to, r.node, r.error));
    const n = bridgeGrid.render(rows);
    const counts = {};
    for (const r of all) counts[r.state] = (counts[r.state] || 0) + 1;
    $('bridges-count').textContent = all.length
      ? `${n} of ${all.length} bridge${all.length === 1 ? '' : 's'}: ` +
        Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(', ')
      : '';
  }
  $('bridges-filter').addEventListener('input', renderBridges);

  async function deleteBridge(name) {
    if (!await confirmAction('Delete bridge ' + name, 'The bridge stops and its record leaves the journal (one of the ' +
        'configuration file comes back at the next start). Nothing unconfirmed is lost: an outbound bridge\'s ' +
        'messages go back to their queues, an inbound bridge\'s stay at the remote.')) return;
    const r = await act('bridge', 'delete', name);
    if (r.ok && state.route === 'bridge') location.hash = '#/bridges';
  }

  $('bridge-add-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const opts = $('bridge-add-options').value.split('\n').map((l) => l.trim()).filter((l) => l);
    for (const o of opts) {
      if (!/^[^=]+=/.test(o)) {
        notify(`option '${o}' is not OPTION=VALUE`, true);
        return;
      }
    }
    const args = ['bridge', 'add', $('bridge-add-name').value.trim(), 'direction=' + $('bridge-add-direction').value,
                  'from=' + $('bridge-add-from').value.trim(), 'hosts=' + $('bridge-add-hosts').value.trim()];
    const to = $('bridge-add-to').value.trim();
    if (to) args.push('to=' + to);
    const r = await act(...args, ...opts);
    if (r.ok) {
      for (const id of ['bridge-add-name', 'bridge-add-from', 'bridge-add-to', 'bridge-add-hosts', 'bridge-add-options']) $(id).value = '';
    }
  });

  // ---- one bridge ----

  const bridgeSubGrid = new Grid($('b-subscriptions'), [
    { key: 'destination', label: 'Destination', cell: (r) => el('a', { href: destLink(state.bridge.vhost, r.destination), text: r.destination }) },
    { key: 'type', label: 'Type', fmt: (v) => v },
    { key: 'depth', label: 'Depth', num: true },
    { key: 'unacked', label: 'Unacked', num: true },
  ]);

  function openBridge(name) {
    state.bridge = { name, vhost: '/', shown: null };
    $('b-title').textContent = name;
    $('b-gone').hidden = true;
    $('b-error').hidden = true;
    for (const id of ['b-direction', 'b-state', 'b-stalled', 'b-route']) $(id).textContent = '';
    details($('b-details'), []);
    bridgeSubGrid.render([]);
  }

  let bridgeShowPending = false;
  async function refreshBridge() {
    const br = state.bridge;
    if (!br || bridgeShowPending) return;
    bridgeShowPending = true;
    const r = await command('show', 'bridge', br.name);
    bridgeShowPending = false;
    if (state.bridge !== br) return;
    if (!r.ok) {
      br.shown = null;
      $('b-gone').textContent = r.message;
      $('b-gone').hidden = false;
      return;
    }
    br.shown = r.data;
    br.vhost = r.data.vhost;
    renderBridgeDetails();
  }

  function renderBridgeDetails() {
    const shown = state.bridge && state.bridge.shown;
    if (!shown) return;
    bridgeSubGrid.render(shown.subscriptions || []);
    const shownAbove = new Set(['name', 'direction', 'state', 'error', 'stalled', 'node', 'forwarded', 'acknowledged',
                                'pending', 'redelivered', 'lag_messages', 'lag_seconds', 'subscriptions', 'words']);
    const pairs = Object.entries(shown).filter(([k]) => !shownAbove.has(k)).map(([k, v]) => {
      let text;
      if (Array.isArray(v)) text = v.join(', ');
      else if (k.endsWith('_ms') && k !== 'created_ms') text = v ? fmtSeconds(v / 1000) : 'off';
      else if (k === 'created_ms') text = new Date(v).toLocaleString('en-GB');
      else if (k.endsWith('_s')) text = fmtDuration(v);
      else text = typeof v === 'number' ? fmtNum(v) : v === '' || v === null ? '-' : String(v);
      return [k.replace(/_m?s$/, '').replace(/_/g, ' '), text];
    });
    if (shown.words) pairs.push(['options', shown.words.map(([k, v]) => `${k}=${v}`).join(' ')]);
    details($('b-details'), pairs);
  }

  function renderBridge() {
    const br = state.bridge;
    if (!br) return;
    const r = findBridge(br.name);
    $('b-gone').hidden = !!r || !state.snap;
    if (!r) {
      if (state.snap) $('b-gone').textContent = `there is no bridge named ${br.name} (any more)`;
      return;
    }
    $('b-direction').textContent = r.direction;
    $('b-state').textContent = r.state;
    $('b-state').className = 'tag state-' + r.state;
    $('b-stalled').textContent = r.stalled ? 'stalled' : '';
    $('b-error').hidden = !r.error;
    $('b-error').textContent = r.state === 'failing' ? `failing: ${r.error}` : `last error: ${r.error}`;
    $('b-error').className = r.state === 'failing' ? 'error' : 'muted';
    $('b-route').textContent = `${r.from} → ${r.to || r.from}` + (r.vhost !== '/' ? ` (virtual host ${r.vhost})` : '');
    $('b-node').textContent = r.node || 'not connected';
    for (const k of ['forwarded', 'acknowledged', 'pending', 'redelivered']) $('b-' + k).textContent = fmtNum(r[k]);
    $('b-lag-messages').textContent = fmtNum(r.lag_messages);
    $('b-lag-seconds').textContent = `oldest ${fmtSeconds(r.lag_seconds)}`;
    $('b-pause').disabled = !!r.paused;
    $('b-resume').disabled = !r.paused;
    const h = state.bridgeHist.get(br.name) || { time: [], forwarded: [], acknowledged: [], lag: [], pending: [] };
    chart($('b-chart-rates'), h.time, [{ values: h.forwarded, cls: 'in' }, { values: h.acknowledged, cls: 'out' }]);
    chart($('b-chart-lag'), h.time, [{ values: h.lag, cls: 'depth' }, { values: h.pending, cls: 'unacked' }]);
    refreshBridge();
  }

  $('b-pause').addEventListener('click', () => act('bridge', 'pause', state.bridge.name));
  $('b-resume').addEventListener('click', () => act('bridge', 'resume', state.bridge.name));
  $('b-delete').addEventListener('click', () => deleteBridge(state.bridge.name));

  // ---- start ----

  (async () => {
    const r = await call('/console/api/session');
    if (r.ok) loggedIn(r.data);
    else showLogin();
  })();
})();
