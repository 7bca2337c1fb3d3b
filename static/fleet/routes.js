// Routes: origin, destination and departure → POST /api/routes → {route_geojson, eta_sec, distance_m,
// observed_basis}. Until the gateway answers route requests the page says routing is not configured yet: the
// gateway tells the page (config.routes) and a 404 answer is read the same way, never as an error.
import {
  $, OKABE_ITO, ApiError, api, collection, config, createMap, el, fmtDistance, fmtDuration, markRendered,
  startPage, status, zonedIso,
} from "./fleet-core.js";

startPage();

const form = $("#route-form");
const off = $("#routes-off");
let fleetMap = null;
let clicks = 0;

function notConfigured() {
  off.hidden = false;
  for (const control of form.elements) control.disabled = true;
  document.body.dataset.routing = "not-configured";
}

if (!config.routes) notConfigured();
else document.body.dataset.routing = "configured";

createMap($("#map")).then((created) => {
  fleetMap = created;
  if (!fleetMap) return;
  fleetMap.setData("route", collection([]));
  fleetMap.setData("route-ends", collection([]));
  fleetMap.addLayers([
    {
      id: "route-line", type: "line", source: "route", layout: { "line-join": "round", "line-cap": "round" },
      paint: { "line-color": ["get", "_colour"], "line-width": 5, "line-opacity": 0.85 },
    },
    {
      id: "route-ends", type: "symbol", source: "route-ends",
      layout: { "icon-image": ["get", "_icon"], "icon-allow-overlap": true, "icon-ignore-placement": true },
    },
  ]);
  fleetMap.map.on("click", (event) => {
    if (!config.routes || form.elements[0].disabled) return;
    const end = clicks++ % 2 === 0 ? "from" : "to";
    form[`${end}_lat`].value = event.lngLat.lat.toFixed(6);
    form[`${end}_lng`].value = event.lngLat.lng.toFixed(6);
    drawEnds();
  });
});

function point(end) {
  const lat = Number(form[`${end}_lat`].value);
  const lng = Number(form[`${end}_lng`].value);
  return form[`${end}_lat`].value && form[`${end}_lng`].value ? { lat, lng } : null;
}

function drawEnds() {
  if (!fleetMap) return;
  const ends = [["from", OKABE_ITO.bluishGreen], ["to", OKABE_ITO.vermillion]].flatMap(([end, colour]) => {
    const p = point(end);
    return p ? [{ type: "Feature", geometry: { type: "Point", coordinates: [p.lng, p.lat] },
      properties: { _icon: `icon:dot:${colour}` } }] : [];
  });
  fleetMap.setData("route-ends", { type: "FeatureCollection", features: ends });
}

form.addEventListener("input", drawEnds);
form.addEventListener("reset", () => {
  clicks = 0;
  setTimeout(drawEnds);
  $("#route-result").hidden = true;
  fleetMap?.setData("route", collection([]));
});

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!config.routes || !form.reportValidity()) return;
  const body = { origin: point("from"), destination: point("to"), depart_at: zonedIso(form.depart.value) };
  status("Asking for a route…");
  try {
    renderRoute(await api(config.routes, { method: "POST", body }));
    status("");
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      status("");
      notConfigured();
    } else status(error.message, "error");
  }
});

// Any GeoJSON the answer carries (a geometry, a Feature or a FeatureCollection) → a FeatureCollection.
function asCollection(geojson) {
  if (!geojson) return collection([]);
  if (geojson.type === "FeatureCollection") return geojson;
  if (geojson.type === "Feature") return collection([geojson]);
  return collection([{ type: "Feature", geometry: geojson, properties: {} }]);
}

// Where each stretch's speed came from (geo's `observed_basis` keys), with the colour its stretches are drawn in.
const BASIS = {
  observed: ["observed speeds", OKABE_ITO.bluishGreen],
  maxspeed: ["speed limits", OKABE_ITO.blue],
  class_default: ["road-class defaults", OKABE_ITO.orange],
};

function basisText(basis) {
  if (basis === null || basis === undefined) return "–";
  if (typeof basis !== "object") return String(basis);
  const order = Object.keys(BASIS);
  const rank = (k) => (order.includes(k) ? order.indexOf(k) : order.length);
  const entries = Object.entries(basis).sort(([a], [b]) => rank(a) - rank(b));
  const shares = entries.every(([, v]) => typeof v === "number" && v >= 0 && v <= 1);
  return entries
    .filter(([, v]) => !shares || v > 0)
    .map(([k, v]) => `${BASIS[k]?.[0] || k.replaceAll("_", " ")} ${shares ? `${Math.round(v * 100)} %` : v}`)
    .join(", ") || "–";
}

export function renderRoute(answer) {
  const route = asCollection(answer.route_geojson);
  for (const feature of route.features) {
    feature.properties = feature.properties || {};
    feature.properties._colour = BASIS[feature.properties.basis]?.[1] || OKABE_ITO.blue;
  }
  const departs = Date.parse(zonedIso(form.depart.value) || "") || Date.now();
  const arrival = new Intl.DateTimeFormat("en-GB", { timeZone: config.timeZone, dateStyle: "medium", timeStyle: "short" })
    .format(new Date(departs + (answer.eta_sec || 0) * 1000));
  const facts = [
    ["Travel time", fmtDuration(answer.eta_sec)],
    ["Arrival", `${arrival} ${config.zoneName}`],
    ["Distance", fmtDistance(answer.distance_m)],
    ["Speeds from", basisText(answer.observed_basis)],
  ];
  $("#route-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
  $("#route-result").hidden = false;
  document.body.dataset.route = "shown";
  if (fleetMap) {
    fleetMap.setData("route", route);
    const coordinates = route.features.flatMap((f) => {
      const g = f.geometry;
      return g.type === "LineString" ? g.coordinates : g.type === "MultiLineString" ? g.coordinates.flat() : [g.coordinates];
    });
    fleetMap.fitTo(coordinates, 15);
    markRendered(fleetMap);
  }
}

window.fleet = Object.assign(window.fleet || {}, { renderRoute });
