// fleet-core.js — what every page shares: settings, the API client, the header (clock, SLO badges), formats, plate
// rules, the palette and the map (base style with its offline fallback, view payloads as GeoJSON sources styled
// from their `style_class`). No framework and no bundler: each page module imports this file.

export const config = JSON.parse(document.getElementById("fleet-config").textContent);

// --- Palette: Okabe & Ito's colour-blind-safe set. Colour is never the only cue: states also differ in shape
// on the map and are always named in text.
export const OKABE_ITO = Object.freeze({
  black: "#000000",
  orange: "#E69F00",
  skyBlue: "#56B4E9",
  bluishGreen: "#009E73",
  yellow: "#F0E442",
  blue: "#0072B2",
  vermillion: "#D55E00",
  reddishPurple: "#CC79A7",
});
export const GREY = "#8C8C8C";
// Colours for series (one per vehicle in a history), in Okabe-Ito order.
export const SERIES = [OKABE_ITO.blue, OKABE_ITO.vermillion, OKABE_ITO.bluishGreen, OKABE_ITO.reddishPurple,
  OKABE_ITO.orange, OKABE_ITO.skyBlue, OKABE_ITO.black, OKABE_ITO.yellow];

export const STATES = ["moving", "idling", "parked", "offline", "unknown"];

// A payload's `style_class` is a list of tokens ("vehicle state-moving fresh-stale suspended"); each token
// contributes to the style, later tokens winning. This table is the only place the pages' map styles live.
export const STYLE_CLASSES = {
  "state-moving": { colour: OKABE_ITO.bluishGreen, shape: "arrow", label: "moving" },
  "state-idling": { colour: OKABE_ITO.orange, shape: "arrow", label: "idling" },
  "state-parked": { colour: OKABE_ITO.blue, shape: "square", label: "parked" },
  "state-offline": { colour: OKABE_ITO.vermillion, shape: "ring", label: "offline" },
  "state-unknown": { colour: GREY, shape: "ring", label: "unknown" },
  "fresh-fresh": { opacity: 1 },
  "fresh-stale": { opacity: 0.8 },
  "fresh-late": { opacity: 0.55 },
  "fresh-none": { opacity: 0.4 },
  suspended: { ring: true },
  trip: { colour: OKABE_ITO.blue, width: 4 },
  "trip-start": { colour: OKABE_ITO.bluishGreen, shape: "dot" },
  "trip-end": { colour: OKABE_ITO.black, shape: "dot" },
  stop: { colour: OKABE_ITO.blue, shape: "square" },
  "stop-idling": { colour: OKABE_ITO.orange },
  "alarm": { colour: OKABE_ITO.vermillion, shape: "triangle" },
  "alarm-warning": { colour: OKABE_ITO.orange },
  "alarm-info": { colour: OKABE_ITO.skyBlue },
  "dispatch-origin": { colour: OKABE_ITO.black, shape: "cross" },
};

export function styleOf(styleClass) {
  const style = { colour: GREY, shape: "dot", opacity: 1, ring: false, width: 3, label: "" };
  for (const token of String(styleClass || "").split(/\s+/)) Object.assign(style, STYLE_CLASSES[token] || {});
  return style;
}

// Adds the drawing properties (_key, _colour, _icon, _rotate, _opacity, _ring) a layer reads; the payload's own
// properties stay as they are.
export function decorate(features) {
  for (const [index, feature] of features.entries()) {
    const p = feature.properties || (feature.properties = {});
    const style = styleOf(p.style_class);
    const heading = typeof p.heading === "number" ? p.heading : null;
    const shape = style.shape === "arrow" && heading === null ? "dot" : style.shape;
    p._key = String(feature.id ?? p.vehicle_id ?? p.device_id ?? index);
    p._colour = p._colour || style.colour;
    p._icon = `icon:${shape}:${p._colour}`;
    p._rotate = shape === "arrow" ? heading : 0;
    p._opacity = style.opacity;
    p._ring = style.ring;
    p._width = style.width;
  }
  return features;
}

