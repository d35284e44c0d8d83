// The origin's dashboard (GET /admin/dashboard): every REFRESH_MS it reads
//   /metrics                  requests per route: rates and P50/P95/P99 from the histogram
//                             `http_request_duration_seconds`; fold-in latency from
//                             `recommend_fold_in_seconds`
//   /ready                    PostgreSQL and Redis up or down, their circuit breakers, the model
//   /admin/cache/stats        hit rates per family and layer, Redis figures, the alerts
//   /admin/dashboard/model    the served model and the newest `origin eval` report
//   /admin/edge/stats         the edge's counters per route (its layer of the hit rate)
// and draws them. Rates, hit rates over time and quantiles come from the difference between
// the newest reading and the one WINDOW_MS before it, as PromQL's `rate()` over a window.
//
// The admin token is asked for once, kept in this tab's sessionStorage (gone when the tab
// closes) and sent as `Authorization: Bearer` on the admin calls; never in a URL.
//
// `window.dashboard.state()` tells what the page holds (for the end-to-end test,
// tests/api/dashboard.rs, and for whoever opens the console).

import { histogramIncrease, histograms, increase, parse, quantile } from "./prometheus.mjs";
import { FORMATS, TimeChart } from "./charts.mjs";
import "./style.css";

const REFRESH_MS = 2000;
const WINDOW_MS = 10_000;
const TOKEN_KEY = "movierec.dashboard.admin-token";
const QUANTILES = [
  ["P50", 0.5],
  ["P95", 0.95],
  ["P99", 0.99],
];

const $ = (id) => document.getElementById(id);

/** An element with attributes and children (text is set as text, never parsed as HTML). */
function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  for (const child of children) element.append(child ?? "");
  return element;
}

function fill(element, ...children) {
  element.replaceChildren(...children);
}

const figure = (name, value) => [el("dt", {}, name), el("dd", {}, value)];
const row = (cells, header = false) => el("tr", {}, ...cells.map((c) => el(header ? "th" : "td", {}, c)));
const mib = (bytes) => `${(bytes / 1048576).toFixed(1)} MiB`;

// ---- the token -----------------------------------------------------------------------------

class Refused extends Error {}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** GETs `path`; admin calls carry the token. A 401 or 403 there throws `Refused`. */
async function get(path, { admin = false, text = false } = {}) {
  const headers = admin ? { Authorization: `Bearer ${token()}` } : {};
  const response = await fetch(path, { headers, cache: "no-store" });
  if (admin && (response.status === 401 || response.status === 403)) {
    const body = await response.json().catch(() => null);
    throw new Refused(`${response.status}: ${body?.error?.message ?? response.statusText}`);
  }
  // /ready answers 503 with its body when both dependencies are down: still a reading.
  if (!response.ok && !(path === "/ready" && response.status === 503)) {
    throw new Error(`${path}: ${response.status}`);
  }
  return text ? response.text() : response.json();
}

function showSignIn(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  $("dashboard").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = message ?? "";
  $("status").textContent = "signed out";
  $("token").focus();
}

// ---- the readings --------------------------------------------------------------------------

/** Readings `{time, metrics, stats}` from the newest back to the first one WINDOW_MS old. */
let readings = [];
const charts = new Map();
let ticks = 0;
let lastError = null;
let firing = [];
let model = null;
let timer = null;
/** Each tick's latency quantiles per route, to redraw the latency chart for another route. */
const latencyHistory = [];

/** The chart `id`, made at first use. */
function chart(id, options) {
  let c = charts.get(id);
  if (!c) charts.set(id, (c = new TimeChart($(id), options)));
  return c;
}

/** The reading to take differences from: the newest one at least WINDOW_MS old, else the oldest. */
function baseline(now) {
  let base = readings[0];
  for (const r of readings) if (r.time <= now - WINDOW_MS) base = r;
  return base;
}

