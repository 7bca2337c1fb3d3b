// History: trips as lines, stops and alarms as markers, for chosen vehicles over a range of at most 31 days; a
// playback of one vehicle's trips (1–20×, pause, seek, follow) with a speed chart that follows the cursor.
//
// The history payload gives each trip its simplified line, its start and end times, distance, duration and top
// speed, but no time or speed per fix. Playback therefore moves along each line at the trip's average speed, and
// the chart shows each trip's average (bar) and top speed (tick); the time between trips is skipped.
import {
  $, OKABE_ITO, SERIES, api, bearing, collection, config, createMap, decorate, el, fmtDuration, fmtNumber,
  fmtSpeed, fmtTime, markRendered, metresBetween, platesFromText, renderSlo, startPage, status, zonedIso,
} from "./fleet-core.js";

startPage();

const form = $("#history-form");
const mapNode = $("#map");
let fleetMap = null;
let payload = null;

if (window.matchMedia("(max-width: 760px)").matches) $("#trips-panel").open = false;

const mapReady = createMap(mapNode).then((created) => {
  fleetMap = created;
  if (!fleetMap) return null;
  fleetMap.setData("history", collection([]));
  fleetMap.setData("playback", collection([]));
  fleetMap.addLayers([
    {
      id: "history-lines", type: "line", source: "history", filter: ["==", ["geometry-type"], "LineString"],
      layout: { "line-join": "round", "line-cap": "round" },
      paint: { "line-color": ["get", "_colour"], "line-width": ["get", "_width"], "line-opacity": 0.85 },
    },
    {
      id: "history-points", type: "symbol", source: "history", filter: ["==", ["geometry-type"], "Point"],
      layout: { "icon-image": ["get", "_icon"], "icon-allow-overlap": true, "icon-ignore-placement": true,
        "symbol-sort-key": ["match", ["get", "kind"], "alarm", 3, "stop", 2, 1] },
    },
    {
      id: "playback-marker", type: "symbol", source: "playback",
      layout: { "icon-image": ["get", "_icon"], "icon-rotate": ["get", "_rotate"], "icon-rotation-alignment": "map",
        "icon-allow-overlap": true, "icon-ignore-placement": true, "icon-size": 1.3 },
    },
  ]);
  fleetMap.onFeatureClick(["history-points"], (feature) => describe(feature.properties));
  return fleetMap;
});

// --- Query

form.addEventListener("submit", (event) => {
  event.preventDefault();
  load();
});

async function load() {
  const error = $("#form-error");
  const { plates, bad } = platesFromText(form.plates.value);
  const since = zonedIso(form.since.value);
  const until = zonedIso(form.until.value);
  let problem = "";
  if (bad.length) problem = `Not a number plate: ${bad.join(", ")}`;
  else if (!plates.length) problem = "Name at least one vehicle by its plate.";
  else if (!since || !until) problem = "Give a start and an end.";
  else if (Date.parse(until) <= Date.parse(since)) problem = "The end must come after the start.";
  else if (Date.parse(until) - Date.parse(since) > config.maxHistoryDays * 86400000) {
    problem = `The range is longer than ${config.maxHistoryDays} days.`;
  }
  error.textContent = problem;
  error.hidden = !problem;
  if (problem) return;
  status("Loading…");
  try {
    payload = await api("/api/views/history", { params: { filters: { vehicle_numbers: plates }, since, until } });
  } catch (failure) {
    status(failure.message, "error");
    return;
  }
  status(payload.geojson.features.length ? "" : "Nothing recorded for these vehicles in this range.", "info");
  renderSlo(payload.slo_status);
  renderSummary(payload.summary);
  const devices = [...new Set(payload.geojson.features.map((f) => f.properties.device_id))];
  const colours = new Map(devices.map((id, i) => [id, SERIES[i % SERIES.length]]));
  for (const feature of payload.geojson.features) {
    if (feature.properties.kind === "trip" && devices.length > 1) feature.properties._colour = colours.get(feature.properties.device_id);
  }
  decorate(payload.geojson.features);
  renderTrips(payload.geojson.features);
  await mapReady;
  if (fleetMap) {
    const mapped = collection(payload.geojson.features);
    fleetMap.setData("history", mapped);
    fleetMap.fitTo(mapped.features.flatMap((f) => (f.geometry.type === "Point" ? [f.geometry.coordinates] : f.geometry.coordinates)));
    markRendered(fleetMap);
  }
  setUpPlayback(payload.geojson.features, colours);
}