// --- Plates: the rule of domain/plates.py (upper case; spaces, hyphens, dots, underscores and slashes dropped).
const NOT_PLATE_CHARS = /[\s\-._/]+/g;
const PLATE = /^[A-Z0-9]{2,16}$/;

export function plateFragment(raw) {
  return String(raw ?? "").trim().replace(NOT_PLATE_CHARS, "").toUpperCase();
}

// The normal form of a whole plate, or null when it is none ("kca-123a" → "KCA123A").
export function normalisePlate(raw) {
  const plate = plateFragment(raw);
  return PLATE.test(plate) ? plate : null;
}

// "kca 123a, KCB-456b" → {plates: ["KCA123A", "KCB456B"], bad: []}
export function platesFromText(text) {
  const plates = [];
  const bad = [];
  for (const raw of String(text || "").split(/[,;\n]/)) {
    if (!raw.trim()) continue;
    const plate = normalisePlate(raw);
    if (plate) {
      if (!plates.includes(plate)) plates.push(plate);
    } else bad.push(raw.trim());
  }
  return { plates, bad };
}

// --- Formats. Times are shown as the payloads give them (already in the display zone, with its offset).
const numberFormat = new Intl.NumberFormat("en-GB", { maximumFractionDigits: 1 });

export function fmtNumber(value, digits = 1) {
  if (value === null || value === undefined) return "–";
  return new Intl.NumberFormat("en-GB", { maximumFractionDigits: digits }).format(value);
}

export function fmtTime(iso) {
  if (!iso) return "–";
  const text = String(iso);
  return `${text.slice(0, 10)} ${text.slice(11, 19)}`;
}