async function tick() {
  const time = Date.now();
  const [metricsText, ready, stats, modelPanel, edge] = await Promise.allSettled([
    get("/metrics", { text: true }),
    get("/ready"),
    get("/admin/cache/stats", { admin: true }),
    get("/admin/dashboard/model", { admin: true }),
    get("/admin/edge/stats", { admin: true }),
  ]);
  const refused = [stats, modelPanel, edge].find((r) => r.status === "rejected" && r.reason instanceof Refused);
  if (refused) {
    stop();
    showSignIn(`The token was refused (${refused.reason.message}).`);
    return;
  }
  const value = (r) => (r.status === "fulfilled" ? r.value : null);
  const reading = {
    time,
    metrics: value(metricsText) && parse(value(metricsText)),
    stats: value(stats),
    edge: value(edge),
  };
  const base = baseline(time) ?? reading;
  readings.push(reading);
  readings = readings.filter((r) => r.time >= base.time);
  const seconds = (time - base.time) / 1000;
  const at = time / 1000;

  renderTraffic(at, reading, base, seconds);
  renderCache(at, reading, base);
  renderRedis(at, reading, base, seconds);
  renderDependencies(value(ready), reading.stats);
  model = value(modelPanel);
  renderModel(at, model, value(ready), reading, base, seconds);
  renderAlerts(reading.stats, value(ready));

  const failed = [metricsText, ready, stats, modelPanel, edge].filter((r) => r.status === "rejected");
  lastError = failed.length ? failed.map((r) => String(r.reason.message ?? r.reason)).join("; ") : null;
  ticks += 1;
  $("status").textContent = lastError
    ? `error: ${lastError}`
    : `updated ${new Date(time).toLocaleTimeString()} · every ${REFRESH_MS / 1000} s`;
  $("status").className = lastError ? "error" : "";
}

// ---- requests per route --------------------------------------------------------------------

const byRoute = (labels) => `${labels.method} ${labels.route}`;

function renderTraffic(at, reading, base, seconds) {
  if (!reading.metrics || !base.metrics || seconds <= 0) return;
  const name = "http_request_duration_seconds";
  const now = histograms(reading.metrics, name, byRoute);
  const before = histograms(base.metrics, name, byRoute);
  const errorsNow = histograms(reading.metrics, name, (l) => (Number(l.status) >= 500 ? byRoute(l) : null));
  const errorsBefore = histograms(base.metrics, name, (l) => (Number(l.status) >= 500 ? byRoute(l) : null));
  const all = { count: 0, buckets: new Map() };
  const routes = [];
  for (const [route, histogram] of now) {
    const gained = histogramIncrease(histogram, before.get(route));
    for (const [le, count] of gained.buckets) all.buckets.set(le, (all.buckets.get(le) ?? 0) + count);
    all.count += gained.count;
    const errors = errorsNow.has(route)
      ? histogramIncrease(errorsNow.get(route), errorsBefore.get(route)).count
      : 0;
    routes.push({ route, gained, errors });
  }
  routes.sort((a, b) => b.gained.count - a.gained.count || a.route.localeCompare(b.route));
  const latencies = {};
  for (const { route, gained } of routes) latencies[route] = quantilesMs(gained.buckets);
  latencies[""] = quantilesMs([...all.buckets].sort((a, b) => a[0] - b[0]));
  latencyHistory.push({ at, latencies });
  if (latencyHistory.length > 150) latencyHistory.shift();

  fill(
    $("routes"),
    row(["route", "requests/s", "P50", "P95", "P99", "5xx/s"], true),
    ...routes.map(({ route, gained, errors }) =>
      row([
        route,
        FORMATS.perSecond(gained.count / seconds),
        ...QUANTILES.map(([q]) => FORMATS.ms(latencies[route][q])),
        FORMATS.perSecond(errors / seconds),
      ]),
    ),
  );
  const select = $("route-select");
  for (const { route } of routes) {
    if (![...select.options].some((o) => o.value === route)) {
      select.append(el("option", { value: route }, route));
    }
  }
  const rates = {};
  for (const { route, gained } of routes) rates[route] = gained.count / seconds;
  const title = "Requests per second, per route";
  chart("chart-requests", { title, format: FORMATS.perSecond }).push(at, rates);
  latencyChart().push(at, latencies[select.value] ?? {});
}

function quantilesMs(buckets) {
  const out = {};
  for (const [name, q] of QUANTILES) {
    const seconds = quantile(q, buckets);
    out[name] = seconds == null ? null : seconds * 1000;
  }
  return out;
}

function latencyChart() {
  const route = $("route-select").value || "all routes";
  return chart("chart-latency", { title: `Latency (P50, P95, P99): ${route}`, format: FORMATS.ms });
}

/** Another route chosen: its chart is drawn again from the history kept. */
function redrawLatency() {
  charts.get("chart-latency")?.plot?.destroy();
  charts.delete("chart-latency");
  const c = latencyChart();
  const route = $("route-select").value;
  for (const { at, latencies } of latencyHistory) c.push(at, latencies[route] ?? {});
}

