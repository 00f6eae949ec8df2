// Shoal PD dashboard: reads PD's own JSON API and redraws every few seconds.
// Data is put into the page with textContent only, never as HTML.
"use strict";

const API = "/pd/api/v1";
const REFRESH_MS = 5000;
// Rows fetched and rendered at once; PD filters and pages, so a cluster with hundreds of
// thousands of regions costs one page per refresh.
const MAX_REGION_ROWS = 2000;
// Quiet time after the last keystroke in the region filter before asking PD.
const FILTER_DELAY_MS = 250;

const state = {
  flow: "write",
  regionPage: null,
  heatmap: null,
};

function $(id) {
  return document.getElementById(id);
}

async function getJson(path) {
  const resp = await fetch(API + path, { cache: "no-store" });
  if (!resp.ok) {
    let why = resp.status + " " + resp.statusText;
    try {
      const body = await resp.json();
      if (body && body.error) why += ": " + body.error;
    } catch (_) { /* not JSON */ }
    throw new Error(path + ": " + why);
  }
  return resp.json();
}

// ---- formatting ----

function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = Number(n);
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u += 1;
  }
  return (u === 0 ? String(v) : v.toFixed(v < 10 ? 2 : 1)) + " " + units[u];
}

function count(n) {
  return Number(n || 0).toLocaleString("en-US");
}

function age(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
  return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
}

function hexBytes(hex) {
  const out = [];
  for (let i = 0; i + 1 < hex.length; i += 2) out.push(parseInt(hex.substr(i, 2), 16));
  return out;
}

// Region boundaries are memcomparable-encoded: groups of 8 bytes, each followed by a marker,
// 0xff minus the group's padding. The key the client wrote, or null when `bytes` is not
// exactly one such key.
function decodeKey(bytes) {
  const out = [];
  for (let at = 0; at + 9 <= bytes.length; at += 9) {
    const pad = 0xff - bytes[at + 8];
    if (pad > 8) return null;
    for (let i = at; i < at + 8 - pad; i++) out.push(bytes[i]);
    if (pad > 0) return at + 9 === bytes.length ? out : null;
  }
  return null;
}

// A key as text, decoded when it is memcomparable-encoded (as region boundaries are):
// printable ASCII as is, other bytes as \xNN. The cell's tooltip keeps the stored hex.
function escapeKey(hex) {
  const stored = hexBytes(hex);
  let s = "";
  for (const b of decodeKey(stored) || stored) {
    if (b >= 0x20 && b < 0x7f && b !== 0x5c) s += String.fromCharCode(b);
    else s += "\\x" + b.toString(16).padStart(2, "0");
  }
  return s;
}

function clock(unixSeconds) {
  const d = new Date(unixSeconds * 1000);
  return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
}

// ---- tables ----

function cell(row, text, cls, title) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  if (title) td.title = title;
  row.appendChild(td);
  return td;
}

function replaceBody(table, rows) {
  const body = $(table).tBodies[0];
  const fresh = document.createElement("tbody");
  for (const r of rows) fresh.appendChild(r);
  body.replaceWith(fresh);
}

function renderStores(data) {
  const now = Date.now() / 1000;
  const stores = (data.stores || []).slice().sort((a, b) => a.store.id - b.store.id);
  const rows = stores.map((s) => {
    const tr = document.createElement("tr");
    tr.dataset.storeId = s.store.id;
    cell(tr, String(s.store.id));
    cell(tr, s.store.address || "");
    cell(tr, s.store.state_name || "", "state-" + (s.store.state_name || ""));
    cell(tr, bytes(s.status.capacity), "num");
    cell(tr, bytes(s.status.available), "num");
    cell(tr, count(s.status.region_count), "num");
    cell(tr, count(s.status.leader_count), "num");
    const last = s.status.last_heartbeat_ts;
    cell(tr, last ? age(now - last) + " ago" : "never", "num");
    return tr;
  });
  replaceBody("stores", rows);
  $("store-count").textContent = "(" + stores.length + ")";
}

