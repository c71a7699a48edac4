// EV battery twin — browser dashboard. Plain JavaScript, no build step, charts drawn as SVG.
//
// Data flow: /ws/fleet feeds the vehicle selector; the selected vehicle has its own
// /ws/vehicles/{id} socket. Its first message is a snapshot; every accepted /step then sends a
// "state" message whose rev is one more than the last. A gap in rev (missed messages, a slow-client
// disconnect) triggers a re-fetch of GET /vehicles/{id} and of its history. Rendering is
// throttled to the selected refresh interval; data is collected between renders.
"use strict";

(() => {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const HISTORY_LIMIT = 600; // points fetched from /vehicles/{id}/history on selection
  const MAX_POINTS = 3000; // points kept for the charts
  const FORECAST_YEARS = 10;
  const FORECAST_EVERY_MS = 20000;
  const BACKOFF_FIRST_MS = 500;
  const BACKOFF_MAX_MS = 10000;
  const STALE_AFTER_S = 30; // "idle" instead of "running" when no step for this long
  const POWER_RANGE_FALLBACK_KW = { discharge: 150, regen: 60 };
  const CLOSE_POLICY_VIOLATION = 1008;
  const UNAUTHORIZED_RETRY_MS = 30000;
  const TOKEN_NOTICE =
    "This service needs a read key: open the dashboard as /#token=YOUR_KEY (or /?token=YOUR_KEY).";
  const TOKEN_STORAGE = "twin.token";
  // WebSocket auth: the key travels as a subprotocol, never in a URL (see twin_service/auth.py)
  const WS_PROTOCOL = "twin";
  const WS_AUTH_PREFIX = "twin-auth.";

  const params = new URLSearchParams(window.location.search);
  const token = takeToken();

  /**
   * The read key: taken once from the page's ?token= or #token=, then removed from the address
   * bar (so it is not bookmarked, shared or left in history) and kept in this tab's
   * sessionStorage; sent as the Authorization header and the WebSocket subprotocol only.
   */
  function takeToken() {
    const url = new URL(window.location.href);
    const fragment = new URLSearchParams(url.hash.slice(1));
    const given = url.searchParams.get("token") || fragment.get("token");
    if (given) {
      url.searchParams.delete("token");
      fragment.delete("token");
      url.hash = fragment.toString();
      window.history.replaceState(null, "", url);
      try {
        sessionStorage.setItem(TOKEN_STORAGE, given);
      } catch (err) {
        console.warn("sessionStorage unavailable: the key lasts until this page is left", err);
      }
      return given;
    }
    try {
      return sessionStorage.getItem(TOKEN_STORAGE);
    } catch (err) {
      return null;
    }
  }

  /** "twin-auth." + base64url(UTF-8 key), without padding: a valid subprotocol token. */
  function wsAuthProtocol(key) {
    let binary = "";
    for (const byte of new TextEncoder().encode(key)) binary += String.fromCharCode(byte);
    const b64 = btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    return WS_AUTH_PREFIX + b64;
  }

  const state = {
    vehicles: new Map(), // vehicle_id -> latest telemetry seen on the fleet socket
    selected: null,
    telemetry: null,
    receivedAt: null, // ms, when the selected vehicle's telemetry arrived
    lastRev: null,
    points: [], // {rev, x, soc, soh, power}
    forecast: null,
    forecastNote: "10-year horizon",
    compareModels: true, // ask /forecast for by_model until the service refuses the field
    models: null, // aging model name -> GET /models entry (title, validity), once loaded
    modelsLoading: null,
    // socket states: connecting | live | reconnecting; retry times in ms since the epoch
    connection: { fleet: "connecting", vehicle: "idle", retryAt: null, fleetRetryAt: null },
    refreshMs: 1000,
    lastRender: 0,
    renderTimer: null,
    resync: null, // the in-flight re-fetch promise
    resyncWanted: false,
    forecastTimer: null,
    forecastSeq: 0,
    fleetLoaded: false, // GET /vehicles answered once
    freshConnection: false, // the vehicle socket has just (re)connected
  };

  // ---------------------------------------------------------------- HTTP and WebSocket

  function serviceUrl(path, extra) {
    const url = new URL(path, window.location.origin);
    if (extra) for (const [k, v] of Object.entries(extra)) url.searchParams.set(k, String(v));
    return url;
  }

  async function api(path, { method = "GET", body, query } = {}) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(serviceUrl(path, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
    if (!response.ok) {
      const error = new Error(`${method} ${path}: HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return response.json();
  }

  /** A WebSocket that reconnects with exponential backoff (jittered) until stopped. */
  class LiveSocket {
    constructor(path, { onMessage, onStatus }) {
      this.path = path;
      this.onMessage = onMessage;
      this.onStatus = onStatus;
      this.delayMs = BACKOFF_FIRST_MS;
      this.stopped = false;
      this.ws = null;
      this.timer = null;
      this.connect();
    }

    url() {
      const url = serviceUrl(this.path);
      url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
      return url.toString();
    }

    connect() {
      if (this.stopped) return;
      this.onStatus("connecting", null);
      const protocols = token ? [WS_PROTOCOL, wsAuthProtocol(token)] : undefined;
      const ws = new WebSocket(this.url(), protocols);
      this.ws = ws;
      ws.onopen = () => {
        this.delayMs = BACKOFF_FIRST_MS;
        this.onStatus("live", null);
      };
      ws.onmessage = (event) => {
        let message;
        try {
          message = JSON.parse(event.data);
        } catch (err) {
          console.warn("ignoring a message that is not JSON", err);
          return;
        }
        this.onMessage(message);
      };
      ws.onclose = (event) => {
        if (this.ws !== ws || this.stopped) return;
        // 1008: the service wants a read key; retrying soon will not help.
        const unauthorized = event.code === CLOSE_POLICY_VIOLATION;
        const wait = unauthorized ? UNAUTHORIZED_RETRY_MS : this.delayMs * (0.5 + Math.random());
        this.delayMs = Math.min(BACKOFF_MAX_MS, this.delayMs * 2);
        if (unauthorized) showNotice(TOKEN_NOTICE);
        this.onStatus("reconnecting", Date.now() + wait);
        this.timer = setTimeout(() => this.connect(), wait);
      };
    }

    stop() {
      this.stopped = true;
      clearTimeout(this.timer);
      if (this.ws) {
        this.ws.onclose = null;
        this.ws.close();
      }
    }
  }

  // ---------------------------------------------------------------- data

  function telemetryList(body) {
    let items = body;
    if (items && !Array.isArray(items) && typeof items === "object") {
      items = items.vehicles || items.items || Object.values(items);
    }
    if (!Array.isArray(items)) return [];
    return items
      .map((item) => (item && item.telemetry ? item.telemetry : item))
      .filter((t) => t && typeof t === "object" && t.vehicle_id);
  }

  function pointOf(t) {
    return {
      rev: typeof t.rev === "number" ? t.rev : null,
      x: num(t.elapsed_seconds),
      soc: num(t.soc),
      soh: num(t.soh),
      power: num(t.power_kw),
    };
  }

  function num(v) {
    return typeof v === "number" && Number.isFinite(v) ? v : null;
  }

  function addPoint(t) {
    const p = pointOf(t);
    const last = state.points[state.points.length - 1];
    if (last && p.rev !== null && last.rev !== null && p.rev <= last.rev) return;
    state.points.push(p);
    if (state.points.length > MAX_POINTS) state.points.splice(0, state.points.length - MAX_POINTS);
  }

  /** History (oldest first) merged with live points that arrived while it was loading. */
  function mergeHistory(history) {
    const points = history.map(pointOf);
    const lastRev = points.length ? points[points.length - 1].rev : null;
    for (const p of state.points) {
      if (lastRev === null || p.rev === null || p.rev > lastRev) points.push(p);
    }
    state.points = points.slice(-MAX_POINTS);
  }

  /** Points since the pack was last reset (elapsed time going backwards = a new pack). */
  function currentSegment(points) {
    let start = 0;
    for (let i = 1; i < points.length; i++) {
      if (points[i].x !== null && points[i - 1].x !== null && points[i].x < points[i - 1].x) {
        start = i;
      }
    }
    return points.slice(start);
  }

  function setTelemetry(t, receivedAt) {
    state.telemetry = t;
    state.receivedAt = receivedAt;
    if (typeof t.rev === "number") state.lastRev = t.rev;
    state.vehicles.set(t.vehicle_id, t);
  }

  function onFleetMessage(message) {
    const t = message && message.telemetry;
    if (!t || !t.vehicle_id) return;
    const known = state.vehicles.get(t.vehicle_id);
    if (!known || !(known.rev > t.rev)) state.vehicles.set(t.vehicle_id, t);
    if (!known) updateVehicleOptions();
    // Before GET /vehicles has answered, the vehicle named in the URL may not be known yet.
    if (!state.selected && state.fleetLoaded) selectVehicle(preferredVehicle());
    scheduleRender();
  }

  function onVehicleMessage(vehicleId, message) {
    if (vehicleId !== state.selected) return;
    const t = message && message.telemetry;
    if (!t) return;
    const rev = typeof message.rev === "number" ? message.rev : t.rev;
    const last = state.lastRev;
    // The first message of a new connection is authoritative: a lower rev than ours means the
    // service lost this vehicle (a restart with the memory store) and counts again from 1.
    const first = state.freshConnection;
    state.freshConnection = false;
    if (last !== null && typeof rev === "number") {
      if ((first || message.type === "snapshot") && rev < last) {
        state.points = [];
        state.lastRev = null;
        resync();
      } else if (rev <= last) {
        return; // already seen (a reconnect's snapshot of the same rev)
      } else if (rev > last + 1) {
        resync();
      }
    }
    // A snapshot may be old (the vehicle stopped reporting); a state message is news.
    setTelemetry(t, message.type === "snapshot" ? sentAt(t) : Date.now());
    addPoint(t);
    scheduleRender();
  }

  function sentAt(t) {
    const ms = t.timestamp ? Date.parse(t.timestamp) : NaN;
    return Number.isFinite(ms) ? Math.min(ms, Date.now()) : Date.now();
  }

  /**
   * Re-fetch the selected vehicle's snapshot and history (on selection and after a rev gap),
   * one fetch at a time. A request made while one is under way runs again after it, for the
   * then selected vehicle: the running fetch may predate the gap or the selection.
   */
  function resync() {
    state.resyncWanted = true;
    if (state.resync) return state.resync;
    state.resync = (async () => {
      try {
        while (state.resyncWanted && state.selected) {
          state.resyncWanted = false;
          await loadVehicle(state.selected);
        }
      } finally {
        state.resync = null;
      }
    })();
    return state.resync;
  }

  async function loadVehicle(vehicleId) {
    const [snapshot, history] = await Promise.allSettled([
      api(`/vehicles/${encodeURIComponent(vehicleId)}`),
      api(`/vehicles/${encodeURIComponent(vehicleId)}/history`, {
        query: { limit: HISTORY_LIMIT },
      }),
    ]);
    if (vehicleId !== state.selected) return;
    if (history.status === "fulfilled") mergeHistory(telemetryList(history.value));
    if (snapshot.status === "fulfilled" && snapshot.value && snapshot.value.telemetry) {
      const t = snapshot.value.telemetry;
      if (typeof snapshot.value.rev === "number" && typeof t.rev !== "number") {
        t.rev = snapshot.value.rev;
      }
      if (state.lastRev === null || !(t.rev < state.lastRev)) {
        setTelemetry(t, sentAt(t));
        addPoint(t);
      }
    }
    scheduleRender();
  }

  async function loadFleet() {
    try {
      const body = await api("/vehicles");
      for (const t of telemetryList(body)) {
        const known = state.vehicles.get(t.vehicle_id);
        if (!known || !(known.rev > t.rev)) state.vehicles.set(t.vehicle_id, t);
      }
      updateVehicleOptions();
      showNotice(null);
    } catch (err) {
      if (err.status === 401 || err.status === 403) {
        showNotice(TOKEN_NOTICE);
      } else {
        console.warn("GET /vehicles failed", err);
      }
    }
    state.fleetLoaded = true;
    if (!state.selected && state.vehicles.size) selectVehicle(preferredVehicle());
    scheduleRender();
  }

  function preferredVehicle() {
    const wanted = params.get("vehicle");
    if (wanted && state.vehicles.has(wanted)) return wanted;
    return sortedVehicleIds()[0] || null;
  }

  function sortedVehicleIds() {
    return [...state.vehicles.keys()].sort((a, b) => a.localeCompare(b));
  }

  let vehicleSocket = null;

  function selectVehicle(vehicleId) {
    if (!vehicleId || vehicleId === state.selected) return;
    state.selected = vehicleId;
    state.telemetry = state.vehicles.get(vehicleId) || null;
    state.receivedAt = state.telemetry ? Date.now() : null;
    state.lastRev = null;
    state.points = [];
    state.forecast = null;
    state.forecastNote = "loading…";
    const select = el("vehicle-select");
    if (select.value !== vehicleId) select.value = vehicleId;
    const url = new URL(window.location.href);
    url.searchParams.set("vehicle", vehicleId);
    window.history.replaceState(null, "", url);

    if (vehicleSocket) vehicleSocket.stop();
    vehicleSocket = new LiveSocket(`/ws/vehicles/${encodeURIComponent(vehicleId)}`, {
      onMessage: (message) => onVehicleMessage(vehicleId, message),
      onStatus: (status, retryAt) => {
        state.connection.vehicle = status;
        state.connection.retryAt = retryAt;
        if (status === "live") state.freshConnection = true;
        renderStatus();
      },
    });
    resync();
    clearTimeout(state.forecastTimer);
    loadForecast(vehicleId);
    scheduleRender(true);
  }

  /** GET /models once (titles and fitted ranges of the aging models); retried when it failed. */
  function loadModels() {
    if (state.models || state.modelsLoading) return state.modelsLoading;
    state.modelsLoading = (async () => {
      try {
        const body = await api("/models");
        const models = new Map();
        for (const m of Array.isArray(body) ? body : []) {
          if (m && typeof m.name === "string") models.set(m.name, m);
        }
        state.models = models;
        renderStats();
      } catch (err) {
        console.warn("GET /models failed", err);
      } finally {
        state.modelsLoading = null;
      }
    })();
    return state.modelsLoading;
  }

  /** POST /forecast with the other physical models (`by_model`), or without on an older
   * service that does not know `compare_models` (it answers 422 to unknown fields). */
  async function requestForecast(vehicleId) {
    const body = { vehicle_id: vehicleId, years: FORECAST_YEARS };
    if (state.compareModels) {
      try {
        return await api("/forecast", { method: "POST", body: { ...body, compare_models: true } });
      } catch (err) {
        if (err.status !== 422) throw err;
        state.compareModels = false;
      }
    }
    return api("/forecast", { method: "POST", body });
  }

  async function loadForecast(vehicleId) {
    const seq = ++state.forecastSeq;
    clearTimeout(state.forecastTimer);
    loadModels();
    try {
      const forecast = await requestForecast(vehicleId);
      if (seq !== state.forecastSeq) return;
      state.forecast = forecast;
      state.forecastNote = `${FORECAST_YEARS}-year horizon · usage from history`;
    } catch (err) {
      if (seq !== state.forecastSeq) return;
      state.forecast = null;
      state.forecastNote = err.status
        ? `forecast unavailable (HTTP ${err.status})`
        : "forecast unavailable";
    }
    renderStats();
    state.forecastTimer = setTimeout(() => loadForecast(vehicleId), FORECAST_EVERY_MS);
  }

  // ---------------------------------------------------------------- formatting

  function el(id) {
    return document.getElementById(id);
  }

  function fmt(value, digits, unit = "") {
    if (typeof value !== "number" || !Number.isFinite(value)) return "—";
    const text = value.toLocaleString("en-US", {
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    });
    return unit ? `${text} ${unit}` : text;
  }

  function fmtAge(seconds) {
    if (seconds === null) return "—";
    if (seconds < 1) return "just now";
    if (seconds < 60) return `${Math.floor(seconds)} s ago`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
    return `${Math.floor(seconds / 86400)} d ago`;
  }

  function fmtSimulatedAge(t) {
    if (typeof t.simulated_years === "number" && t.simulated_years >= 1) {
      return fmt(t.simulated_years, 2, "years");
    }
    if (typeof t.simulated_days === "number") return fmt(t.simulated_days, 1, "days");
    return "—";
  }

  function ageSeconds() {
    if (state.receivedAt === null) return null;
    return Math.max(0, (Date.now() - state.receivedAt) / 1000);
  }

  // ---------------------------------------------------------------- gauges

  function svg(tag, attrs = {}, parent = null) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  // A 240° arc gauge: from 150° (lower left) clockwise to 30° (lower right).
  const GAUGE = { cx: 100, cy: 84, r: 70, start: 150, sweep: 240 };

  function polar(angleDeg, r = GAUGE.r) {
    const a = (angleDeg * Math.PI) / 180;
    return [GAUGE.cx + r * Math.cos(a), GAUGE.cy + r * Math.sin(a)];
  }

  function arcPath(fromDeg, toDeg, r = GAUGE.r) {
    if (toDeg - fromDeg < 0.05) return "";
    const [x0, y0] = polar(fromDeg, r);
    const [x1, y1] = polar(toDeg, r);
    const large = toDeg - fromDeg > 180 ? 1 : 0;
    return `M${x0.toFixed(2)},${y0.toFixed(2)} A${r},${r} 0 ${large} 1 ${x1.toFixed(2)},${y1.toFixed(2)}`;
  }

  function buildGauge(figure) {
    const box = svg("svg", { viewBox: "0 0 200 142", role: "img", class: "gauge-svg" });
    svg("path", { d: arcPath(GAUGE.start, GAUGE.start + GAUGE.sweep), class: "gauge-track" }, box);
    const arc = svg("path", { class: "gauge-arc" }, box);
    const zero = svg("line", { class: "gauge-zero" }, box);
    const value = svg("text", { x: 100, y: 94, class: "gauge-value" }, box);
    const unit = svg("text", { x: 100, y: 116, class: "gauge-unit" }, box);
    unit.textContent = figure.dataset.unit;
    const [lx, ly] = polar(GAUGE.start);
    const [rx, ry] = polar(GAUGE.start + GAUGE.sweep);
    const minLabel = svg("text", { x: lx, y: ly + 20, class: "gauge-limit" }, box);
    const maxLabel = svg("text", { x: rx, y: ry + 20, class: "gauge-limit" }, box);
    figure.appendChild(box);
    const caption = document.createElement("figcaption");
    const label = document.createElement("span");
    label.textContent = figure.dataset.label;
    const extra = document.createElement("span");
    extra.className = "gauge-extra";
    caption.append(label, extra);
    figure.appendChild(caption);
    figure.setAttribute("role", "meter");
    figure.setAttribute("aria-label", figure.dataset.label);
    return { figure, box, arc, zero, value, minLabel, maxLabel, extra };
  }

  /** Draw value in [min, max]; the arc grows from `origin` (0 for power), coloured by `level`. */
  function setGauge(g, { value, min, max, origin = min, digits, level, extra = "" }) {
    const has = typeof value === "number" && Number.isFinite(value);
    const clamp = (v) => Math.min(max, Math.max(min, v));
    const angle = (v) => GAUGE.start + ((clamp(v) - min) / (max - min)) * GAUGE.sweep;
    if (has) {
      const a0 = angle(origin);
      const a1 = angle(value);
      g.arc.setAttribute("d", arcPath(Math.min(a0, a1), Math.max(a0, a1)));
    } else {
      g.arc.setAttribute("d", "");
    }
    g.arc.setAttribute("class", `gauge-arc level-${has ? level : "none"}`);
    if (origin > min) {
      const [x0, y0] = polar(angle(origin), GAUGE.r - 12);
      const [x1, y1] = polar(angle(origin), GAUGE.r + 12);
      Object.entries({ x1: x0, y1: y0, x2: x1, y2: y1 }).forEach(([k, v]) =>
        g.zero.setAttribute(k, v.toFixed(2)),
      );
    }
    g.value.textContent = has ? fmt(value, digits) : "—";
    g.minLabel.textContent = fmt(min, 0);
    g.maxLabel.textContent = fmt(max, 0);
    g.extra.textContent = extra;
    g.figure.dataset.value = has ? value.toFixed(digits) : "";
    g.figure.dataset.level = has ? level : "none";
    g.figure.setAttribute("aria-valuemin", min);
    g.figure.setAttribute("aria-valuemax", max);
    if (has) g.figure.setAttribute("aria-valuenow", value.toFixed(digits));
  }

  function socLevel(soc) {
    return soc < 15 ? "bad" : soc < 30 ? "warn" : "good";
  }

  function sohLevel(soh) {
    return soh < 80 ? "bad" : soh < 90 ? "warn" : "good";
  }

  function temperatureLevel(c) {
    if (c >= 50 || c < -10) return "bad";
    if (c >= 40 || c < 5) return c < 5 ? "cold" : "warn";
    return "good";
  }

  // ---------------------------------------------------------------- charts

  function niceTicks(min, max, count) {
    const span = max - min || 1;
    const raw = span / count;
    const mag = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
    const ticks = [];
    for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) {
      ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
    }
    return { ticks, step };
  }

  function decimals(step) {
    return step >= 1 ? 0 : Math.min(3, Math.ceil(-Math.log10(step)));
  }

  /** Keep the min and max of every pixel column so peaks survive on wide time spans. */
  function decimate(points, key, width) {
    const buckets = Math.max(1, Math.floor(width));
    if (points.length <= buckets * 2) return points;
    const x0 = points[0].x;
    const span = points[points.length - 1].x - x0 || 1;
    const out = [];
    let bucket = -1;
    let lo = null;
    let hi = null;
    const flush = () => {
      if (lo === null) return;
      if (lo === hi) out.push(lo);
      else if (lo.x <= hi.x) out.push(lo, hi);
      else out.push(hi, lo);
    };
    for (const p of points) {
      const b = Math.floor(((p.x - x0) / span) * (buckets - 1));
      if (b !== bucket) {
        flush();
        bucket = b;
        lo = hi = p;
      } else {
        if (p[key] < lo[key]) lo = p;
        if (p[key] > hi[key]) hi = p;
      }
    }
    flush();
    return out;
  }

  function chartFrame(container, { height, right }) {
    const width = Math.max(240, Math.floor(container.clientWidth));
    const m = { left: 52, right: right ? 52 : 14, top: 10, bottom: 24 };
    const root = svg("svg", {
      viewBox: `0 0 ${width} ${height}`,
      width,
      height,
      class: "chart-svg",
      role: "img",
    });
    return {
      root,
      width,
      height,
      m,
      plotW: width - m.left - m.right,
      plotH: height - m.top - m.bottom,
    };
  }

  // Tick steps that read well as durations (seconds).
  const TIME_STEPS_S = [
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
    86400, 172800, 432000, 864000, 2592000,
  ];

  function timeTicks(min, max, count) {
    const raw = (max - min || 1) / count;
    let index = TIME_STEPS_S.findIndex((s) => s >= raw);
    let step = index >= 0 ? TIME_STEPS_S[index] : Math.ceil(raw / 2592000) * 2592000;
    const ticksOf = (size) => {
      const out = [];
      for (let v = Math.ceil(min / size) * size; v <= max + 1e-9; v += size) out.push(v);
      return out;
    };
    let ticks = ticksOf(step);
    while (ticks.length < 2 && index > 0) {
      step = TIME_STEPS_S[--index]; // a short span: at least two labels
      ticks = ticksOf(step);
    }
    const [unit, div] =
      step < 60 ? ["s", 1] : step < 3600 ? ["min", 60] : step < 86400 ? ["h", 3600] : ["d", 86400];
    return { ticks, format: (v) => `${fmt(v / div, Number.isInteger(step / div) ? 0 : 1)} ${unit}` };
  }

  /** Draws the x axis; `kind` is "time" (seconds shown as s/min/h/d) or a unit suffix. */
  function xAxis(frame, xMin, xMax, kind) {
    const { root, m, plotW, height } = frame;
    const count = Math.max(3, Math.floor(plotW / 60));
    let ticks;
    let format;
    if (kind === "time") {
      ({ ticks, format } = timeTicks(xMin, xMax, count));
    } else {
      const nice = niceTicks(xMin, xMax, count);
      ticks = nice.ticks;
      format = (v) => `${fmt(v, decimals(nice.step))} ${kind}`;
    }
    const sx = (v) => m.left + ((v - xMin) / (xMax - xMin || 1)) * plotW;
    for (const v of ticks) {
      const x = sx(v);
      svg("line", { x1: x, x2: x, y1: height - m.bottom, y2: height - m.bottom + 4, class: "tick" }, root);
      const label = svg("text", { x, y: height - 8, class: "axis-label axis-x" }, root);
      label.textContent = format(v);
    }
    return sx;
  }

  function yAxis(frame, yMin, yMax, { side = "left", cls = "", unit = "", grid = true } = {}) {
    const { root, m, plotH, plotW, width } = frame;
    const { ticks, step } = niceTicks(yMin, yMax, Math.max(2, Math.floor(plotH / 40)));
    const sy = (v) => m.top + (1 - (v - yMin) / (yMax - yMin || 1)) * plotH;
    for (const v of ticks) {
      const y = sy(v);
      if (grid) svg("line", { x1: m.left, x2: m.left + plotW, y1: y, y2: y, class: "grid" }, root);
      const x = side === "left" ? m.left - 6 : width - m.right + 6;
      const label = svg("text", { x, y: y + 4, class: `axis-label axis-${side} ${cls}` }, root);
      label.textContent = `${fmt(v, decimals(step))}${unit}`;
    }
    return sy;
  }

  function linePath(points, sx, sy, key) {
    let d = "";
    for (const p of points) {
      if (p[key] === null) continue;
      d += `${d ? "L" : "M"}${sx(p.x).toFixed(1)},${sy(p[key]).toFixed(1)}`;
    }
    return d;
  }

  function emptyChart(container, message) {
    container.replaceChildren();
    const div = document.createElement("div");
    div.className = "chart-empty";
    div.textContent = message;
    container.appendChild(div);
  }

  function emptyChartText() {
    if (state.selected) return "waiting for data…";
    if (state.vehicles.size) return "choose a vehicle";
    return "No vehicle has reported yet. Start one with: python -m bridge cycle --demo";
  }

  function chartPoints() {
    return currentSegment(state.points).filter((p) => p.x !== null);
  }

  function renderHistoryChart() {
    const container = el("chart-history");
    const points = chartPoints();
    container.dataset.points = String(points.length);
    if (points.length < 2) {
      emptyChart(container, emptyChartText());
      return;
    }
    const frame = chartFrame(container, { height: container.clientHeight || 210, right: true });
    const xMin = points[0].x;
    const xMax = points[points.length - 1].x;
    const sx = xAxis(frame, xMin, xMax, "time");
    const socPoints = decimate(points, "soc", frame.plotW);
    const sohPoints = decimate(points, "soh", frame.plotW);
    const sy = yAxis(frame, 0, 100, { cls: "soc", unit: " %" });
    const sohValues = points.map((p) => p.soh).filter((v) => v !== null);
    let sohMin = Math.min(...sohValues);
    let sohMax = Math.max(...sohValues);
    const pad = Math.max(0.05, (sohMax - sohMin) * 0.15);
    sohMin = Math.max(0, sohMin - pad);
    sohMax = Math.min(100, sohMax + pad);
    if (sohMax - sohMin < 0.2) sohMin = sohMax - 0.2;
    const syH = yAxis(frame, sohMin, sohMax, { side: "right", cls: "soh", unit: " %", grid: false });
    svg("path", { d: linePath(socPoints, sx, sy, "soc"), class: "line line-soc" }, frame.root);
    svg("path", { d: linePath(sohPoints, sx, syH, "soh"), class: "line line-soh" }, frame.root);
    container.replaceChildren(frame.root);
  }

  function renderPowerChart() {
    const container = el("chart-power");
    const points = chartPoints().filter((p) => p.power !== null);
    container.dataset.points = String(points.length);
    if (points.length < 2) {
      emptyChart(container, emptyChartText());
      return;
    }
    const frame = chartFrame(container, { height: container.clientHeight || 190, right: false });
    const drawn = decimate(points, "power", frame.plotW);
    const powers = points.map((p) => p.power);
    let pMin = Math.min(0, ...powers);
    let pMax = Math.max(0, ...powers);
    const pad = Math.max(1, (pMax - pMin) * 0.08);
    pMin = pMin < 0 ? pMin - pad : 0;
    pMax = pMax + pad;
    const sx = xAxis(frame, points[0].x, points[points.length - 1].x, "time");
    const sy = yAxis(frame, pMin, pMax, { unit: " kW" });
    const zeroY = sy(0);
    const id = `clip-${Math.random().toString(36).slice(2)}`;
    const defs = svg("defs", {}, frame.root);
    const above = svg("clipPath", { id: `${id}-above` }, defs);
    svg("rect", { x: 0, y: 0, width: frame.width, height: zeroY }, above);
    const below = svg("clipPath", { id: `${id}-below` }, defs);
    svg("rect", { x: 0, y: zeroY, width: frame.width, height: frame.height }, below);
    const line = linePath(drawn, sx, sy, "power");
    const first = sx(drawn[0].x).toFixed(1);
    const last = sx(drawn[drawn.length - 1].x).toFixed(1);
    const area = `M${first},${zeroY.toFixed(1)}L${line.slice(1)}L${last},${zeroY.toFixed(1)}Z`;
    for (const [side, cls] of [["above", "discharge"], ["below", "regen"]]) {
      const g = svg("g", { "clip-path": `url(#${id}-${side})` }, frame.root);
      svg("path", { d: area, class: `area area-${cls}` }, g);
      svg("path", { d: line, class: `line line-${cls}` }, g);
    }
    svg("line", { x1: frame.m.left, x2: frame.m.left + frame.plotW, y1: zeroY, y2: zeroY, class: "zero-line" }, frame.root);
    container.replaceChildren(frame.root);
  }

  const pct = (v) => (typeof v === "number" && v <= 1.5 ? v * 100 : v);

  /** Forecast points as {x: years, soh: %}, in order of years. */
  function forecastSeries(points) {
    return (Array.isArray(points) ? points : [])
      .filter((p) => p && typeof p.years === "number" && typeof p.soh === "number")
      .map((p) => ({ x: p.years, soh: pct(p.soh) }))
      .sort((a, b) => a.x - b.x);
  }

  /** SOH of a series at `x` (linear between points), null outside it. */
  function sohAt(series, x) {
    if (!series.length || x < series[0].x - 1e-9 || x > series[series.length - 1].x + 1e-9) {
      return null;
    }
    for (let i = 0; i < series.length; i++) {
      const b = series[i];
      if (Math.abs(b.x - x) < 1e-9) return b.soh;
      if (b.x > x) {
        const a = series[i - 1];
        return a.soh + ((b.soh - a.soh) * (x - a.x)) / (b.x - a.x || 1);
      }
    }
    return series[series.length - 1].soh;
  }

  /**
   * The spread of the physical models (`by_model`) at the main forecast's points: {x, lo, hi}
   * where every model has a value. Null without at least two models (an older service has none).
   */
  function forecastBand(forecast, xs) {
    const models = (forecast && Array.isArray(forecast.by_model) ? forecast.by_model : [])
      .map((m) => ({ name: m && m.aging_model, series: forecastSeries(m && m.points) }))
      .filter((m) => m.series.length >= 2);
    if (models.length < 2) return null;
    const points = [];
    for (const x of xs) {
      const values = models.map((m) => sohAt(m.series, x));
      if (values.some((v) => v === null)) continue;
      points.push({ x, lo: Math.min(...values), hi: Math.max(...values) });
    }
    return points.length >= 2 ? { models, points } : null;
  }

  function bandPath(points, sx, sy) {
    const upper = points.map((p) => `${sx(p.x).toFixed(1)},${sy(p.hi).toFixed(1)}`);
    const lower = points.map((p) => `${sx(p.x).toFixed(1)},${sy(p.lo).toFixed(1)}`).reverse();
    return `M${upper.join("L")}L${lower.join("L")}Z`;
  }

  function renderForecastChart() {
    const container = el("chart-forecast");
    const points = forecastSeries(state.forecast && state.forecast.points);
    const band = points.length >= 2 ? forecastBand(state.forecast, points.map((p) => p.x)) : null;
    container.dataset.points = String(points.length);
    container.dataset.bandModels = String(band ? band.models.length : 0);
    container.hidden = points.length < 2;
    if (points.length < 2) {
      container.replaceChildren();
      return;
    }
    const frame = chartFrame(container, { height: container.clientHeight || 120, right: false });
    const sohs = points.map((p) => p.soh);
    if (band) for (const p of band.points) sohs.push(p.lo, p.hi);
    const lo = Math.min(75, Math.floor(Math.min(...sohs) - 1));
    const hi = Math.min(100, Math.ceil(Math.max(...sohs) + 1));
    const sx = xAxis(frame, points[0].x, points[points.length - 1].x, "y");
    const sy = yAxis(frame, lo, hi, { unit: " %" });
    const y80 = sy(80);
    svg("line", { x1: frame.m.left, x2: frame.m.left + frame.plotW, y1: y80, y2: y80, class: "threshold" }, frame.root);
    if (band) {
      const area = svg("path", { d: bandPath(band.points, sx, sy), class: "forecast-band" }, frame.root);
      const end = points[points.length - 1].x;
      const title = svg("title", {}, area);
      title.textContent = band.models
        .map((m) => `${m.name}: ${fmt(sohAt(m.series, end), 1, "%")}`)
        .join(" · ") + ` after ${fmt(end, 0)} years`;
    }
    svg("path", { d: linePath(points, sx, sy, "soh"), class: "line line-soh" }, frame.root);
    container.replaceChildren(frame.root);
  }

  /** Below the forecast chart: the model of the main line, and what the band is. */
  function renderForecastLegend() {
    const f = state.forecast;
    const legend = el("forecast-legend");
    const name = f && typeof f.aging_model === "string" ? f.aging_model : null;
    legend.hidden = !name || el("chart-forecast").hidden;
    if (legend.hidden) return;
    const info = state.models && state.models.get(name);
    const title = info && info.title ? info.title : "";
    el("forecast-model-title").textContent = title;
    el("forecast-model-name").textContent = title ? `(${name})` : name;
    el("forecast-model").title = `forecast: ${title ? `${title} (${name})` : name}`;
    const count = Number(el("chart-forecast").dataset.bandModels) || 0;
    el("forecast-band-legend").hidden = count < 2;
    el("forecast-band-text").textContent = `band: spread of ${count} physical models`;
  }

  /** The latest telemetry's aging model was driven outside the range it was fitted on. */
  function renderAgingRange() {
    const t = state.telemetry;
    const notice = el("aging-range");
    const out = Boolean(t && t.aging_out_of_range);
    notice.hidden = !out;
    if (!out) return;
    const stressors = Array.isArray(t.aging_out_of_range_stressors)
      ? t.aging_out_of_range_stressors.filter((x) => typeof x === "string")
      : [];
    const text = `aging model outside its fitted range${stressors.length ? `: ${stressors.join(", ")}` : ""}`;
    if (notice.textContent !== text) notice.textContent = text;
    const info = state.models && state.models.get(t.aging_model);
    notice.title = validityText(t.aging_model, info && info.validity);
  }

  function validityText(name, v) {
    if (!v) return "";
    const range = (r, unit = "") => (Array.isArray(r) ? `${fmt(r[0], 2)}–${fmt(r[1], 2)}${unit}` : "—");
    return (
      `${name} was fitted on: cycling ${range(v.cycling_temperature_c, " °C")}, ` +
      `DOD ${range(v.dod)}, charge ≤ ${fmt(v.max_charge_c_rate, 2)} C, ` +
      `discharge ≤ ${fmt(v.max_discharge_c_rate, 2)} C`
    );
  }

  // ---------------------------------------------------------------- rendering

  let gauges = null;

  function scheduleRender(now = false) {
    if (state.renderTimer !== null && !now) return;
    clearTimeout(state.renderTimer);
    const wait = now ? 0 : Math.max(0, state.lastRender + state.refreshMs - Date.now());
    state.renderTimer = setTimeout(render, wait);
  }

  function render() {
    state.renderTimer = null;
    state.lastRender = Date.now();
    renderGauges();
    renderStatus();
    renderDetails();
    renderHistoryChart();
    renderPowerChart();
    renderStats();
    renderAgingRange();
    renderVehicleOptionLabels();
  }

  function renderGauges() {
    const t = state.telemetry || {};
    setGauge(gauges.soc, { value: num(t.soc), min: 0, max: 100, digits: 1, level: socLevel(t.soc) });
    setGauge(gauges.soh, {
      value: num(t.soh),
      min: 50,
      max: 100,
      digits: 2,
      level: sohLevel(t.soh),
      extra: typeof t.resistance_factor === "number" ? `R ×${fmt(t.resistance_factor, 3)}` : "",
    });
    const maxKw = num(t.max_discharge_kw) || POWER_RANGE_FALLBACK_KW.discharge;
    const regenKw = Math.abs(num(t.max_regen_kw) || POWER_RANGE_FALLBACK_KW.regen);
    const power = num(t.power_kw);
    const mode = t.is_charging ? "charging" : t.is_regen ? "regen" : power !== null && power > 0 ? "discharge" : "idle";
    setGauge(gauges.power, {
      value: power,
      min: -Math.ceil(regenKw),
      max: Math.ceil(maxKw),
      origin: 0,
      digits: 1,
      level: mode === "discharge" ? "discharge" : mode === "idle" ? "good" : "regen",
      extra: power === null ? "" : mode,
    });
    setGauge(gauges.temperature, {
      value: num(t.temperature),
      min: -20,
      max: 60,
      digits: 1,
      level: temperatureLevel(t.temperature),
      extra: typeof t.ambient_c === "number" ? `ambient ${fmt(t.ambient_c, 0)} °C` : "",
    });
    el("flag-regen").hidden = !t.is_regen;
    el("flag-charging").hidden = !t.is_charging;
    el("legend-soc").textContent = fmt(num(t.soc), 1, "%");
    el("legend-soh").textContent = fmt(num(t.soh), 2, "%");
    el("footer-rev").textContent = state.selected
      ? `${state.selected} · rev ${state.lastRev ?? "—"}`
      : "rev —";
  }

  function setStatus(id, text, level) {
    const item = el(id);
    const value = item.querySelector(".text") || item.querySelector(".status-value");
    value.textContent = text;
    if (level) item.dataset.state = level;
    else delete item.dataset.state;
  }

  function connectionText() {
    const fleet = state.connection.fleet;
    const vehicle = state.selected ? state.connection.vehicle : fleet;
    const worst = [fleet, vehicle].find((s) => s !== "live") || "live";
    if (worst === "live") return ["live", "live"];
    if (worst === "reconnecting") {
      const retryAt = state.connection.retryAt || state.connection.fleetRetryAt;
      const inS = retryAt ? Math.max(0, Math.ceil((retryAt - Date.now()) / 1000)) : 0;
      return [inS > 0 ? `reconnecting in ${inS} s` : "reconnecting…", "reconnecting"];
    }
    return ["connecting…", "connecting"];
  }

  function renderStatus() {
    const [connText, connLevel] = connectionText();
    setStatus("status-connection", connText, connLevel);
    const t = state.telemetry;
    const age = ageSeconds();
    if (!t) {
      setStatus("status-running", state.selected ? "waiting…" : "no vehicle yet");
      setStatus("status-model", "—");
      setStatus("status-demo", "—");
      setStatus("status-age", "—");
      return;
    }
    const running = t.simulation_running !== false;
    const idle = age !== null && age > STALE_AFTER_S;
    setStatus(
      "status-running",
      !running ? "stopped" : idle ? "idle" : "running",
      !running ? "bad" : idle ? "warn" : "good",
    );
    setStatus("status-model", t.vehicle_model || "—");
    const multiplier = typeof t.time_multiplier === "number" ? t.time_multiplier : null;
    setStatus(
      "status-demo",
      t.demo_mode ? `on · aging ×${fmt(multiplier, 0)}` : multiplier && multiplier !== 1 ? `off · aging ×${fmt(multiplier, 0)}` : "off",
      t.demo_mode ? "info" : null,
    );
    setStatus("status-age", fmtAge(age), idle ? "warn" : null);
  }

  function renderDetails() {
    const t = state.telemetry || {};
    el("detail-voltage").textContent = fmt(num(t.voltage), 1, "V");
    el("detail-current").textContent = fmt(num(t.current), 1, "A");
    el("detail-distance").textContent = fmt(num(t.total_distance_km), 1, "km");
    el("detail-cycles").textContent = fmt(num(t.cycle_count), 2);
    el("detail-throughput").textContent = fmt(num(t.energy_throughput_kwh), 1, "kWh");
    el("detail-resistance").textContent =
      typeof t.resistance_factor === "number" ? `×${fmt(t.resistance_factor, 3)}` : "—";
    el("detail-age").textContent = state.telemetry ? fmtSimulatedAge(t) : "—";
    el("detail-limits").textContent =
      typeof t.max_discharge_kw === "number"
        ? `${fmt(t.max_discharge_kw, 0)} / −${fmt(Math.abs(t.max_regen_kw ?? 0), 0)} kW`
        : "—";
  }

  function renderStats() {
    const f = state.forecast;
    el("stat-fade").textContent = f ? fmt(num(f.fade_pct_per_year), 2, "%/yr") : "—";
    el("stat-soh2").textContent = f ? fmt(num(pct(f.soh_in_2_years)), 1, "%") : "—";
    let years80 = "—";
    if (f) {
      years80 = typeof f.years_to_80 === "number" ? fmt(f.years_to_80, 1, "years") : `> ${FORECAST_YEARS} years`;
    }
    el("stat-years80").textContent = years80;
    el("stats-note").textContent = state.selected ? state.forecastNote : "10-year horizon";
    renderForecastChart();
    renderForecastLegend();
  }

  function updateVehicleOptions() {
    const select = el("vehicle-select");
    const ids = sortedVehicleIds();
    if (!ids.length) return;
    const current = [...select.options].map((o) => o.value);
    if (current.join("\n") !== ids.join("\n")) {
      select.replaceChildren(
        ...ids.map((id) => {
          const option = document.createElement("option");
          option.value = id;
          option.textContent = id;
          return option;
        }),
      );
      if (state.selected) select.value = state.selected;
    }
    renderVehicleOptionLabels();
  }

  function renderVehicleOptionLabels() {
    for (const option of el("vehicle-select").options) {
      const t = state.vehicles.get(option.value);
      if (!t) continue;
      const soc = typeof t.soc === "number" ? ` · ${t.soc.toFixed(0)} %` : "";
      const label = `${option.value}${t.vehicle_model ? ` (${t.vehicle_model})` : ""}${soc}`;
      if (option.textContent !== label) option.textContent = label;
    }
  }

  function showNotice(text) {
    const notice = el("notice");
    notice.hidden = !text;
    notice.textContent = text || "";
  }

  // ---------------------------------------------------------------- start

  function start() {
    gauges = {
      soc: buildGauge(el("gauge-soc")),
      soh: buildGauge(el("gauge-soh")),
      power: buildGauge(el("gauge-power")),
      temperature: buildGauge(el("gauge-temperature")),
    };
    const refresh = el("refresh-select");
    const saved = Number(window.localStorage.getItem("twin.refreshMs"));
    if ([500, 1000, 2000, 5000].includes(saved)) refresh.value = String(saved);
    state.refreshMs = Number(refresh.value);
    refresh.addEventListener("change", () => {
      state.refreshMs = Number(refresh.value);
      window.localStorage.setItem("twin.refreshMs", refresh.value);
      scheduleRender(true);
    });
    el("vehicle-select").addEventListener("change", (event) => selectVehicle(event.target.value));
    window.addEventListener("resize", () => scheduleRender(true));
    // Ages and countdowns tick every second, whatever the refresh interval.
    setInterval(renderStatus, 1000);

    new LiveSocket("/ws/fleet", {
      onMessage: onFleetMessage,
      onStatus: (status, retryAt) => {
        state.connection.fleet = status;
        state.connection.fleetRetryAt = retryAt;
        if (status === "live") loadFleet();
        renderStatus();
      },
    });
    render();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