// ---- cache ----------------------------------------------------------------------------------

function renderCache(at, reading, base) {
  const now = reading.stats;
  const before = base.stats;
  if (!now || !before) return;
  const threshold = now.alerts?.hit_rate_low?.threshold ?? 0.6;
  const line = { value: threshold, label: `alert ${FORMATS.percent(threshold)}` };
  const rates = {};
  const sum = { hits: 0, local: 0, stale: 0, lookups: 0 };
  for (const [family, f] of Object.entries(now.families)) {
    const b = before.families[family] ?? {};
    const hits = increase(f.hits, b.hits);
    const local = increase(f.local_hits, b.local_hits);
    const stale = increase(f.stale, b.stale);
    const lookups = hits + stale + increase(f.misses, b.misses);
    rates[family] = lookups > 0 ? (hits + stale) / lookups : null;
    sum.hits += hits;
    sum.local += local;
    sum.stale += stale;
    sum.lookups += lookups;
  }
  const options = (title) => ({ title, format: FORMATS.percent, threshold: line, range: [0, 1] });
  const title = `Hit rate per cache family (alert below ${FORMATS.percent(threshold)})`;
  chart("chart-families", options(title)).push(at, rates);
  const share = (part, whole) => (whole > 0 ? part / whole : null);
  const edge = edgeIncrease(reading.edge, base.edge);
  chart("chart-layers", options("Hit rate per layer")).push(at, {
    "edge (its lookups)": edge ? share(edge.hits + edge.stale, edge.lookups) : null,
    "origin, all its layers": share(sum.hits + sum.stale, sum.lookups),
    "local tier (share of lookups)": share(sum.local, sum.lookups),
    "Redis (lookups past the local tier)": share(sum.hits - sum.local + sum.stale, sum.lookups - sum.local),
  });
  renderEdgeNote(reading.edge, edge);
}

/** Every route's edge counters added up. */
function edgeTotals(stats) {
  const sum = { hits: 0, stale: 0, revalidated: 0, misses: 0, errors: 0 };
  for (const counts of Object.values(stats?.routes ?? {})) {
    for (const key of Object.keys(sum)) sum[key] += counts[key] ?? 0;
  }
  sum.lookups = sum.hits + sum.stale + sum.revalidated + sum.misses + sum.errors;
  return sum;
}

/** The edge's counts between two readings; from zero when the isolate changed (a restart, or
 * another isolate answered); null without an edge. */
function edgeIncrease(now, before) {
  if (!now?.stats) return null;
  const same = before?.stats && before.stats.isolate === now.stats.isolate;
  const a = edgeTotals(now.stats);
  const b = same ? edgeTotals(before.stats) : null;
  const out = {};
  for (const key of Object.keys(a)) out[key] = b ? increase(a[key], b[key]) : a[key];
  return out;
}

function renderEdgeNote(reading, gained) {
  let text;
  if (!reading) text = "Edge: its counters did not come (see the status line).";
  else if (!reading.configured) {
    text = "Edge: not configured here. Set EDGE_PURGE_URL and PURGE_SECRET for the origin to read the edge's counters.";
  } else {
    const s = reading.stats;
    const total = edgeTotals(s);
    text =
      `Edge: isolate ${s.isolate.slice(0, 8)}, counting since ${new Date(s.started_at).toLocaleTimeString()}: ` +
      `${total.lookups} lookups (${total.hits} hits, ${total.stale} stale, ${total.revalidated} revalidated, ` +
      `${total.misses} misses, ${total.errors} errors), ${s.passed} forwarded without a lookup` +
      (gained ? `; ${gained.lookups} in the last window.` : ".");
  }
  $("edge-note").textContent = text;
}

// ---- Redis ----------------------------------------------------------------------------------

