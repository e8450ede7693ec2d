// sensor_workers operator dashboard: plain browser JavaScript, no build step.
// Talks to the bridge through its own endpoints: GET /status, POST /devices/..., and the
// websockets /ws/image, /ws/wrench and /ws/events (see docs/dashboard.md).
'use strict';

(() => {
  const TOKEN_KEY = 'sensor_workers.token';
  const WINDOW_S = 10; // the F/T plot always shows the last 10 s
  const RING = 1 << 15; // samples kept: 10 s at up to 3.2 kHz, allocated once
  const STATUS_PERIOD_MS = 2000;
  const STALE_MS = 1500; // no data for this long while connected: say so
  const MAX_EVENTS = 200;
  const MAX_LOGS = 500;
  const LOG_LEVELS = ['info', 'warn', 'error', 'fatal']; // what the bridge sends, lowest first
  const HISTORY_S = 300; // the rate and drop sparklines show the last 5 minutes
  const HISTORY = 160; // points per device: 5 min of 2 s polls and a few extra
  const AXES = ['fx', 'fy', 'fz', 'tx', 'ty', 'tz'];
  const COLORS = ['#d62728', '#2ca02c', '#1f77b4'];
  const pageParams = new URLSearchParams(location.search);
  const IMAGE_FPS = Number(pageParams.get('max_fps')) || 15;

  const $ = (id) => document.getElementById(id);

  // Counters the test (and a curious operator, from the console) can read; never written from
  // outside: window.dashboard.stats returns a frozen copy.
  const stats = {
    statusPolls: 0,
    wrenchMessages: 0,
    wrenchSamples: 0,
    wrenchDropped: 0,
    wrenchRateHz: 0,
    imageFrames: 0,
    imageSeq: -1,
    imageDropped: 0,
    imageWidth: 0,
    imageHeight: 0,
    requestedMaxWidth: 0,
    requestedMaxFps: IMAGE_FPS,
    events: 0,
    deviceUpdates: 0,
    reconnects: 0,
    plotDraws: 0,
    ringCapacity: RING,
    logLines: 0,
    logLevel: 'info',
    logsDropped: {}, // node -> lines the bridge's rate limit dropped
    latency: {}, // device -> {p50_ms, p99_ms, count}
    recording: null, // {recording, path, frames, dropped} from the camera's diagnostics
    cameras: [], // the bridge's cameras (/status bridge.cameras), the first its default
    camera: null, // the camera shown and controlled (null: the bridge's default, until known)
    historyCapacity: HISTORY,
  };
  const connections = { bridge: 'connecting', image: 'idle', wrench: 'idle', events: 'idle' };
  const devices = new Map(); // name -> {card, data, updated, spark, history}

  Object.defineProperty(window, 'dashboard', {
    value: Object.freeze({
      get stats() {
        return Object.freeze({ ...stats, connections: { ...connections },
          devices: Object.fromEntries([...devices].map(([n, d]) => [n, { ...d.data }])),
          historyPoints: Object.fromEntries([...devices].map(([n, d]) => [n, d.history.count])),
        });
      },
    }),
    enumerable: true,
  });

  // ---------------------------------------------------------------- auth and HTTP
  let token = sessionStorage.getItem(TOKEN_KEY) || '';
  let live = false; // websockets and polling running (token accepted or not needed)

  async function api(method, path, body) {
    const headers = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    const init = { method, headers, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    const text = await res.text();
    let data = text;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (err) {
      // not JSON: keep the text, it is shown as the reason
    }
    return { ok: res.ok, status: res.status, data };
  }

  function askToken(message) {
    stopLive();
    setConn('bridge', 'refused', 'token needed');
    $('token-message').textContent = message;
    $('token-modal').hidden = false;
    $('token-input').value = '';
    $('token-input').focus();
  }

  $('token-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const candidate = $('token-input').value.trim();
    if (!candidate) return;
    $('token-submit').disabled = true;
    $('token-message').textContent = 'checking…';
    token = candidate;
    let res;
    try {
      res = await api('GET', '/status');
    } catch (err) {
      res = null;
    }
    $('token-submit').disabled = false;
    if (res && res.status === 401) {
      token = '';
      sessionStorage.removeItem(TOKEN_KEY);
      $('token-message').textContent = 'Token refused by the bridge (401). Try again.';
      $('token-input').select();
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, candidate);
    $('token-modal').hidden = true;
    if (res && res.ok) applyStatus(res.data);
    startLive();
  });

  function authRefused() {
    const had = Boolean(token);
    token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    askToken(had ? 'The bridge no longer accepts the saved token.'
      : 'This bridge requires an access token.');
  }

  // ---------------------------------------------------------------- connection indicator
  function setConn(name, state, text) {
    connections[name] = state;
    const el = $(`conn-${name}`);
    el.dataset.state = state;
    el.querySelector('b').textContent = text || state;
    updateBanner();
  }

  function updateBanner() {
    const banner = $('banner');
    let message = '';
    let level = 'warn';
    if (connections.bridge === 'down') {
      message = 'Bridge unreachable: reconnecting…';
      level = 'error';
    } else if (connections.bridge === 'refused') {
      message = 'Access token required';
    } else {
      const lost = ['image', 'wrench', 'events'].filter(
        (n) => connections[n] === 'retrying' || connections[n] === 'connecting');
      const troubled = [...devices].filter(([, d]) => d.data.state && d.data.state !== 'active');
      if (lost.length) message = `Reconnecting ${lost.join(', ')}…`;
      const words = troubled.map(([n, d]) => `${n} ${d.data.state}`);
      if (words.length) {
        message = message ? `${message} · ${words.join(', ')}` : `Device ${words.join(', ')}`;
        if (troubled.some(([, d]) => d.data.state === 'degraded')) level = 'error';
      }
    }
    banner.hidden = !message;
    banner.textContent = message;
    banner.dataset.level = level;
  }

  // ---------------------------------------------------------------- websockets with backoff
  class Channel {
    constructor(name, path, { binary = false, params = () => ({}), onMessage }) {
      this.name = name;
      this.path = path;
      this.binary = binary;
      this.params = params;
      this.onMessage = onMessage;
      this.ws = null;
      this.timer = 0;
      this.attempt = 0;
      this.stopped = true;
      this.lastMessage = 0;
    }

    url() {
      const url = new URL(this.path, location.href);
      url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
      for (const [key, value] of Object.entries(this.params())) url.searchParams.set(key, value);
      if (token) url.searchParams.set('token', token);
      return url.toString();
    }

    start() {
      if (!this.stopped) return;
      this.stopped = false;
      this.connect();
    }

    stop() {
      this.stopped = true;
      clearTimeout(this.timer);
      if (this.ws) {
        this.ws.onclose = null;
        this.ws.close(1000);
        this.ws = null;
      }
      setConn(this.name, 'idle');
    }

    reconnectNow() {
      this.stop();
      this.start();
    }

    connect() {
      setConn(this.name, 'connecting', this.attempt ? 'reconnecting' : 'connecting');
      let opened = false;
      const ws = new WebSocket(this.url());
      if (this.binary) ws.binaryType = 'arraybuffer';
      ws.onopen = () => {
        opened = true;
        this.attempt = 0;
        setConn(this.name, 'open', 'live');
        if (connections.bridge !== 'open') pollStatus(); // back after a bridge restart
      };
      ws.onmessage = (ev) => {
        this.lastMessage = performance.now();
        this.onMessage(ev.data);
      };
      ws.onclose = (ev) => {
        this.ws = null;
        if (this.stopped) return;
        if (ev.code === 1008) {
          setConn(this.name, 'refused', 'refused');
          authRefused();
          return;
        }
        // A handshake refused before opening may be an auth failure (an HTTP 403/401 reaches
        // the page only as code 1006): /status tells.
        if (!opened) checkAuth();
        this.schedule();
      };
      this.ws = ws;
    }

    schedule() {
      const base = Math.min(5000, 250 * 2 ** this.attempt);
      const delay = base * (0.8 + 0.4 * Math.random());
      this.attempt += 1;
      stats.reconnects += 1;
      setConn(this.name, 'retrying', `retry in ${(delay / 1000).toFixed(1)} s`);
      this.timer = setTimeout(() => {
        if (!this.stopped) this.connect();
      }, delay);
    }
  }

  async function checkAuth() {
    try {
      const res = await api('GET', '/status');
      if (res.status === 401 && live) authRefused();
    } catch (err) {
      setConn('bridge', 'down', 'unreachable');
    }
  }

  // ---------------------------------------------------------------- /status polling
  let statusTimer = 0;

  let statusInFlight = false;

  async function pollStatus() {
    if (statusInFlight) return;
    clearTimeout(statusTimer);
    if (!live) return;
    statusInFlight = true;
    try {
      const res = await api('GET', '/status');
      stats.statusPolls += 1;
      if (res.status === 401) {
        authRefused();
        return;
      }
      if (res.ok) {
        setConn('bridge', 'open', 'up');
        applyStatus(res.data);
      } else {
        setConn('bridge', 'down', `HTTP ${res.status}`);
      }
    } catch (err) {
      setConn('bridge', 'down', 'unreachable');
    } finally {
      statusInFlight = false;
    }
    if (live) statusTimer = setTimeout(pollStatus, STATUS_PERIOD_MS);
  }

  // A whole /status answer: devices (with their diagnostics), latency, log lines and the
  // bridge's own counters; each answer adds a point to the rate and drop history.
  function applyStatus(status) {
    if (!status || typeof status !== 'object') return;
    applyDevices(status.devices ?? status.device_states);
    if (status.latency) applyLatency(status.latency);
    if (status.logs) applyLogs(status.logs);
    if (status.bridge) {
      showCameras(status.bridge.cameras);
      showBridge(status.bridge, status.clients);
    }
    sampleHistory();
  }

  function applyDevices(list) {
    for (const [name, data] of deviceEntries(list)) updateDevice(name, data);
  }

  function deviceEntries(list) {
    if (!list) return [];
    if (Array.isArray(list)) return list.filter((d) => d && d.name).map((d) => [d.name, d]);
    return Object.entries(list);
  }

  // ---------------------------------------------------------------- device health
  function fmtInt(v) {
    return v === undefined || v === null || v === '' ? '–' : Number(v).toLocaleString('en-US');
  }

  function fmtNum(v, digits, unit) {
    if (v === undefined || v === null || v === '' || Number.isNaN(Number(v))) return '–';
    return `${Number(v).toFixed(digits)} ${unit}`;
  }

  // Milliseconds with the digits that matter: 0.42, 6.6, 126.
  function fmtMs(v) {
    if (v === undefined || v === null || Number.isNaN(Number(v))) return '–';
    const ms = Number(v);
    return ms.toFixed(ms < 1 ? 2 : ms < 10 ? 1 : 0);
  }

  function fmtSpan(seconds) {
    return seconds < 90 ? `${Math.round(seconds)} s` : `${Math.round(seconds / 60)} min`;
  }

  // Wall-clock time of a ROS stamp (ns since the epoch), to the millisecond.
  function fmtStamp(stampNs) {
    const ms = stampNs ? Number(stampNs) / 1e6 : Date.now();
    return new Date(ms).toLocaleTimeString('en-GB', { hour12: false })
      + `.${String(Math.floor(ms % 1000)).padStart(3, '0')}`;
  }

  function deviceCard(name) {
    let entry = devices.get(name);
    if (entry) return entry;
    const card = $('device-template').content.firstElementChild.cloneNode(true);
    card.id = `device-${name}`;
    card.dataset.device = name;
    card.querySelector('.name').textContent = name;
    const button = card.querySelector('.restart');
    button.id = `restart-${name}`;
    button.addEventListener('click', () => {
      send(card.querySelector('.restart-result'), 'POST',
        `/devices/${encodeURIComponent(name)}/restart`, undefined, 'restart requested');
    });
    const list = $('devices');
    const names = [...devices.keys(), name].sort();
    const before = devices.get(names[names.indexOf(name) + 1]);
    list.insertBefore(card, before ? before.card : null);
    entry = { card, data: {}, updated: 0, spark: card.querySelector('.spark-canvas'),
      history: makeHistory() };
    devices.set(name, entry);
    return entry;
  }

  function updateDevice(name, data) {
    const entry = deviceCard(name);
    Object.assign(entry.data, data);
    entry.updated = performance.now();
    stats.deviceUpdates += 1;
    const d = entry.data;
    const card = entry.card;
    const state = String(d.state ?? d.message ?? 'unknown');
    d.state = state;
    const stateEl = card.querySelector('.state');
    stateEl.textContent = String(d.degraded) === 'true' && state !== 'degraded'
      ? `${state} (degraded)` : state;
    stateEl.dataset.state = state;
    card.dataset.stale = 'false';
    const set = (cls, text) => {
      card.querySelector(cls).textContent = text;
    };
    set('.f-heartbeat', fmtNum(d.heartbeat_age_ms, 0, 'ms'));
    set('.f-rate', fmtNum(d.rate_hz, 1, 'Hz'));
    set('.f-samples', fmtInt(d.samples));
    set('.f-dropped', fmtInt(d.dropped));
    set('.f-restarts', fmtInt(d.restarts));
    set('.f-failures', fmtInt(d.failures));
    set('.f-pid', d.pid ? String(d.pid) : '–');
    set('.f-backoff', Number(d.backoff_ms) > 0 ? fmtNum(d.backoff_ms, 0, 'ms') : '–');
    const err = card.querySelector('.last-error');
    err.hidden = !d.last_error;
    err.textContent = d.last_error ? `last error: ${d.last_error}` : '';
    if (name === selectedCamera()) showRecording(d);
    updateBanner();
  }

  // The camera worker's own view of its recording (its /diagnostics, 1 Hz): a click on start or
  // stop shows here within a poll or two.
  function showRecording(d) {
    const out = $('record-state');
    const diag = d.diagnostics;
    if (!diag || diag.recording === undefined) {
      stats.recording = null;
      out.dataset.recording = 'unknown';
      out.textContent = '–';
      return;
    }
    const on = String(diag.recording) === 'true';
    const path = String(diag.recording_path ?? '');
    const frames = Number(diag.recorded_frames) || 0;
    const dropped = Number(diag.recording_dropped) || 0;
    stats.recording = { recording: on, path, frames, dropped };
    let text = 'not recording';
    if (on) {
      text = `recording ${path.split('/').pop()} · ${fmtInt(frames)} frames`;
      if (dropped) text += ` · ${fmtInt(dropped)} dropped`;
    }
    // A dead worker's diagnostics stay as they were: say how old they are.
    const age = Number(d.diagnostics_age_ms);
    if (age > 5000) text += ` (as of ${fmtSpan(age / 1000)} ago)`;
    out.dataset.recording = String(on);
    out.title = on ? path : '';
    out.textContent = text;
  }

  // The age of each device's messages on arrival at the bridge, over the last 10 s.
  function applyLatency(latency) {
    const figures = {};
    for (const [name, l] of Object.entries(latency)) {
      figures[name] = { p50_ms: l.p50_ms, p99_ms: l.p99_ms, count: l.count };
      const entry = devices.get(name);
      if (!entry) continue;
      const dd = entry.card.querySelector('.f-latency');
      dd.textContent = l.p50_ms === null || l.p50_ms === undefined ? 'no data'
        : `${fmtMs(l.p50_ms)} / ${fmtMs(l.p99_ms)} ms`;
      dd.title = `age on arrival at the bridge: p50 / p99 of ${fmtInt(l.count)} messages on `
        + `${l.topic} in the last ${l.span_s} s`;
    }
    stats.latency = figures;
  }

  // The bridge's own losses: messages its clients (this page and others) lost, frames it did not
  // encode and, if any, wrench samples lost between ROS and the event loop.
  function showBridge(bridge, clients) {
    const list = Array.isArray(clients) ? clients : [];
    const lost = list.reduce((sum, c) => sum + (Number(c.dropped) || 0), 0);
    const parts = [`bridge: ${fmtInt(lost)} dropped to ${list.length} clients`,
      `${fmtInt(bridge.frames_skipped)} frames skipped`];
    const backlog = Number(bridge.wrench_backlog_dropped) || 0;
    if (backlog) parts.push(`${fmtInt(backlog)} samples lost in the backlog`);
    const meta = $('bridge-meta');
    meta.textContent = parts.join(' · ');
    meta.title = `up ${fmtSpan(Number(bridge.uptime_s) || 0)}; counts since the bridge started`;
  }

  // ---------------------------------------------------------------- rate and drop history
  // Per device, a ring allocated once: poll time, rate and drops since the previous poll.
  function makeHistory() {
    return { t: new Float64Array(HISTORY), rate: new Float32Array(HISTORY),
      drops: new Float32Array(HISTORY), head: 0, count: 0, lastDropped: null, lastAt: 0 };
  }

  function sampleHistory() {
    const now = performance.now();
    for (const [, entry] of devices) {
      const h = entry.history;
      // Extra polls (each reopened socket polls at once) must not crowd out the 5 minutes.
      if (now - h.lastAt < STATUS_PERIOD_MS / 2) continue;
      const dropped = Number(entry.data.dropped);
      let delta = 0;
      if (Number.isFinite(dropped)) {
        // A restarted worker counts from 0 again: all it counted is new.
        if (h.lastDropped !== null) {
          delta = dropped >= h.lastDropped ? dropped - h.lastDropped : dropped;
        }
        h.lastDropped = dropped;
      }
      const i = h.head;
      h.t[i] = now;
      h.rate[i] = Number(entry.data.rate_hz) || 0;
      h.drops[i] = delta;
      h.head = (i + 1) % HISTORY;
      if (h.count < HISTORY) h.count += 1;
      h.lastAt = now;
      drawHistory(entry);
    }
  }

  // The rate as a line from 0 to the window's maximum, drops as red bars on their own scale; a
  // gap in the polls (bridge down) is a gap in the line.
  function drawHistory(entry) {
    const h = entry.history;
    const canvas = entry.spark;
    const dpr = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (!width || !height) return;
    if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(height * dpr)) {
      canvas.width = Math.round(width * dpr);
      canvas.height = Math.round(height * dpr);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const now = performance.now();
    const from = now - HISTORY_S * 1000;
    let first = -1;
    let maxRate = 0;
    let minRate = Infinity;
    let maxDrop = 0;
    let drops = 0;
    for (let k = h.count - 1; k >= 0; k -= 1) {
      const i = (h.head - 1 - k + HISTORY) % HISTORY;
      if (h.t[i] < from) continue;
      if (first < 0) first = i;
      maxRate = Math.max(maxRate, h.rate[i]);
      minRate = Math.min(minRate, h.rate[i]);
      maxDrop = Math.max(maxDrop, h.drops[i]);
      drops += h.drops[i];
    }
    const caption = entry.card.querySelector('.f-history');
    if (first < 0) {
      caption.textContent = '–';
      return;
    }
    // Until the 5 minutes are full, the points fill the width (at least 20 s of it).
    const spanMs = Math.max(now - h.t[first], 20000);
    const xOf = (t) => width - ((now - t) / spanMs) * width;
    const top = 2;
    const plotH = height - top - 1;
    ctx.fillStyle = '#c62828';
    for (let k = h.count - 1; k >= 0; k -= 1) {
      const i = (h.head - 1 - k + HISTORY) % HISTORY;
      if (h.t[i] < from || !h.drops[i]) continue;
      const barH = Math.max(2, (h.drops[i] / maxDrop) * plotH);
      ctx.fillRect(Math.round(xOf(h.t[i])) - 1, height - barH, 2, barH);
    }
    ctx.strokeStyle = '#1f5fbf';
    ctx.lineWidth = 1.25;
    ctx.beginPath();
    let prevT = -Infinity;
    for (let k = h.count - 1; k >= 0; k -= 1) {
      const i = (h.head - 1 - k + HISTORY) % HISTORY;
      if (h.t[i] < from) continue;
      const x = xOf(h.t[i]);
      const y = top + plotH - (maxRate > 0 ? (h.rate[i] / maxRate) * plotH : 0);
      if (h.t[i] - prevT > 3 * STATUS_PERIOD_MS) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
      prevT = h.t[i];
    }
    ctx.stroke();
    const digits = maxRate >= 100 ? 0 : 1;
    const rates = minRate === maxRate ? fmtNum(maxRate, digits, 'Hz')
      : `${minRate.toFixed(digits)}–${fmtNum(maxRate, digits, 'Hz')}`;
    caption.textContent = `${fmtSpan((now - h.t[first]) / 1000)}: ${rates}, `
      + `${fmtInt(drops)} dropped`;
  }

  function markStaleDevices() {
    const now = performance.now();
    for (const [, entry] of devices) {
      if (now - entry.updated > 3 * STATUS_PERIOD_MS) entry.card.dataset.stale = 'true';
    }
  }

  // ---------------------------------------------------------------- events
  function onEventsMessage(text) {
    const msg = JSON.parse(text);
    for (const item of Array.isArray(msg) ? msg : [msg]) handleEvent(item);
  }

  function handleEvent(msg) {
    if (!msg || typeof msg !== 'object') return;
    const kind = msg.type ?? msg.kind ?? msg.topic;
    if (kind === 'device_states' || kind === 'status' || (!kind && (msg.devices || msg.device_states))) {
      applyDevices(msg.devices ?? msg.device_states ?? msg.data);
      return;
    }
    if (kind === 'log') {
      addLogLine(msg);
      return;
    }
    if (kind === 'device_state') {
      updateDevice(msg.name ?? msg.device, msg.data ?? msg);
      return;
    }
    if (kind === 'event' || kind === 'safety_event' || kind === 'worker_event' || msg.event) {
      addEvent(msg.data && !msg.event ? { ...msg.data, name: msg.name ?? msg.data.name } : msg);
    }
  }

  function addEvent(e) {
    stats.events += 1;
    const li = document.createElement('li');
    const level = String(e.level ?? 'info').toLowerCase();
    li.dataset.level = { 0: 'ok', 1: 'warn', 2: 'error', warning: 'warn' }[level] ?? level;
    const device = e.name ?? e.device ?? '';
    li.dataset.device = device;
    li.dataset.event = e.event ?? '';
    const when = document.createElement('span');
    when.className = 'when';
    when.textContent = fmtStamp(e.stamp_ns);
    const what = document.createElement('span');
    what.className = 'what';
    what.textContent = `${device} ${e.event ?? ''}`.trim();
    const extra = document.createElement('span');
    extra.className = 'extra';
    const parts = [];
    if (e.restarts !== undefined && e.restarts !== '') parts.push(`restarts ${e.restarts}`);
    if (e.exit_code !== undefined && e.exit_code !== '' && e.exit_code !== null) {
      parts.push(`exit ${e.exit_code}`);
    }
    if (e.pid) parts.push(`pid ${e.pid}`);
    extra.textContent = parts.join(' · ');
    const msg = document.createElement('span');
    msg.className = 'msg';
    msg.textContent = e.message ?? '';
    li.append(when, what, extra, msg);
    const list = $('events');
    list.insertBefore(li, list.firstChild);
    while (list.childElementCount > MAX_EVENTS) list.lastElementChild.remove();
    $('events-count').textContent = String(stats.events);
  }

  // ---------------------------------------------------------------- log lines
  // Lines come from /status (each node's last lines, so a page opened late shows what happened)
  // and live from /ws/events; a line both bring is shown once. The filter only hides lines.
  const logKeys = new Set();
  const logCounts = Object.fromEntries(LOG_LEVELS.map((level) => [level, 0]));

  function normLevel(level) {
    const name = String(level ?? '').toLowerCase();
    if (name === 'warning') return 'warn';
    return LOG_LEVELS.includes(name) ? name : 'info';
  }

  function addLogLine(line) {
    const key = `${line.node}\n${line.stamp_ns}\n${line.text}`;
    if (logKeys.has(key)) return;
    const list = $('logs');
    const stamp = Number(line.stamp_ns) || 0;
    const full = list.childElementCount >= MAX_LOGS;
    // Older than all the lines of a full list: it would be the one to go at once.
    if (full && stamp <= Number(list.lastElementChild.dataset.stamp)) return;
    const li = document.createElement('li');
    li.dataset.level = normLevel(line.level);
    li.dataset.node = line.node ?? '';
    li.dataset.stamp = String(stamp);
    li.dataset.key = key;
    const when = document.createElement('span');
    when.className = 'when';
    when.textContent = fmtStamp(line.stamp_ns);
    const node = document.createElement('span');
    node.className = 'node';
    node.textContent = line.node ?? '';
    const text = document.createElement('span');
    text.className = 'text';
    text.textContent = line.text ?? '';
    li.append(when, node, text);
    // Newest first. Live lines are the newest, so the walk usually stops at the top.
    let next = list.firstElementChild;
    while (next && Number(next.dataset.stamp) > stamp) next = next.nextElementSibling;
    list.insertBefore(li, next);
    logKeys.add(key);
    logCounts[li.dataset.level] += 1;
    if (full) {
      const oldest = list.lastElementChild;
      logKeys.delete(oldest.dataset.key);
      logCounts[oldest.dataset.level] -= 1;
      oldest.remove();
    }
    stats.logLines = list.childElementCount;
    showLogsMeta();
  }

  function applyLogs(logs) {
    const dropped = {};
    for (const [node, entry] of Object.entries(logs)) {
      for (const line of entry.lines ?? []) addLogLine({ node, ...line });
      dropped[node] = Number(entry.dropped) || 0;
    }
    stats.logsDropped = dropped;
    showLogsMeta();
  }

  function showLogsMeta() {
    const shown = LOG_LEVELS.slice(LOG_LEVELS.indexOf(stats.logLevel))
      .reduce((sum, level) => sum + logCounts[level], 0);
    const parts = [shown === stats.logLines ? `${stats.logLines} lines`
      : `${shown} of ${stats.logLines} lines`];
    const dropped = Object.entries(stats.logsDropped).filter(([, n]) => n > 0);
    parts.push(dropped.length
      ? `bridge dropped ${dropped.map(([node, n]) => `${node} ${fmtInt(n)}`).join(', ')}`
      : 'none dropped');
    const meta = $('logs-meta');
    meta.textContent = parts.join(' · ');
    meta.dataset.alert = dropped.length ? 'true' : 'false';
  }

  $('log-level').addEventListener('change', () => {
    stats.logLevel = $('log-level').value;
    $('logs').dataset.filter = stats.logLevel;
    showLogsMeta();
  });

  // ---------------------------------------------------------------- controls
  function describeAnswer(res) {
    const d = res.data;
    const reasonOf = (x) => {
      if (x === null || x === undefined) return '';
      if (typeof x === 'string') return x;
      if (Array.isArray(x)) return x.map((i) => i.msg ?? reasonOf(i)).join('; ');
      if (x.detail !== undefined) return reasonOf(x.detail);
      if (x.reason) return x.reason;
      if (x.message) return x.message;
      return JSON.stringify(x);
    };
    if (!res.ok) return ['refused', `refused (HTTP ${res.status}): ${reasonOf(d)}`];
    if (d && typeof d === 'object') {
      const refused = Object.entries(d.results ?? {}).filter(([, r]) => r && r.successful === false);
      if (d.success === false || d.successful === false || d.ok === false || d.applied === false) {
        return ['refused', `refused: ${reasonOf(d.reason ?? d.message ?? d)}`];
      }
      if (refused.length) {
        return ['refused', `refused: ${refused.map(([k, r]) => `${k}: ${r.reason}`).join('; ')}`];
      }
      return ['applied', `applied${d.message ? `: ${d.message}` : ''}`];
    }
    return ['applied', 'applied'];
  }

  async function send(output, method, path, body, pendingText) {
    output.dataset.result = 'pending';
    output.textContent = pendingText || 'sending…';
    try {
      const res = await api(method, path, body);
      if (res.status === 401) {
        authRefused();
        return;
      }
      const [result, text] = describeAnswer(res);
      output.dataset.result = result;
      output.textContent = text;
    } catch (err) {
      output.dataset.result = 'error';
      output.textContent = `no answer: ${err.message}`;
    }
  }

  for (const button of document.querySelectorAll('button.apply')) {
    button.addEventListener('click', () => {
      const input = $(button.dataset.for);
      const value = Number(input.value);
      const output = $(`${input.id}-result`);
      if (input.value === '' || !Number.isFinite(value)) {
        output.dataset.result = 'refused';
        output.textContent = 'enter a number';
        return;
      }
      send(output, 'POST', `/devices/${input.dataset.device}/params`,
        { [input.dataset.param]: value });
    });
  }
  $('record-start').addEventListener('click', () => send(
    $('record-result'), 'POST', `/devices/${selectedCamera()}/recording`, { action: 'start' }));
  $('record-stop').addEventListener('click', () => send(
    $('record-result'), 'POST', `/devices/${selectedCamera()}/recording`, { action: 'stop' }));

  // ---------------------------------------------------------------- camera choice
  // One camera at a time: the selector (shown with two or more cameras) picks the one the
  // image shows and the camera controls and recording act on.
  function selectedCamera() {
    return stats.camera ?? stats.cameras[0] ?? 'camera';
  }

  function showCameras(cameras) {
    if (!Array.isArray(cameras) || cameras.join() === stats.cameras.join()) return;
    stats.cameras = cameras.map(String);
    const select = $('camera-select');
    select.replaceChildren(...stats.cameras.map((name) => new Option(name, name)));
    select.hidden = stats.cameras.length < 2;
    if (stats.camera === null || !stats.cameras.includes(stats.camera)) {
      chooseCamera(stats.cameras[0] ?? null);
    } else {
      select.value = stats.camera;
    }
  }

  function chooseCamera(name) {
    const changed = name !== stats.camera;
    stats.camera = name;
    const camera = selectedCamera();
    $('camera-select').value = camera;
    $('camera-legend').textContent = camera;
    for (const input of document.querySelectorAll('input[data-param]')) {
      if (input.closest('fieldset') === $('camera-legend').parentElement) {
        input.dataset.device = camera;
      }
    }
    const entry = devices.get(camera);
    if (entry) showRecording(entry.data);
    if (changed && imageChannel && !imageChannel.stopped) {
      // A new stream: its frames, size and drops start afresh.
      imageAspect = 0;
      stats.imageSeq = -1;
      imageChannel.reconnectNow();
    }
  }

  $('camera-select').addEventListener('change', (ev) => chooseCamera(ev.target.value));
  $('tare').addEventListener('click', () => send($('tare-result'), 'POST', '/devices/ft/tare'));

  // ---------------------------------------------------------------- image
  const imageCanvas = $('image');
  const imageCtx = imageCanvas.getContext('2d');
  const decoder = new TextDecoder();
  let pendingFrame = null;
  let decoding = false;
  let lastFrameAt = 0;
  let frameTimes = [];
  let imageAspect = 0; // height / width of the last frame

  // The width in device pixels the image occupies in its element (the whole width until the
  // first frame tells the aspect ratio).
  function fittedWidth() {
    const box = $('image-box');
    const dpr = window.devicePixelRatio || 1;
    let width = box.clientWidth;
    if (imageAspect > 0) width = Math.min(width, box.clientHeight / imageAspect);
    return Math.max(64, Math.round(width * dpr));
  }

  function imageRequest() {
    stats.requestedMaxWidth = fittedWidth();
    const request = { max_width: stats.requestedMaxWidth, max_fps: IMAGE_FPS, format: 'jpeg' };
    if (stats.camera) request.device = stats.camera;
    return request;
  }

  function onImageMessage(data) {
    if (!(data instanceof ArrayBuffer)) return;
    const view = new DataView(data);
    const headerLength = view.getUint32(0, true);
    const header = JSON.parse(decoder.decode(new Uint8Array(data, 4, headerLength)));
    pendingFrame = { header, payload: new Uint8Array(data, 4 + headerLength) };
    if (!decoding) drawFrames();
  }

  async function drawFrames() {
    decoding = true;
    while (pendingFrame) {
      const { header, payload } = pendingFrame;
      pendingFrame = null; // latest-only: a frame that arrives while decoding replaces this one
      try {
        if (header.format === 'raw') {
          drawRaw(header, payload);
        } else {
          const bitmap = await createImageBitmap(new Blob([payload], { type: 'image/jpeg' }));
          sizeImageCanvas(bitmap.width, bitmap.height);
          imageCtx.drawImage(bitmap, 0, 0);
          bitmap.close();
        }
        frameShown(header);
      } catch (err) {
        $('image-overlay').textContent = `cannot show frame ${header.seq}: ${err.message}`;
      }
    }
    decoding = false;
  }

  function sizeImageCanvas(width, height) {
    if (imageCanvas.width !== width || imageCanvas.height !== height) {
      imageCanvas.width = width;
      imageCanvas.height = height;
    }
  }

  function drawRaw(header, payload) {
    const { width, height } = header;
    const enc = String(header.encoding).toLowerCase();
    const channels = { mono8: 1, rgb8: 3, bgr8: 3, rgba8: 4, bgra8: 4 }[enc];
    if (!channels) throw new Error(`raw encoding ${header.encoding} not shown; use jpeg`);
    sizeImageCanvas(width, height);
    const img = imageCtx.createImageData(width, height);
    const out = img.data;
    const bgr = enc.startsWith('bgr');
    for (let i = 0, j = 0; i < width * height; i += 1, j += channels) {
      const o = i * 4;
      if (channels === 1) {
        out[o] = out[o + 1] = out[o + 2] = payload[j];
      } else {
        out[o] = payload[j + (bgr ? 2 : 0)];
        out[o + 1] = payload[j + 1];
        out[o + 2] = payload[j + (bgr ? 0 : 2)];
      }
      out[o + 3] = 255;
    }
    imageCtx.putImageData(img, 0, 0);
  }

  function frameShown(header) {
    const now = performance.now();
    stats.imageFrames += 1;
    stats.imageSeq = header.seq ?? stats.imageSeq;
    stats.imageDropped = header.dropped ?? stats.imageDropped;
    stats.imageWidth = header.width;
    stats.imageHeight = header.height;
    lastFrameAt = now;
    frameTimes.push(now);
    frameTimes = frameTimes.filter((t) => now - t < 2000);
    const fps = frameTimes.length > 1
      ? (frameTimes.length - 1) / ((now - frameTimes[0]) / 1000) : 0;
    $('image-meta').textContent = `#${header.seq} · ${header.width}×${header.height} `
      + `${header.encoding ?? ''} · ${fps.toFixed(1)} fps · dropped ${fmtInt(header.dropped)}`;
    $('image-overlay').textContent = '';
    const aspect = header.height / header.width;
    if (aspect > 0 && Math.abs(aspect - imageAspect) > 0.01) {
      imageAspect = aspect;
      refitImage();
    }
  }

  // Ask for a new size when the element's size differs by more than 15 % from what was asked.
  function refitImage() {
    if (!imageChannel || imageChannel.stopped) return;
    const asked = stats.requestedMaxWidth;
    if (Math.abs(fittedWidth() - asked) > 0.15 * asked) imageChannel.reconnectNow();
  }

  // ---------------------------------------------------------------- F/T ring buffer and plot
  const ring = {
    t: new Float64Array(RING), // seconds since `base`
    v: AXES.map(() => new Float32Array(RING)),
    head: 0, // next write index
    count: 0,
    base: null, // ns of the first sample, keeps float64 seconds precise
    lastT: -Infinity,
    lastArrival: 0,
  };
  let rateWindowStart = performance.now();
  let rateWindowCount = 0;

  function onWrenchMessage(text) {
    const msg = JSON.parse(text);
    const samples = Array.isArray(msg) ? msg : (msg.samples ?? msg.data ?? []);
    stats.wrenchMessages += 1;
    if (msg.dropped !== undefined) stats.wrenchDropped = Number(msg.dropped);
    for (const s of samples) pushSample(s);
    stats.wrenchSamples += samples.length;
    rateWindowCount += samples.length;
    if (samples.length) ring.lastArrival = performance.now();
    plotDirty = true;
  }

  function pushSample(s) {
    const tNs = Number(s[0]);
    if (ring.base === null) ring.base = tNs;
    const t = (tNs - ring.base) / 1e9;
    // A clock that jumps back (a restarted worker with another time base) starts a new plot.
    if (t < ring.lastT - 1) {
      ring.count = 0;
      ring.base = tNs;
      pushSample(s);
      return;
    }
    const i = ring.head;
    ring.t[i] = t;
    for (let a = 0; a < 6; a += 1) ring.v[a][i] = s[a + 1];
    ring.head = (i + 1) & (RING - 1);
    if (ring.count < RING) ring.count += 1;
    ring.lastT = Math.max(ring.lastT, t);
  }

  const plotCanvas = $('plot');
  const plotCtx = plotCanvas.getContext('2d');
  let plotDirty = true;
  let cols = 0;
  // Per pixel column and axis: first, last, min, max of the samples falling in it. Allocated on
  // resize only, so drawing allocates nothing per frame.
  let colFirst;
  let colLast;
  let colMin;
  let colMax;
  let colHas;

  const PAD = { left: 62, right: 110, top: 18, bottom: 22, gap: 26 };

  function resizePlot() {
    const dpr = window.devicePixelRatio || 1;
    const box = $('plot-box');
    plotCanvas.width = Math.max(1, Math.round(box.clientWidth * dpr));
    plotCanvas.height = Math.max(1, Math.round(box.clientHeight * dpr));
    cols = Math.max(1, Math.round(box.clientWidth - PAD.left - PAD.right));
    colFirst = new Float32Array(cols * 6);
    colLast = new Float32Array(cols * 6);
    colMin = new Float32Array(cols * 6);
    colMax = new Float32Array(cols * 6);
    colHas = new Uint8Array(cols);
    plotDirty = true;
  }

  function niceStep(span, ticks) {
    const raw = span / ticks;
    const mag = 10 ** Math.floor(Math.log10(raw));
    const norm = raw / mag;
    return (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  }

  // Bin the samples of the visible window into pixel columns (min/max per column: every sample
  // shows, none is skipped, and drawing costs the same at 100 Hz or 3 kHz).
  function binSamples(viewEnd) {
    colHas.fill(0);
    const viewStart = viewEnd - WINDOW_S;
    const perCol = WINDOW_S / cols;
    const lo = [Infinity, Infinity];
    const hi = [-Infinity, -Infinity];
    for (let k = 0; k < ring.count; k += 1) {
      const i = (ring.head - 1 - k) & (RING - 1);
      const t = ring.t[i];
      if (t < viewStart) break;
      if (t > viewEnd) continue;
      const c = Math.min(cols - 1, Math.floor((t - viewStart) / perCol));
      const fresh = !colHas[c];
      colHas[c] = 1;
      for (let a = 0; a < 6; a += 1) {
        const v = ring.v[a][i];
        const o = c * 6 + a;
        if (fresh) {
          colLast[o] = v; // iterating backwards: the first seen is the column's last sample
          colMin[o] = v;
          colMax[o] = v;
        } else {
          if (v < colMin[o]) colMin[o] = v;
          if (v > colMax[o]) colMax[o] = v;
        }
        colFirst[o] = v;
        const g = a < 3 ? 0 : 1;
        if (v < lo[g]) lo[g] = v;
        if (v > hi[g]) hi[g] = v;
      }
    }
    return { lo, hi };
  }

  function drawPlot() {
    stats.plotDraws += 1;
    const dpr = window.devicePixelRatio || 1;
    const width = plotCanvas.width / dpr;
    const height = plotCanvas.height / dpr;
    const ctx = plotCtx;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = '11px system-ui, sans-serif';
    ctx.lineWidth = 1;

    const now = performance.now();
    // The window scrolls with the clock between batches and through gaps (a restarting worker
    // shows as a gap), anchored on the newest sample's stamp.
    const viewEnd = ring.count ? ring.lastT + (now - ring.lastArrival) / 1000 : WINDOW_S;
    const { lo, hi } = binSamples(viewEnd);
    const plotH = (height - PAD.top - PAD.bottom - PAD.gap) / 2;
    const groups = [
      { title: 'force', unit: 'N', names: ['Fx', 'Fy', 'Fz'], top: PAD.top },
      { title: 'torque', unit: 'N·m', names: ['Tx', 'Ty', 'Tz'], top: PAD.top + plotH + PAD.gap },
    ];
    groups.forEach((grp, g) => {
      let ymin = lo[g];
      let ymax = hi[g];
      if (!Number.isFinite(ymin)) {
        ymin = -1;
        ymax = 1;
      }
      const span = Math.max(ymax - ymin, 1e-3);
      ymin -= span * 0.08;
      ymax += span * 0.08;
      const x0 = PAD.left;
      const y0 = grp.top;
      const yOf = (v) => y0 + plotH - ((v - ymin) / (ymax - ymin)) * plotH;

      // grid and labels
      ctx.strokeStyle = '#e3e7eb';
      ctx.fillStyle = '#66727f';
      ctx.textAlign = 'right';
      ctx.textBaseline = 'middle';
      const step = niceStep(ymax - ymin, 4);
      for (let v = Math.ceil(ymin / step) * step; v <= ymax; v += step) {
        const y = Math.round(yOf(v)) + 0.5;
        ctx.beginPath();
        ctx.moveTo(x0, y);
        ctx.lineTo(x0 + cols, y);
        ctx.stroke();
        ctx.fillText(Math.abs(v) < step / 1e6 ? '0' : v.toPrecision(3).replace(/\.?0+$/, ''),
          x0 - 6, y);
      }
      ctx.textAlign = 'center';
      ctx.textBaseline = 'top';
      for (let s = 0; s <= WINDOW_S; s += 2) {
        const x = Math.round(x0 + (s / WINDOW_S) * cols) + 0.5;
        ctx.beginPath();
        ctx.moveTo(x, y0);
        ctx.lineTo(x, y0 + plotH);
        ctx.stroke();
        if (g === 1) ctx.fillText(`${s - WINDOW_S} s`, x, y0 + plotH + 5);
      }
      ctx.strokeStyle = '#b8c0c8';
      ctx.strokeRect(x0 + 0.5, y0 + 0.5, cols, plotH);
      ctx.save();
      ctx.translate(14, y0 + plotH / 2);
      ctx.rotate(-Math.PI / 2);
      ctx.textBaseline = 'middle';
      ctx.fillText(`${grp.title} [${grp.unit}]`, 0, 0);
      ctx.restore();

      // traces
      ctx.save();
      ctx.beginPath();
      ctx.rect(x0, y0, cols, plotH);
      ctx.clip();
      for (let k = 0; k < 3; k += 1) {
        const a = g * 3 + k;
        ctx.strokeStyle = COLORS[k];
        ctx.beginPath();
        let connected = false;
        for (let c = 0; c < cols; c += 1) {
          if (!colHas[c]) {
            connected = false;
            continue;
          }
          const o = c * 6 + a;
          const x = x0 + c + 0.5;
          if (connected) ctx.lineTo(x, yOf(colFirst[o]));
          else ctx.moveTo(x, yOf(colFirst[o]));
          if (colMax[o] !== colMin[o]) {
            ctx.lineTo(x, yOf(colMin[o]));
            ctx.lineTo(x, yOf(colMax[o]));
          }
          ctx.lineTo(x, yOf(colLast[o]));
          connected = true;
        }
        ctx.stroke();
      }
      ctx.restore();

      // legend with the newest values
      ctx.textAlign = 'left';
      ctx.textBaseline = 'middle';
      for (let k = 0; k < 3; k += 1) {
        const a = g * 3 + k;
        const y = y0 + 10 + k * 18;
        const x = x0 + cols + 12;
        ctx.fillStyle = COLORS[k];
        ctx.fillRect(x, y - 1.5, 12, 3);
        ctx.fillStyle = '#1f2933';
        const newest = ring.count ? ring.v[a][(ring.head - 1) & (RING - 1)] : NaN;
        const text = Number.isFinite(newest) ? newest.toFixed(2) : '–';
        ctx.fillText(`${grp.names[k]} ${text}`, x + 16, y);
      }
    });
  }

  function plotMeta() {
    const now = performance.now();
    if (now - rateWindowStart >= 1000) {
      stats.wrenchRateHz = (rateWindowCount * 1000) / (now - rateWindowStart);
      rateWindowStart = now;
      rateWindowCount = 0;
    }
    const quiet = wrenchChannel && wrenchChannel.ws && ring.lastArrival
      && now - ring.lastArrival > STALE_MS;
    const parts = [`${stats.wrenchRateHz.toFixed(0)} samples/s`,
      `${fmtInt(stats.wrenchSamples)} received`, `dropped ${fmtInt(stats.wrenchDropped)}`];
    if (quiet) parts.unshift(`no samples for ${((now - ring.lastArrival) / 1000).toFixed(1)} s`);
    $('plot-meta').textContent = parts.join(' · ');
    $('plot-meta').dataset.stale = quiet ? 'true' : 'false';
  }

  let lastDraw = 0;
  function animate(now) {
    // ~30 draws per second are plenty for a 10 s window and spare the machine's CPU.
    if (now - lastDraw > 33) {
      if (plotDirty || ring.count) drawPlot();
      plotDirty = false;
      lastDraw = now;
    }
    requestAnimationFrame(animate);
  }

  function everySecond() {
    plotMeta();
    markStaleDevices();
    const now = performance.now();
    if (imageChannel && imageChannel.ws && lastFrameAt && now - lastFrameAt > STALE_MS) {
      $('image-overlay').textContent = `no frame for ${((now - lastFrameAt) / 1000).toFixed(1)} s`;
    }
  }

  // ---------------------------------------------------------------- start and stop
  const imageChannel = new Channel('image', '/ws/image',
    { binary: true, params: imageRequest, onMessage: onImageMessage });
  const wrenchChannel = new Channel('wrench', '/ws/wrench', { onMessage: onWrenchMessage });
  // All log lines from info up: the level filter is the page's, so changing it needs no
  // reconnect and the lines it hid come back.
  const eventsChannel = new Channel('events', '/ws/events',
    { params: () => ({ log_level: 'info' }), onMessage: onEventsMessage });
  const channels = [imageChannel, wrenchChannel, eventsChannel];

  function startLive() {
    if (live) return;
    live = true;
    for (const channel of channels) channel.start();
    pollStatus();
  }

  function stopLive() {
    live = false;
    clearTimeout(statusTimer);
    for (const channel of channels) channel.stop();
  }

  let resizeTimer = 0;
  new ResizeObserver(resizePlot).observe($('plot-box'));
  new ResizeObserver(() => {
    for (const [, entry] of devices) drawHistory(entry);
  }).observe($('devices'));
  new ResizeObserver(() => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(refitImage, 300);
  }).observe($('image-box'));

  async function boot() {
    resizePlot();
    requestAnimationFrame(animate);
    setInterval(everySecond, 1000);
    let res = null;
    try {
      res = await api('GET', '/status');
    } catch (err) {
      setConn('bridge', 'down', 'unreachable');
    }
    if (res && res.status === 401) {
      authRefused();
      return;
    }
    if (res && res.ok) {
      setConn('bridge', 'open', 'up');
      applyStatus(res.data);
    }
    startLive();
  }

  boot();
})();