function renderSummary(summary) {
  const set = (key, value) => { document.querySelector(`[data-kpi="${key}"]`).textContent = value; };
  set("distance_km", fmtNumber(summary.distance_km));
  set("driving_s", fmtDuration(summary.driving_s));
  set("idle_s", fmtDuration(summary.idle_s));
  set("trips", fmtNumber(summary.trips, 0));
  set("stops", fmtNumber(summary.stops, 0));
  set("alarms", fmtNumber(summary.alarms, 0));
  set("max_speed_kmh", summary.max_speed_kmh === null ? "–" : fmtNumber(summary.max_speed_kmh, 0));
}

function renderTrips(features) {
  const trips = features.filter((f) => f.properties.kind === "trip");
  $("#trips-count").textContent = `(${trips.length})`;
  $("#trip-list").replaceChildren(...trips.map((trip) => {
    const p = trip.properties;
    return el("li", {}, el("button", {
      type: "button", class: "row-button", onclick: () => { playback?.seekToTrip(trip); describe(p); },
    },
    el("span", { class: "row-title", text: `${p.plate || p.imei} · ${fmtTime(p.started_at).slice(5, 16)}` }),
    el("span", { class: "row-meta", text: `${fmtNumber(p.distance_km)} km` }),
    el("span", { class: "row-meta", text: `${fmtDuration(p.duration_s)} to ${fmtTime(p.ended_at).slice(11, 16)}` }),
    el("span", { class: "row-meta", text: `max ${fmtSpeed(p.max_speed_kmh)}` })));
  }));
}

// What a clicked marker or trip is, in words.
function describe(p) {
  const box = $("#info");
  const who = p.plate || p.imei || "";
  let text;
  if (p.kind === "trip") text = `Trip ${fmtTime(p.started_at)} → ${fmtTime(p.ended_at)}: ${fmtNumber(p.distance_km)} km in ${fmtDuration(p.duration_s)}, top ${fmtSpeed(p.max_speed_kmh)}.`;
  else if (p.kind === "stop") text = `${p.mode === "idling" ? "Idling" : "Parked"} ${fmtTime(p.started_at)} → ${fmtTime(p.ended_at)} (${fmtDuration(p.duration_s)}).`;
  else if (p.kind === "alarm") text = `Alarm (${p.severity}): ${p.name || p.code} at ${fmtTime(p.at)}.`;
  else text = `${p.kind === "trip_start" ? "Trip start" : "Trip end"} at ${fmtTime(p.at)}.`;
  box.replaceChildren(el("strong", { text: who }), ` ${text}`);
  box.hidden = false;
}

// --- Playback

class Playback {
  constructor(trips) {
    this.segments = [];
    let offset = 0;
    for (const trip of trips) {
      const p = trip.properties;
      const line = trip.geometry?.coordinates || [];
      if (line.length < 2) continue;
      const started = Date.parse(p.started_at);
      const ended = p.ended_at ? Date.parse(p.ended_at) : started + (p.duration_s || 0) * 1000;
      const duration = Math.max(1, (ended - started) / 1000);
      const cumulative = [0];
      for (let i = 1; i < line.length; i++) cumulative.push(cumulative[i - 1] + metresBetween(line[i - 1], line[i]));
      const metres = cumulative[cumulative.length - 1];
      this.segments.push({
        trip, line, cumulative, metres, started, duration, offset,
        average: p.distance_km ? (p.distance_km * 3600) / duration : (metres / duration) * 3.6,
        max: p.max_speed_kmh,
      });
      offset += duration;
    }
    this.total = offset;
    this.t = 0;
    this.rate = 10;
    this.playing = false;
    this.last = null;
    this.listeners = [];
  }

  segmentAt(t) {
    return this.segments.findLast((s) => s.offset <= t) || this.segments[0];
  }

  // Where the vehicle is at playback time t (seconds of driving from the first trip's start).
  at(t) {
    const s = this.segmentAt(t);
    const into = Math.min(Math.max(t - s.offset, 0), s.duration);
    const target = (into / s.duration) * s.metres;
    let i = 1;
    while (i < s.line.length - 1 && s.cumulative[i] < target) i++;
    const a = s.line[i - 1];
    const b = s.line[i];
    const span = s.cumulative[i] - s.cumulative[i - 1] || 1;
    const f = Math.min(Math.max((target - s.cumulative[i - 1]) / span, 0), 1);
    return {
      coordinates: [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f],
      heading: bearing(a, b),
      speed: s.average,
      clock: s.started + into * 1000,
      segment: s,
    };
  }