export function fmtAge(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h} h ${String(m).padStart(2, "0")} min` : m ? `${m} min` : `${s} s`;
}

export function fmtDistance(metres) {
  if (metres === null || metres === undefined) return "–";
  return metres < 1000 ? `${Math.round(metres)} m` : `${numberFormat.format(metres / 1000)} km`;
}

export function fmtSpeed(kmh) {
  return kmh === null || kmh === undefined ? "–" : `${Math.round(kmh)} km/h`;
}

// The offset of `timeZone` at `date`, in minutes east of UTC.
function zoneOffsetMinutes(date, timeZone) {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat("en-GB", {
      timeZone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit",
    }).formatToParts(date).map((p) => [p.type, p.value]),
  );
  const asUtc = Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour, +parts.minute, +parts.second);
  return Math.round((asUtc - date.getTime()) / 60000);
}

// An <input type="datetime-local"> value, read in the display zone → ISO-8601 with the zone's offset.
export function zonedIso(localValue, timeZone = config.timeZone) {
  const match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(localValue || "");
  if (!match) return null;
  const [, y, mo, d, h, mi, s = "00"] = match;
  const naive = Date.UTC(+y, +mo - 1, +d, +h, +mi, +s);
  let offset = zoneOffsetMinutes(new Date(naive), timeZone);
  offset = zoneOffsetMinutes(new Date(naive - offset * 60000), timeZone);
  const sign = offset < 0 ? "-" : "+";
  const abs = Math.abs(offset);
  const hh = String(Math.floor(abs / 60)).padStart(2, "0");
  const mm = String(abs % 60).padStart(2, "0");
  return `${y}-${mo}-${d}T${h}:${mi}:${s}${sign}${hh}:${mm}`;
}

// --- DOM
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

// A small coloured shape and the state's name: never colour alone.
export function stateTag(state) {
  const style = STYLE_CLASSES[`state-${state}`] || STYLE_CLASSES["state-unknown"];
  return el("span", { class: `state-tag state-${state}` },
    el("span", { class: `swatch shape-${style.shape}`, style: `--swatch:${style.colour}`, "aria-hidden": "true" }),
    state);
}

// The page's status line (aria-live): kind is "info", "warn" or "error"; an empty text hides it.
export function status(text, kind = "info", target = document.getElementById("status")) {
  if (!target) return;
  target.textContent = text || "";
  target.dataset.kind = kind;
  target.hidden = !text;
}

// --- API: same-origin fetch with the session cookie; unsafe methods carry the CSRF token.
export class ApiError extends Error {
  constructor(status, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

export function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.content || "";
}

async function send(path, { params = {}, method = "GET", body, signal, headers: extra = {} } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(params)) {
    if (value === null || value === undefined || value === "") continue;
    url.searchParams.set(key, typeof value === "object" ? JSON.stringify(value) : String(value));
  }
  const headers = { Accept: "application/json", ...extra };
  if (!SAFE_METHODS.has(method)) {
    headers["X-CSRFToken"] = csrfToken();
    if (body !== undefined) headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(url, {
      method, headers, signal, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "The gateway cannot be reached; retrying.");
  }
  if (response.status === 401) {
    const next = encodeURIComponent(window.location.pathname + window.location.search);
    window.location.assign(`${config.loginUrl}?next=${next}`);
    throw new ApiError(401, "Your session has ended: log in again.");
  }
  return response;
}

async function answer(response) {
  const type = response.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await response.json().catch(() => null) : null;
  if (!response.ok) {
    const retryAfter = Number(response.headers.get("Retry-After")) || null;
    let message = data?.detail || `${response.status} ${response.statusText}`;
    if (response.status === 429) message = `Too many requests; next try in ${retryAfter || 60} s.`;
    throw new ApiError(response.status, message, retryAfter);
  }
  return data;
}

export async function api(path, options = {}) {
  return answer(await send(path, options));
}

// A view that answers with a validator and a cursor (the live and overview views): {status, data, etag, cursor}.
// With `etag` it sends If-None-Match itself: a browser adds it only for a URL it holds in its cache, and every
// `since=` URL is new. A request that carries it is never answered from the cache (fetch turns the cache off for
// it), so 304 Not Modified reaches here as such: data is null, and what the page holds is current.
export async function fetchView(path, { params = {}, etag = null } = {}) {
  const response = await send(path, { params, headers: etag ? { "If-None-Match": etag } : {} });
  const meta = { status: response.status, etag: response.headers.get("ETag"), cursor: response.headers.get("X-Fleet-Cursor") };
  return { ...meta, data: response.status === 304 ? null : await answer(response) };
}

// Filters as the API's `filters` JSON: only the keys that hold something.
export function filtersParam(filters) {
  const kept = Object.fromEntries(Object.entries(filters || {}).filter(([, v]) => Array.isArray(v) && v.length));
  return Object.keys(kept).length ? kept : null;
}

// Runs `task` now and then every `seconds` after each run ends; paused while the tab is hidden, run at once when
// it shows again. `now()` runs it at once (queued behind a run in flight).
export function poll(task, seconds) {
  let timer = null;
  let running = false;
  let again = false;
  const run = async () => {
    clearTimeout(timer);
    timer = null;
    if (document.hidden) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    let wait = seconds;
    try {
      await task();
    } catch (error) {
      if (error instanceof ApiError && error.retryAfter) wait = Math.max(seconds, error.retryAfter);
    } finally {
      running = false;
    }
    if (again) {
      again = false;
      run();
    } else if (!document.hidden) timer = setTimeout(run, wait * 1000);
  };
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      clearTimeout(timer);
      timer = null;
    } else if (!running && timer === null) run();
  });
  run();
  return { now: run };
}

// --- Header: the clock and the SLO badges
export function startClock(node = document.getElementById("clock")) {
  if (!node) return;
  const format = new Intl.DateTimeFormat("en-GB", {
    timeZone: config.timeZone, hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  });
  const long = new Intl.DateTimeFormat("en-GB", { timeZone: config.timeZone, dateStyle: "full", timeStyle: "long" });
  const tick = () => {
    const now = new Date();
    node.textContent = `${format.format(now)} ${config.zoneName}`;
    node.dateTime = now.toISOString();
    node.title = `${long.format(now)} (${config.timeZone})`;
  };
  tick();
  setInterval(tick, 1000);
}

const SLO_TEXT = { met: "met", breached: "breached", no_data: "no data", not_measured: "no data" };

export function renderSlo(sloStatus) {
  const box = document.getElementById("slo-badges");
  if (!box || !sloStatus) return;
  for (const metric of sloStatus.metrics || []) {
    const state = metric.state === "not_measured" ? "no_data" : metric.state;
    let badge = box.querySelector(`[data-metric="${CSS.escape(metric.metric)}"]`);
    if (!badge) {
      badge = el("span", { class: "badge", dataset: { metric: metric.metric } },
        el("span", { class: "badge-label", text: config.sloLabels[metric.metric] || metric.metric }), " ",
        el("span", { class: "badge-state" }));
      box.append(badge);
    }
    badge.className = `badge slo-${state}`;
    badge.dataset.state = state;
    badge.querySelector(".badge-state").textContent = SLO_TEXT[metric.state] || metric.state;
    const value = metric.value === null || metric.value === undefined ? "no value" : `${fmtNumber(metric.value, 2)} ${metric.unit}`;
    badge.title = `${metric.description} Now: ${value}; objective ${metric.comparison} ${metric.threshold} ${metric.unit}.`;
  }
}

export function startPage() {
  startClock();
}

// --- Icons, drawn here: no sprite sheet and no glyph server, so the offline map needs nothing from outside.
// Names: "icon:<shape>:<colour>", "count:<text>" (cluster sizes), "rank:<n>:<colour>" (dispatch order).
const ICON_RATIO = 2;

function canvas(size) {
  const c = document.createElement("canvas");
  c.width = c.height = size * ICON_RATIO;
  const ctx = c.getContext("2d");
  ctx.scale(ICON_RATIO, ICON_RATIO);
  return [c, ctx];
}

function drawShape(shape, colour) {
  const size = 26;
  const [c, ctx] = canvas(size);
  const m = size / 2;
  ctx.lineJoin = "round";
  ctx.lineWidth = 2;
  ctx.strokeStyle = "#ffffff";
  ctx.fillStyle = colour;
  ctx.beginPath();
  if (shape === "arrow") {
    ctx.moveTo(m, 2);
    ctx.lineTo(size - 5, size - 4);
    ctx.lineTo(m, size - 9);
    ctx.lineTo(5, size - 4);
    ctx.closePath();
  } else if (shape === "square") {
    ctx.roundRect(6, 6, size - 12, size - 12, 3);
  } else if (shape === "triangle") {
    ctx.moveTo(m, 3);
    ctx.lineTo(size - 3, size - 4);
    ctx.lineTo(3, size - 4);
    ctx.closePath();
  } else if (shape === "cross") {
    ctx.arc(m, m, 9, 0, Math.PI * 2);
  } else {
    ctx.arc(m, m, shape === "ring" ? 7.5 : 7, 0, Math.PI * 2);
  }
  if (shape === "ring") {
    ctx.fillStyle = "#ffffff";
    ctx.fill();
    ctx.lineWidth = 4;
    ctx.strokeStyle = colour;
    ctx.stroke();
  } else {
    ctx.stroke();
    ctx.fill();
  }
  if (shape === "triangle" || shape === "cross") {
    ctx.fillStyle = "#ffffff";
    ctx.strokeStyle = "#ffffff";
    ctx.font = "bold 12px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    if (shape === "triangle") ctx.fillText("!", m, m + 3);
    else {
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.moveTo(m - 5, m);
      ctx.lineTo(m + 5, m);
      ctx.moveTo(m, m - 5);
      ctx.lineTo(m, m + 5);
      ctx.stroke();
    }
  }
  return ctx.getImageData(0, 0, c.width, c.height);
}

function drawLabel(text, background, foreground = "#ffffff") {
  const size = text.length > 2 ? 34 : 26;
  const [c, ctx] = canvas(size);
  if (background) {
    ctx.fillStyle = background;
    ctx.strokeStyle = "#ffffff";
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.arc(size / 2, size / 2, size / 2 - 2, 0, Math.PI * 2);
    ctx.fill();
    ctx.stroke();
  }
  ctx.fillStyle = foreground;
  ctx.font = `bold ${text.length > 3 ? 10 : 12}px system-ui, sans-serif`;
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  ctx.fillText(text, size / 2, size / 2 + 0.5);
  return ctx.getImageData(0, 0, c.width, c.height);
}

function iconFor(name) {
  const [kind, a, b] = name.split(":");
  if (kind === "icon") return drawShape(a, b);
  if (kind === "count") return drawLabel(a, null);
  if (kind === "rank") return drawLabel(a, b);
  return null;
}

// --- Map

const OSM_STYLE = {
  version: 8,
  sources: {
    osm: {
      type: "raster",
      tiles: ["https://tile.openstreetmap.org/{z}/{x}/{y}.png"],
      tileSize: 256,
      maxzoom: 19,
      attribution: '© <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
    },
  },
  layers: [
    { id: "background", type: "background", paint: { "background-color": "#e8ebee" } },
    { id: "osm", type: "raster", source: "osm" },
  ],
};

// The built-in style that needs nothing beyond the gateway: a plain background, and our own road tiles when the
// gateway serves them.
function offlineStyle(roadTiles) {
  const style = {
    version: 8,
    sources: {},
    layers: [{ id: "background", type: "background", paint: { "background-color": "#eef1ea" } }],
  };
  if (roadTiles) {
    style.sources.roads = { type: "vector", tiles: [new URL(roadTiles, window.location.origin).href], maxzoom: 14 };
    style.layers.push({
      id: "roads", type: "line", source: "roads", "source-layer": "roads",
      paint: { "line-color": "#b9bfc6", "line-width": ["interpolate", ["linear"], ["zoom"], 8, 0.5, 16, 6] },
    });
  }
  return style;
}

// Our own road tiles are used only when the gateway says it serves them and a tile answers.
async function roadTilesAvailable() {
  const template = config.map.roadTiles;
  if (!template) return null;
  try {
    const probe = template.replace("{z}", "0").replace("{x}", "0").replace("{y}", "0");
    const response = await fetch(probe, { method: "HEAD", credentials: "same-origin" });
    return response.ok ? template : null;
  } catch {
    return null;
  }
}

const NAIROBI = [36.8219, -1.2921];

// A MapLibre map whose data survives a change of base style: sources and layers are registered here and added
// again whenever a style loads (the fallback to the offline style replaces the style, and with it every layer).
export class FleetMap {
  constructor(lib, map, container) {
    this.lib = lib;
    this.map = map;
    this.container = container;
    this.sources = new Map();
    this.layers = [];
    this.styled = false;
    // Icons are drawn when a layer first asks for one (no sprite sheet to fetch).
    map.setMissingStyleImageResolver((id) => {
      const image = iconFor(id);
      if (image && !map.hasImage(id)) map.addImage(id, image, { pixelRatio: ICON_RATIO });
    });
    map.on("style.load", () => {
      this.styled = true;
      for (const [id, spec] of this.sources) if (!map.getSource(id)) map.addSource(id, spec);
      for (const layer of this.layers) if (!map.getLayer(layer.id)) map.addLayer(layer);
    });
  }

  // Creates the GeoJSON source or replaces its data.
  setData(id, data, options = {}) {
    const existing = this.sources.get(id);
    if (existing) existing.data = data;
    else this.sources.set(id, { type: "geojson", data, ...options });
    const source = this.styled ? this.map.getSource(id) : null;
    if (source) source.setData(data);
    else if (this.styled) this.map.addSource(id, this.sources.get(id));
  }

  addLayers(layers) {
    for (const layer of layers) {
      this.layers.push(layer);
      if (this.styled && !this.map.getLayer(layer.id)) this.map.addLayer(layer);
    }
  }

  setFilter(layerId, filter) {
    const layer = this.layers.find((l) => l.id === layerId);
    if (layer) layer.filter = filter;
    if (this.styled && this.map.getLayer(layerId)) this.map.setFilter(layerId, filter);
  }

  fitTo(coordinates, maxZoom = 14) {
    if (!coordinates.length) return;
    const bounds = new this.lib.LngLatBounds(coordinates[0], coordinates[0]);
    for (const c of coordinates) bounds.extend(c);
    this.map.fitBounds(bounds, { padding: 48, maxZoom, duration: 0 });
  }

  // Calls `handler(feature)` when a feature of one of `layerIds` is clicked; a pointer cursor over them.
  onFeatureClick(layerIds, handler) {
    for (const id of layerIds) {
      this.map.on("click", id, (event) => handler(event.features[0], event));
      this.map.on("mouseenter", id, () => { this.map.getCanvas().style.cursor = "pointer"; });
      this.map.on("mouseleave", id, () => { this.map.getCanvas().style.cursor = ""; });
    }
  }
}

function mapNotice(container, text) {
  const notice = container.parentElement?.querySelector(".map-notice");
  if (!notice) return;
  notice.textContent = text;
  notice.hidden = !text;
}

// Creates the map; null when this browser cannot draw one (the rest of the page works without it).
// The base map: MAP_OFFLINE → the offline style at once; otherwise MAP_STYLE_URL (or the built-in OpenStreetMap
// style), switching to the offline style if the style or its tiles fail to load.
export async function createMap(container, { center = NAIROBI, zoom = 10 } = {}) {
  let lib;
  try {
    lib = await import("maplibre-gl");
    lib.setWorkerUrl(config.map.workerUrl);
  } catch (error) {
    mapNotice(container, "The map could not be loaded; the lists still work.");
    return null;
  }
  const offline = config.map.offline;
  const roads = offline ? await roadTilesAvailable() : null;
  let map;
  try {
    map = new lib.Map({
      container,
      style: offline ? offlineStyle(roads) : config.map.styleUrl || OSM_STYLE,
      center,
      zoom,
      attributionControl: { compact: true },
      dragRotate: false,
      pitchWithRotate: false,
      touchPitch: false,
      maxPitch: 0,
      fadeDuration: 0,
    });
  } catch (error) {
    mapNotice(container, "This browser cannot draw the map (WebGL is off); the lists still work.");
    container.dataset.mapStyle = "none";
    return null;
  }
  map.addControl(new lib.NavigationControl({ showCompass: false }), "top-right");
  map.addControl(new lib.ScaleControl({ unit: "metric" }), "bottom-right");
  map.keyboard.enable();
  const fleetMap = new FleetMap(lib, map, container);
  container.dataset.mapStyle = offline ? "offline" : "online";
  let mode = offline ? "offline" : "online";
  let tileFailures = 0;
  const dataSources = () => fleetMap.sources;
  const goOffline = async (why) => {
    if (mode === "offline") return;
    mode = "offline";
    clearTimeout(styleTimer);
    container.dataset.mapStyle = "offline";
    mapNotice(container, `${why}: showing the offline map.`);
    fleetMap.styled = false;
    map.setStyle(offlineStyle(await roadTilesAvailable()), { diff: false });
  };
  // A style that has not loaded in 10 s will not: the pages must not wait on a tile server.
  const styleTimer = offline ? null : setTimeout(() => {
    if (!fleetMap.styled) goOffline("The map style did not load");
  }, 10000);
  map.on("style.load", () => clearTimeout(styleTimer));
  // Listening to "error" also keeps MapLibre from writing its errors to the console: each is handled here.
  map.on("error", (event) => {
    const source = event.sourceId;
    if (source && dataSources().has(source)) return; // our own GeoJSON: set in memory, nothing to fetch
    if (mode === "offline") {
      // Our road tiles failed after all: plain background.
      if (source === "roads" && map.getLayer("roads")) map.removeLayer("roads");
      return;
    }
    if (!fleetMap.styled) goOffline("The map style could not be loaded");
    else if (source && ++tileFailures >= 2) goOffline("Map tiles are unavailable");
  });
  window.fleet = Object.assign(window.fleet || {}, { map, fleetMap });
  return fleetMap;
}

// --- Vehicles on a map: one GeoJSON source, clustered at low zoom; never one DOM element per vehicle.
export function vehicleLayers(source, { cluster = true } = {}) {
  const single = cluster ? ["!", ["has", "point_count"]] : ["all"];
  const layers = [
    {
      id: `${source}-suspended`, type: "circle", source,
      filter: ["all", single, ["==", ["get", "_ring"], true]],
      paint: { "circle-radius": 14, "circle-color": "rgba(0,0,0,0)", "circle-stroke-color": "#000000",
        "circle-stroke-width": 2.5 },
    },
    {
      id: `${source}-selected`, type: "circle", source,
      filter: ["==", ["get", "_key"], "-"],
      paint: { "circle-radius": 18, "circle-color": "rgba(240,228,66,0.45)", "circle-stroke-color": "#000000",
        "circle-stroke-width": 2 },
    },
    {
      id: `${source}-points`, type: "symbol", source, filter: single,
      layout: { "icon-image": ["get", "_icon"], "icon-rotate": ["get", "_rotate"], "icon-rotation-alignment": "map",
        "icon-allow-overlap": true, "icon-ignore-placement": true },
      paint: { "icon-opacity": ["get", "_opacity"] },
    },
  ];
  if (cluster) {
    layers.unshift(
      {
        id: `${source}-clusters`, type: "circle", source, filter: ["has", "point_count"],
        paint: {
          "circle-color": "#33414f",
          "circle-opacity": 0.85,
          "circle-stroke-color": "#ffffff",
          "circle-stroke-width": 2,
          "circle-radius": ["step", ["get", "point_count"], 14, 10, 18, 100, 23, 1000, 29],
        },
      },
      {
        id: `${source}-cluster-count`, type: "symbol", source, filter: ["has", "point_count"],
        layout: { "icon-image": ["concat", "count:", ["get", "point_count_abbreviated"]],
          "icon-allow-overlap": true, "icon-ignore-placement": true },
      },
    );
  }
  return layers;
}

export function collection(features) {
  return { type: "FeatureCollection", features: features.filter((f) => f.geometry) };
}

// Marks the first time the map has drawn data (performance mark "fleet:first-render"; data-rendered on the map).
export function markRendered(fleetMap) {
  if (!fleetMap || fleetMap.container.dataset.rendered) return;
  fleetMap.map.once("idle", () => {
    if (fleetMap.container.dataset.rendered) return;
    performance.mark("fleet:first-render");
    fleetMap.container.dataset.rendered = "true";
  });
}

// Metres between two [lng, lat] points (haversine).
export function metresBetween(a, b) {
  const rad = Math.PI / 180;
  const dLat = (b[1] - a[1]) * rad;
  const dLng = (b[0] - a[0]) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a[1] * rad) * Math.cos(b[1] * rad) * Math.sin(dLng / 2) ** 2;
  return 2 * 6371008.8 * Math.asin(Math.sqrt(h));
}

// Degrees clockwise from north, from a to b.
export function bearing(a, b) {
  const rad = Math.PI / 180;
  const y = Math.sin((b[0] - a[0]) * rad) * Math.cos(b[1] * rad);
  const x = Math.cos(a[1] * rad) * Math.sin(b[1] * rad) -
    Math.sin(a[1] * rad) * Math.cos(b[1] * rad) * Math.cos((b[0] - a[0]) * rad);
  return (Math.atan2(y, x) / rad + 360) % 360;
}