function renderRedis(at, reading, base, seconds) {
  const stats = reading.stats;
  if (!stats) return;
  const redis = stats.redis;
  const memoryLimit = stats.alerts?.memory_high?.threshold ?? 0.9;
  const latencyLimit = stats.alerts?.latency_high?.threshold ?? 10;
  const limited = redis.maxmemory_bytes > 0;
  const share = limited ? redis.used_memory_bytes / redis.maxmemory_bytes : null;
  const limit = limited ? mib(redis.maxmemory_bytes) : "unlimited maxmemory (no alert)";
  fill(
    $("redis-figures"),
    ...figure("mode", `${redis.mode}, ${redis.masters} master${redis.masters === 1 ? "" : "s"}`),
    ...figure("memory", `${mib(redis.used_memory_bytes)} of ${limit}`),
    ...figure("evicted keys", `${redis.evicted_keys}`),
    ...figure("clients", `${redis.connected_clients}`),
    ...figure("ops/s", `${redis.ops_per_sec}`),
    ...figure("PING", redis.reachable ? FORMATS.ms(redis.latency_ms) : "no answer"),
  );
  chart("chart-memory", {
    title: `Redis memory against maxmemory (alert above ${FORMATS.percent(memoryLimit)})`,
    format: FORMATS.percent,
    threshold: { value: memoryLimit, label: `alert ${FORMATS.percent(memoryLimit)}` },
  }).push(at, { "used / maxmemory": share });
  chart("chart-latency-redis", {
    title: `Redis latency (alert above ${latencyLimit} ms)`,
    format: FORMATS.ms,
    threshold: { value: latencyLimit, label: `alert ${latencyLimit} ms` },
  }).push(at, { PING: redis.latency_ms });
  chart("chart-ops", { title: "Redis ops/s", format: FORMATS.perSecond }).push(at, {
    "ops/s": redis.reachable ? redis.ops_per_sec : null,
  });
  const evictions = base.stats && seconds > 0
    ? increase(redis.evicted_keys, base.stats.redis.evicted_keys) / seconds
    : null;
  chart("chart-evictions", { title: "Redis evictions/s", format: FORMATS.perSecond }).push(at, {
    "evicted keys/s": redis.reachable ? evictions : null,
  });
}

// ---- dependencies ---------------------------------------------------------------------------

function renderDependencies(ready, stats) {
  if (!ready) {
    fill($("dependencies"), row(["/ready did not answer"]));
    return;
  }
  const state = (s) => el("span", { class: s === "up" || s === "closed" ? "ok" : "bad" }, s);
  fill(
    $("dependencies"),
    row(["dependency", "state", "circuit breaker"], true),
    row(["PostgreSQL", state(ready.postgres), state(ready.breakers.postgres)]),
    row(["Redis", state(ready.redis), state(ready.breakers.redis)]),
    row(["invalidations waiting for Redis", `${stats?.pending_invalidations ?? "–"}`, ""]),
    row(["origin", ready.status, ""]),
  );
}

// ---- model ----------------------------------------------------------------------------------

function renderModel(at, panel, ready, reading, base, seconds) {
  const version = panel?.version ?? ready?.model ?? "–";
  const params = panel?.params;
  const evaluation = panel?.evaluation;
  fill(
    $("model-figures"),
    ...figure("version", version ?? "none"),
    ...figure("trained", panel?.trained_at ? new Date(panel.trained_at).toLocaleString() : "–"),
    ...figure("hyper-parameters", params ? describe(params) : "–"),
    ...figure("last origin eval", evaluation ? describeEvaluation(evaluation) : "none stored: run `origin eval`"),
  );
  const columns = ["precision", "recall", "ndcg", "coverage"];
  const metrics = (quality) => columns.map((k) => quality[k].toFixed(4));
  fill(
    $("evaluation"),
    ...(evaluation
      ? [
          row(["test split (top 10)", "precision@10", "recall@10", "NDCG@10", "coverage"], true),
          row(["implicit ALS (chosen)", ...metrics(evaluation.model)]),
          row(["popularity baseline", ...metrics(evaluation.popularity)]),
        ]
      : []),
  );
  if (!reading.metrics || !base.metrics || seconds <= 0) return;
  const name = "recommend_fold_in_seconds";
  const gained = histogramIncrease(
    histograms(reading.metrics, name, () => "all").get("all") ?? { count: 0, buckets: new Map() },
    histograms(base.metrics, name, () => "all").get("all"),
  );
  chart("chart-fold-in", { title: "Fold-in latency (P50, P95, P99)", format: FORMATS.ms }).push(
    at,
    quantilesMs(gained.buckets),
  );
}

function describe(p) {
  return `factors ${p.factors}, λ ${p.reg}, ν ${p.reg_exponent}, α ${p.alpha}, ${p.epochs} epochs`;
}

