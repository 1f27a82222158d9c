/* report.js - draws `outcomectl report`'s page from its data (the JSON in
 * #report-data: the daemon's stats, query, rank per task and history
 * answers) with uPlot, which the page carries inline as well.
 *
 * Every plot is a <figure class="plot"> whose data-points attribute is the
 * number of (model, bucket) points it draws (for the ranking, its models),
 * so that a test can read it from the DOM.
 */
"use strict";

const TASKS = ["generate", "embed", "classify", "code", "reasoning"];
/* Tableau 10, distinct at a glance and for most colour-blind readers, then
 * ten lighter and darker companions for the eleventh model on. */
const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                 "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
                 "#a0cbe8", "#ffbe7d", "#8cd17d", "#b6992d", "#499894",
                 "#d37295", "#79706e", "#d4a6c8", "#86bcb6", "#f1ce63"];
const CHART_HEIGHT = 240;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k === "style") e.style.cssText = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function pad2(n) { return String(n).padStart(2, "0"); }

/* Unix seconds as local "YYYY-MM-DD HH:MM". */
function fmtTime(s) {
  if (typeof s !== "number") return "-";
  const d = new Date(s * 1000);
  return d.getFullYear() + "-" + pad2(d.getMonth() + 1) + "-" + pad2(d.getDate()) + " " +
    pad2(d.getHours()) + ":" + pad2(d.getMinutes());
}

function fmtDuration(s) {
  if (typeof s !== "number") return "-";
  if (s % 86400 === 0) return s / 86400 + " d";
  if (s % 3600 === 0) return s / 3600 + " h";
  if (s % 60 === 0) return s / 60 + " min";
  return s + " s";
}

function fmtUptime(s) {
  if (typeof s !== "number") return "-";
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return (d ? d + " d " : "") + (d || h ? h + " h " : "") + m + " min";
}

function fmtNum(v, decimals) {
  return typeof v === "number" && isFinite(v) ? v.toFixed(decimals) : "-";
}

function fmtCost(v) {
  if (typeof v !== "number" || !isFinite(v)) return "-";
  return v >= 0.01 ? v.toFixed(4) : v.toPrecision(3);
}

/* ---- the data ------------------------------------------------------- */

const D = JSON.parse(document.getElementById("report-data").textContent);
const profiles = (D.query && D.query.profiles) || [];
const history = D.history;
const threshold = D.stats && D.stats.config ? D.stats.config.degrade_threshold : undefined;

const models = new Set(profiles.map(p => p.model));
for (const s of (history && history.series) || []) models.add(s.model);
const modelColor = new Map([...models].sort().map((m, i) => [m, PALETTE[i % PALETTE.length]]));
const color = m => modelColor.get(m) || "#888";

function taskStats(model, task) {
  const p = profiles.find(q => q.model === model);
  return p && p.tasks ? p.tasks[task] : undefined;
}

/* The tasks with anything to show, in the protocol's order. */
function reportTasks() {
  const seen = new Set();
  for (const p of profiles) for (const t of Object.keys(p.tasks || {})) seen.add(t);
  for (const s of (history && history.series) || []) seen.add(s.task);
  return TASKS.filter(t => seen.has(t)).concat([...seen].filter(t => !TASKS.includes(t)));
}

/* ---- header and sidelined models ----------------------------------- */

function header() {
  const st = D.stats || {};
  const window = "last " + D.since_arg + ": " + fmtTime(D.since) + " to " + fmtTime(D.until);
  const bucket = history ? ", in " + fmtDuration(history.bucket_s) + " buckets" : "";
  let calls = 0, degraded = 0;
  for (const p of profiles) { calls += p.total_calls || 0; degraded += p.degraded ? 1 : 0; }
  const card = (label, value) => el("div", { class: "card" },
    el("div", { class: "value" }, value), el("div", { class: "label" }, label));
  return el("header", {},
    el("h1", {}, "What outcomed learned"),
    el("p", { class: "meta" }, "Generated " + fmtTime(D.generated_at) + " (local time) from outcomed " +
      (st.version || "?") + ", up " + fmtUptime(st.uptime_s) + ". History: " + window + bucket + "."),
    el("div", { class: "cards" },
      card("models", models.size), card("tasks", reportTasks().length),
      card("calls, all time", calls.toLocaleString("en")),
      card("degraded models", degraded),
      card("history points", history ? history.points : "none")));
}