function peersText(r) {
  return (r.peers || [])
    .map((p) => p.id + "@s" + p.store_id + (p.role_name === "Voter" ? "" : " " + p.role_name))
    .join(", ");
}

// PD's /regions/search: a region matches when its id starts with the filter, or its start or
// end key contains it as hex or as text (stored or decoded, as escapeKey shows keys).
function regionsPath() {
  const needle = $("region-filter").value.trim();
  return "/regions/search?limit=" + MAX_REGION_ROWS + "&q=" + encodeURIComponent(needle);
}

function renderRegions() {
  const page = state.regionPage;
  if (!page) return;
  const rows = (page.regions || []).map((r) => {
    const tr = document.createElement("tr");
    tr.dataset.regionId = r.id;
    cell(tr, String(r.id));
    cell(tr, r.start_key === "" ? "(start)" : escapeKey(r.start_key), "key", r.start_key);
    cell(tr, r.end_key === "" ? "(end)" : escapeKey(r.end_key), "key", r.end_key);
    cell(tr, r.leader ? String(r.leader.store_id) : "none");
    cell(tr, peersText(r));
    cell(tr, bytes(r.approximate_size), "num");
    cell(tr, count(r.approximate_keys), "num");
    cell(tr, bytes(r.written_bytes), "num");
    cell(tr, bytes(r.read_bytes), "num");
    return tr;
  });
  replaceBody("regions", rows);
  $("region-count").textContent = "(" + page.total + ")";
  $("region-shown").textContent =
    rows.length < page.total ? "showing " + rows.length + " of " + page.matching + " matching" : "";
}

function renderOperators(data) {
  const now = Date.now() / 1000;
  const ops = (data.operators || []).slice().sort((a, b) => {
    const running = (b.status === "running") - (a.status === "running");
    return running !== 0 ? running : b.created_at - a.created_at;
  });
  const rows = ops.map((op) => {
    const tr = document.createElement("tr");
    tr.dataset.opRegionId = op.region_id;
    cell(tr, String(op.region_id));
    cell(tr, op.kind || "");
    cell(tr, op.desc || "");
    cell(tr, op.status + (op.reason ? " (" + op.reason + ")" : ""), "outcome-" + op.status);
    cell(tr, op.current_step || "");
    cell(tr, age(now - op.created_at), "num");
    return tr;
  });
  if (rows.length === 0) {
    const tr = document.createElement("tr");
    cell(tr, "no operators running or recently finished", "muted").colSpan = 6;
    rows.push(tr);
  }
  replaceBody("operators", rows);
  $("operator-count").textContent = "(" + (data.operators || []).length + ")";
}

// ---- heatmap ----

const MARGIN = { left: 170, right: 12, top: 10, bottom: 28 };

// Dark blue through purple and orange to pale yellow, by t in [0, 1].
const STOPS = [
  [0.0, [20, 30, 80]],
  [0.35, [110, 40, 140]],
  [0.65, [220, 90, 60]],
  [0.85, [250, 170, 40]],
  [1.0, [255, 250, 190]],
];

function colour(t) {
  for (let i = 1; i < STOPS.length; i++) {
    if (t <= STOPS[i][0]) {
      const [t0, c0] = STOPS[i - 1];
      const [t1, c1] = STOPS[i];
      const f = (t - t0) / (t1 - t0);
      const c = c0.map((v, k) => Math.round(v + (c1[k] - v) * f));
      return "rgb(" + c[0] + "," + c[1] + "," + c[2] + ")";
    }
  }
  return "rgb(255,250,190)";
}

// Widest a column is drawn, in pixels: a short history sits at the right edge (the newest
// minute) instead of stretching over the whole width.
const MAX_COLUMN_WIDTH = 24;

