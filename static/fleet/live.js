// Live: every vehicle's position and state, refreshed every LIVE_POLL_S seconds while the tab is visible.
import {
  $, api, collection, config, createMap, decorate, el, fetchView, filtersParam, fmtAge, fmtNumber, fmtSpeed, fmtTime,
  markRendered, plateFragment, platesFromText, poll, renderSlo, startPage, STATES, stateTag, status, vehicleLayers,
} from "./fleet-core.js";

startPage();

const LIST_LIMIT = 300; // rows drawn in the list at once; the search narrows the rest
// The alarms panel comes from /api/views/overview, whose payload is the live view's plus the alarms and today's
// totals: the first refresh and every OVERVIEW_EVERY-th ask it instead of /api/views/live (one request, not two).
const OVERVIEW_EVERY = 4;

const page = {
  filters: {},
  features: [],
  byKey: new Map(),
  selected: null,
  polls: 0,
  fitted: false,
  alarmsFor: null,
  loaded: false,
  // The API's cursor and validator of the last answer: the next refresh asks only for what changed since
  // (`since=`), and is answered 304 when nothing did (docs/architecture.md, "The live view on the wire").
  cursor: null,
  etag: null,
  generation: 0, // bumped when the filters change: an answer to older filters is dropped
  moment: null, // {generated_at, time_zone, at}: when the last answer was computed, and performance.now() then
};

const mapNode = $("#map");
const list = $("#vehicle-list");
const search = $("#search");
const detail = $("#detail");
const form = $("#filters");

// Panels start folded on a phone in portrait, the list open.
if (window.matchMedia("(max-width: 760px)").matches) {
  $("#filters-panel").open = false;
  $("#alarms-panel").open = false;
}

// The map loads while the first data is fetched; whichever comes second draws.
let fleetMap = null;
createMap(mapNode).then((created) => {
  fleetMap = created;
  if (!fleetMap) return;
  fleetMap.setData("vehicles", collection([]), { cluster: true, clusterRadius: 48, clusterMaxZoom: 12 });
  fleetMap.addLayers(vehicleLayers("vehicles"));
  fleetMap.onFeatureClick(["vehicles-points"], (feature) => select(feature.properties._key, { from: "map" }));
  fleetMap.onFeatureClick(["vehicles-clusters"], async (feature) => {
    const source = fleetMap.map.getSource("vehicles");
    const zoom = await source.getClusterExpansionZoom(feature.properties.cluster_id);
    fleetMap.map.easeTo({ center: feature.geometry.coordinates, zoom });
  });
  drawMap();
});

// --- Data

async function load() {
  const overview = page.polls % OVERVIEW_EVERY === 0;
  const generation = page.generation;
  try {
    const answer = await fetchView(overview ? "/api/views/overview" : "/api/views/live", {
      params: { filters: filtersParam(page.filters), since: page.cursor },
      etag: overview ? null : page.etag,
    });
    if (generation !== page.generation) return; // the filters changed meanwhile: the next refresh asks again
    page.polls += 1;
    page.cursor = answer.cursor;
    page.etag = answer.etag;
    if (answer.data) render(answer.data);
    else unchanged();
    if (overview && answer.data) renderAlarms(answer.data.summary);
    status("");
  } catch (error) {
    status(error.message, "error");
    throw error;
  }
}

// A whole view replaces what the page holds; a delta (`since=`) is merged into it by feature id.
function render(data) {
  const arrived = decorate(data.geojson.features);
  const at = performance.now();
  for (const f of arrived) Object.assign(f.properties, { _age: f.properties.age_s, _at: at });
  if (data.delta) {
    for (const id of data.removed) page.byKey.delete(String(id));
    for (const f of arrived) page.byKey.set(f.properties._key, f);
    page.features = [...page.byKey.values()];
  } else {
    page.features = arrived;
    page.byKey = new Map(page.features.map((f) => [f.properties._key, f]));
  }
  mapNode.dataset.poll = data.delta ? "delta" : "full"; // what the last refresh brought (the browser tests read it)
  page.loaded = true;
  page.moment = { generated_at: data.summary.generated_at, time_zone: data.summary.time_zone, at };
  renderSlo(data.slo_status);
  // A delta carries no counts: they are those of the merged collection.
  renderKpis("vehicles" in data.summary ? data.summary : summarise(page.features, page.moment));
  drawMap();
  refreshLists();
}