function whyText(failures, successes, thr) {
  return failures + " failure" + (failures === 1 ? "" : "s") + " > " + successes + " success" +
    (successes === 1 ? "" : "es") + " + threshold " + (thr === undefined ? "?" : thr);
}

function sidelined() {
  const bad = profiles.filter(p => p.degraded);
  const sec = el("section", { id: "sidelined" }, el("h2", {}, "Sidelined models"));
  if (!bad.length) {
    sec.append(el("p", { class: "ok" }, "No model is degraded (a model is degraded when its failures " +
      "exceed its successes by more than the threshold" + (threshold !== undefined ? ", " + threshold : "") + ")."));
    return sec;
  }
  sec.append(el("p", {}, "A degraded model is left out of rankings (but by the kg strategy, which " +
    "still tries it now and then) until its successes catch up."));
  const table = el("table", { class: "data" }, el("thead", {}, el("tr", {},
    el("th", {}, "model"), el("th", {}, "why"), el("th", {}, "degraded since"), el("th", {}, "tasks"))));
  const body = el("tbody");
  for (const p of bad) {
    body.append(el("tr", {},
      el("td", {}, swatch(p.model), p.model),
      el("td", {}, whyText(p.fail_count, p.success_count, threshold)),
      el("td", {}, p.degraded_since ? fmtTime(p.degraded_since) : "- (under the configured threshold: not degraded)"),
      el("td", {}, Object.keys(p.tasks || {}).join(", "))));
  }
  table.append(body);
  sec.append(table);
  return sec;
}

function swatch(model) {
  return el("span", { class: "swatch", style: "background:" + color(model) });
}

/* ---- the ranking of a task ------------------------------------------ */

function ranking(task) {
  const r = D.rank ? D.rank[task] : undefined;
  const ranked = (r && r.ranked) || [];
  const excluded = (r && r.excluded) || [];
  const fig = el("figure", { class: "plot ranking", "data-plot": "ranking", "data-task": task,
    "data-points": String(ranked.length) },
    el("figcaption", {}, "Ranking now (" + ((r && r.strategy) || "kg") + "): posterior mean " +
      "of success with its 95% interval"));
  const table = el("table", { class: "data" }, el("thead", {}, el("tr", {},
    el("th", {}, "#"), el("th", {}, "model"), el("th", { class: "num" }, "mean"),
    el("th", { class: "interval" }, "95% interval (0 to 1)"),
    el("th", { class: "num" }, "judged"), el("th", { class: "num" }, "calls"),
    el("th", { class: "num" }, "success"), el("th", { class: "num" }, "EMA"),
    el("th", { class: "num" }, "p50 / p95 ms"), el("th", { class: "num" }, "cost / accepted"),
    el("th", {}, "note"))));
  const body = el("tbody");
  ranked.forEach((it, i) => {
    const ts = taskStats(it.model, task) || {};
    const notes = [];
    if (it.explore) notes.push("explore: worth trying first");
    if (it.prior) notes.push("untried (prior)");
    if (it.degraded) {
      const w = it.degraded_why;
      notes.push("degraded" + (w ? ": " + whyText(w.failures, w.successes, w.threshold) +
        (w.since ? ", since " + fmtTime(w.since) : "") : ""));
    }
    body.append(el("tr", { class: it.degraded ? "degraded" : "" },
      el("td", {}, i + 1),
      el("td", { class: "model" }, swatch(it.model), it.model),
      el("td", { class: "num" }, fmtNum(it.mean, 3)),
      el("td", { class: "interval" }, intervalBar(it)),
      el("td", { class: "num" }, fmtNum(it.judged, 1)),
      el("td", { class: "num" }, ts.calls !== undefined ? ts.calls : "-"),
      el("td", { class: "num" }, typeof ts.success_rate === "number" ? (100 * ts.success_rate).toFixed(1) + "%" : "-"),
      el("td", { class: "num" }, fmtNum(ts.ema_quality, 3)),
      el("td", { class: "num" }, fmtNum(ts.latency_p50_ms, 0) + " / " + fmtNum(ts.latency_p95_ms, 0)),
      el("td", { class: "num" }, fmtCost(it.cost_per_accepted)),
      el("td", {}, notes.join("; "))));
  });
  excluded.forEach((m, i) => {
    const w = r.excluded_why ? r.excluded_why[i] : undefined;
    body.append(el("tr", { class: "degraded" }, el("td", {}, "-"), el("td", { class: "model" }, swatch(m), m),
      el("td", { colspan: "8" }, ""),
      el("td", {}, "excluded: degraded" + (w ? ": " + whyText(w.failures, w.successes, w.threshold) +
        (w.since ? ", since " + fmtTime(w.since) : "") : ""))));
  });
  if (!ranked.length && !excluded.length)
    body.append(el("tr", {}, el("td", { colspan: "11" }, "no model has stats for this task")));
  table.append(body);
  fig.append(table);
  return fig;
}