function heatmapGeometry(canvas, map) {
  const width = canvas.width - MARGIN.left - MARGIN.right;
  const height = canvas.height - MARGIN.top - MARGIN.bottom;
  const cols = map.times.length;
  const rows = map.keys.length;
  const cw = Math.min(width / Math.max(cols, 1), MAX_COLUMN_WIDTH);
  // Left edge of the first column.
  const x0 = MARGIN.left + width - cols * cw;
  return { width, height, cols, rows, cw, x0, rh: height / Math.max(rows, 1) };
}

function drawHeatmap(map) {
  const canvas = $("heatmap");
  // Draw at the displayed size so text stays sharp.
  const shown = canvas.clientWidth;
  if (shown > 0 && canvas.width !== shown) canvas.width = shown;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#10131a";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const g = heatmapGeometry(canvas, map);
  let cells = 0;
  ctx.font = "11px DejaVu Sans Mono, monospace";
  if (g.cols === 0) {
    ctx.fillStyle = "#b8c0cc";
    ctx.fillText("no " + map.kind + " flow recorded yet", MARGIN.left + 12, MARGIN.top + 24);
  } else {
    const logMax = Math.log1p(map.max);
    for (let c = 0; c < g.cols; c++) {
      const column = map.values[c];
      for (let r = 0; r < g.rows; r++) {
        const v = column[r];
        if (!v) continue;
        cells += 1;
        ctx.fillStyle = colour(logMax > 0 ? Math.log1p(v) / logMax : 0);
        // Row 0 (the start of the key space) at the top.
        ctx.fillRect(
          g.x0 + c * g.cw,
          MARGIN.top + r * g.rh,
          Math.max(g.cw - 0.5, 1),
          Math.max(g.rh - 0.5, 1),
        );
      }
    }
    drawAxes(ctx, canvas, map, g);
  }
  canvas.dataset.cells = cells;
  canvas.dataset.columns = g.cols;
  canvas.dataset.rows = g.rows;
  $("heatmap-info").textContent =
    g.cols === 0
      ? ""
      : g.cols + " minute(s) × " + g.rows + " key range(s), busiest cell " + bytes(map.max) + " per minute" +
        (map.unplaced.some((v) => v > 0) ? " (some regions beyond the per-minute range limit are not drawn)" : "");
}

function drawAxes(ctx, canvas, map, g) {
  ctx.fillStyle = "#b8c0cc";
  ctx.textBaseline = "middle";
  // Key labels: at most one every 14 pixels.
  const keyStep = Math.max(1, Math.ceil(14 / g.rh));
  for (let r = 0; r < g.rows; r += keyStep) {
    const label = map.keys[r] === "" ? "(start)" : escapeKey(map.keys[r]);
    const text = label.length > 24 ? label.slice(0, 23) + "…" : label;
    ctx.fillText(text, 4, MARGIN.top + r * g.rh + Math.min(g.rh, 14) / 2);
  }
  // Time labels: at most one every 60 pixels.
  ctx.textBaseline = "top";
  const timeStep = Math.max(1, Math.ceil(60 / g.cw));
  for (let c = 0; c < g.cols; c += timeStep) {
    ctx.fillText(clock(map.times[c]), g.x0 + c * g.cw, canvas.height - MARGIN.bottom + 8);
  }
}

function heatmapTip(event) {
  const map = state.heatmap;
  const tip = $("heatmap-tip");
  const canvas = $("heatmap");
  if (!map || map.times.length === 0) {
    tip.hidden = true;
    return;
  }
  const box = canvas.getBoundingClientRect();
  const g = heatmapGeometry(canvas, map);
  const x = ((event.clientX - box.left) * canvas.width) / box.width - g.x0;
  const y = ((event.clientY - box.top) * canvas.height) / box.height - MARGIN.top;
  const c = Math.floor(x / g.cw);
  const r = Math.floor(y / g.rh);
  if (x < 0 || y < 0 || c >= g.cols || r >= g.rows) {
    tip.hidden = true;
    return;
  }
  const start = map.keys[r] === "" ? "(start)" : escapeKey(map.keys[r]);
  const end = r + 1 < g.rows ? escapeKey(map.keys[r + 1]) : "(end)";
  tip.textContent =
    clock(map.times[c]) + "  " + bytes(map.values[c][r]) + " " + map.kind + "\n[" + start + ", " + end + ")";
  tip.style.left = Math.min(event.clientX - box.left + 12, box.width - 260) + "px";
  tip.style.top = event.clientY - box.top + 12 + "px";
  tip.hidden = false;
}