  onChange(listener) {
    this.listeners.push(listener);
  }

  emit() {
    const position = this.at(this.t);
    for (const listener of this.listeners) listener(position, this);
  }

  seek(t) {
    this.t = Math.min(Math.max(t, 0), this.total);
    this.emit();
  }

  seekToTrip(trip) {
    const segment = this.segments.find((s) => s.trip === trip);
    if (segment) this.seek(segment.offset);
  }

  play() {
    if (this.t >= this.total) this.t = 0;
    this.playing = true;
    this.last = null;
    requestAnimationFrame((now) => this.frame(now));
    this.emit();
  }

  pause() {
    this.playing = false;
    this.emit();
  }

  frame(now) {
    if (!this.playing) return;
    if (this.last !== null) this.t = Math.min(this.total, this.t + ((now - this.last) / 1000) * this.rate);
    this.last = now;
    if (this.t >= this.total) this.playing = false;
    this.emit();
    if (this.playing) requestAnimationFrame((next) => this.frame(next));
  }
}

let playback = null;
const playButton = $("#pb-play");
const seek = $("#pb-seek");
const readout = $("#pb-readout");
const chart = $("#pb-chart");

function setUpPlayback(features, colours) {
  playback?.pause();
  playback = null;
  const trips = features.filter((f) => f.properties.kind === "trip" && f.geometry);
  const devices = [...new Map(trips.map((t) => [t.properties.device_id, t.properties])).values()];
  $("#playback").hidden = !devices.length;
  if (!devices.length) return;
  const select = $("#pb-vehicle");
  select.replaceChildren(...devices.map((d) => el("option", { value: d.device_id, text: d.plate || d.imei })));
  const start = () => {
    playback?.pause();
    const deviceId = Number(select.value);
    playback = new Playback(trips.filter((t) => t.properties.device_id === deviceId));
    playback.rate = Number($("#pb-rate").value);
    playback.colour = colours.get(deviceId) || SERIES[0];
    playback.onChange(showPosition);
    drawChart.base = null;
    playback.seek(0);
  };
  select.onchange = start;
  start();
}

function showPosition(position, pb) {
  const { coordinates, heading, speed, clock } = position;
  const time = new Intl.DateTimeFormat("en-GB", {
    timeZone: config.timeZone, dateStyle: "medium", timeStyle: "medium",
  }).format(new Date(clock));
  readout.textContent = `${time} ${config.zoneName} · ${fmtSpeed(speed)} (trip average)`;
  readout.dataset.lng = coordinates[0].toFixed(6);
  readout.dataset.lat = coordinates[1].toFixed(6);
  readout.dataset.t = pb.t.toFixed(2);
  seek.value = String(Math.round((pb.t / pb.total) * 1000) || 0);
  seek.setAttribute("aria-valuetext", time);
  playButton.textContent = pb.playing ? "Pause" : "Play";
  playButton.setAttribute("aria-pressed", String(pb.playing));
  if (fleetMap) {
    const marker = { type: "Feature", geometry: { type: "Point", coordinates }, properties: {
      _icon: `icon:arrow:${OKABE_ITO.black}`, _rotate: heading } };
    fleetMap.setData("playback", { type: "FeatureCollection", features: [marker] });
    if ($("#pb-follow").checked && pb.playing) fleetMap.map.jumpTo({ center: coordinates });
  }
  drawChart(pb);
}

playButton.addEventListener("click", () => {
  if (!playback) return;
  if (playback.playing) playback.pause();
  else playback.play();
});
$("#pb-rate").addEventListener("change", (event) => {
  if (playback) playback.rate = Number(event.target.value);
});
seek.addEventListener("input", () => playback?.seek((Number(seek.value) / 1000) * playback.total));
$("#pb-follow").addEventListener("change", (event) => {
  if (event.target.checked && playback) fleetMap?.map.jumpTo({ center: playback.at(playback.t).coordinates });
});

// --- The speed chart: drawn by hand on a small canvas; the static part once, the cursor every frame.