/* The 95% interval as a bar on [0, 1], the mean as a tick. */
function intervalBar(it) {
  const bar = el("div", { class: "bar", title: "95% interval " + fmtNum(it.lo, 3) + " to " +
    fmtNum(it.hi, 3) + ", mean " + fmtNum(it.mean, 3) });
  if (typeof it.lo === "number" && typeof it.hi === "number") {
    bar.append(el("div", { class: "range", style: "left:" + (100 * it.lo) + "%;width:" +
      (100 * Math.max(it.hi - it.lo, 0.005)) + "%;background:" + color(it.model) }));
  }
  if (typeof it.mean === "number")
    bar.append(el("div", { class: "mean", style: "left:" + (100 * it.mean) + "%" }));
  bar.append(el("span", { class: "lo" }, fmtNum(it.lo, 2)), el("span", { class: "hi" }, fmtNum(it.hi, 2)));
  return bar;
}

/* ---- the history plots of a task ----------------------------------- */

/* The task's series on one time axis: xs, every bucket of the window, and
 * for each series its columns spread over xs (null where it had none: the
 * daemon leaves out the buckets without activity). */
function alignTask(task) {
  const series = ((history && history.series) || []).filter(s => s.task === task && !s.domain);
  const b = history.bucket_s;
  const grid = [];
  for (let t = history.since - history.since % b; t <= history.until && grid.length < 100000; t += b) grid.push(t);
  const xs = [...new Set(grid.concat(series.flatMap(s => s.t)))].sort((a, c) => a - c);
  const at = new Map(xs.map((x, i) => [x, i]));
  const spread = (s, col) => {
    const out = new Array(xs.length).fill(null);
    const v = s[col] || [];
    s.t.forEach((t, i) => { out[at.get(t)] = v[i] === undefined ? null : v[i]; });
    return out;
  };
  return { xs, series, spread };
}