// 304: nothing the page shows has changed; only the ages and the time of the data move on.
function unchanged() {
  mapNode.dataset.poll = "unchanged";
  if (!page.moment) return;
  const moment = { ...page.moment, generated_at: later(page.moment.generated_at, performance.now() - page.moment.at) };
  renderKpis(summarise(page.features, moment));
  refreshLists();
}

function refreshLists() {
  // Ages are "as of the answer that brought the vehicle": add the time since.
  const now = performance.now();
  for (const { properties: p } of page.features) {
    if (typeof p._age === "number") p.age_s = Math.round(p._age + (now - p._at) / 1000);
  }
  renderList();
  if (page.selected) renderDetail(page.byKey.get(page.selected));
}

// The KPIs of a collection, as the API's summary counts them (state/dashboards/selectors.py, live_view and
// _freshness_line): for a delta, whose summary says only when it was computed.
function summarise(features, moment) {
  const byState = Object.fromEntries(STATES.map((state) => [state, 0]));
  let suspended = 0;
  let active = 0;
  let behind = 0;
  for (const { properties: p } of features) {
    byState[p.operational_state] = (byState[p.operational_state] || 0) + 1;
    if (p.suspended) suspended += 1;
    if (p.lifecycle === "active") {
      active += 1;
      if (p.freshness !== "fresh") behind += 1;
    }
  }
  let line = `Fleet below freshness SLO: ${behind} of ${active} active vehicle${active !== 1 ? "s" : ""} behind`;
  if (!active) line = "No active vehicles in this view.";
  else if (!behind) line = `All ${active} active vehicles fresh.`;
  return { vehicles: features.length, by_state: byState, suspended, freshness_line: line, ...moment };
}

// An ISO time with its UTC offset ("…T10:00:00+03:00"), `ms` later, in the same offset.
function later(iso, ms) {
  const offset = /([+-])(\d\d):(\d\d)$/.exec(iso || "");
  if (!offset) return iso;
  const minutes = (offset[1] === "-" ? -1 : 1) * (Number(offset[2]) * 60 + Number(offset[3]));
  const local = new Date(Date.parse(iso) + ms + minutes * 60000);
  return `${local.toISOString().slice(0, 19)}${offset[0]}`;
}

function drawMap() {
  if (!fleetMap || !page.loaded) return;
  const mapped = collection(page.features);
  fleetMap.setData("vehicles", mapped);
  mapNode.dataset.features = String(mapped.features.length); // what the map holds (the browser tests count it)
  if (!page.fitted && mapped.features.length) {
    page.fitted = true;
    fleetMap.fitTo(mapped.features.map((f) => f.geometry.coordinates));
  }
  if (page.selected) fleetMap.setFilter("vehicles-selected", ["==", ["get", "_key"], page.selected]);
  markRendered(fleetMap);
}

function renderKpis(summary) {
  const set = (key, value) => {
    const node = document.querySelector(`[data-kpi="${key}"]`);
    if (node) node.textContent = value;
  };
  set("vehicles", fmtNumber(summary.vehicles, 0));
  for (const [state, count] of Object.entries(summary.by_state)) set(state, fmtNumber(count, 0));
  set("suspended", fmtNumber(summary.suspended, 0));
  set("freshness_line", summary.freshness_line);
  set("generated_at", `${fmtTime(summary.generated_at).slice(11)} ${config.zoneName}`);
}

// --- The list: filtered by the API's filters, then narrowed in the browser by the search box.

function matches(feature, needle, plain) {
  if (!needle && !plain) return true;
  const p = feature.properties;
  if (needle && (p.plate || "").includes(needle)) return true;
  if (needle && p.imei.includes(needle)) return true;
  return Boolean(plain && (p.driver || "").toLowerCase().includes(plain));
}

