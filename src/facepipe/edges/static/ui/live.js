// Live: requests/s, p50/p99, batch sizes and per-op time, computed from two scrapes of /metrics
// (Prometheus text) a few seconds apart.
"use strict";

const $ = (id) => document.getElementById(id);
const WINDOW = 5; // scrapes, one a second: rates over the last ~5 s
const scrapes = [];
const history = [];

// Prometheus text -> [{name, labels, value}]
function parse(text) {
  const out = [];
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

// Sum of a metric's samples per key(labels), skipping the UI's own endpoints.
function sums(samples, name, key) {
  const out = new Map();
  for (const s of samples) {
    if (s.name !== name || (s.labels.endpoint || "").startsWith("ui:")) continue;
    const k = key(s.labels);
    out.set(k, (out.get(k) || 0) + s.value);
  }
  return out;
}

function delta(now, before, name, key) {
  const a = sums(now, name, key);
  const b = sums(before, name, key);
  return new Map([...a].map(([k, v]) => [k, v - (b.get(k) || 0)]));
}

// histogram_quantile over bucket deltas (linear within a bucket), as Prometheus does it.
function quantile(q, buckets) {
  const sorted = [...buckets].map(([le, n]) => [le === "+Inf" ? Infinity : Number(le), n]).sort((x, y) => x[0] - y[0]);
  const total = sorted.length ? sorted[sorted.length - 1][1] : 0;
  if (total <= 0) return null;
  let prevLe = 0, prevN = 0;
  for (const [le, n] of sorted) {
    if (n >= q * total) {
      if (le === Infinity) return prevLe;
      return prevLe + ((le - prevLe) * (q * total - prevN)) / Math.max(n - prevN, 1e-9);
    }
    [prevLe, prevN] = [le, n];
  }
  return prevLe;
}

const ms = (s) => (s === null ? "–" : `${(s * 1000).toFixed(s < 0.01 ? 2 : 1)} ms`);

function draw() {
  const canvas = $("chart");
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, canvas.width, canvas.height);
  const top = Math.max(1, ...history);
  g.strokeStyle = "#2b6fd6";
  g.lineWidth = 2;
  g.beginPath();
  history.forEach((v, i) => g[i ? "lineTo" : "moveTo"]((i / 59) * canvas.width, canvas.height - (v / top) * (canvas.height - 10)));
  g.stroke();
  g.fillStyle = "#6b7588";
  g.fillText(`${top.toFixed(1)} req/s`, 4, 10);
}

function render(now, before, seconds) {
  const reqs = delta(now, before, "facepipe_requests_total", (l) => `${l.endpoint}|${l.status}`);
  const total = [...reqs.values()].reduce((a, b) => a + b, 0);
  const buckets = delta(now, before, "facepipe_request_seconds_bucket", (l) => l.le);
  $("rps").textContent = (total / seconds).toFixed(1);
  $("p50").textContent = ms(quantile(0.5, buckets));
  $("p99").textContent = ms(quantile(0.99, buckets));
  history.push(total / seconds);
  if (history.length > 60) history.shift();
  draw();
  const endpoints = new Map();
  for (const [k, n] of reqs) {
    const [endpoint, status] = k.split("|");
    const row = endpoints.get(endpoint) || [0, 0];
    row[status === "ok" ? 0 : 1] += n;
    endpoints.set(endpoint, row);
  }
  $("endpoints").replaceChildren(
    ...[...endpoints].filter(([, [ok, bad]]) => ok + bad > 0).map(([e, [ok, bad]]) =>
      UI.el("tr", { "data-endpoint": e }, UI.el("td", {}, e), UI.el("td", {}, ((ok + bad) / seconds).toFixed(1)), UI.el("td", {}, (bad / seconds).toFixed(1)))
    )
  );
  const stage = (l) => `${l.pipeline} / ${l.stage}`;
  const items = delta(now, before, "facepipe_stage_items_total", stage);
  const batches = delta(now, before, "facepipe_stage_batches_total", stage);
  const compute = delta(now, before, "facepipe_stage_compute_seconds_total", stage);
  const depth = sums(now, "facepipe_stage_queue_depth", stage);
  $("stages").replaceChildren(
    ...[...items.keys()].filter((k) => items.get(k) > 0 || depth.get(k) > 0).sort().map((k) => {
      const b = batches.get(k) || 0;
      return UI.el(
        "tr",
        { "data-stage": k },
        UI.el("td", {}, k),
        UI.el("td", { class: "items" }, (items.get(k) / seconds).toFixed(1)),
        UI.el("td", { class: "batch" }, b ? (items.get(k) / b).toFixed(2) : "–"),
        UI.el("td", {}, b ? ((compute.get(k) / b) * 1000).toFixed(1) : "–"),
        UI.el("td", {}, String(depth.get(k) || 0))
      );
    })
  );
}

async function tick() {
  const r = await fetch("/metrics");
  scrapes.push({ t: performance.now() / 1000, samples: parse(await r.text()) });
  if (scrapes.length > WINDOW + 1) scrapes.shift();
  if (scrapes.length > 1) {
    const [first, last] = [scrapes[0], scrapes[scrapes.length - 1]];
    render(last.samples, first.samples, last.t - first.t);
  }
  $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

UI.start(async () => {
  const loop = () => UI.guard(tick).finally(() => setTimeout(loop, 1000));
  loop();
});