const PLOTS = [
  {
    name: "quality", title: "Quality: posterior mean of success with its 95% band (solid), EMA (dashed)",
    unit: "quality (0 to 1)", range: [0, 1], reads: "posterior mean", fmt: v => v.toFixed(3),
    lines: (s, spread) => [
      { label: s.model + " 95% lo", values: spread(s, "posterior_lo"), band: "lo" },
      { label: s.model + " 95% hi", values: spread(s, "posterior_hi"), band: "hi" },
      { label: s.model + " posterior mean", values: spread(s, "posterior_mean") },
      { label: s.model + " EMA", values: spread(s, "ema"), dash: [4, 4], width: 1.25 },
    ],
  },
  {
    name: "calls", title: "Calls (solid) and failures (dashed) per bucket", unit: "per {bucket}",
    reads: "calls", fmt: v => String(v),
    lines: (s, spread) => [
      { label: s.model + " calls", values: spread(s, "calls"), zero: true },
      { label: s.model + " failures", values: spread(s, "failures"), dash: [6, 4], zero: true },
    ],
  },
  {
    name: "latency", title: "Latency p50 (solid) and p95 (dashed)", unit: "milliseconds",
    reads: "p50 ms", fmt: v => String(Math.round(v)),
    lines: (s, spread) => [
      { label: s.model + " p50", values: spread(s, "latency_p50_ms") },
      { label: s.model + " p95", values: spread(s, "latency_p95_ms"), dash: [6, 4] },
    ],
  },
  {
    name: "cost", title: "Cost per accepted outcome (priced models)", unit: "price units",
    reads: "cost / accepted", fmt: fmtCost,
    empty: "no priced model had an accepted outcome here (prices: [price:MODEL] in the configuration)",
    lines: (s, spread) => {
      const cost = spread(s, "cost"), ok = spread(s, "successes");
      return [{ label: s.model + " cost / accepted",
        values: cost.map((c, i) => (typeof c === "number" && c > 0 && ok[i] > 0 ? c / ok[i] : null)) }];
    },
  },
];

function placeholder(task, plot, text) {
  return el("figure", { class: "plot empty", "data-plot": plot.name, "data-task": task, "data-points": "0" },
    el("figcaption", {}, plot.title), el("div", { class: "nodata" }, text));
}

function chart(task, plot, aligned) {
  const { xs, series, spread } = aligned;
  const data = [xs], opts = [{}], bands = [];
  const main = [];   /* [model, series index] of each model's first line, for the readout */
  let points = 0;
  for (const s of series) {
    const lines = plot.lines(s, spread);
    const drawn = new Array(xs.length).fill(false);
    let lo = -1;
    for (const ln of lines) {
      const idx = data.length;
      ln.values.forEach((v, i) => { if (v !== null && !ln.band) drawn[i] = true; });
      /* A bucket without activity had no call: 0 on the calls plot. */
      data.push(ln.zero ? ln.values.map(v => (v === null ? 0 : v)) : ln.values);
      if (ln.band) {
        opts.push({ label: ln.label, stroke: "transparent", width: 0, points: { show: false } });
        if (ln.band === "lo") lo = idx;
        else bands.push({ series: [idx, lo], fill: color(s.model) + "26" });
      } else {
        if (!main.length || main[main.length - 1][0] !== s.model) main.push([s.model, idx]);
        /* uPlot shows the points of a line only where they are far apart:
         * a line of a few values (one bucket: no line at all) shows them all. */
        const few = data[idx].filter(v => v !== null).length <= 12 ?
          data[idx].flatMap((v, i) => (v === null ? [] : [i])) : null;
        opts.push({ label: ln.label, stroke: color(s.model), width: ln.width || 2, dash: ln.dash, spanGaps: true,
          points: { size: 6, fill: color(s.model), filter: (u, i, show) => (show ? null : few) } });
      }
    }
    points += drawn.filter(Boolean).length;
  }
  if (points === 0)
    return placeholder(task, plot, plot.empty || "nothing recorded in this window");
  const fig = el("figure", { class: "plot", "data-plot": plot.name, "data-task": task,
    "data-points": String(points) }, el("figcaption", {}, plot.title));
  const box = el("div", { class: "chart" });
  const readout = el("div", { class: "readout" }, "Point at the chart to read each model's " + plot.reads + ".");
  fig.append(box, readout);
  /* The values under the cursor, in place of uPlot's legend (too long with
   * several lines a model): the bucket, and each model's first line. */
  const read = u => {
    const i = u.cursor.idx;
    if (i === null || i === undefined) return;
    readout.replaceChildren(fmtTime(xs[i]) + ", " + plot.reads + ":", ...main.map(([m, k]) => el("span", { class: "item" },
      swatch(m), m + " " + (data[k][i] === null ? "-" : plot.fmt(data[k][i])))));
  };
  const unit = plot.unit.replace("{bucket}", fmtDuration(history.bucket_s) + " bucket");
  const pad = plot.range ? null : (u, min, max) => [0, max > 0 ? max * 1.1 : 1];
  const make = () => plots.push([box, new uPlot({
    width: Math.max(box.clientWidth, 300), height: CHART_HEIGHT,
    legend: { show: false },
    cursor: { drag: { x: false, y: false } },
    scales: {
      x: { time: true, range: [D.since, D.until] },
      y: { range: plot.range ? plot.range : pad },
    },
    axes: [
      { label: "time (local)", labelSize: 20, stroke: "#444", grid: { stroke: "#eee" } },
      { label: unit, labelSize: 20, size: 60, stroke: "#444", grid: { stroke: "#eee" },
        values: (u, splits) => splits.map(v => v.toLocaleString("en", { maximumSignificantDigits: 4 })) },
    ],
    series: opts,
    bands,
    hooks: { setCursor: [read] },
  }, data, box)]);
  charts.push(make);
  return fig;
}

