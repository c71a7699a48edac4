// EV battery twin — browser dashboard. Plain JavaScript, no build step; gauges drawn as SVG,
// charts by the vendored uPlot (static/vendor/uplot).
//
// Data flow: /ws/fleet feeds the vehicle selector; the selected vehicle has its own
// /ws/vehicles/{id} socket. Its first message is a snapshot; every accepted /step then sends a
// "state" message whose rev is one more than the last, with the batch's course in `trace` when
// the service sends it. A gap in rev (missed messages, a slow-client disconnect) triggers a
// re-fetch of GET /vehicles/{id} and of its history. The vehicle list is re-read (all pages of
// GET /vehicles) on every (re)connect of the fleet socket and every FLEET_RELIST_MS, so vehicles
// the service dropped leave the selector. Rendering is throttled to the selected refresh
// interval; data is collected between renders.
//
// History views (1 day, 7 days, 30 days of wall-clock time) draw buckets of
// GET /vehicles/{id}/history?since=&every= instead of the live points, re-read every
// HISTORY_REFRESH_MS and on selection; live messages meanwhile update the gauges and numbers
// (and the live points, drawn again when a live range is chosen).
"use strict";

(() => {
  const SVG_NS = "http://www.w3.org/2000/svg";
  // Tests (and embedders) may override some of these: window.TWIN_DASHBOARD_OPTIONS = {...}.
  const OPTIONS = (typeof window.TWIN_DASHBOARD_OPTIONS === "object" && window.TWIN_DASHBOARD_OPTIONS) || {};
  const positive = (v, fallback) => (typeof v === "number" && v > 0 ? v : fallback);
  const HISTORY_LIMIT = 600; // records fetched from /vehicles/{id}/history on selection
  const MAX_POINTS = positive(OPTIONS.maxPoints, 20000); // chart points kept (selected vehicle)
  const FLEET_RELIST_MS = positive(OPTIONS.fleetRelistMs, 30000);
  const MAX_LIST_PAGES = 100; // GET /vehicles pages read per re-list (1000 vehicles each)
  const FORECAST_YEARS = 10;
  const FORECAST_EVERY_MS = positive(OPTIONS.forecastEveryMs, 20000);
  const BACKOFF_FIRST_MS = 500;
  const BACKOFF_MAX_MS = 10000;
  const STALE_AFTER_S = 30; // "idle" instead of "running" when no step for this long
  const POWER_RANGE_FALLBACK_KW = { discharge: 150, regen: 60 };
  const CLOSE_POLICY_VIOLATION = 1008;
  const UNAUTHORIZED_RETRY_MS = 30000;
  const TOKEN_NOTICE =
    "This service needs a read key: open the dashboard as /#token=YOUR_KEY (or /?token=YOUR_KEY).";
  const RANGE_STORAGE = "twin.rangeS"; // "600", "3600", "all" or "history:<span s>"
  const HISTORY_SPANS_S = [86400, 604800, 2592000]; // the history views: 1 day, 7 days, 30 days
  const HISTORY_BUCKETS = 720; // at most about this many buckets in a view
  // Bucket lengths of whole minutes, so that the SQL stores answer from their 1-minute and
  // hourly tiers (since is put on the same grid): 1 day -> 120 s, 7 days -> 900 s, 30 days -> 1 h.
  const BUCKET_STEPS_S = [60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400];
  const HISTORY_BUCKET_LIMIT = 1000;
  const HISTORY_REFRESH_MS = positive(OPTIONS.historyRefreshMs, 60000);
  // WebSocket auth: the key travels as a subprotocol, never in a URL (see twin_service/auth.py)
  const WS_PROTOCOL = "twin";

  const params = new URLSearchParams(window.location.search);
  // The read key (auth.js).
  const { takeToken, wsAuthProtocol, serviceUrl, apiClient } = window.twinAuth;
  const token = takeToken();
  const { apiResponse, api } = apiClient(token);


  const state = {
    vehicles: new Map(), // vehicle_id -> latest telemetry seen (fleet socket, GET /vehicles)
    fleetSeq: 0, // counts fleet messages; seenAt: vehicle_id -> fleetSeq of its last message
    seenAt: new Map(),
    wanted: params.get("vehicle"), // the ?vehicle= asked for, until it is shown or one is chosen
    selected: null,
    telemetry: null,
    receivedAt: null, // ms, when the selected vehicle's telemetry arrived
    lastRev: null,
    points: [], // {rev, x, soc, soh, voltage, current, power, temperature, ...ESTIMATE_FIELDS}
    pointsVersion: 0, // bumped on every change of `points`
    rangeS: null, // time range of the live charts in simulated seconds; null: all
    // the history view shown instead of the live charts, null: live. {spanS, everyS, buckets
    // (null until loaded), error}; historyVersion is bumped on every change of it
    history: null,
    historyVersion: 0,
    historySeq: 0, // counts history fetches and views: an answer to an older one is dropped
    historyTimer: null,
    zoom: null, // {min, max} of a drag-zoom on the live charts, null when not zoomed
    forecast: null,
    forecastNote: "10-year horizon",
    compareModels: true, // ask /forecast for by_model until the service refuses the field
    models: null, // aging model name -> GET /models entry (title, validity), once loaded
    modelsLoading: null,
    presets: null, // preset id -> GET /vehicles/presets entry, once loaded
    presetsLoading: null,
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
    fleetLoading: null, // the in-flight re-list
    fleetAgain: false,
    freshConnection: false, // the vehicle socket has just (re)connected
  };

  // ---------------------------------------------------------------- HTTP and WebSocket

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

  function num(v) {
    return typeof v === "number" && Number.isFinite(v) ? v : null;
  }

  // The state estimator's telemetry fields (null without an estimator) as point fields:
  // telemetry key -> point key. soc_std and soh_estimated_std are in %-points, like soc and soh.
  const ESTIMATE_FIELDS = {
    soc_std: "socStd",
    measured_voltage: "measuredVoltage",
    voltage_residual: "voltageResidual",
    soh_estimated: "sohEstimated",
    soh_estimated_std: "sohEstimatedStd",
    resistance_factor_estimated: "resistanceEstimated",
    measurements_rejected: "rejected",
  };
  // Live-trace columns of the estimator (telemetry units) -> point key; the other fields are
  // the telemetry's, on the batch's last point.
  const ESTIMATE_TRACE = {
    soc_std: "socStd",
    measured_voltage: "measuredVoltage",
    voltage_residual: "voltageResidual",
    soh_estimated: "sohEstimated",
  };

  function pointOf(t, rev = t.rev) {
    const p = {
      rev: typeof rev === "number" ? rev : null,
      x: num(t.elapsed_seconds),
      soc: num(t.soc),
      soh: num(t.soh),
      voltage: num(t.voltage),
      current: num(t.current),
      power: num(t.power_kw),
      temperature: num(t.temperature),
    };
    for (const [field, key] of Object.entries(ESTIMATE_FIELDS)) p[key] = num(t[field]);
    return p;
  }

  /**
   * The points of a state message's `trace` (columns over the batch, the last one the
   * telemetry's), or null without a usable trace. Its time is aligned so that the last point
   * falls on the telemetry's elapsed_seconds.
   */
  function tracePoints(trace, t, rev) {
    const xs = trace && typeof trace === "object" ? trace.elapsed_s : null;
    if (!Array.isArray(xs) || xs.length === 0) return null;
    const column = (key) => (Array.isArray(trace[key]) && trace[key].length === xs.length ? trace[key] : null);
    const cols = {
      soc: column("soc"),
      soh: column("soh"),
      voltage: column("voltage"),
      current: column("current"),
      power: column("power_kw"),
      temperature: column("temperature"),
    };
    for (const [field, key] of Object.entries(ESTIMATE_TRACE)) cols[key] = column(field);
    const last = num(xs[xs.length - 1]);
    const end = num(t.elapsed_seconds);
    const shift = last !== null && end !== null ? end - last : 0;
    const points = [];
    for (let i = 0; i < xs.length; i++) {
      const x = num(xs[i]);
      if (x === null) continue;
      const p = { rev: typeof rev === "number" ? rev : null, x: x + shift };
      for (const [key, values] of Object.entries(cols)) p[key] = values ? num(values[i]) : null;
      points.push(p);
    }
    if (!points.length) return null;
    // The last point is the telemetry's: what the trace lacks comes from it. The SOH estimate's
    // sigma (not a trace column) moves little over one batch: its end value spans the batch.
    const lastPoint = points[points.length - 1];
    const told = pointOf(t, rev);
    for (const key of Object.values(ESTIMATE_FIELDS)) {
      if (lastPoint[key] === null || lastPoint[key] === undefined) lastPoint[key] = told[key];
    }
    for (const p of points) p.sohEstimatedStd = p.sohEstimated === null ? null : told.sohEstimatedStd;
    return points;
  }

  function trimPoints() {
    if (state.points.length > MAX_POINTS) state.points.splice(0, state.points.length - MAX_POINTS);
    state.pointsVersion++;
  }

  /** Append one step's points (all of one rev), unless that rev is already drawn. */
  function addPoints(points) {
    if (!points.length) return;
    const last = state.points[state.points.length - 1];
    const rev = points[points.length - 1].rev;
    if (last && rev !== null && last.rev !== null && rev <= last.rev) return;
    for (const p of points) state.points.push(p);
    trimPoints();
  }

  /** History (oldest first) merged with live points that arrived while it was loading. */
  function mergeHistory(history) {
    const points = history.map((t) => pointOf(t));
    const lastRev = points.length ? points[points.length - 1].rev : null;
    for (const p of state.points) {
      if (lastRev === null || p.rev === null || p.rev > lastRev) points.push(p);
    }
    state.points = points;
    trimPoints();
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
    state.fleetSeq++;
    state.seenAt.set(t.vehicle_id, state.fleetSeq);
    const known = state.vehicles.get(t.vehicle_id);
    if (!known || !(known.rev > t.rev)) state.vehicles.set(t.vehicle_id, t);
    if (!known) updateVehicleOptions();
    if (state.fleetLoaded && message.type === "state") {
      // A vehicle that just reported is the most recently updated one.
      if (!state.selected) selectVehicle(t.vehicle_id);
      else if (t.vehicle_id === state.wanted) selectVehicle(t.vehicle_id);
    }
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
        state.pointsVersion++;
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
    addPoints(tracePoints(message.trace, t, rev) || [pointOf(t, rev)]);
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
        addPoints([pointOf(t)]);
      }
    }
    scheduleRender();
  }

  /** Every vehicle the service knows (all pages of GET /vehicles): vehicle_id -> telemetry. */
  async function listVehicles() {
    const listed = new Map();
    let cursor = null;
    for (let page = 0; page < MAX_LIST_PAGES; page++) {
      const { body, headers } = await apiResponse("/vehicles", cursor ? { query: { cursor } } : {});
      for (const t of telemetryList(body)) listed.set(t.vehicle_id, t);
      cursor = headers.get("X-Next-Cursor");
      if (!cursor) break;
    }
    return listed;
  }

  /** The most recently updated vehicle (GET /vehicles?order=recent&limit=1), or null. */
  async function mostRecentVehicle() {
    try {
      const [t] = telemetryList(await api("/vehicles", { query: { order: "recent", limit: 1 } }));
      if (t) return t.vehicle_id;
    } catch (err) {
      console.warn("GET /vehicles?order=recent failed", err);
    }
    // An older service: the newest telemetry known here.
    let best = null;
    for (const t of state.vehicles.values()) {
      if (!best || sentAt(t) > sentAt(best)) best = t;
    }
    return best ? best.vehicle_id : null;
  }

  /** Re-list the fleet (one run at a time; a request during a run runs it once more). */
  function loadFleet() {
    if (state.fleetLoading) {
      state.fleetAgain = true;
      return state.fleetLoading;
    }
    state.fleetLoading = (async () => {
      try {
        do {
          state.fleetAgain = false;
          await relistFleet();
        } while (state.fleetAgain);
      } finally {
        state.fleetLoading = null;
      }
    })();
    return state.fleetLoading;
  }

  /**
   * Take the service's list of vehicles: vehicles it no longer lists leave the selector
   * (unless the fleet socket reported them while the list was read); the selected one stays
   * only while GET /vehicles/{id} still answers, else the most recently updated is shown.
   */
  async function relistFleet() {
    const started = state.fleetSeq;
    let listed;
    try {
      listed = await listVehicles();
      showNotice(null);
    } catch (err) {
      if (err.status === 401 || err.status === 403) showNotice(TOKEN_NOTICE);
      else console.warn("GET /vehicles failed", err);
      state.fleetLoaded = true;
      return;
    }
    for (const [id, t] of listed) {
      const known = state.vehicles.get(id);
      if (!known || !(known.rev > t.rev)) state.vehicles.set(id, t);
    }
    for (const id of [...state.vehicles.keys()]) {
      if (!listed.has(id) && !((state.seenAt.get(id) || 0) > started)) {
        state.vehicles.delete(id);
        state.seenAt.delete(id);
      }
    }
    state.fleetLoaded = true;
    if (state.selected && !state.vehicles.has(state.selected)) await checkSelected();
    if (!state.selected) await selectInitial();
    updateVehicleOptions();
    scheduleRender();
  }

  /** The selected vehicle was not listed: keep it while the service still answers for it. */
  async function checkSelected() {
    const id = state.selected;
    try {
      const snapshot = await api(`/vehicles/${encodeURIComponent(id)}`);
      if (state.selected === id && snapshot && snapshot.telemetry) {
        state.vehicles.set(id, snapshot.telemetry);
      }
    } catch (err) {
      if (err.status !== 404 || state.selected !== id) return;
      clearSelection();
      await selectInitial();
    }
  }

  /** The ?vehicle= of the page when known, else the most recently updated vehicle. */
  async function selectInitial() {
    if (state.wanted && state.vehicles.has(state.wanted)) {
      selectVehicle(state.wanted);
      return;
    }
    if (!state.vehicles.size) return;
    const recent = await mostRecentVehicle();
    if (state.selected) return; // chosen meanwhile
    const ids = sortedVehicleIds();
    selectVehicle(recent && state.vehicles.has(recent) ? recent : ids[0]);
  }

  function sortedVehicleIds() {
    return [...state.vehicles.keys()].sort((a, b) => a.localeCompare(b));
  }

  let vehicleSocket = null;

  function resetVehicleView() {
    state.receivedAt = state.telemetry ? Date.now() : null;
    state.lastRev = null;
    state.points = [];
    state.pointsVersion++;
    state.zoom = null;
    state.forecast = null;
    state.forecastNote = state.selected ? "loading…" : "10-year horizon";
    if (state.history) {
      state.history.buckets = null;
      state.history.error = null;
      state.historyVersion++;
      renderNotice();
    }
  }

  function clearSelection() {
    state.selected = null;
    state.telemetry = null;
    resetVehicleView();
    if (vehicleSocket) vehicleSocket.stop();
    vehicleSocket = null;
    state.connection.vehicle = "idle";
    state.forecastSeq++;
    clearTimeout(state.forecastTimer);
    scheduleRender(true);
  }

  function selectVehicle(vehicleId) {
    if (!vehicleId || vehicleId === state.selected) return;
    if (vehicleId === state.wanted) state.wanted = null;
    state.selected = vehicleId;
    state.telemetry = state.vehicles.get(vehicleId) || null;
    resetVehicleView();
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
    if (state.history) loadHistory();
    clearTimeout(state.forecastTimer);
    loadForecast(vehicleId);
    scheduleRender(true);
  }

  /** GET `path` once into state[key] as a Map by `keyOf`; retried on the next call if it failed. */
  function loadCatalog(key, path, entries, keyOf) {
    const loading = `${key}Loading`;
    if (state[key] || state[loading]) return state[loading];
    state[loading] = (async () => {
      try {
        const map = new Map();
        for (const entry of entries(await api(path))) {
          const name = entry && keyOf(entry);
          if (typeof name === "string") map.set(name, entry);
        }
        state[key] = map;
        renderStats();
      } catch (err) {
        console.warn(`GET ${path} failed`, err);
      } finally {
        state[loading] = null;
      }
    })();
    return state[loading];
  }

  /** Titles and fitted ranges of the aging models (GET /models). */
  function loadModels() {
    return loadCatalog("models", "/models", (b) => (Array.isArray(b) ? b : []), (m) => m.name);
  }

  /** Vehicle presets (GET /vehicles/presets), for the pack energy. */
  function loadPresets() {
    return loadCatalog(
      "presets",
      "/vehicles/presets",
      (b) => (b && typeof b === "object" ? Object.values(b) : []),
      (p) => p.id,
    );
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
    loadPresets();
    try {
      const forecast = await requestForecast(vehicleId);
      if (seq !== state.forecastSeq) return;
      state.forecast = forecast;
      state.forecastNote = `${FORECAST_YEARS}-year horizon`;
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

  /** The bucket length of a history view: the shortest step giving at most HISTORY_BUCKETS. */
  function bucketSeconds(spanS) {
    return BUCKET_STEPS_S.find((s) => spanS / s <= HISTORY_BUCKETS) ?? BUCKET_STEPS_S.at(-1);
  }

  /** Show the history view of the last `spanS` seconds (wall-clock), or (null) the live charts. */
  function showHistory(spanS) {
    clearTimeout(state.historyTimer);
    state.historySeq++;
    state.historyVersion++;
    state.history = spanS ? { spanS, everyS: bucketSeconds(spanS), buckets: null, error: null } : null;
    renderNotice();
    if (state.history) loadHistory();
  }

  /**
   * Fetch the history view's buckets of the selected vehicle: since = now - span on the bucket
   * grid, until open. A failure keeps the buckets drawn (if any) and says so; tried again with
   * the next refresh.
   */
  async function loadHistory() {
    clearTimeout(state.historyTimer);
    const view = state.history;
    const vehicleId = state.selected;
    if (!view || !vehicleId) return;
    const seq = ++state.historySeq;
    // an answer after another fetch, a change of view or of vehicle is dropped
    const stale = () =>
      seq !== state.historySeq || view !== state.history || vehicleId !== state.selected;
    const since = Math.floor((Date.now() / 1000 - view.spanS) / view.everyS) * view.everyS;
    const query = {
      since: new Date(since * 1000).toISOString(),
      every: view.everyS,
      limit: HISTORY_BUCKET_LIMIT,
    };
    try {
      const body = await api(`/vehicles/${encodeURIComponent(vehicleId)}/history`, { query });
      if (stale()) return;
      view.buckets = (Array.isArray(body) ? body : []).filter((b) => b && typeof b.timestamp === "string");
      view.error = null;
    } catch (err) {
      if (stale()) return;
      console.warn("GET /vehicles/{id}/history?every= failed", err);
      const status = err.status ? ` (HTTP ${err.status})` : "";
      view.error = `history unavailable${status}; trying again in ${fmtDuration(HISTORY_REFRESH_MS / 1000)}`;
    }
    state.historyVersion++;
    renderNotice();
    scheduleRender(true);
    state.historyTimer = setTimeout(loadHistory, HISTORY_REFRESH_MS);
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

  const pad2 = (v) => String(v).padStart(2, "0");

  /** Simulated time for the legend and CSV readers: h:mm:ss, with days past 24 h ("2 d 3:04:05"). */
  function fmtClock(seconds) {
    if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "—";
    const s = Math.round(seconds);
    const days = Math.floor(s / 86400);
    const rest = s - days * 86400;
    const clock = `${Math.floor(rest / 3600)}:${pad2(Math.floor((rest % 3600) / 60))}:${pad2(rest % 60)}`;
    return days ? `${days} d ${clock}` : clock;
  }

  /** An x-axis tick: h:mm (h:mm:ss below a minute's step), days for steps of a day or more. */
  function fmtTick(seconds, step) {
    if (step >= 86400) return `${fmt(seconds / 86400, Number.isInteger(step / 86400) ? 0 : 1)} d`;
    const s = Math.round(seconds);
    const clock = `${Math.floor(s / 3600)}:${pad2(Math.floor((s % 3600) / 60))}`;
    return step < 60 ? `${clock}:${pad2(s % 60)}` : clock;
  }

  /** A bucket length or wait: "30 s", "15 min", "1 h". */
  function fmtDuration(seconds) {
    if (seconds < 60) return `${fmt(seconds, Number.isInteger(seconds) ? 0 : 1)} s`;
    return seconds < 3600 ? `${fmt(seconds / 60, 0)} min` : `${fmt(seconds / 3600, 0)} h`;
  }

  /** A bucket's start (epoch seconds) for the legend, in local time: "2026-11-03 14:00". */
  function fmtDateTime(seconds) {
    if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "—";
    const d = new Date(seconds * 1000);
    const day = `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}`;
    return `${day} ${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
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
  const GAUGE = { cx: 100, cy: 84, r: 70, start: 150, sweep: 240, stroke: 14 };
  // The value text stays inside the arc's inner edge (r - stroke / 2 = 63): at most this wide.
  const GAUGE_TEXT_MAX = 96;

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
    const value = svg("text", { x: 100, y: 96, class: "gauge-value" }, box);
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

  /** The value's text, narrowed (smaller font) until it fits inside the arc. */
  function setGaugeText(node, text) {
    if (node.textContent === text) return;
    node.textContent = text;
    node.style.fontSize = "";
    const width = node.getComputedTextLength ? node.getComputedTextLength() : 0;
    if (width > GAUGE_TEXT_MAX) {
      const size = parseFloat(getComputedStyle(node).fontSize) || 34;
      node.style.fontSize = `${Math.floor((size * GAUGE_TEXT_MAX) / width)}px`;
    }
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
    setGaugeText(g.value, has ? fmt(value, digits) : "—");
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

  // ---------------------------------------------------------------- charts (uPlot)

  // The voltage chart is drawn only for a vehicle with measured voltages (state estimation).
  const LIVE_CHARTS = ["soc", "power", "soh", "voltage"];
  const LIVE_SYNC = "twin-live"; // cursor, drag-zoom and double-click shared by the live charts
  // The temperature chart is drawn only in history views (its buckets' mean, min and max).
  const HISTORY_CHARTS = ["soc", "power", "temperature", "soh"];
  const SHARED_X_CHARTS = [...LIVE_CHARTS, "temperature"];
  const CHART_HEIGHT = { soc: 124, power: 116, soh: 96, voltage: 104, temperature: 104, forecast: 104 };
  const SIGMAS = 2; // the shaded bands of the estimates: ±2σ
  // Tick steps that read well as durations (seconds).
  const TIME_STEPS_S = [
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
    86400, 172800, 432000, 864000, 2592000, 7776000, 31536000,
  ];
  const CSV_COLUMNS = [
    ["elapsed [s]", "x", 3],
    ["SOC [%]", "soc", 4],
    ["SOH [%]", "soh", 5],
    ["voltage [V]", "voltage", 3],
    ["current [A]", "current", 3],
    ["power [kW]", "power", 3],
    ["temperature [°C]", "temperature", 3],
  ];
  // Added to the CSV when the current pack has estimates (the estimator ran).
  const CSV_ESTIMATE_COLUMNS = [
    ["SOC σ [%]", "socStd", 4],
    ["measured voltage [V]", "measuredVoltage", 3],
    ["voltage residual [V]", "voltageResidual", 3],
    ["SOH estimated [%]", "sohEstimated", 5],
    ["SOH estimated σ [%]", "sohEstimatedStd", 5],
  ];

  const charts = {}; // name -> uPlot
  const liveLayout = {}; // live chart name -> the layout it was made with (chartLayout)
  let liveColumns = null; // the columns the live charts draw: {key, x, soc, soh, power, ...}
  let forecastKey = null; // the series layout of the forecast chart

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  /** A CSS colour (#rgb or #rrggbb) with alpha, for canvas fills. */
  function alpha(color, a) {
    const hex = color.replace("#", "");
    const full = hex.length === 3 ? [...hex].map((c) => c + c).join("") : hex;
    if (!/^[0-9a-f]{6}$/i.test(full)) return color;
    const [r, g, b] = [0, 2, 4].map((i) => parseInt(full.slice(i, i + 2), 16));
    return `rgba(${r},${g},${b},${a})`;
  }

  function palette() {
    return {
      text: cssVar("--text"),
      muted: cssVar("--muted"),
      grid: cssVar("--grid"),
      soc: cssVar("--soc"),
      soh: cssVar("--soh"),
      estimate: cssVar("--estimate"),
      voltage: cssVar("--voltage"),
      temperature: cssVar("--temperature"),
      measured: cssVar("--measured"),
      discharge: cssVar("--discharge"),
      regen: cssVar("--regen"),
      bad: cssVar("--bad"),
    };
  }

  function chartWidth(container) {
    return Math.max(100, Math.floor(container.clientWidth));
  }

  function xAxisOptions(colors) {
    return {
      stroke: colors.muted,
      grid: { stroke: colors.grid, width: 1 },
      ticks: { stroke: colors.grid, width: 1, size: 4 },
      font: "11px system-ui, sans-serif",
      incrs: TIME_STEPS_S,
      space: 56,
      size: 26,
      values: (u, splits, axisIdx, space, step) => splits.map((v) => fmtTick(v, step)),
    };
  }

  /** The x axis of a history view: uPlot's date and time ticks (local time). */
  function timeAxisOptions(colors) {
    const { incrs, values, ...axis } = xAxisOptions(colors);
    return axis;
  }

  function yAxisOptions(colors, scale, unit, digits = null) {
    return {
      scale,
      stroke: colors.muted,
      grid: { stroke: colors.grid, width: 1 },
      ticks: { show: false },
      font: "11px system-ui, sans-serif",
      size: 54,
      space: 24,
      values: (u, splits, axisIdx, space, step) =>
        splits.map((v) => `${fmt(v, digits ?? (step >= 1 ? 0 : Math.min(3, Math.ceil(-Math.log10(step)))))} ${unit}`),
    };
  }

  function last(values) {
    return values && values.length ? values[values.length - 1] : null;
  }

  /** A legend value: at the cursor while hovering, else the latest. */
  function legendValue(format) {
    return (u, v, si, idx) => format(idx === null || idx === undefined ? last(u.data[si]) : v);
  }

  /** A vertical gradient with a hard edge at 0 on `scale`: `above` over it, `below` under it. */
  function splitAtZero(u, scale, above, below) {
    const top = u.bbox.top;
    const height = u.bbox.height || 1;
    const y0 = u.valToPos(0, scale, true);
    const at = Number.isFinite(y0) ? Math.min(1, Math.max(0, (y0 - top) / height)) : 1;
    const gradient = u.ctx.createLinearGradient(0, top, 0, top + height);
    gradient.addColorStop(0, above);
    gradient.addColorStop(at, above);
    gradient.addColorStop(at, below);
    gradient.addColorStop(1, below);
    return gradient;
  }

  function sohRange(u, min, max) {
    if (min === null || max === null) return [99, 100];
    const pad = Math.max(0.05, (max - min) * 0.15);
    let lo = Math.max(0, min - pad);
    const hi = Math.min(100, max + pad);
    if (hi - lo < 0.2) lo = hi - 0.2;
    return [lo, hi];
  }

  /** SOC: the data with some room, at least 10 %-points, within 0..100. */
  function socRange(u, min, max) {
    if (min === null || max === null) return [0, 100];
    const span = Math.max(10, (max - min) * 1.2);
    const mid = (min + max) / 2;
    let lo = Math.max(0, mid - span / 2);
    const hi = Math.min(100, lo + span);
    lo = Math.max(0, hi - span);
    return [lo, hi];
  }

  function powerRange(u, min, max) {
    const lo = Math.min(0, min ?? 0);
    const hi = Math.max(0, max ?? 0);
    const pad = Math.max(1, (hi - lo) * 0.08);
    return [lo < 0 ? lo - pad : 0, hi + pad];
  }

  /** A voltage range with some room, at least 2 V. */
  function voltageRange(u, min, max) {
    if (min === null || max === null) return [0, 1];
    const pad = Math.max(1, (max - min) * 0.08);
    return [min - pad, max + pad];
  }

  /** A temperature range with some room, at least 2 °C. */
  function temperatureRange(u, min, max) {
    if (min === null || max === null) return [0, 40];
    const pad = Math.max(1, (max - min) * 0.1);
    return [Math.floor(min - pad), Math.ceil(max + pad)];
  }

  /** The last value that is not null (measurements are null where a sample had none). */
  function lastKnown(values) {
    for (let i = (values ? values.length : 0) - 1; i >= 0; i--) if (values[i] !== null) return values[i];
    return null;
  }

  /** A legend value with its ±σ from the live column `stdKey`: "62.1 ± 1.3 %". */
  function valueWithStd(digits, stdKey) {
    return (u, v, si, idx) => {
      const hovering = idx !== null && idx !== undefined;
      const i = hovering ? idx : u.data[0].length - 1;
      const value = hovering ? v : last(u.data[si]);
      const stds = liveColumns && liveColumns[stdKey];
      const std = stds && stds.length === u.data[0].length ? stds[i] : null;
      if (typeof value !== "number" || std === null || std === undefined) return fmt(value, digits, "%");
      return `${fmt(value, digits)} ± ${fmt(std, digits)} %`;
    };
  }

  /** "+0.42 V": a residual with its sign. */
  function fmtSigned(v, digits, unit) {
    const text = fmt(v, digits, unit);
    return typeof v === "number" && v > 0 ? `+${text}` : text;
  }

  /** Series of the lower and upper edge of a ±2σ band on `scale` (thin, off the legend). */
  function bandEdges(label, scale, color, digits) {
    const edge = (sign) => ({
      label: `${label} ${sign}${SIGMAS}σ`,
      scale,
      stroke: alpha(color, 0.45),
      width: 1,
      class: "legend-hidden",
      value: legendValue((v) => fmt(v, digits, "%")),
    });
    return [edge("−"), edge("+")];
  }

  /**
   * What a live chart draws: "line" (no estimator, as without one ever), "band" (a ±2σ band
   * around the SOC, or around the estimated SOH beside the model's), "estimate" (estimated SOH
   * without its σ), "measured" (the voltage chart); null: not drawn. Decided over the current
   * pack's points, so that a time range or zoom does not change the charts' series.
   */
  function chartLayout(name, cols) {
    if (name === "soc") return cols.has.socStd ? "band" : "line";
    if (name === "soh") {
      if (!cols.has.sohEstimated) return "line";
      return cols.has.sohEstimatedStd ? "band" : "estimate";
    }
    if (name === "voltage") return cols.has.measuredVoltage ? "measured" : null;
    return "line";
  }

  /** [lower, upper] edges of value ± 2σ, within 0..100 (%); null where either is unknown. */
  function bandColumns(values, stds) {
    const edge = (sign) =>
      values.map((v, i) => {
        const s = stds[i];
        if (v === null || s === null || s === undefined) return null;
        return Math.min(100, Math.max(0, v + sign * SIGMAS * s));
      });
    return [edge(-1), edge(1)];
  }

  /** The data of live chart `name` in `layout`, in the order of liveSeries. */
  function liveData(name, layout, cols) {
    const x = cols.x;
    if (name === "power") return [x, cols.power];
    if (name === "voltage") return [x, cols.voltage, cols.measuredVoltage, cols.voltageResidual];
    if (name === "soc") {
      return layout === "band" ? [x, ...bandColumns(cols.soc, cols.socStd), cols.soc] : [x, cols.soc];
    }
    if (layout === "estimate") return [x, cols.soh, cols.sohEstimated];
    if (layout === "band") {
      return [x, ...bandColumns(cols.sohEstimated, cols.sohEstimatedStd), cols.soh, cols.sohEstimated];
    }
    return [x, cols.soh];
  }

  /** A legend value of the latest known value (not hovering) or the one at the cursor. */
  function knownValue(format) {
    return (u, v, si, idx) => format(idx === null || idx === undefined ? lastKnown(u.data[si]) : v);
  }

  /**
   * {series, markers, bands, hidden} of a live chart: the series (the edges of a band first,
   * so that the lines are drawn over its fill), the legend marker colour of each, uPlot bands,
   * and the series without a cursor point (band edges, the residual).
   */
  function liveSeries(name, layout, colors) {
    const time = { label: "time", value: legendValue(fmtClock) };
    const line = (label, scale, stroke, width, value) => ({ label, scale, stroke, width, value });
    const chart = (series, markers, bands = [], hidden = []) => ({ series, markers, bands, hidden });
    if (name === "soc") {
      const soc = line("SOC", "soc", colors.soc, 2, legendValue((v) => fmt(v, 1, "%")));
      if (layout !== "band") return chart([time, soc], [null, colors.soc]);
      soc.value = valueWithStd(1, "socStd");
      return chart(
        [time, ...bandEdges("SOC", "soc", colors.soc, 1), soc],
        [null, colors.soc, colors.soc, colors.soc],
        [{ series: [2, 1], fill: alpha(colors.soc, 0.2) }],
        [1, 2],
      );
    }
    if (name === "soh") {
      const model = line("SOH", "soh", colors.soh, 2, legendValue((v) => fmt(v, 3, "%")));
      if (layout === "line") return chart([time, model], [null, colors.soh]);
      model.label = "model";
      const estimate = line("estimate", "soh", colors.estimate, 2, legendValue((v) => fmt(v, 3, "%")));
      if (layout === "estimate") return chart([time, model, estimate], [null, colors.soh, colors.estimate]);
      estimate.value = valueWithStd(2, "sohEstimatedStd");
      return chart(
        [time, ...bandEdges("estimate", "soh", colors.estimate, 2), model, estimate],
        [null, colors.estimate, colors.estimate, colors.soh, colors.estimate],
        [{ series: [2, 1], fill: alpha(colors.estimate, 0.2) }],
        [1, 2],
      );
    }
    if (name === "voltage") {
      const model = line("model", "V", colors.voltage, 1.5, legendValue((v) => fmt(v, 1, "V")));
      // measured: dots (null where a sample had none); residual: not drawn, read out only
      const measured = line("measured", "V", colors.measured, 1, knownValue((v) => fmt(v, 1, "V")));
      measured.paths = () => null;
      measured.points = { show: true, size: 4, width: 1, stroke: colors.measured, fill: colors.measured };
      const residual = line("residual", "res", colors.measured, 1, knownValue((v) => fmtSigned(v, 2, "V")));
      residual.paths = () => null;
      residual.points = { show: false };
      const markers = [null, colors.voltage, colors.measured, colors.measured];
      return chart([time, model, measured, residual], markers, [], [3]);
    }
    const power = line("power", "kW", (u) => splitAtZero(u, "kW", colors.discharge, colors.regen), 1.5);
    power.fill = (u) => splitAtZero(u, "kW", alpha(colors.discharge, 0.32), alpha(colors.regen, 0.38));
    power.value = legendValue((v) => fmt(v, 1, "kW"));
    return chart([time, power], [null, colors.discharge]);
  }

  function liveChartOptions(name, container) {
    const colors = palette();
    const layout = liveLayout[name];
    const scales = {
      x: { time: false },
      soc: { range: socRange },
      soh: { range: sohRange },
      kW: { range: powerRange },
      V: { range: voltageRange },
    };
    const unit = { soc: "%", soh: "%", power: "kW", voltage: "V" }[name];
    const scale = { soc: "soc", soh: "soh", power: "kW", voltage: "V" }[name];
    const { series, bands, markers, hidden } = liveSeries(name, layout, colors);
    const chartScales = { x: scales.x, [scale]: scales[scale] };
    if (name === "voltage") chartScales.res = { auto: true };
    return {
      width: chartWidth(container),
      height: CHART_HEIGHT[name],
      cursor: {
        sync: { key: LIVE_SYNC, setSeries: false },
        drag: { x: true, y: false, setScale: true },
        points: {
          size: 6,
          // no hover dot on a band's edges or on the (not drawn) residual
          show: (u, si) => (hidden.includes(si) ? null : document.createElement("div")),
        },
      },
      scales: chartScales,
      axes: [xAxisOptions(colors), yAxisOptions(colors, scale, unit, name === "soh" ? null : 0)],
      series,
      bands,
      legend: {
        mount: (u, table) => el(`legend-${name}`).replaceChildren(table),
        markers: { stroke: (u, si) => markers[si], fill: (u, si) => markers[si] },
      },
      hooks: { setScale: [onLiveScale] },
    };
  }

  /** A zoom (drag, or double-click back) on one chart of the view; uPlot's sync did the others. */
  function onLiveScale(u, key) {
    if (key !== "x") return;
    const xs = state.history ? historyColumns().x : liveColumns ? liveColumns.x : [];
    const { min, max } = u.scales.x;
    const full = !xs.length || min === null || (min <= xs[0] + 1e-9 && max >= xs[xs.length - 1] - 1e-9);
    state.zoom = full ? null : { min, max };
    for (const name of SHARED_X_CHARTS) updateChartAttrs(name);
  }

  /** Points the live charts draw: the current pack's, within the chosen time range. */
  function buildLiveColumns() {
    const key = `${state.pointsVersion}|${state.rangeS}`;
    if (liveColumns && liveColumns.key === key) return liveColumns;
    const segment = currentSegment(state.points).filter((p) => p.x !== null);
    let from = 0;
    if (state.rangeS && segment.length) {
      const start = segment[segment.length - 1].x - state.rangeS;
      while (from < segment.length && segment[from].x < start) from++;
    }
    const shown = segment.slice(from);
    // `has`: which estimates the current pack has at all (the charts' layout and the CSV's
    // columns follow it, whatever the range)
    const has = {};
    for (const key of Object.values(ESTIMATE_FIELDS)) {
      has[key] = segment.some((p) => p[key] !== null && p[key] !== undefined);
    }
    const cols = { key, points: shown, has };
    for (const [, field] of [...CSV_COLUMNS, ...CSV_ESTIMATE_COLUMNS]) {
      cols[field] = shown.map((p) => (p[field] === undefined ? null : p[field]));
    }
    liveColumns = cols;
    return cols;
  }

  function emptyChartText() {
    if (state.selected) return "waiting for data…";
    if (state.vehicles.size) return "choose a vehicle";
    return "No vehicle has reported yet. Start one with: twin-bridge cycle --vehicle-id my-ev";
  }

  /** A message over a chart (no data yet), or none. */
  function setOverlay(container, text) {
    let overlay = container.querySelector(".chart-empty");
    if (!text) {
      if (overlay) overlay.remove();
      return;
    }
    if (!overlay) {
      overlay = document.createElement("div");
      overlay.className = "chart-empty";
      container.appendChild(overlay);
    }
    if (overlay.textContent !== text) overlay.textContent = text;
  }

  function updateChartAttrs(name) {
    const u = charts[name];
    const container = el(`chart-${name}`);
    if (!u || !container) return;
    const { min, max } = u.scales.x;
    container.dataset.xMin = min === null || min === undefined ? "" : String(min);
    container.dataset.xMax = max === null || max === undefined ? "" : String(max);
    container.dataset.zoomed = state.zoom ? "true" : "false";
  }

  function ensureChart(name, makeOptions, data) {
    if (charts[name]) return charts[name];
    if (typeof window.uPlot !== "function") return null;
    const container = el(`chart-${name}`);
    charts[name] = new window.uPlot(makeOptions(name, container), data, container);
    return charts[name];
  }

  let drawnLive = null; // what the charts last drew: the view, its columns key and zoom

  /** Drop live chart `name` when its layout changed (or it is no longer drawn). */
  function dropChart(name, layout) {
    if (charts[name] && liveLayout[name] !== layout) {
      charts[name].destroy();
      delete charts[name];
    }
    liveLayout[name] = layout;
  }

  /** Make chart `name` (anew when missing) draw `data` when it `changed`, keeping a zoom. */
  function drawChart(name, makeOptions, data, changed) {
    const fresh = !charts[name];
    const u = ensureChart(name, makeOptions, data);
    if (!u) {
      setOverlay(el(`chart-${name}`), "charts unavailable (uPlot did not load)");
      return;
    }
    if (fresh && state.zoom) u.setScale("x", { ...state.zoom }); // made anew while zoomed
    if (changed && !fresh) {
      if (state.zoom) {
        u.setData(data, false);
        u.setScale("x", { ...state.zoom });
      } else {
        u.setData(data);
      }
    }
    updateChartAttrs(name);
  }

  /** Whether the charts' data or zoom changed since they last drew (`view`: its columns key). */
  function chartsChanged(view) {
    const drawn = `${view}|${state.zoom ? `${state.zoom.min},${state.zoom.max}` : ""}`;
    const changed = drawn !== drawnLive;
    drawnLive = drawn;
    return changed;
  }

  function renderCharts() {
    if (state.history) renderHistoryCharts();
    else renderLiveCharts();
    renderHints();
  }

  function renderHints() {
    const every = state.history ? fmtDuration(state.history.everyS) : "";
    const set = (id, text) => {
      if (el(id).textContent !== text) el(id).textContent = text;
    };
    const drive = `wall-clock time · ${every} buckets: mean, shaded min–max · drag to zoom`;
    set("drive-hint", every ? drive : DRIVE_HINT);
    set("soh-hint", every ? `mean of ${every} buckets, wall-clock time` : SOH_HINT);
  }

  function renderLiveCharts() {
    const cols = buildLiveColumns();
    const count = cols.x.length;
    const changed = chartsChanged(`live|${cols.key}`);
    el("temperature-block").hidden = true;
    Object.assign(el("chart-temperature").dataset, { points: "0", layout: "" });
    dropChart("temperature", null);
    for (const name of LIVE_CHARTS) {
      const container = el(`chart-${name}`);
      const layout = chartLayout(name, cols);
      if (name === "voltage") el("voltage-block").hidden = layout === null;
      dropChart(name, layout);
      container.dataset.layout = layout || "";
      if (name === "soc" || name === "soh") {
        container.title = layout === "band" ? `shaded: ±${SIGMAS}σ of the estimate` : "";
      }
      if (layout === null) {
        container.dataset.points = "0";
        continue;
      }
      container.dataset.points = String(count);
      setOverlay(container, count < 2 ? emptyChartText() : null);
      drawChart(name, liveChartOptions, liveData(name, layout, cols), changed);
    }
  }

  // History charts: name -> the bucket member drawn (its mean), label, scale, unit, digits,
  // colour; `band`: its min and max (members <field>_min, <field>_max) are drawn as a band.
  const HISTORY_SERIES = {
    soc: { field: "soc", label: "SOC", scale: "soc", unit: "%", digits: 1, color: "soc", band: true },
    power: { field: "power_kw", label: "power", scale: "kW", unit: "kW", digits: 1, color: "discharge", band: true },
    temperature: {
      field: "temperature",
      label: "temperature",
      scale: "°C",
      unit: "°C",
      digits: 1,
      color: "temperature",
      band: true,
    },
    soh: { field: "soh", label: "SOH", scale: "soh", unit: "%", digits: 3, color: "soh", band: false },
  };
  const HISTORY_RANGES = { soc: socRange, power: powerRange, temperature: temperatureRange, soh: sohRange };
  const HISTORY_CSV_COLUMNS = [
    ["bucket start (UTC)", "timestamp"],
    ["records", "count", 0],
    ["SOC [%]", "soc", 4],
    ["SOC min [%]", "soc_min", 4],
    ["SOC max [%]", "soc_max", 4],
    ["SOH [%]", "soh", 5],
    ["voltage [V]", "voltage", 3],
    ["current [A]", "current", 3],
    ["power [kW]", "power_kw", 3],
    ["power min [kW]", "power_kw_min", 3],
    ["power max [kW]", "power_kw_max", 3],
    ["temperature [°C]", "temperature", 3],
    ["temperature min [°C]", "temperature_min", 3],
    ["temperature max [°C]", "temperature_max", 3],
    ["ambient [°C]", "ambient_c", 2],
    ["distance [km]", "total_distance_km", 3],
    ["throughput [kWh]", "energy_throughput_kwh", 3],
  ];
  const DRIVE_HINT = "simulated time · drag to zoom, double-click resets";
  const SOH_HINT = "over simulated time";

  let historyCols = null;

  /**
   * The history view's buckets as chart columns, x their start (epoch seconds). Where buckets
   * are missing (no records) a row of nulls breaks the lines; `buckets` are the buckets alone.
   */
  function historyColumns() {
    const key = String(state.historyVersion);
    if (historyCols && historyCols.key === key) return historyCols;
    const every = state.history.everyS;
    const buckets = (state.history.buckets || [])
      .map((b) => ({ ...b, x: Date.parse(b.timestamp) / 1000 }))
      .filter((b) => Number.isFinite(b.x));
    const fields = Object.values(HISTORY_SERIES).flatMap(({ field, band }) =>
      band ? [field, `${field}_min`, `${field}_max`] : [field],
    );
    const cols = { key, buckets, x: [] };
    for (const field of fields) cols[field] = [];
    let previous = null;
    for (const b of buckets) {
      if (previous !== null && b.x - previous > every * 1.5) {
        cols.x.push(previous + every);
        for (const field of fields) cols[field].push(null);
      }
      cols.x.push(b.x);
      for (const field of fields) cols[field].push(num(b[field]));
      previous = b.x;
    }
    historyCols = cols;
    return cols;
  }

  /** The data of history chart `name`: x, then min, max and mean (or the mean alone). */
  function historyData(name, cols) {
    const { field, band } = HISTORY_SERIES[name];
    return band ? [cols.x, cols[`${field}_min`], cols[`${field}_max`], cols[field]] : [cols.x, cols[field]];
  }

  /** A history legend value: the bucket's mean, then its min … max: "62.1 % (58.0 … 66.3)". */
  function meanWithRange(digits, unit) {
    return (u, v, si, idx) => {
      const i = idx === null || idx === undefined ? u.data[0].length - 1 : idx;
      const [lo, hi, mean] = [u.data[1][i], u.data[2][i], u.data[si][i]];
      const text = fmt(mean, digits, unit);
      if (typeof lo !== "number" || typeof hi !== "number") return text;
      return `${text} (${fmt(lo, digits)} … ${fmt(hi, digits)})`;
    };
  }

  function historyChartOptions(name, container) {
    const colors = palette();
    const { label, scale, unit, digits, color, band } = HISTORY_SERIES[name];
    // power: discharge colour above 0 kW, regen below, as on the live chart
    const tint = (a) =>
      name === "power"
        ? (u) => splitAtZero(u, "kW", alpha(colors.discharge, a), alpha(colors.regen, a))
        : alpha(colors[color], a);
    const time = { label: "time", value: legendValue(fmtDateTime) };
    const mean = { label, scale, stroke: tint(1), width: 1.5 };
    mean.value = band ? meanWithRange(digits, unit) : legendValue((v) => fmt(v, digits, unit));
    const edge = (which) => ({
      label: `${label} ${which}`,
      scale,
      stroke: tint(0.45),
      width: 1,
      class: "legend-hidden",
    });
    const series = band ? [time, edge("min"), edge("max"), mean] : [time, mean];
    return {
      width: chartWidth(container),
      height: CHART_HEIGHT[name],
      cursor: {
        sync: { key: LIVE_SYNC, setSeries: false },
        drag: { x: true, y: false, setScale: true },
        // no hover dot on the band's edges
        points: { size: 6, show: (u, si) => (band && si < 3 ? null : document.createElement("div")) },
      },
      scales: { x: { time: true }, [scale]: { range: HISTORY_RANGES[name] } },
      axes: [timeAxisOptions(colors), yAxisOptions(colors, scale, unit, name === "soh" ? null : 0)],
      series,
      bands: band ? [{ series: [2, 1], fill: tint(name === "power" ? 0.3 : 0.2) }] : [],
      legend: {
        mount: (u, table) => el(`legend-${name}`).replaceChildren(table),
        markers: { stroke: () => colors[color], fill: () => colors[color] },
      },
      hooks: { setScale: [onLiveScale] },
    };
  }

  function renderHistoryCharts() {
    const view = state.history;
    const cols = historyColumns();
    const count = cols.buckets.length;
    const changed = chartsChanged(`history|${cols.key}`);
    el("voltage-block").hidden = true;
    Object.assign(el("chart-voltage").dataset, { points: "0", layout: "" });
    dropChart("voltage", null);
    el("temperature-block").hidden = false;
    let note = null;
    if (!state.selected) note = emptyChartText();
    else if (view.buckets === null) note = view.error || "loading history…";
    else if (!count) note = view.error || "no history in this range";
    for (const name of HISTORY_CHARTS) {
      const container = el(`chart-${name}`);
      dropChart(name, "history");
      container.dataset.layout = "history";
      container.dataset.points = String(count);
      if (name === "soc" || name === "soh") container.title = "";
      setOverlay(container, note);
      drawChart(name, historyChartOptions, historyData(name, cols), changed);
    }
  }

  /**
   * Choose a time range: a live one (`rangeS` of simulated time, null: all) or, with
   * `historyS`, the history view of that many seconds up to now.
   */
  function setRange(rangeS, historyS = null) {
    state.rangeS = historyS ? null : rangeS;
    state.zoom = null;
    try {
      const saved = historyS ? `history:${historyS}` : rangeS ? String(rangeS) : "all";
      window.localStorage.setItem(RANGE_STORAGE, saved);
    } catch (err) {
      /* private mode: the choice lasts for this page */
    }
    for (const button of el("range-buttons").querySelectorAll("button")) {
      const [range, history] = rangeChoice(button);
      const pressed = historyS ? history === historyS : history === null && range === rangeS;
      button.setAttribute("aria-pressed", pressed ? "true" : "false");
    }
    showHistory(historyS);
    scheduleRender(true);
  }

  /** A range button's [live range in simulated s (null: all), history span in s (null: live)]. */
  function rangeChoice(button) {
    if (button.dataset.history) return [null, Number(button.dataset.history)];
    return [button.dataset.range === "all" ? null : Number(button.dataset.range), null];
  }

  /** `rows` within the charts' x range as CSV: a header of `columns` titles, then their cells. */
  function csvOf(columns, rows) {
    const u = charts.soc;
    const min = u && u.scales.x.min !== null ? u.scales.x.min : -Infinity;
    const max = u && u.scales.x.max !== null ? u.scales.x.max : Infinity;
    const lines = [columns.map(([title]) => title).join(",")];
    for (const p of rows) {
      if (p.x < min || p.x > max) continue;
      const cells = columns.map(([, field, digits]) => {
        const v = p[field];
        return typeof v === "number" ? v.toFixed(digits) : typeof v === "string" ? v : "";
      });
      lines.push(cells.join(","));
    }
    return { text: `${lines.join("\n")}\n`, rows: lines.length - 1 };
  }

  /** What the charts show (range and zoom) as CSV, with units in the header: the live points
   * or the history view's buckets. */
  function shownCsv() {
    if (state.history) return csvOf(HISTORY_CSV_COLUMNS, historyColumns().buckets);
    const cols = buildLiveColumns();
    const columns = [...CSV_COLUMNS];
    // the estimator's columns when the current pack has estimates, else the CSV as ever
    for (const column of CSV_ESTIMATE_COLUMNS) if (cols.has[column[1]]) columns.push(column);
    return csvOf(columns, cols.points);
  }

  function downloadCsv() {
    const { text } = shownCsv();
    const days = state.history ? state.history.spanS / 86400 : 0;
    const range = days ? `history-${days}d` : state.rangeS ? `last-${state.rangeS}s` : "all";
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
    link.download = `${state.selected || "twin"}-${state.zoom ? "zoom" : range}.csv`;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  }

  function resizeCharts() {
    for (const [name, u] of Object.entries(charts)) {
      const width = chartWidth(el(`chart-${name}`));
      if (width !== u.width) u.setSize({ width, height: CHART_HEIGHT[name] });
    }
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

  function modelsOf(forecast) {
    return (forecast && Array.isArray(forecast.by_model) ? forecast.by_model : []).filter(
      (m) => m && typeof m.aging_model === "string",
    );
  }

  /**
   * The spread of the physical models (`by_model`) at the main forecast's points: {x, lo, hi}
   * where every model has a value. Null without at least two models (an older service has none).
   */
  function forecastBand(forecast, xs) {
    const models = modelsOf(forecast)
      .map((m) => ({ name: m.aging_model, series: forecastSeries(m.points) }))
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

  const THRESHOLD = 80; // % SOH: the usual end of an EV battery's first life

  /** The 80 % line (dashed, on the canvas) and its label (a DOM element over the chart). */
  function drawThreshold(u, color) {
    const ctx = u.ctx;
    const y = Math.round(u.valToPos(THRESHOLD, "%", true)) + 0.5;
    ctx.save();
    ctx.strokeStyle = color;
    ctx.lineWidth = devicePixelRatio;
    ctx.setLineDash([4 * devicePixelRatio, 4 * devicePixelRatio]);
    ctx.beginPath();
    ctx.moveTo(u.bbox.left, y);
    ctx.lineTo(u.bbox.left + u.bbox.width, y);
    ctx.stroke();
    ctx.restore();
    const label = el("forecast-threshold");
    label.style.left = `${u.over.offsetLeft + 4}px`;
    label.style.top = `${u.over.offsetTop + u.valToPos(THRESHOLD, "%")}px`;
    label.hidden = false;
  }

  function forecastChartOptions(withBand, model) {
    return (name, container) => {
      const colors = palette();
      const band = alpha(colors.soh, 0.45);
      const percent = legendValue((v) => fmt(v, 1, "%"));
      const series = [{ label: "years", value: legendValue((v) => fmt(v, 1, "y")) }];
      if (withBand) {
        series.push(
          { label: "models min", scale: "%", stroke: band, width: 1, value: percent },
          { label: "max", scale: "%", stroke: band, width: 1, value: percent },
        );
      }
      series.push({ label: model, scale: "%", stroke: colors.soh, width: 2, value: percent });
      return {
        width: chartWidth(container),
        height: CHART_HEIGHT.forecast,
        cursor: { drag: { x: true, y: false }, points: { size: 5 } },
        scales: { x: { time: false }, "%": { range: forecastRange } },
        axes: [
          {
            stroke: colors.muted,
            grid: { stroke: colors.grid, width: 1 },
            ticks: { stroke: colors.grid, width: 1, size: 4 },
            font: "11px system-ui, sans-serif",
            size: 24,
            space: 40,
            values: (u, splits) => splits.map((v) => `${fmt(v, Number.isInteger(v) ? 0 : 1)} y`),
          },
          yAxisOptions(colors, "%", "%", 0),
        ],
        series,
        bands: withBand ? [{ series: [2, 1], fill: alpha(colors.soh, 0.22) }] : [],
        legend: {
          mount: (u, table) => el("legend-forecast").replaceChildren(table),
          markers: { stroke: () => colors.soh, fill: (u, si) => (si === series.length - 1 ? colors.soh : band) },
        },
        hooks: { draw: [(u) => drawThreshold(u, colors.bad)] },
      };
    };
  }

  function forecastRange(u, min, max) {
    const lo = Math.min(75, Math.floor((min ?? 80) - 1));
    const hi = Math.min(100, Math.ceil((max ?? 100) + 1));
    return [lo, hi];
  }

  function renderForecastChart() {
    const container = el("chart-forecast");
    const points = forecastSeries(state.forecast && state.forecast.points);
    const band = points.length >= 2 ? forecastBand(state.forecast, points.map((p) => p.x)) : null;
    container.dataset.points = String(points.length);
    container.dataset.bandModels = String(band ? band.models.length : 0);
    const hidden = points.length < 2;
    container.hidden = hidden;
    el("legend-forecast").hidden = hidden;
    if (hidden) el("forecast-threshold").hidden = true;
    if (hidden) return;
    const xs = points.map((p) => p.x);
    const data = [xs];
    if (band) {
      const byX = new Map(band.points.map((p) => [p.x, p]));
      data.push(xs.map((x) => (byX.has(x) ? byX.get(x).lo : null)));
      data.push(xs.map((x) => (byX.has(x) ? byX.get(x).hi : null)));
    }
    data.push(points.map((p) => p.soh));
    const model = typeof state.forecast.aging_model === "string" ? state.forecast.aging_model : "forecast";
    const key = `${band ? "band" : "line"}|${model}`;
    if (charts.forecast && forecastKey !== key) {
      charts.forecast.destroy();
      delete charts.forecast;
    }
    forecastKey = key;
    const fresh = !charts.forecast;
    const u = ensureChart("forecast", forecastChartOptions(Boolean(band), model), data);
    if (u && !fresh) u.setData(data);
    const end = xs[xs.length - 1];
    container.title = band
      ? `${band.models.map((m) => `${m.name}: ${fmt(sohAt(m.series, end), 1, "%")}`).join(" · ")} after ${fmt(end, 0)} years`
      : "";
  }

  // ---------------------------------------------------------------- forecast card

  /** [lo, hi] of each summary over the models: the response's `band`, else from by_model. */
  function summaryBand(f) {
    if (f && f.band && typeof f.band === "object") return f.band;
    const models = modelsOf(f);
    if (models.length < 2) return null;
    const range = (key) => {
      const values = models.map((m) => m[key]).filter((v) => typeof v === "number");
      return values.length ? [Math.min(...values), Math.max(...values)] : [null, null];
    };
    const years = models.map((m) => m.years_to_80);
    const known = years.filter((v) => typeof v === "number");
    return {
      fade_pct_per_year: range("fade_pct_per_year"),
      soh_in_2_years: range("soh_in_2_years"),
      years_to_80: [known.length ? Math.min(...known) : null, known.length < years.length ? null : Math.max(...known)],
    };
  }

  /** "models 0.6–1.8 %/yr"; a null end is beyond the forecast's horizon. */
  function bandText(pair, digits, unit, scale = (v) => v) {
    if (!Array.isArray(pair) || pair.length !== 2) return "";
    const [lo, hi] = pair.map((v) => (typeof v === "number" ? fmt(scale(v), digits) : null));
    const suffix = unit ? ` ${unit}` : "";
    if (lo === null && hi === null) return "models: beyond horizon";
    if (hi === null) return `models ${lo}${suffix} – beyond`;
    if (lo === null) return `models beyond – ${hi}${suffix}`;
    return `models ${lo}–${hi}${suffix}`;
  }

  function sourceTag(usage, keys) {
    const sources = usage && usage.source && typeof usage.source === "object" ? usage.source : {};
    const found = [...new Set(keys.map((k) => sources[k]).filter((s) => typeof s === "string"))];
    return found.join(" / ");
  }

  function setUsage(id, text, source) {
    const dd = el(id).querySelector("dd");
    const value = document.createElement("span");
    value.className = "usage-value";
    value.textContent = text;
    const parts = [value];
    if (source) {
      const tag = document.createElement("small");
      tag.className = "usage-source";
      tag.textContent = source;
      parts.push(tag);
    }
    dd.replaceChildren(...parts);
  }

  /** The usage the forecast assumed (`usage`), each with where it came from (`usage.source`). */
  function renderUsage() {
    const f = state.forecast;
    const u = f && f.usage && typeof f.usage === "object" ? f.usage : null;
    el("forecast-usage").hidden = !u;
    if (!u) return;
    setUsage("usage-driving", fmt(num(u.daily_km), 0, "km/day"), sourceTag(u, ["daily_km"]));
    const window_ =
      typeof u.soc_min === "number" && typeof u.soc_max === "number"
        ? `${fmt(pct(u.soc_min), 0)}–${fmt(pct(u.soc_max), 0)} %`
        : "—";
    setUsage("usage-window", window_, sourceTag(u, ["soc_min", "soc_max"]));
    setUsage("usage-climate", fmt(num(u.ambient_c), 0, "°C"), sourceTag(u, ["ambient_c"]));
    const preset = state.presets && state.telemetry && state.presets.get(state.telemetry.vehicle_model);
    const kwh = preset && preset.pack ? num(preset.pack.nominal_energy_kwh) : null;
    const c = num(u.charge_c_rate);
    let charging = c === null ? "—" : `${fmt(c, 2)} C`;
    if (c !== null && kwh !== null) charging += ` ≈ ${fmt(c * kwh, 0)} kW`;
    if (typeof u.dc_fast_share === "number") charging += ` · DC fast ${fmt(u.dc_fast_share * 100, 0)} %`;
    setUsage("usage-charging", charging, sourceTag(u, ["charge_c_rate", "dc_fast_share"]));
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
    el("forecast-model-name").textContent = name;
    el("forecast-model-title").textContent = title ? ` — ${title}` : "";
    el("forecast-model").title = info
      ? `forecast: ${name} — ${title}${info.cell ? ` (cell: ${info.cell})` : ""}`
      : `forecast: ${name}`;
    const count = Number(el("chart-forecast").dataset.bandModels) || 0;
    el("forecast-band-legend").hidden = count < 2;
    el("forecast-band-text").textContent = `band: spread of ${count} physical models`;
  }

  /** How the live twin ages: its model and the aging acceleration of its steps. */
  function renderTwinAging() {
    const t = state.telemetry;
    const node = el("twin-aging");
    node.hidden = !t;
    if (!t) return;
    const model = typeof t.aging_model === "string" ? t.aging_model : "—";
    const label = model === "seed" ? "seed — original toy demo model (not physical)" : model;
    const m = num(t.time_multiplier);
    const speed = m !== null && m !== 1 ? ` · ages ×${fmt(m, 0)} (aging only)` : " · ages in real time";
    const text = `live twin: ${label}${speed}`;
    if (node.textContent !== text) node.textContent = text;
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
    renderCharts();
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
    renderEstimate(t);
  }

  /** "62.1 ± 1.3 %", or the value alone without its σ. */
  function fmtStd(value, std, digits, unit) {
    if (num(value) === null) return "—";
    if (num(std) === null) return fmt(value, digits, unit);
    return `${fmt(value, digits)} ± ${fmt(std, digits)} ${unit}`;
  }

  /** Root mean square of the voltage residuals of the points shown, null without any. */
  function rmsResidual(cols) {
    const values = cols.voltageResidual.filter((v) => v !== null);
    if (!values.length) return null;
    return Math.sqrt(values.reduce((sum, v) => sum + v * v, 0) / values.length);
  }

  /**
   * The state estimator's read-out in the pack card: the estimated SOC and SOH with σ, the SOH
   * and resistance factor of the model beside them, the voltage residuals and the measurements
   * the filter rejected. Hidden while the telemetry carries no estimate (no estimator ran).
   */
  function renderEstimate(t) {
    const box = el("estimate");
    const fields = [t.soc_std, t.soh_estimated, t.resistance_factor_estimated];
    const estimated = fields.some((v) => num(v) !== null);
    box.hidden = !estimated;
    if (!estimated) return;
    const set = (id, text) => {
      const node = el(id);
      if (node.textContent !== text) node.textContent = text;
    };
    set("estimate-soc", fmtStd(t.soc, t.soc_std, 1, "%"));
    set("estimate-soh", fmtStd(t.soh_estimated, t.soh_estimated_std, 2, "%"));
    set("estimate-soh-model", num(t.soh) === null ? "" : `model ${fmt(t.soh, 2, "%")}`);
    const r = num(t.resistance_factor_estimated);
    set("estimate-resistance", r === null ? "—" : `×${fmt(r, 3)}`);
    const rModel = num(t.resistance_factor);
    set("estimate-resistance-model", rModel === null ? "" : `model ×${fmt(rModel, 3)}`);
    const cols = buildLiveColumns();
    const rms = rmsResidual(cols);
    set("estimate-residual", rms === null ? "—" : `rms ${fmt(rms, 2, "V")}`);
    const residual = num(t.voltage_residual);
    set("estimate-residual-last", residual === null ? "" : `last ${fmtSigned(residual, 2, "V")}`);
    const rejected = num(t.measurements_rejected);
    const shown = cols.points.reduce((sum, p) => sum + (typeof p.rejected === "number" ? p.rejected : 0), 0);
    set("estimate-rejected", rejected === null ? "—" : `${fmt(rejected, 0)} in the last step`);
    set("estimate-rejected-shown", cols.has.rejected ? `${fmt(shown, 0)} in the charts' range` : "");
  }

  function renderStats() {
    const f = state.forecast;
    el("stat-fade").textContent = f ? fmt(num(f.fade_pct_per_year), 2, "%/yr") : "—";
    el("stat-soh2").textContent = f ? fmt(num(pct(f.soh_in_2_years)), 1, "%") : "—";
    let years80 = "—";
    if (f) {
      years80 = typeof f.years_to_80 === "number" ? fmt(f.years_to_80, 1, "years") : "beyond horizon";
    }
    el("stat-years80").textContent = years80;
    const band = f ? summaryBand(f) : null;
    el("band-fade").textContent = band ? bandText(band.fade_pct_per_year, 1, "%/yr") : "";
    el("band-soh2").textContent = band ? bandText(band.soh_in_2_years, 1, "%", pct) : "";
    el("band-years80").textContent = band ? bandText(band.years_to_80, 1, "y") : "";
    el("stats-note").textContent = state.selected ? state.forecastNote : "10-year horizon";
    renderForecastChart();
    renderForecastLegend();
    renderUsage();
    renderTwinAging();
  }

  function updateVehicleOptions() {
    const select = el("vehicle-select");
    const ids = sortedVehicleIds();
    const current = [...select.options].map((o) => o.value);
    if (current.join("\n") !== ids.join("\n") || !ids.length) {
      const options = ids.map((id) => {
        const option = document.createElement("option");
        option.value = id;
        option.textContent = id;
        return option;
      });
      if (!options.length) {
        const none = document.createElement("option");
        none.value = "";
        none.textContent = state.fleetLoaded ? "no vehicles yet" : "waiting for vehicles…";
        options.push(none);
      }
      select.replaceChildren(...options);
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

  let noticeText = null; // the service's notice (a read key is needed); else the history's error

  function showNotice(text) {
    noticeText = text || null;
    renderNotice();
  }

  function renderNotice() {
    const text = noticeText || (state.history && state.history.error) || "";
    const notice = el("notice");
    notice.hidden = !text;
    if (notice.textContent !== text) notice.textContent = text;
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
    el("vehicle-select").addEventListener("change", (event) => {
      state.wanted = null; // a choice of the user's wins over the page's ?vehicle=
      selectVehicle(event.target.value);
    });
    for (const button of el("range-buttons").querySelectorAll("button")) {
      button.addEventListener("click", () => setRange(...rangeChoice(button)));
    }
    let stored = "";
    try {
      stored = window.localStorage.getItem(RANGE_STORAGE) || "";
    } catch (err) {
      stored = "";
    }
    const savedRange = Number(stored) || null;
    const savedHistory = Number((/^history:(\d+)$/.exec(stored) || [])[1]) || null;
    setRange(
      [600, 3600].includes(savedRange) ? savedRange : null,
      HISTORY_SPANS_S.includes(savedHistory) ? savedHistory : null,
    );
    el("csv-export").addEventListener("click", downloadCsv);
    if (typeof ResizeObserver === "function") {
      const observer = new ResizeObserver(() => resizeCharts());
      for (const name of [...SHARED_X_CHARTS, "forecast"]) observer.observe(el(`chart-${name}`));
    }
    window.addEventListener("resize", () => {
      resizeCharts();
      scheduleRender(true);
    });
    // Ages and countdowns tick every second, whatever the refresh interval.
    setInterval(renderStatus, 1000);
    setInterval(() => {
      if (state.connection.fleet === "live") loadFleet();
    }, FLEET_RELIST_MS);

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

  // For tests and the browser console: the charts (uPlot instances), the CSV of the view and
  // the layout of a live chart (chartLayout: "line" without an estimator).
  window.twinDashboard = Object.freeze({
    chart: (name) => charts[name] || null,
    csv: () => shownCsv().text,
    layout: (name) => liveLayout[name] ?? null,
  });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