function describeEvaluation(e) {
  const when = new Date(e.evaluated_at).toLocaleString();
  const data = e.current_data ? "on the data served now" : "on another data set";
  const served = e.chosen_is_served ? "the served model's" : "not the served model's";
  return `${when}, ${e.candidates} candidates, ${data}; chose ${describe(e.chosen)} (${served})`;
}

// ---- alerts ---------------------------------------------------------------------------------

/** What a firing alert of /admin/cache/stats says, by name. */
const ALERT_TEXT = {
  hit_rate_low: (a) => `hit rate ${FORMATS.percent(a.value)}, below ${FORMATS.percent(a.threshold)}`,
  memory_high: (a) =>
    `Redis memory at ${FORMATS.percent(a.value)} of maxmemory, above ${FORMATS.percent(a.threshold)}`,
  latency_high: (a) =>
    a.value == null ? "Redis does not answer" : `Redis PING ${FORMATS.ms(a.value)}, above ${a.threshold} ms`,
};

function renderAlerts(stats, ready) {
  // The design's three, judged by the origin (/admin/cache/stats): with a value and threshold.
  const alerts = Object.entries(stats?.alerts ?? {}).map(([name, a]) => ({
    name,
    state: a.state,
    text: a.state === "firing" ? (ALERT_TEXT[name]?.(a) ?? name) : "",
    value: a.value,
    threshold: a.threshold,
  }));
  // The project's own, from /ready and the stats: what ops/prometheus/alerts.yml fires on too.
  const judged = (name, on, text) => alerts.push({ name, state: on ? "firing" : "ok", text });
  if (ready) {
    for (const dependency of ["postgres", "redis"]) {
      const breaker = ready.breakers[dependency];
      judged(`${dependency}_down`, ready[dependency] !== "up", `${dependency} does not answer`);
      judged(`${dependency}_breaker_open`, breaker !== "closed", `${dependency}'s circuit breaker is ${breaker}`);
    }
  }
  if (stats) {
    const pending = stats.pending_invalidations;
    judged("invalidations_pending", pending > 0, `${pending} invalidations wait for Redis`);
  }
  const active = alerts.filter((a) => a.state === "firing");
  firing = active.map((a) => a.name);
  const item = (a) => el("li", { class: "firing", "data-alert": a.name }, el("strong", {}, a.name), `: ${a.text}`);
  fill($("alerts"), ...(active.length ? active.map(item) : [el("li", { class: "quiet" }, "none")]));
  const shown = (a, v) => {
    if (a.threshold == null) return "";
    if (v == null) return "–";
    return a.name === "latency_high" ? FORMATS.ms(v) : FORMATS.percent(v);
  };
  const state = (a) => el("span", { class: { firing: "bad", ok: "ok" }[a.state] ?? "unknown" }, a.state);
  fill(
    $("alert-states"),
    row(["alert", "state", "value", "threshold"], true),
    ...alerts.map((a) => row([a.name, state(a), shown(a, a.value), shown(a, a.threshold)])),
  );
}

// ---- start ----------------------------------------------------------------------------------

function start() {
  if (timer !== null) return;
  $("sign-in").hidden = true;
  $("dashboard").hidden = false;
  $("sign-out").hidden = false;
  for (const span of document.querySelectorAll(".window")) span.textContent = `${WINDOW_MS / 1000} s`;
  const loop = async () => {
    try {
      await tick();
    } catch (error) {
      lastError = String(error);
      $("status").textContent = `error: ${lastError}`;
    }
    if (timer !== null) timer = setTimeout(loop, REFRESH_MS);
  };
  timer = 0;
  loop();
}

function stop() {
  if (timer) clearTimeout(timer);
  timer = null;
}

$("sign-in").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = $("token").value.trim();
  if (!value) return;
  sessionStorage.setItem(TOKEN_KEY, value);
  $("token").value = "";
  start();
});
$("sign-out").addEventListener("click", () => {
  stop();
  showSignIn("");
});
$("route-select").addEventListener("change", redrawLatency);
window.addEventListener("resize", () => charts.forEach((c) => c.resize()));

window.dashboard = {
  /** What the page holds: ticks done, the last error, the firing alerts, the model, and per
   * chart and series the points held and the newest value. */
  state: () => ({
    signedIn: timer !== null,
    ticks,
    error: lastError,
    alerts: firing,
    model: model?.version ?? null,
    evaluation: model?.evaluation ?? null,
    charts: Object.fromEntries([...charts].map(([id, c]) => [id, c.summary()])),
  }),
};

if (token()) start();
else showSignIn();
