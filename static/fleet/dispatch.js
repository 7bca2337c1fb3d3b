// Dispatch: the vehicles nearest a place (a click on the map, or typed), with distance and state, available first.
import {
  $, GREY, api, collection, createMap, decorate, el, fmtAge, fmtDistance, markRendered, renderSlo, startPage,
  stateTag, status,
} from "./fleet-core.js";

startPage();

const form = $("#dispatch-form");
const mapNode = $("#map");
let fleetMap = null;
let vehicles = [];

createMap(mapNode).then((created) => {
  fleetMap = created;
  if (!fleetMap) return;
  fleetMap.setData("dispatch", collection([]));
  fleetMap.setData("dispatch-lines", collection([]));
  fleetMap.addLayers([
    {
      id: "dispatch-lines", type: "line", source: "dispatch-lines",
      paint: { "line-color": ["get", "_colour"], "line-width": 2, "line-dasharray": [2, 2], "line-opacity": 0.8 },
    },
    {
      id: "dispatch-points", type: "symbol", source: "dispatch",
      layout: { "icon-image": ["get", "_icon"], "icon-allow-overlap": true, "icon-ignore-placement": true,
        "symbol-sort-key": ["get", "_order"] },
    },
  ]);
  fleetMap.map.on("click", (event) => {
    const hit = fleetMap.map.queryRenderedFeatures(event.point, { layers: ["dispatch-points"] })[0];
    if (hit && hit.properties.kind !== "origin") {
      focusRow(hit.properties._key);
      return;
    }
    form.lat.value = event.lngLat.lat.toFixed(6);
    form.lng.value = event.lngLat.lng.toFixed(6);
    find();
  });
});

form.addEventListener("submit", (event) => {
  event.preventDefault();
  find();
});

async function find() {
  if (!form.reportValidity()) return;
  const lat = Number(form.lat.value);
  const lng = Number(form.lng.value);
  status("Looking for vehicles…");
  let data;
  try {
    data = await api("/api/views/dispatch", { params: { lat, lng, limit: form.limit.value } });
  } catch (error) {
    status(error.message, "error");
    return;
  }
  status("");
  renderSlo(data.slo_status);
  const features = decorate(data.geojson.features);
  const origin = features.find((f) => f.properties.kind === "origin");
  vehicles = features.filter((f) => f.properties.kind !== "origin");
  vehicles.forEach((f, i) => {
    const p = f.properties;
    p._order = i + 1;
    p._icon = p.available ? `rank:${i + 1}:${p._colour}` : `icon:ring:${GREY}`;
  });
  if (origin) {
    origin.properties._order = 0;
    origin.properties._icon = "icon:cross:#000000";
  }
  renderList(data.summary);
  if (fleetMap) {
    fleetMap.setData("dispatch", collection(features));
    fleetMap.setData("dispatch-lines", {
      type: "FeatureCollection",
      features: vehicles.filter((f) => f.geometry).map((f) => ({
        type: "Feature",
        geometry: { type: "LineString", coordinates: [[lng, lat], f.geometry.coordinates] },
        properties: { _colour: f.properties.available ? f.properties._colour : GREY },
      })),
    });
    // The place and the nearest five: whom the dispatcher will send (the rest are listed).
    const nearest = vehicles.filter((f) => f.geometry).slice(0, 5).map((f) => f.geometry.coordinates);
    fleetMap.fitTo([[lng, lat], ...nearest], 15);
    markRendered(fleetMap);
  }
}

function renderList(summary) {
  $("#nearest-count").textContent = `(${vehicles.length})`;
  $("#nearest-summary").textContent = summary.nearest_available_m === null
    ? "No available vehicle near this place."
    : `${summary.available} available; the nearest is ${fmtDistance(summary.nearest_available_m)} away (straight line).`;
  $("#nearest-list").replaceChildren(...vehicles.map((f, i) => {
    const p = f.properties;
    return el("li", {}, el("button", {
      type: "button", class: "row-button", dataset: { key: p._key },
      onclick: () => {
        if (fleetMap && f.geometry) fleetMap.map.easeTo({ center: f.geometry.coordinates, zoom: Math.max(fleetMap.map.getZoom(), 14) });
      },
    },
    el("span", { class: "row-title", text: `${i + 1}. ${p.plate || `IMEI ${p.imei}`}` }),
    el("span", { class: "row-meta", text: fmtDistance(p.distance_m) }),
    el("span", { class: "row-meta" }, stateTag(p.operational_state), ` · ${p.driver || "no driver"}`),
    el("span", { class: `tag ${p.available ? "tag-available" : "tag-unavailable"}`,
      text: p.available ? "available" : p.suspended ? "suspended" : "not available" }),
    el("span", { class: "row-meta", text: `fix ${fmtAge(p.age_s)} ago` })));
  }));
}

function focusRow(key) {
  $(`#nearest-list [data-key="${CSS.escape(key)}"]`)?.focus();
}