function renderList() {
  const needle = plateFragment(search.value);
  const plain = search.value.trim().toLowerCase();
  const shown = page.features
    .filter((f) => matches(f, needle, plain))
    .sort((a, b) => (a.properties.plate || a.properties.imei).localeCompare(b.properties.plate || b.properties.imei));
  const items = shown.slice(0, LIST_LIMIT).map((f) => {
    const p = f.properties;
    const button = el("button", {
      type: "button", class: "row-button", dataset: { key: p._key },
      "aria-current": p._key === page.selected ? "true" : "false",
      onclick: () => select(p._key, { from: "list" }),
    },
    el("span", { class: "row-title", text: p.plate || `IMEI ${p.imei}` }),
    stateTag(p.operational_state),
    el("span", { class: "row-meta" }, `${p.driver || "no driver"} · ${p.cost_centre || "no cost centre"}`),
    el("span", { class: "row-meta" }, p.suspended ? el("span", { class: "tag tag-suspended", text: "suspended" }) : "",
      ` ${fmtAge(p.age_s)}`));
    return el("li", {}, button);
  });
  list.replaceChildren(...items);
  $("#list-count").textContent = `(${fmtNumber(shown.length, 0)} of ${fmtNumber(page.features.length, 0)})`;
  const more = $("#list-more");
  more.hidden = shown.length <= LIST_LIMIT;
  more.textContent = `The first ${LIST_LIMIT} are listed; type part of a plate to find the others.`;
}

search.addEventListener("input", renderList);

// --- Selection and the detail panel

function select(key, { from } = {}) {
  const feature = page.byKey.get(key);
  if (!feature) return;
  page.selected = key;
  fleetMap?.setFilter("vehicles-selected", ["==", ["get", "_key"], key]);
  for (const row of list.querySelectorAll(".row-button")) {
    row.setAttribute("aria-current", row.dataset.key === key ? "true" : "false");
  }
  renderDetail(feature);
  if (fleetMap && feature.geometry) {
    fleetMap.map.easeTo({ center: feature.geometry.coordinates, zoom: Math.max(fleetMap.map.getZoom(), 14) });
  }
  if (from === "list") detail.focus();
  else detail.scrollIntoView({ block: "nearest" });
  loadAlarms(feature);
}

function closeDetail() {
  const key = page.selected;
  page.selected = null;
  detail.hidden = true;
  fleetMap?.setFilter("vehicles-selected", ["==", ["get", "_key"], "-"]);
  list.querySelector(`[data-key="${CSS.escape(key || "")}"]`)?.focus();
}

$("#detail-close").addEventListener("click", closeDetail);
detail.addEventListener("keydown", (event) => {
  if (event.key === "Escape") closeDetail();
});

function renderDetail(feature) {
  if (!feature) {
    detail.hidden = true;
    return;
  }
  const p = feature.properties;
  detail.hidden = false;
  $("#detail-title").textContent = p.plate || `IMEI ${p.imei}`;
  const facts = [
    ["State", stateTag(p.operational_state)],
    ["Driver", p.driver || "none on duty"],
    ["Last fix", `${fmtTime(p.device_time)} (${fmtAge(p.age_s)} ago)`],
    ["Freshness", p.freshness],
    ["Speed", fmtSpeed(p.speed_kmh)],
    ["Heading", p.heading === null ? "–" : `${Math.round(p.heading)}°`],
    ["Cost centre", p.cost_centre || "–"],
    ["City", p.assigned_city || "–"],
    ["Device", `${p.imei}${p.device_model ? ` (${p.device_model})` : ""}`],
    ["Lifecycle", p.suspended ? "suspended" : "in service"],
  ];
  $("#detail-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", {}, v)]));
  const link = $("#detail-history");
  link.hidden = !p.plate;
  if (p.plate) link.href = `/history/?plates=${encodeURIComponent(p.plate)}`;
}

