// The host's dashboard: reads the admin API once a second with the token the user gives
// (kept in this tab's sessionStorage) and draws each component's request rate, latency
// and memory over the last 60 samples. Every value from the host is set as text, never
// as markup: app names are checked, but failure reasons carry guest output.
"use strict";

const SAMPLES = 60;
const EVERY_MS = 1000;
const SERIES = [
  { key: "rate", label: "requests/s", format: (v) => v.toFixed(1) },
  { key: "latency", label: "latency ms", format: (v) => v.toFixed(2) },
  { key: "memory", label: "peak memory KiB", format: (v) => Math.round(v).toString() },
];

let token = sessionStorage.getItem("tessera-admin-token");
let previous = null; // the last sample: { at, counters }
const history = new Map(); // "app/component" -> { rate: [], latency: [], memory: [] }
let timer = null;

class Unauthorized extends Error {}

async function get(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${token}` }, cache: "no-store" });
  if (response.status === 401) throw new Unauthorized();
  if (!response.ok) throw new Error(`${path} answered ${response.status}`);
  return path === "/metrics" ? response.text() : response.json();
}

// Prometheus' text format: `name{label="value",...} number`.
function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels = {};
    for (const l of (match[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    }
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

// Running totals per component, and slot figures per app.
function totals(samples) {
  const components = new Map();
  const apps = new Map();
  const of = (labels) => {
    const key = `${labels.app}/${labels.component}`;
    if (!components.has(key)) components.set(key, { requests: 0, failures: 0, durationSum: 0, durationCount: 0, memorySum: 0, memoryCount: 0 });
    return components.get(key);
  };
  const app = (name) => {
    if (!apps.has(name)) apps.set(name, { inUse: 0, queued: 0 });
    return apps.get(name);
  };
  for (const { name, labels, value } of samples) {
    switch (name) {
      case "tessera_invocations_total": {
        const c = of(labels);
        c.requests += value;
        if (/^5|^failed$|^busy$/.test(labels.outcome)) c.failures += value;
        break;
      }
      case "tessera_invocation_duration_seconds_sum": of(labels).durationSum += value; break;
      case "tessera_invocation_duration_seconds_count": of(labels).durationCount += value; break;
      case "tessera_instance_peak_memory_bytes_sum": of(labels).memorySum += value; break;
      case "tessera_instance_peak_memory_bytes_count": of(labels).memoryCount += value; break;
      case "tessera_instance_slots_in_use": app(labels.app).inUse = value; break;
      case "tessera_queued_invocations": app(labels.app).queued = value; break;
    }
  }
  return { components, apps };
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function showApps(apps, slots) {
  const body = document.querySelector("#apps tbody");
  body.replaceChildren();
  for (const app of apps) {
    const row = body.insertRow();
    row.dataset.app = app.name;
    cell(row, app.name, "name");
    cell(row, app.source, "source");
    cell(row, String(app.version));
    cell(row, app.hosts.length ? app.hosts.join(", ") : "any");
    cell(row, app.path_prefix);
    cell(row, app.routes.join("\n"), "routes");
    const s = slots.get(app.name) || { inUse: 0, queued: 0 };
    cell(row, `${s.inUse} of ${app.instances}`);
    cell(row, `${s.queued} of ${app.queued}`);
  }
}

function chart() {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("viewBox", `0 0 ${SAMPLES - 1} 100`);
  svg.setAttribute("preserveAspectRatio", "none");
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("vector-effect", "non-scaling-stroke");
  svg.append(line);
  return svg;
}

function card(key) {
  let element = document.querySelector(`.component[data-key="${CSS.escape(key)}"]`);
  if (element) return element;
  element = document.createElement("div");
  element.className = "component";
  element.dataset.key = key;
  const title = document.createElement("h3");
  title.textContent = key;
  element.append(title);
  for (const series of SERIES) {
    const row = document.createElement("div");
    row.className = "series";
    row.dataset.series = series.key;
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = `– ${series.label}`;
    row.append(value, chart());
    element.append(row);
  }
  const failures = document.createElement("p");
  failures.className = "hint failures";
  element.append(failures);
  document.getElementById("components").append(element);
  return element;
}

function draw(key, points, failures) {
  const element = card(key);
  for (const series of SERIES) {
    const values = points[series.key];
    const row = element.querySelector(`[data-series="${series.key}"]`);
    const latest = values.length ? values[values.length - 1] : null;
    row.querySelector(".value").textContent = `${latest === null ? "–" : series.format(latest)} ${series.label}`;
    const max = Math.max(1e-9, ...values.filter((v) => v !== null));
    const offset = SAMPLES - values.length;
    const coordinates = values.map((v, i) => `${offset + i},${(100 - ((v ?? 0) / max) * 95).toFixed(2)}`);
    const svg = row.querySelector("svg");
    svg.querySelector("polyline").setAttribute("points", coordinates.join(" "));
    svg.dataset.latest = latest === null ? "" : String(latest);
    svg.dataset.max = String(Math.max(0, ...values.filter((v) => v !== null)));
  }
  element.querySelector(".failures").textContent = `${failures} failed in all`;
}

function push(list, value) {
  list.push(value);
  if (list.length > SAMPLES) list.shift();
}

function showComponents(apps, counters, at) {
  const keys = new Set();
  for (const app of apps) for (const c of app.components || []) keys.add(`${app.name}/${c}`);
  for (const key of counters.keys()) if (!key.endsWith("/-")) keys.add(key);
  for (const element of document.querySelectorAll(".component")) {
    if (!keys.has(element.dataset.key)) {
      element.remove();
      history.delete(element.dataset.key);
    }
  }
  for (const key of [...keys].sort()) {
    const now = counters.get(key) || { requests: 0, failures: 0, durationSum: 0, durationCount: 0, memorySum: 0, memoryCount: 0 };
    if (!history.has(key)) history.set(key, { rate: [], latency: [], memory: [] });
    const points = history.get(key);
    const before = previous && previous.counters.get(key);
    if (previous) {
      const seconds = (at - previous.at) / 1000;
      const base = before || { requests: 0, durationSum: 0, durationCount: 0, memorySum: 0, memoryCount: 0 };
      const calls = now.durationCount - base.durationCount;
      const measured = now.memoryCount - base.memoryCount;
      push(points.rate, Math.max(0, now.requests - base.requests) / seconds);
      push(points.latency, calls > 0 ? ((now.durationSum - base.durationSum) / calls) * 1000 : null);
      push(points.memory, measured > 0 ? (now.memorySum - base.memorySum) / measured / 1024 : null);
    }
    draw(key, points, now.failures);
  }
}

let shownFailures = "";

function showFailures(failures) {
  // Redrawn only when the list changes, so an opened backtrace stays open.
  const key = JSON.stringify(failures.map((f) => [f.at, f.app, f.component]));
  if (key === shownFailures) return;
  shownFailures = key;
  const body = document.querySelector("#failures tbody");
  body.replaceChildren();
  for (const f of failures) {
    const row = body.insertRow();
    cell(row, new Date(f.at * 1000).toLocaleTimeString());
    cell(row, f.app);
    cell(row, f.component);
    // The first line says what happened; the rest (a backtrace) opens on a click.
    const [first, ...rest] = f.reason.split("\n");
    const reason = cell(row, rest.length ? "" : first, "reason");
    if (rest.length) {
      const details = document.createElement("details");
      const summary = document.createElement("summary");
      summary.textContent = first;
      const more = document.createElement("pre");
      more.textContent = rest.join("\n");
      details.append(summary, more);
      reason.append(details);
    }
  }
  document.getElementById("no-failures").hidden = failures.length > 0;
}

function status(text, isError) {
  const element = document.getElementById("status");
  element.textContent = text;
  element.classList.toggle("error", Boolean(isError));
}

async function refresh() {
  try {
    const [apps, metrics, failures] = await Promise.all([get("/v1/apps"), get("/metrics"), get("/v1/failures")]);
    const at = Date.now();
    const { components, apps: slots } = totals(parseMetrics(metrics));
    document.getElementById("sign-in").hidden = true;
    document.getElementById("board").hidden = false;
    showApps(apps, slots);
    showComponents(apps, components, at);
    showFailures(failures);
    previous = { at, counters: components };
    status(`${apps.length} app${apps.length === 1 ? "" : "s"}, updated ${new Date(at).toLocaleTimeString()}`);
  } catch (error) {
    if (error instanceof Unauthorized) {
      signOut("the token was refused: check it and try again");
    } else {
      status(`cannot reach the host: ${error.message}`, true);
    }
  }
}

function signOut(message) {
  clearInterval(timer);
  timer = null;
  token = null;
  sessionStorage.removeItem("tessera-admin-token");
  document.getElementById("board").hidden = true;
  document.getElementById("sign-in").hidden = false;
  status(message, true);
}

function start() {
  previous = null;
  shownFailures = "";
  history.clear();
  document.getElementById("components").replaceChildren();
  refresh();
  timer = setInterval(refresh, EVERY_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("sign-in").addEventListener("submit", (event) => {
    event.preventDefault();
    token = document.getElementById("token").value.trim();
    sessionStorage.setItem("tessera-admin-token", token);
    start();
  });
  if (token) start();
});
