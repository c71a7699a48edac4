// EV battery twin — the fleet page (/fleet). Plain JavaScript, no build step; the histogram is
// drawn by the vendored uPlot (static/vendor/uplot). See docs/fleet-dashboard.md.
//
// Data flow: every vehicle's latest telemetry comes from GET /vehicles (all pages, following
// X-Next-Cursor) and then from /ws/fleet (a snapshot per recently updated vehicle, then a
// "state" message per accepted step). A message only updates its vehicle's row object; the
// table is drawn at most once per animation frame, and only the rows of the page shown (a
// fixed pool of <tr>, cells written only when their text changed). Changes that move rows
// between places (live values of the sort column, the SOH filter) re-sort at most every
// RESORT_EVERY_MS; the histogram is recomputed at most every HISTOGRAM_EVERY_MS.
//
// Fade rate and years to 80 % come from POST /forecast/fleet (at most FORECAST_CHUNK items a
// request), once after the first load and every FORECAST_EVERY_MS. The policy panel sends the
// same request with `policies` and `warranty` and shows the fleet-level answer.
"use strict";

(() => {
  // Tests (and embedders) may override some of these: window.TWIN_FLEET_OPTIONS = {...}.
  const OPTIONS = (typeof window.TWIN_FLEET_OPTIONS === "object" && window.TWIN_FLEET_OPTIONS) || {};
  const positive = (v, fallback) => (typeof v === "number" && v > 0 ? v : fallback);
  const FORECAST_EVERY_MS = positive(OPTIONS.forecastEveryMs, 30000);
  const FORECAST_SOON_MS = positive(OPTIONS.forecastSoonMs, 5000); // after new vehicles appear
  const FORECAST_CHUNK = 1000; // items per POST /forecast/fleet
  const FORECAST_YEARS = 10;
  const FORECAST_RETRIES = 5; // re-posts of a chunk without the items the service refused
  const RELIST_MS = positive(OPTIONS.relistMs, 60000);
  const MAX_LIST_PAGES = 1000; // GET /vehicles pages (1000 vehicles each) read per listing
  const HISTOGRAM_EVERY_MS = positive(OPTIONS.histogramEveryMs, 1000);
  const RESORT_EVERY_MS = positive(OPTIONS.resortEveryMs, 1000);
  const AGE_EVERY_MS = 1000; // "12 s ago" refresh
  const HISTOGRAM_MAX_BINS = 30;
  const BIN_WIDTHS = [0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10, 20];
  const END_OF_FIRST_LIFE = 80; // SOH %, drawn in red below
  const BACKOFF_FIRST_MS = 500;
  const BACKOFF_MAX_MS = 10000;
  const CLOSE_POLICY_VIOLATION = 1008;
  const UNAUTHORIZED_RETRY_MS = 30000;
  const TOKEN_NOTICE =
    "This service needs a read key: open the page as /fleet#token=YOUR_KEY (or /fleet?token=YOUR_KEY).";
  const WS_PROTOCOL = "twin";
  const DEFAULT_POLICIES = [
    { name: "as usual" },
    { name: "80 % limit", charge_limit: 0.8 },
    { name: "no DC", dc_fast_share: 0.0 },
    { name: "OTA derate", max_discharge_kw: 80 },
  ];
  const POLICY_FIELDS = [
    { key: "charge_limit", kind: "number", min: 0.5, max: 1, step: 0.05, placeholder: "0.5–1" },
    { key: "dc_fast_share", kind: "number", min: 0, max: 1, step: 0.05, placeholder: "0–1" },
    { key: "max_discharge_kw", kind: "number", min: 1, step: 1, placeholder: "kW" },
    { key: "preconditioning", kind: "bool" },
  ];

  // The read key (auth.js).
  const { takeToken, wsAuthProtocol, serviceUrl, apiClient } = window.twinAuth;
  const token = takeToken();
  const { apiResponse, api } = apiClient(token);


  // ---------------------------------------------------------------- state

  /**
   * vehicle_id -> row: {id, preset, soh, soc, temperature, odometer (km), seenMs (the
   * telemetry's timestamp), rev, forecast (undefined: not known yet, false: not available,
   * else {fade, y80, soh2}), forecastable, version (bumped on every change), visible (on the
   * page shown), seenSeq (the fleet message that last touched it)}.
   */
  const rows = new Map();
  const ui = { sortKey: "id", sortDir: 1, text: "", sohBelow: null, page: 0, pageSize: 50 };
  const view = { list: [], dirty: true, resortTimer: null, layoutDirty: true };
  let visibleRows = [];
  let messageSeq = 0;
  let listed = false; // GET /vehicles answered once
  let listing = null;
  let listAgain = false;
  let frameRequested = false;
  let ageTick = false;
  let noticeText = null;
  const counters = { messages: 0, accepted: 0, frames: 0, renderMs: 0, maxRenderMs: 0, rowsWritten: 0 };
  const collator = new Intl.Collator("en", { numeric: true, sensitivity: "base" });
  const forecastState = { busy: false, again: false, timer: null, nextAt: null, lastAt: null, note: "" };
  const hist = { timer: null, lastAt: 0, lo: 0, hi: 100, chart: null, result: null };
  const policyState = { list: DEFAULT_POLICIES.map((p) => ({ ...p })), seq: 0, busy: false, result: null };

  // ---------------------------------------------------------------- HTTP and WebSocket

  /** The service's error items as lines "policies.1.charge_limit: Input should be ...". */
  function errorText(err) {
    if (err && Array.isArray(err.detail) && err.detail.length) {
      return err.detail
        .map((d) => {
          const loc = Array.isArray(d.loc) ? d.loc.filter((part, i) => !(i === 0 && part === "body")) : [];
          return loc.length ? `${loc.join(".")}: ${d.msg}` : String(d.msg);
        })
        .join("\n");
    }
    return (err && err.message) || String(err);
  }

  /** A WebSocket that reconnects with exponential backoff (jittered) until stopped. */
  class LiveSocket {
    constructor(path, { onMessage, onStatus }) {
      this.path = path;
      this.onMessage = onMessage;
      this.onStatus = onStatus;
      this.delayMs = BACKOFF_FIRST_MS;
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
      this.onStatus("connecting");
      const protocols = token ? [WS_PROTOCOL, wsAuthProtocol(token)] : undefined;
      const ws = new WebSocket(this.url(), protocols);
      this.ws = ws;
      ws.onopen = () => {
        this.delayMs = BACKOFF_FIRST_MS;
        this.onStatus("live");
      };
      ws.onmessage = (event) => this.onMessage(event.data);
      ws.onclose = (event) => {
        if (this.ws !== ws) return;
        // 1008: the service wants a read key; retrying soon will not help.
        const unauthorized = event.code === CLOSE_POLICY_VIOLATION;
        const wait = unauthorized ? UNAUTHORIZED_RETRY_MS : this.delayMs * (0.5 + Math.random());
        this.delayMs = Math.min(BACKOFF_MAX_MS, this.delayMs * 2);
        if (unauthorized) showNotice(TOKEN_NOTICE);
        this.onStatus("reconnecting");
        this.timer = setTimeout(() => this.connect(), wait);
      };
    }
  }

  // ---------------------------------------------------------------- data

  function num(v) {
    return typeof v === "number" && Number.isFinite(v) ? v : null;
  }

  function timeMs(text) {
    const ms = typeof text === "string" ? Date.parse(text) : NaN;
    return Number.isFinite(ms) ? ms : null;
  }

  function newRow(id) {
    return {
      id,
      idLower: id.toLowerCase(),
      preset: "",
      presetLower: "",
      soh: null,
      soc: null,
      temperature: null,
      odometer: null,
      seenMs: null,
      rev: 0,
      forecast: undefined,
      forecastable: true,
      version: 0,
      visible: false,
      seenSeq: 0,
    };
  }

  const LIVE_SORT_KEYS = new Set(["preset", "soh", "soc", "temperature", "odometer", "seen"]);

  /**
   * Take one telemetry record into its vehicle's row, unless the row already has a newer one
   * (a higher rev; a lower rev with a later timestamp is a twin the service started again).
   */
  function applyTelemetry(t) {
    const id = t.vehicle_id;
    let row = rows.get(id);
    const fresh = !row;
    const rev = typeof t.rev === "number" ? t.rev : 0;
    const seen = timeMs(t.timestamp);
    if (!fresh && rev <= row.rev && !(seen !== null && row.seenMs !== null && seen > row.seenMs)) {
      return row;
    }
    if (fresh) {
      row = newRow(id);
      rows.set(id, row);
    }
    const preset = typeof t.vehicle_model === "string" ? t.vehicle_model : "";
    const presetChanged = preset !== row.preset;
    row.rev = rev;
    row.preset = preset;
    if (presetChanged) {
      row.presetLower = preset.toLowerCase();
      row.forecastable = true;
    }
    row.soh = num(t.soh);
    row.soc = num(t.soc);
    row.temperature = num(t.temperature);
    row.odometer = num(t.total_distance_km);
    row.seenMs = seen;
    row.version++;
    counters.accepted++;
    if (fresh) {
      view.dirty = true;
      scheduleForecastSoon();
      requestFrame();
    } else {
      if (row.visible) requestFrame();
      if (LIVE_SORT_KEYS.has(ui.sortKey) || ui.sohBelow !== null || (presetChanged && ui.text)) {
        scheduleResort();
      }
    }
    scheduleHistogram();
    return row;
  }

  /** One /ws/fleet message (its text); exposed as twinFleet.receive for tests. */
  function receive(data) {
    let message;
    try {
      message = typeof data === "string" ? JSON.parse(data) : data;
    } catch (err) {
      console.warn("ignoring a message that is not JSON", err);
      return;
    }
    const t = message && message.telemetry;
    if (!t || typeof t.vehicle_id !== "string") return;
    if (typeof message.rev === "number" && typeof t.rev !== "number") t.rev = message.rev;
    counters.messages++;
    messageSeq++;
    applyTelemetry(t).seenSeq = messageSeq;
  }

  function telemetryList(body) {
    if (!Array.isArray(body)) return [];
    return body
      .map((item) => (item && item.telemetry ? item.telemetry : item))
      .filter((t) => t && typeof t === "object" && typeof t.vehicle_id === "string");
  }

  /** Every vehicle the service lists (all pages of GET /vehicles): vehicle_id -> telemetry. */
  async function listVehicles() {
    const found = new Map();
    let cursor = null;
    for (let page = 0; page < MAX_LIST_PAGES; page++) {
      const { body, headers } = await apiResponse("/vehicles", cursor ? { query: { cursor } } : {});
      for (const t of telemetryList(body)) found.set(t.vehicle_id, t);
      cursor = headers.get("X-Next-Cursor");
      if (!cursor) break;
    }
    return found;
  }

  /** Re-list the fleet (one run at a time; a request during a run runs it once more). */
  function loadFleet() {
    if (listing) {
      listAgain = true;
      return listing;
    }
    listing = (async () => {
      try {
        do {
          listAgain = false;
          await relist();
        } while (listAgain);
      } finally {
        listing = null;
      }
    })();
    return listing;
  }

  /**
   * Take the service's list: vehicles it no longer lists leave the table, unless the fleet
   * socket reported them while the list was read.
   */
  async function relist() {
    const started = messageSeq;
    let found;
    try {
      found = await listVehicles();
      if (noticeText === TOKEN_NOTICE) showNotice(null);
    } catch (err) {
      if (err.status === 401 || err.status === 403) showNotice(TOKEN_NOTICE);
      else console.warn("GET /vehicles failed", err);
      return;
    }
    for (const t of found.values()) applyTelemetry(t);
    for (const [id, row] of rows) {
      if (!found.has(id) && !(row.seenSeq > started)) {
        rows.delete(id);
        row.visible = false;
        view.dirty = true;
      }
    }
    const first = !listed;
    listed = true;
    view.dirty = true;
    requestFrame();
    scheduleHistogram(true);
    if (first) refreshForecast();
  }

  // ---------------------------------------------------------------- fleet forecast

  /** The item indexes a 404 / 422 names (["body", "items", i, ...]), or null for another error. */
  function refusedItems(err, count) {
    if (!err || (err.status !== 404 && err.status !== 422) || !Array.isArray(err.detail)) return null;
    const found = new Map();
    for (const d of err.detail) {
      const loc = d && d.loc;
      if (!Array.isArray(loc) || loc[0] !== "body" || loc[1] !== "items") return null;
      if (Number.isInteger(loc[2]) && loc[2] < count) found.set(loc[2], err.status);
    }
    return found.size ? found : null;
  }

  /**
   * POST /forecast/fleet for `ids` (at most FORECAST_CHUNK) with `extra` fields; items the
   * service refuses (404: gone, 422: e.g. an inline vehicle it cannot rebuild) are marked
   * "n/a" and the rest posted again. Returns {ids, body} (the ids the answer's results follow).
   */
  async function postFleet(ids, extra, years) {
    let items = ids.slice();
    for (let attempt = 0; ; attempt++) {
      if (!items.length) return { ids: [], body: null };
      try {
        const body = await api("/forecast/fleet", {
          method: "POST",
          body: { items: items.map((id) => ({ vehicle_id: id })), years, ...extra },
        });
        return { ids: items, body };
      } catch (err) {
        const refused = attempt < FORECAST_RETRIES ? refusedItems(err, items.length) : null;
        if (!refused) throw err;
        for (const [i, status] of refused) {
          const row = rows.get(items[i]);
          if (!row) continue;
          row.forecast = false;
          if (status === 422) row.forecastable = false; // not until its preset changes
          row.version++;
        }
        items = items.filter((_, i) => !refused.has(i));
      }
    }
  }

  /** Refresh fade rate and years to 80 % of every vehicle (one run at a time). */
  async function refreshForecast() {
    if (forecastState.busy) {
      forecastState.again = true;
      return;
    }
    forecastState.busy = true;
    clearTimeout(forecastState.timer);
    forecastState.nextAt = null;
    try {
      do {
        forecastState.again = false;
        await forecastAll();
      } while (forecastState.again);
    } finally {
      forecastState.busy = false;
      forecastState.nextAt = Date.now() + FORECAST_EVERY_MS;
      forecastState.timer = setTimeout(refreshForecast, FORECAST_EVERY_MS);
    }
  }

  /** New vehicles get their forecast within FORECAST_SOON_MS, not at the next full refresh. */
  function scheduleForecastSoon() {
    if (!listed || forecastState.busy) {
      if (forecastState.busy) forecastState.again = true;
      return;
    }
    const at = Date.now() + FORECAST_SOON_MS;
    if (forecastState.nextAt !== null && forecastState.nextAt <= at) return;
    clearTimeout(forecastState.timer);
    forecastState.nextAt = at;
    forecastState.timer = setTimeout(refreshForecast, FORECAST_SOON_MS);
  }

  async function forecastAll() {
    const ids = [];
    for (const row of rows.values()) if (row.forecastable) ids.push(row.id);
    let done = 0;
    let failure = null;
    for (let lo = 0; lo < ids.length; lo += FORECAST_CHUNK) {
      try {
        const answer = await postFleet(ids.slice(lo, lo + FORECAST_CHUNK), {}, FORECAST_YEARS);
        const results = (answer.body && answer.body.results) || [];
        answer.ids.forEach((id, i) => {
          const row = rows.get(id);
          const r = results[i];
          if (!row || !r) return;
          row.forecast = {
            fade: num(r.fade_pct_per_year),
            y80: r.years_to_80 === null ? null : num(r.years_to_80),
            soh2: num(r.soh_in_2_years),
          };
          row.version++;
          done++;
        });
      } catch (err) {
        failure = err;
        console.warn("POST /forecast/fleet failed", err);
      }
    }
    forecastState.lastAt = Date.now();
    const when = new Date(forecastState.lastAt).toLocaleTimeString();
    forecastState.note = failure
      ? `forecast: ${done} of ${ids.length} vehicles (${errorText(failure).split("\n")[0]})`
      : `forecast: ${done} vehicles, ${FORECAST_YEARS}-year horizon, at ${when}`;
    if (ui.sortKey === "fade" || ui.sortKey === "y80") view.dirty = true;
    view.layoutDirty = true;
    requestFrame();
  }

  // ---------------------------------------------------------------- the table

  const COLUMNS = ["id", "preset", "soh", "fade", "y80", "odometer", "soc", "temperature", "seen"];
  const pool = []; // {tr, cells, link, row, version, texts, classes}

  function el(id) {
    return document.getElementById(id);
  }

  function fixed(v, digits) {
    return v === null || v === undefined ? "—" : v.toFixed(digits);
  }

  function fmtAge(seconds) {
    if (seconds === null) return "—";
    if (seconds < 1) return "just now";
    if (seconds < 60) return `${Math.floor(seconds)} s ago`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
    return `${Math.floor(seconds / 86400)} d ago`;
  }

  function sortValue(row, key) {
    switch (key) {
      case "fade":
        return row.forecast ? row.forecast.fade : null;
      case "y80":
        if (!row.forecast) return null;
        return row.forecast.y80 === null ? Infinity : row.forecast.y80; // null: beyond the horizon
      case "seen":
        return row.seenMs === null ? null : -row.seenMs; // ascending: the most recent first
      default:
        return row[key];
    }
  }

  /** Sort by ui.sortKey in ui.sortDir; unknown values last either way, ties by id. */
  function compareRows(a, b) {
    const key = ui.sortKey;
    const dir = ui.sortDir;
    if (key === "id") return dir * collator.compare(a.id, b.id);
    if (key === "preset") return dir * collator.compare(a.preset, b.preset) || collator.compare(a.id, b.id);
    const va = sortValue(a, key);
    const vb = sortValue(b, key);
    if (va === null || va === undefined) return vb === null || vb === undefined ? collator.compare(a.id, b.id) : 1;
    if (vb === null || vb === undefined) return -1;
    if (va !== vb) return va < vb ? -dir : dir;
    return collator.compare(a.id, b.id);
  }

  function computeView() {
    const text = ui.text;
    const below = ui.sohBelow;
    const list = [];
    for (const row of rows.values()) {
      if (text && !row.idLower.includes(text) && !row.presetLower.includes(text)) continue;
      if (below !== null && !(row.soh !== null && row.soh < below)) continue;
      list.push(row);
    }
    list.sort(compareRows);
    view.list = list;
    view.dirty = false;
    view.layoutDirty = true;
    clearTimeout(view.resortTimer);
    view.resortTimer = null;
    scheduleHistogram();
  }

  /** Live changes that may move rows: re-sort (and re-filter) at most every RESORT_EVERY_MS. */
  function scheduleResort() {
    if (view.resortTimer !== null || view.dirty) return;
    view.resortTimer = setTimeout(() => {
      view.resortTimer = null;
      view.dirty = true;
      requestFrame();
    }, RESORT_EVERY_MS);
  }

  function pageCount() {
    return Math.max(1, Math.ceil(view.list.length / ui.pageSize));
  }

  function makeSlot() {
    const tr = document.createElement("tr");
    tr.setAttribute("role", "row");
    const cells = COLUMNS.map((key) => {
      const td = document.createElement("td");
      td.setAttribute("role", "cell");
      td.dataset.col = key;
      if (key !== "id" && key !== "preset") td.className = "num";
      tr.appendChild(td);
      return td;
    });
    const link = document.createElement("a");
    cells[0].appendChild(link);
    el("fleet-rows").appendChild(tr);
    return { tr, cells, link, row: null, version: -1, texts: COLUMNS.map(() => null), classes: cells.map((c) => c.className) };
  }

  function setCell(slot, i, text, cls) {
    if (slot.texts[i] !== text) {
      if (i === 0) slot.link.textContent = text;
      else slot.cells[i].textContent = text;
      slot.texts[i] = text;
      counters.rowsWritten++;
    }
    if (slot.classes[i] !== cls) {
      slot.cells[i].className = cls;
      slot.classes[i] = cls;
    }
  }

  function fillSlot(slot, row, now) {
    if (slot.row !== row) {
      slot.row = row;
      slot.tr.dataset.vehicle = row.id;
      slot.link.href = `/?vehicle=${encodeURIComponent(row.id)}`;
    }
    slot.version = row.version;
    const f = row.forecast;
    const pending = f === undefined;
    const na = f === false;
    setCell(slot, 0, row.id, "");
    setCell(slot, 1, row.preset || "—", "");
    setCell(slot, 2, fixed(row.soh, 2), row.soh !== null && row.soh < END_OF_FIRST_LIFE ? "num low" : "num");
    setCell(slot, 3, pending ? "…" : na ? "n/a" : fixed(f.fade, 2), pending || na ? "num pending" : "num");
    const y80 = pending ? "…" : na ? "n/a" : f.y80 === null ? `> ${FORECAST_YEARS}` : fixed(f.y80, 1);
    setCell(slot, 4, y80, pending || na ? "num pending" : "num");
    setCell(slot, 5, fixed(row.odometer, 1), "num");
    setCell(slot, 6, fixed(row.soc, 1), "num");
    setCell(slot, 7, fixed(row.temperature, 1), "num");
    setCell(slot, 8, fmtAge(row.seenMs === null ? null : Math.max(0, (now - row.seenMs) / 1000)), "num");
  }

  function renderTable(now) {
    if (view.dirty) computeView();
    const pages = pageCount();
    if (ui.page >= pages) {
      ui.page = pages - 1;
      view.layoutDirty = true;
    }
    if (view.layoutDirty) {
      view.layoutDirty = false;
      for (const row of visibleRows) row.visible = false;
      const start = ui.page * ui.pageSize;
      visibleRows = view.list.slice(start, start + ui.pageSize);
      for (const row of visibleRows) row.visible = true;
      while (pool.length < visibleRows.length) pool.push(makeSlot());
      for (const slot of pool.splice(Math.max(visibleRows.length, ui.pageSize))) slot.tr.remove();
      for (let i = 0; i < pool.length; i++) pool[i].tr.hidden = i >= visibleRows.length;
      renderCounts(pages);
    }
    const ages = ageTick;
    ageTick = false;
    for (let i = 0; i < visibleRows.length; i++) {
      const slot = pool[i];
      const row = visibleRows[i];
      if (ages || slot.row !== row || slot.version !== row.version) fillSlot(slot, row, now);
    }
  }

  function renderCounts(pages) {
    const total = rows.size;
    const matching = view.list.length;
    const count = el("fleet-count");
    count.dataset.total = String(total);
    count.dataset.matching = String(matching);
    count.textContent = listed || total ? `${total} vehicles, ${matching} shown` : "loading…";
    const info = el("fleet-page-info");
    const start = matching ? ui.page * ui.pageSize + 1 : 0;
    const end = Math.min(matching, (ui.page + 1) * ui.pageSize);
    info.dataset.page = String(ui.page + 1);
    info.dataset.pages = String(pages);
    info.textContent = `page ${ui.page + 1} of ${pages} · rows ${start}–${end}`;
    el("fleet-first").disabled = el("fleet-prev").disabled = ui.page === 0;
    el("fleet-next").disabled = el("fleet-last").disabled = ui.page >= pages - 1;
    el("fleet-empty").hidden = !(listed && matching === 0);
    for (const th of document.querySelectorAll("#fleet-table th[data-key]")) {
      if (th.dataset.key === ui.sortKey) th.setAttribute("aria-sort", ui.sortDir > 0 ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
    }
    const note = el("fleet-forecast-note");
    const text = forecastState.note || (listed ? "forecast: loading…" : "forecast: waiting for the vehicle list…");
    if (note.textContent !== text) note.textContent = text;
  }

  function requestFrame() {
    if (frameRequested) return;
    frameRequested = true;
    requestAnimationFrame(frame);
  }

  /** One render: at most once per animation frame, the page shown only. */
  function frame() {
    frameRequested = false;
    const t0 = performance.now();
    renderTable(Date.now());
    const ms = performance.now() - t0;
    counters.frames++;
    counters.renderMs += ms;
    if (ms > counters.maxRenderMs) counters.maxRenderMs = ms;
  }

  function setSort(key) {
    if (ui.sortKey === key) ui.sortDir = -ui.sortDir;
    else {
      ui.sortKey = key;
      ui.sortDir = 1;
    }
    view.dirty = true;
    requestFrame();
  }

  function setPage(page) {
    const next = Math.min(Math.max(0, page), pageCount() - 1);
    if (next === ui.page) return;
    ui.page = next;
    view.layoutDirty = true;
    requestFrame();
  }

  function filterChanged() {
    ui.text = el("fleet-filter").value.trim().toLowerCase();
    const below = el("fleet-soh-below").value.trim();
    const value = below === "" ? null : Number(below);
    ui.sohBelow = value === null || !Number.isFinite(value) ? null : value;
    ui.page = 0;
    view.dirty = true;
    requestFrame();
    scheduleHistogram(true);
  }

  // ---------------------------------------------------------------- SOH histogram

  function quantile(sorted, q) {
    if (!sorted.length) return null;
    const pos = (sorted.length - 1) * q;
    const lo = Math.floor(pos);
    const hi = Math.min(sorted.length - 1, lo + 1);
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
  }

  /** SOH of the vehicles matching the filter: bins, count, mean, p10, p90. */
  function histogramOf(list) {
    const values = new Float64Array(list.length);
    let n = 0;
    let sum = 0;
    for (const row of list) {
      if (row.soh === null) continue;
      values[n++] = row.soh;
      sum += row.soh;
    }
    const sorted = values.subarray(0, n).sort();
    if (!n) return { count: 0, mean: null, p10: null, p90: null, lo: 0, hi: 100, width: 1, edges: [], counts: [] };
    const min = sorted[0];
    const max = sorted[n - 1];
    const span = Math.max(max - min, 1e-9);
    const width = BIN_WIDTHS.find((w) => span / w <= HISTOGRAM_MAX_BINS) ?? BIN_WIDTHS[BIN_WIDTHS.length - 1];
    const lo = Math.floor(min / width) * width;
    const bins = Math.max(1, Math.floor((max - lo) / width) + 1);
    const counts = new Array(bins).fill(0);
    for (let i = 0; i < n; i++) counts[Math.min(bins - 1, Math.floor((sorted[i] - lo) / width))]++;
    const edges = counts.map((_, i) => lo + i * width);
    return {
      count: n,
      mean: sum / n,
      p10: quantile(sorted, 0.1),
      p90: quantile(sorted, 0.9),
      lo,
      hi: lo + bins * width,
      width,
      edges,
      counts,
    };
  }

  function scheduleHistogram(soon = false) {
    if (hist.timer !== null && !soon) return;
    clearTimeout(hist.timer);
    const wait = soon ? 0 : Math.max(0, hist.lastAt + HISTOGRAM_EVERY_MS - Date.now());
    hist.timer = setTimeout(renderHistogram, wait);
  }

  function cssVar(name, fallback) {
    const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function histogramChart(container) {
    if (hist.chart || typeof window.uPlot !== "function") return hist.chart;
    const muted = cssVar("--muted", "#8d98a5");
    const grid = cssVar("--grid", "#26303b");
    const color = cssVar("--soh", "#c297ff");
    const axis = { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    const options = {
      width: Math.max(200, container.clientWidth),
      height: 180,
      legend: { show: false },
      cursor: { drag: { x: false, y: false }, points: { show: false } },
      scales: {
        x: { time: false, range: () => [hist.lo, hist.hi] },
        y: { range: (u, min, max) => [0, Math.max(1, max) * 1.1] },
      },
      axes: [
        { ...axis, values: (u, splits) => splits.map((v) => `${+v.toFixed(2)} %`) },
        { ...axis, size: 40 },
      ],
      series: [
        { label: "SOH %" },
        {
          label: "vehicles",
          stroke: color,
          fill: `color-mix(in srgb, ${color} 45%, transparent)`,
          paths: window.uPlot.paths.bars({ size: [0.96, Infinity], gap: 1 }),
          points: { show: false },
        },
      ],
    };
    hist.chart = new window.uPlot(options, [[], []], container);
    return hist.chart;
  }

  function fmtPct(v, digits = 1) {
    return v === null || v === undefined ? "—" : `${v.toFixed(digits)} %`;
  }

  function renderHistogram() {
    hist.timer = null;
    hist.lastAt = Date.now();
    if (view.dirty) computeView();
    const h = histogramOf(view.list);
    hist.result = h;
    hist.lo = h.lo;
    hist.hi = h.hi;
    el("hist-count").textContent = String(h.count);
    el("hist-mean").textContent = fmtPct(h.mean, 2);
    el("hist-p10").textContent = fmtPct(h.p10, 2);
    el("hist-p90").textContent = fmtPct(h.p90, 2);
    const container = el("fleet-histogram");
    container.dataset.count = String(h.count);
    const chart = histogramChart(container);
    if (chart) chart.setData([h.edges.map((e) => e + h.width / 2), h.counts]);
  }

  // ---------------------------------------------------------------- policy comparison

  function policyInput(field, policy, onChange) {
    if (field.kind === "bool") {
      const select = document.createElement("select");
      for (const [value, label] of [["", "—"], ["true", "on"], ["false", "off"]]) {
        const option = document.createElement("option");
        option.value = value;
        option.textContent = label;
        select.appendChild(option);
      }
      select.value = policy[field.key] === undefined ? "" : String(policy[field.key]);
      select.addEventListener("change", () => {
        if (select.value === "") delete policy[field.key];
        else policy[field.key] = select.value === "true";
        onChange(select);
      });
      return select;
    }
    const input = document.createElement("input");
    input.type = "number";
    input.step = String(field.step);
    if (field.min !== undefined) input.min = String(field.min);
    if (field.max !== undefined) input.max = String(field.max);
    input.placeholder = field.placeholder;
    input.value = policy[field.key] === undefined ? "" : String(policy[field.key]);
    input.addEventListener("input", () => {
      const text = input.value.trim();
      if (text === "") delete policy[field.key];
      else policy[field.key] = Number(text);
      onChange(input);
    });
    return input;
  }

  function renderPolicyEditor() {
    const body = el("policy-rows");
    body.textContent = "";
    policyState.list.forEach((policy, index) => {
      const tr = document.createElement("tr");
      tr.dataset.index = String(index);
      const valid = (node) => node.removeAttribute("aria-invalid");
      const nameCell = document.createElement("td");
      const name = document.createElement("input");
      name.type = "text";
      name.value = policy.name;
      name.dataset.field = "name";
      name.setAttribute("aria-label", "Policy name");
      name.addEventListener("input", () => {
        policy.name = name.value;
        valid(name);
      });
      nameCell.appendChild(name);
      tr.appendChild(nameCell);
      for (const field of POLICY_FIELDS) {
        const td = document.createElement("td");
        const input = policyInput(field, policy, valid);
        input.dataset.field = field.key;
        input.setAttribute("aria-label", `${policy.name || "policy"}: ${field.key.replace(/_/g, " ")}`);
        td.appendChild(input);
        tr.appendChild(td);
      }
      const removeCell = document.createElement("td");
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "policy-remove";
      remove.textContent = "×";
      remove.title = "remove this policy";
      remove.setAttribute("aria-label", `Remove ${policy.name || "policy"}`);
      remove.addEventListener("click", () => {
        policyState.list.splice(index, 1);
        renderPolicyEditor();
      });
      removeCell.appendChild(remove);
      tr.appendChild(removeCell);
      body.appendChild(tr);
    });
    el("policy-compare").disabled = policyState.busy || policyState.list.length === 0;
  }

  /** The policies as sent: the name and only the knobs that are set. */
  function policiesRequest() {
    return policyState.list.map((p) => {
      const out = { name: p.name };
      for (const field of POLICY_FIELDS) if (p[field.key] !== undefined) out[field.key] = p[field.key];
      return out;
    });
  }

  /** Mark the inputs the service's error items name (policies.i.field, warranty.field). */
  function markInvalid(err) {
    for (const node of document.querySelectorAll("#panel-policies [aria-invalid]")) node.removeAttribute("aria-invalid");
    if (!err || !Array.isArray(err.detail)) return;
    for (const d of err.detail) {
      const loc = Array.isArray(d.loc) ? d.loc : [];
      let node = null;
      if (loc[1] === "policies" && Number.isInteger(loc[2])) {
        const row = document.querySelector(`#policy-rows tr[data-index="${loc[2]}"]`);
        node = row && (row.querySelector(`[data-field="${loc[3]}"]`) || row.querySelector('[data-field="name"]'));
      } else if (loc[1] === "warranty") {
        node = el(loc[2] === "soh" ? "warranty-soh" : "warranty-years");
      }
      if (node) node.setAttribute("aria-invalid", "true");
    }
  }

  function group(name) {
    return { name, vehicles: 0, below: 0, fadeSum: 0, fadeN: 0, sohSum: 0, sohN: 0 };
  }

  /** SOH from the forecast API: a fraction. */
  function fraction(v) {
    return num(v);
  }

  function addResults(acc, results, warranty, means) {
    const list = Array.isArray(results) ? results : [];
    let fadeN = 0;
    let sohN = 0;
    for (const r of list) {
      const fade = num(r && r.fade_pct_per_year);
      if (fade !== null) {
        acc.fadeSum += fade;
        acc.fadeN++;
        fadeN++;
      }
      const soh = fraction(r && r.soh_at_warranty);
      if (soh !== null) {
        acc.sohSum += soh;
        acc.sohN++;
        sohN++;
      }
    }
    const n = warranty && Number.isInteger(warranty.vehicles) ? warranty.vehicles : list.length;
    if (means && !fadeN && num(means.mean_fade_pct_per_year) !== null) {
      acc.fadeSum += means.mean_fade_pct_per_year * n;
      acc.fadeN += n;
    }
    if (means && !sohN && fraction(means.mean_soh_at_warranty) !== null) {
      acc.sohSum += fraction(means.mean_soh_at_warranty) * n;
      acc.sohN += n;
    }
    if (warranty && Number.isInteger(warranty.vehicles)) {
      acc.vehicles += warranty.vehicles;
      acc.below += Number.isInteger(warranty.vehicles_below) ? warranty.vehicles_below : 0;
    }
  }

  async function compare() {
    const seq = ++policyState.seq;
    const status = el("policy-status");
    const errorBox = el("policy-error");
    errorBox.hidden = true;
    markInvalid(null);
    if (view.dirty) computeView();
    const ids = view.list.filter((row) => row.forecastable).map((row) => row.id);
    if (!ids.length) {
      errorBox.textContent = "No vehicle to compare: none matches the filter.";
      errorBox.hidden = false;
      return;
    }
    const warranty = {
      years: Number(el("warranty-years").value),
      soh: Number(el("warranty-soh").value) / 100,
    };
    const policies = policiesRequest();
    const years = Math.max(FORECAST_YEARS, Number.isFinite(warranty.years) ? warranty.years : 0);
    policyState.busy = true;
    el("policy-compare").disabled = true;
    status.textContent = `comparing ${policies.length} policies over ${ids.length} vehicles…`;
    const baseline = group("observed usage");
    const groups = policies.map((p) => group(p.name));
    try {
      for (let lo = 0; lo < ids.length; lo += FORECAST_CHUNK) {
        const answer = await postFleet(ids.slice(lo, lo + FORECAST_CHUNK), { policies, warranty }, years);
        const body = answer.body;
        if (!body) continue;
        if (!Array.isArray(body.policies)) {
          throw new Error("This service's POST /forecast/fleet does not compare policies (its answer has no `policies`).");
        }
        addResults(baseline, body.results, body.warranty, null);
        body.policies.forEach((p, i) => {
          if (groups[i]) addResults(groups[i], p.results, p.warranty, p);
        });
      }
      if (seq !== policyState.seq) return;
      policyState.result = { warranty, vehicles: ids.length, groups: [baseline, ...groups] };
      status.textContent = `${ids.length} vehicles, at ${new Date().toLocaleTimeString()}`;
      renderPolicyResults();
    } catch (err) {
      if (seq !== policyState.seq) return;
      console.warn("policy comparison failed", err);
      errorBox.textContent = err.status ? `The service refused the comparison (HTTP ${err.status}):\n${errorText(err)}` : errorText(err);
      errorBox.hidden = false;
      markInvalid(err);
      status.textContent = "";
    } finally {
      if (seq === policyState.seq) {
        policyState.busy = false;
        el("policy-compare").disabled = policyState.list.length === 0;
      }
    }
  }

  function renderPolicyResults() {
    const result = policyState.result;
    const body = el("policy-results");
    const bars = el("policy-bars");
    body.textContent = "";
    bars.textContent = "";
    if (!result) return;
    const { warranty } = result;
    const yearsText = `${+warranty.years.toFixed(2)} y`;
    el("policy-head-soh").textContent = `Mean SOH at ${yearsText}`;
    el("policy-head-share").textContent = `Below ${+(warranty.soh * 100).toFixed(1)} % at ${yearsText}`;
    result.groups.forEach((g, i) => {
      const share = g.vehicles ? g.below / g.vehicles : null;
      const tr = document.createElement("tr");
      tr.dataset.policy = g.name;
      if (i === 0) tr.className = "baseline";
      const cells = [
        g.name,
        g.fadeN ? (g.fadeSum / g.fadeN).toFixed(2) : "—",
        g.sohN ? fmtPct((g.sohSum / g.sohN) * 100, 1) : "—",
        share === null ? "—" : fmtPct(share * 100, 1),
      ];
      cells.forEach((text, c) => {
        const td = document.createElement("td");
        td.textContent = text;
        if (c) td.className = "num";
        td.dataset.col = ["name", "fade", "soh", "share"][c];
        tr.appendChild(td);
      });
      if (share !== null) {
        const count = document.createElement("span");
        count.className = "share-count";
        count.textContent = ` (${g.below} of ${g.vehicles})`;
        tr.lastChild.appendChild(count);
      }
      if (share !== null) tr.dataset.share = String(share);
      body.appendChild(tr);

      const label = document.createElement("span");
      label.className = "bar-label";
      label.textContent = g.name;
      label.title = g.name;
      const track = document.createElement("span");
      track.className = "bar-track";
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.style.display = "block";
      bar.style.width = `${share === null ? 0 : Math.min(100, share * 100)}%`;
      track.appendChild(bar);
      const value = document.createElement("span");
      value.className = "bar-value";
      value.textContent = share === null ? "—" : fmtPct(share * 100, 1);
      bars.append(label, track, value);
    });
  }

  // ---------------------------------------------------------------- notices and status

  function showNotice(text) {
    noticeText = text || null;
    const notice = el("notice");
    notice.hidden = !noticeText;
    notice.textContent = noticeText || "";
  }

  function setConnection(status) {
    const node = el("fleet-connection");
    node.dataset.state = status;
    node.querySelector(".text").textContent =
      status === "live" ? "live" : status === "reconnecting" ? "reconnecting…" : "connecting…";
  }

  // ---------------------------------------------------------------- start

  function start() {
    for (const th of document.querySelectorAll("#fleet-table th[data-key]")) {
      th.querySelector("button").addEventListener("click", () => setSort(th.dataset.key));
    }
    el("fleet-filter").addEventListener("input", filterChanged);
    el("fleet-soh-below").addEventListener("input", filterChanged);
    el("fleet-page-size").addEventListener("change", (event) => {
      const first = ui.page * ui.pageSize;
      ui.pageSize = Number(event.target.value) || 50;
      ui.page = Math.floor(first / ui.pageSize);
      view.layoutDirty = true;
      requestFrame();
    });
    el("fleet-first").addEventListener("click", () => setPage(0));
    el("fleet-prev").addEventListener("click", () => setPage(ui.page - 1));
    el("fleet-next").addEventListener("click", () => setPage(ui.page + 1));
    el("fleet-last").addEventListener("click", () => setPage(pageCount() - 1));
    el("policy-add").addEventListener("click", () => {
      const names = new Set(policyState.list.map((p) => p.name));
      let n = policyState.list.length + 1;
      while (names.has(`policy ${n}`)) n++;
      policyState.list.push({ name: `policy ${n}` }); // names must differ
      renderPolicyEditor();
    });
    el("policy-compare").addEventListener("click", compare);
    renderPolicyEditor();
    window.addEventListener("resize", () => {
      const container = el("fleet-histogram");
      if (hist.chart) hist.chart.setSize({ width: Math.max(200, container.clientWidth), height: 180 });
    });
    setInterval(() => {
      ageTick = true;
      requestFrame();
    }, AGE_EVERY_MS);
    setInterval(loadFleet, RELIST_MS);

    let connected = false;
    // eslint-disable-next-line no-new
    new LiveSocket("/ws/fleet", {
      onMessage: receive,
      onStatus: (status) => {
        setConnection(status);
        // a reconnect may have missed steps and vehicles: list again
        if (status === "live" && connected) loadFleet();
        if (status === "live") connected = true;
      },
    });
    loadFleet();
    requestFrame();
    scheduleHistogram(true);
  }

  window.twinFleet = Object.freeze({
    /** Feed one /ws/fleet message (its text) as if the socket had delivered it. */
    receive,
    stats: () => ({ ...counters, vehicles: rows.size, shown: view.list.length }),
    resetStats: () => {
      for (const key of Object.keys(counters)) counters[key] = 0;
    },
    histogram: () => (hist.result ? { ...hist.result } : null),
    row: (id) => {
      const row = rows.get(id);
      return row ? { ...row } : null;
    },
    visible: () => visibleRows.map((row) => row.id),
    forecast: () => ({ lastAt: forecastState.lastAt, busy: forecastState.busy, note: forecastState.note }),
    policies: () => (policyState.result ? JSON.parse(JSON.stringify(policyState.result)) : null),
    chart: () => hist.chart,
  });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