function drawChart(pb) {
  const ratio = window.devicePixelRatio || 1;
  const width = chart.clientWidth || 300;
  const height = chart.clientHeight || 120;
  if (chart.width !== Math.round(width * ratio)) {
    chart.width = Math.round(width * ratio);
    chart.height = Math.round(height * ratio);
    drawChart.base = null;
  }
  const pad = { left: 34, right: 8, top: 8, bottom: 18 };
  const top = Math.max(20, Math.ceil(Math.max(...pb.segments.map((s) => Math.max(s.max || 0, s.average))) / 20) * 20);
  const x = (t) => pad.left + (t / (pb.total || 1)) * (width - pad.left - pad.right);
  const y = (v) => height - pad.bottom - (v / top) * (height - pad.top - pad.bottom);
  const ctx = chart.getContext("2d");
  if (!drawChart.base) {
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = "10px system-ui, sans-serif";
    ctx.fillStyle = "#55606b";
    ctx.strokeStyle = "#d5dbe1";
    ctx.lineWidth = 1;
    for (const v of [0, top / 2, top]) {
      ctx.beginPath();
      ctx.moveTo(pad.left, y(v));
      ctx.lineTo(width - pad.right, y(v));
      ctx.stroke();
      ctx.textAlign = "right";
      ctx.textBaseline = "middle";
      ctx.fillText(`${v}`, pad.left - 4, y(v));
    }
    ctx.save();
    ctx.translate(9, height / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "center";
    ctx.fillText("km/h", 0, 0);
    ctx.restore();
    let lastLabel = -Infinity;
    for (const s of pb.segments) {
      const x0 = x(s.offset);
      const x1 = x(s.offset + s.duration);
      ctx.fillStyle = pb.colour;
      ctx.globalAlpha = 0.35;
      ctx.fillRect(x0, y(s.average), Math.max(1, x1 - x0), y(0) - y(s.average));
      ctx.globalAlpha = 1;
      ctx.strokeStyle = pb.colour;
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.moveTo(x0, y(s.average));
      ctx.lineTo(x1, y(s.average));
      ctx.stroke();
      if (s.max) {
        ctx.setLineDash([3, 2]);
        ctx.beginPath();
        ctx.moveTo(x0, y(s.max));
        ctx.lineTo(x1, y(s.max));
        ctx.stroke();
        ctx.setLineDash([]);
      }
      ctx.strokeStyle = "#ffffff";
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(x0, pad.top);
      ctx.lineTo(x0, y(0));
      ctx.stroke();
      if (x0 - lastLabel > 40) {
        ctx.fillStyle = "#55606b";
        ctx.textAlign = "left";
        ctx.textBaseline = "top";
        ctx.fillText(fmtTime(s.trip.properties.started_at).slice(11, 16), x0 + 2, y(0) + 3);
        lastLabel = x0;
      }
    }
    drawChart.base = ctx.getImageData(0, 0, chart.width, chart.height);
  } else {
    ctx.putImageData(drawChart.base, 0, 0);
  }
  const position = pb.at(pb.t);
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.strokeStyle = "#000000";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  ctx.moveTo(x(pb.t), pad.top);
  ctx.lineTo(x(pb.t), y(0));
  ctx.stroke();
  ctx.fillStyle = "#000000";
  ctx.beginPath();
  ctx.arc(x(pb.t), y(position.speed), 3.5, 0, Math.PI * 2);
  ctx.fill();
  drawChart.x = x;
  drawChart.pad = pad;
  drawChart.width = width;
}

// Clicking or dragging on the chart seeks.
function chartSeek(event) {
  if (!playback || !drawChart.pad) return;
  const rect = chart.getBoundingClientRect();
  const { left, right } = drawChart.pad;
  const f = (event.clientX - rect.left - left) / (rect.width - left - right);
  playback.seek(Math.min(Math.max(f, 0), 1) * playback.total);
}
chart.addEventListener("pointerdown", (event) => {
  chart.setPointerCapture(event.pointerId);
  chartSeek(event);
});
chart.addEventListener("pointermove", (event) => {
  if (event.buttons) chartSeek(event);
});
window.addEventListener("resize", () => {
  drawChart.base = null;
  if (playback) drawChart(playback);
});

if (form.plates.value.trim()) load();
window.fleet = Object.assign(window.fleet || {}, { playback: () => playback });