function legend(models_) {
  return el("div", { class: "legend" }, ...models_.map(m => el("span", { class: "item" }, swatch(m), m)));
}

function taskSection(task) {
  const sec = el("section", { class: "task", id: "task-" + task }, el("h2", {}, "Task: " + task));
  sec.append(ranking(task));
  const grid = el("div", { class: "plots" });
  if (!history) {
    for (const p of PLOTS) grid.append(placeholder(task, p, "no history from this daemon"));
    sec.append(grid);
    return sec;
  }
  const aligned = alignTask(task);
  sec.append(el("h3", {}, "Over the last " + D.since_arg + " (" + fmtDuration(history.bucket_s) + " buckets)"),
    legend(aligned.series.map(s => s.model)));
  for (const p of PLOTS) grid.append(aligned.series.length ? chart(task, p, aligned) :
    placeholder(task, p, "no activity for this task in this window"));
  sec.append(grid);
  return sec;
}

/* ---- the page -------------------------------------------------------- */

const charts = [];   /* functions that draw a chart once its box is laid out */
const plots = [];    /* [box, uPlot] of each chart drawn, resized with the window */

window.addEventListener("resize", () => {
  for (const [box, u] of plots) u.setSize({ width: Math.max(box.clientWidth, 300), height: CHART_HEIGHT });
});

function main() {
  const root = document.getElementById("report");
  root.append(header(), sidelined());
  if (!history) {
    root.append(el("p", { class: "note" }, (D.history_note || "no history from this daemon") +
      ": the plots over time are empty; the rankings and the sidelined models are the current evidence."));
  }
  const tasks = reportTasks();
  if (!tasks.length) root.append(el("p", { class: "note" }, "The daemon has no evidence yet."));
  for (const t of tasks) root.append(taskSection(t));
  root.append(el("footer", {}, "Made by outcomectl report; charts by uPlot. The data behind this page " +
    "is the JSON in its element #report-data."));
  for (const make of charts) make();
  /* The sections are made here: follow a link such as report.html#task-code now. */
  const target = location.hash ? document.getElementById(decodeURIComponent(location.hash.slice(1))) : null;
  if (target) target.scrollIntoView();
}

try {
  main();
} catch (e) {
  document.body.prepend(el("pre", { class: "error" }, "The report could not be drawn: " + e));
  throw e;
}