// The selected vehicle's alarms of the last day, from its history.
async function loadAlarms(feature) {
  const target = $("#detail-alarms");
  const p = feature.properties;
  if (!p.plate) {
    target.replaceChildren(el("li", { class: "muted", text: "A device without a vehicle has no history here." }));
    return;
  }
  page.alarmsFor = p._key;
  target.replaceChildren(el("li", { class: "muted", text: "Loading…" }));
  try {
    const data = await api("/api/views/history", { params: { filters: { vehicle_numbers: [p.plate] }, days: 1 } });
    if (page.alarmsFor !== p._key) return;
    const alarms = data.geojson.features.filter((f) => f.properties.kind === "alarm").reverse().slice(0, 5);
    target.replaceChildren(...(alarms.length ? alarms.map((a) => el("li", {},
      el("span", { class: `state-tag severity-${a.properties.severity}` },
        el("span", { class: "swatch shape-triangle", "aria-hidden": "true" }), a.properties.severity),
      ` ${a.properties.name || a.properties.code} · ${fmtTime(a.properties.at)}`))
      : [el("li", { class: "muted", text: "No alarms in the last 24 h." })]));
  } catch (error) {
    target.replaceChildren(el("li", { class: "error", text: error.message }));
  }
}

// --- The alarms panel: the overview's last-day alarms and today's driving

function renderAlarms(summary) {
  const { alarms_24h: alarms, today } = summary;
  $("#alarms").replaceChildren(
    el("ul", { class: "plain-list", "aria-label": "Alarms in the last 24 hours by severity" },
      ...["critical", "warning", "info"].map((severity) => el("li", { dataset: { severity } },
        el("span", { class: `state-tag severity-${severity}` },
          el("span", { class: "swatch shape-triangle", "aria-hidden": "true" }), severity),
        ` ${fmtNumber(alarms[severity], 0)} open alarm${alarms[severity] === 1 ? "" : "s"}`))),
    el("p", { class: "muted" },
      `Today since ${fmtTime(today.since).slice(11, 16)}: ${fmtNumber(today.trips, 0)} trips, ` +
      `${fmtNumber(today.distance_km)} km.`),
    el("ol", { class: "plain-list", id: "recent-alarms", "aria-label": "The newest alarms of the last 24 hours" },
      ...(summary.recent_alarms || []).map((a) => el("li", { dataset: { severity: a.severity } },
        el("span", { class: `state-tag severity-${a.severity}` },
          el("span", { class: "swatch shape-triangle", "aria-hidden": "true" }), a.severity),
        ` ${a.plate} · ${a.name || a.code || "alarm"} · ${fmtTime(a.occurred_at).slice(11, 16)}` +
        (a.cleared ? " (cleared)" : "")))),
  );
}

// --- Filters → the API's `filters` JSON

function readFilters() {
  const { plates, bad } = platesFromText(form.plates.value);
  const error = $("#f-plates-error");
  error.hidden = !bad.length;
  error.textContent = bad.length ? `Not a number plate: ${bad.join(", ")}` : "";
  if (bad.length) return null;
  const chosen = (name) => [...form.querySelectorAll(`[name="${name}"]`)]
    .flatMap((input) => (input.type === "checkbox" ? (input.checked ? [input.value] : []) : input.value ? [input.value] : []));
  return {
    vehicle_numbers: plates,
    cost_centre: chosen("cost_centre"),
    assigned_city: chosen("assigned_city"),
    operational_state: chosen("operational_state"),
  };
}

function applyFilters() {
  const filters = readFilters();
  if (!filters) return;
  page.filters = filters;
  const active = filtersParam(filters);
  $("#filter-summary").textContent = active ? `${Object.keys(active).length} filter(s) on` : "";
  page.polls = 0; // the alarms panel follows the filters at once
  page.cursor = null; // a cursor is good for the filters it was given for only
  page.etag = null;
  page.generation += 1;
  poller.now();
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  applyFilters();
});
form.addEventListener("change", (event) => {
  if (event.target.name !== "plates") applyFilters();
});
form.addEventListener("reset", () => setTimeout(applyFilters));

const poller = poll(load, config.livePollS);