// ---- refresh loop ----

async function refresh() {
  const regionsAt = regionsPath();
  const results = await Promise.allSettled([
    getJson("/cluster"),
    getJson("/stores"),
    getJson(regionsAt),
    getJson("/operators"),
    getJson("/heatmap?kind=" + state.flow),
  ]);
  const [cluster, stores, regions, operators, heatmap] = results;
  const errors = results.filter((r) => r.status === "rejected").map((r) => r.reason.message);
  if (cluster.status === "fulfilled") {
    const c = cluster.value;
    $("cluster").textContent =
      "cluster " + c.id + (c.bootstrapped ? "" : " (not bootstrapped)") + ", max replicas " + c.max_replicas;
  }
  if (stores.status === "fulfilled") renderStores(stores.value);
  // A page for a filter since changed is dropped; the filter's own request draws the new one.
  if (regions.status === "fulfilled" && regionsAt === regionsPath()) {
    state.regionPage = regions.value;
    renderRegions();
  }
  if (operators.status === "fulfilled") renderOperators(operators.value);
  if (heatmap.status === "fulfilled") {
    state.heatmap = heatmap.value;
    drawHeatmap(state.heatmap);
  }
  const status = $("status");
  if (errors.length > 0) {
    status.textContent = "refresh failed: " + errors.join("; ");
    status.className = "error";
  } else {
    status.textContent = "updated " + new Date().toLocaleTimeString("en-GB");
    status.className = "muted";
    document.body.dataset.state = "loaded";
  }
}

async function loop() {
  try {
    await refresh();
  } catch (e) {
    $("status").textContent = "refresh failed: " + e.message;
  }
  setTimeout(loop, REFRESH_MS);
}

// The region filter lives in the address too (#filter=...): it is applied on load and kept
// current while typing, so a filtered view can be shared as a link.
function filterFromAddress() {
  const m = /^#filter=(.*)$/.exec(location.hash);
  if (!m) return "";
  try {
    return decodeURIComponent(m[1]);
  } catch (_) {
    return m[1]; // not percent-encoded: taken as typed
  }
}

function keepFilterInAddress() {
  const needle = $("region-filter").value.trim();
  const hash = needle ? "#filter=" + encodeURIComponent(needle) : "";
  history.replaceState(null, "", location.pathname + location.search + hash);
}

$("region-filter").value = filterFromAddress();

// Typing asks PD for the matching page once the keystrokes pause; an answer that arrives
// after the filter changed again is dropped.
let filterTimer = null;
$("region-filter").addEventListener("input", () => {
  keepFilterInAddress();
  clearTimeout(filterTimer);
  filterTimer = setTimeout(() => {
    const path = regionsPath();
    getJson(path)
      .then((page) => {
        if (path !== regionsPath()) return;
        state.regionPage = page;
        renderRegions();
      })
      .catch((e) => {
        $("status").textContent = "refresh failed: " + e.message;
      });
  }, FILTER_DELAY_MS);
});
for (const radio of document.querySelectorAll("input[name=flow]")) {
  radio.addEventListener("change", () => {
    state.flow = radio.value;
    getJson("/heatmap?kind=" + state.flow)
      .then((map) => {
        state.heatmap = map;
        drawHeatmap(map);
      })
      .catch((e) => {
        $("status").textContent = "refresh failed: " + e.message;
      });
  });
}
$("heatmap").addEventListener("mousemove", heatmapTip);
$("heatmap").addEventListener("mouseleave", () => {
  $("heatmap-tip").hidden = true;
});
loop();
