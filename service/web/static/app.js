// fusetrain dashboard: one page, routed by location.hash; data from /api (service/web/api.py).
// Curves are drawn with the vendored uPlot; live points arrive by Server-Sent Events.
"use strict";

const MAX_POINTS = 4000;       // points kept per curve for drawing; beyond, thinned (the last kept)
const REFRESH_MS = 2000;       // tables refresh this often while their page is open
const COLORS = ["#2f6fdb", "#d9534f", "#2e9e5b", "#9b59b6", "#e67e22", "#16a2b8", "#7f8c8d", "#c0392b"];
const FIELDS = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "learning_rate",
                "val_macro_f1", "val_mae", "val_rmse", "val_r2"];   // service/web/views.py CURVE_FIELDS
// A result's scores beyond loss and accuracy, shown when the job has them (class or regression targets).
const SCORES = [["train macro-F1", "train_macro_f1"], ["val macro-F1", "val_macro_f1"], ["train MAE", "train_mae"],
                ["train RMSE", "train_rmse"], ["train R²", "train_r2"], ["val MAE", "val_mae"],
                ["val RMSE", "val_rmse"], ["val R²", "val_r2"]];

const main = document.getElementById("main");
let session = null;            // {owner, auth, csrf}
let cleanup = [];              // what the open page must stop when another opens

// ------------------------------------------------------------------------------ helpers

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

class Unauthorized extends Error {}

async function api(path, options) {
  const response = await fetch(path, Object.assign({credentials: "same-origin"}, options || {}));
  if (response.status === 401) throw new Unauthorized();
  if (!response.ok) throw new Error(`${response.status}: ${await response.text()}`);
  return response.json();
}

function fmt(v, digits) {
  if (v === null || v === undefined) return "–";
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v) && digits === undefined) return v.toLocaleString("en-US");
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(3) : v.toFixed(digits === undefined ? 4 : digits);
}

function duration(job) {
  if (!job.started_at) return "–";
  const end = job.finished_at || Date.now() / 1000;
  const s = Math.max(0, end - job.started_at);
  return s < 60 ? `${s.toFixed(1)} s` : s < 3600 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(2)} h`;
}

function when(t) { return t ? new Date(t * 1000).toLocaleString() : "–"; }

function stateBadge(state) { return el("span", {class: `state ${state}`}, state); }

function progress(job) {
  const pct = job.epochs_total ? Math.min(100, 100 * job.epochs_done / job.epochs_total) : 0;
  return el("span", {}, el("span", {class: "bar"}, el("span", {style: `width:${pct.toFixed(1)}%`})),
            ` ${job.epochs_done}/${job.epochs_total}`);
}

function labelText(labels) { return Object.entries(labels || {}).map(([k, v]) => `${k}=${v}`).join(" "); }

function every(ms, fn) {
  const id = setInterval(fn, ms);
  cleanup.push(() => clearInterval(id));
}

// Thin parallel arrays to about `limit` points, evenly by index, the first and the last kept.
function thin(data, limit) {
  const n = data[0].length;
  if (n <= limit) return data;
  const step = Math.ceil(n / (limit - 1));
  const keep = [];
  for (let i = 0; i < n; i += step) keep.push(i);
  if (keep[keep.length - 1] !== n - 1) keep.push(n - 1);
  return data.map(col => keep.map(i => col[i]));
}

function chart(target, title, series, data, opts) {
  const card = el("div", {class: "card"}, el("h3", {}, title));
  target.append(card);
  const width = Math.max(320, (card.clientWidth || 564) - 24);
  const plot = new uPlot(Object.assign({
    width, height: 240, scales: {x: {time: false}},
    series: [{label: (opts && opts.xLabel) || "epoch"}, ...series.map((s, i) => Object.assign(
      {stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true}, s))],
    axes: [{label: (opts && opts.xLabel) || "epoch"}, {}],
  }, opts || {}), data, card);
  cleanup.push(() => plot.destroy());
  return plot;
}

// ------------------------------------------------------------------------------- pages

function showLogin(failed) {
  main.replaceChildren(el("form", {class: "login", method: "post", action: "/login"},
    el("h1", {}, "Log in"),
    el("p", {class: "muted"}, "Paste the token your fusetrain server gave you (the same one the gRPC client sends)."),
    failed ? el("p", {class: "error"}, "That token is not valid.") : null,
    el("input", {type: "password", name: "token", id: "token", placeholder: "token", autocomplete: "current-password"}),
    el("button", {type: "submit", id: "login"}, "Log in")));
}

async function jobsPage(params) {
  const state = params.get("state") || "";
  const label = params.get("label") || "";
  const pages = [""];             // page tokens of the pages seen, for "previous"
  const states = ["", "QUEUED", "RUNNING", "CANCELLING", "SUCCEEDED", "FAILED", "CANCELLED"];
  const stateSelect = el("select", {id: "filter-state"}, states.map(s =>
    el("option", {value: s, selected: s === state}, s || "any state")));
  const labelInput = el("input", {id: "filter-label", placeholder: "label key=value", value: label});
  const apply = () => {
    const q = new URLSearchParams();
    if (stateSelect.value) q.set("state", stateSelect.value);
    if (labelInput.value.trim()) q.set("label", labelInput.value.trim());
    location.hash = `#/jobs?${q}`;
  };
  stateSelect.addEventListener("change", apply);
  labelInput.addEventListener("keydown", e => { if (e.key === "Enter") apply(); });
  const body = el("tbody");
  const prev = el("button", {id: "prev", disabled: true}, "← newer");
  const next = el("button", {id: "next", disabled: true}, "older →");
  const count = el("span", {class: "muted", id: "jobs-count"});
  main.replaceChildren(el("h1", {}, "Jobs"),
    el("div", {class: "filters"}, stateSelect, labelInput, el("button", {onclick: apply}, "Filter")),
    el("table", {id: "jobs-table"}, el("thead", {}, el("tr", {},
      ["State", "Name", "Labels", "Progress", "Metric", "Time", "Batch", "Id"].map(h =>
        el("th", {class: h === "Metric" ? "num" : null}, h)))), body),
    el("div", {class: "pager"}, prev, next, count));

  async function load() {
    const q = new URLSearchParams({size: "50"});
    if (state) q.append("state", state);
    if (label) q.append("label", label);
    if (pages[pages.length - 1]) q.set("page", pages[pages.length - 1]);
    const data = await api(`/api/jobs?${q}`);
    body.replaceChildren(...data.jobs.map(job => el("tr", {"data-job": job.id},
      el("td", {}, stateBadge(job.state)),
      el("td", {}, el("a", {href: `#/job/${job.id}`}, job.name || "(unnamed)")),
      el("td", {class: "muted"}, labelText(job.labels)),
      el("td", {}, progress(job)),
      el("td", {class: "num", title: job.metric ? job.metric.name : ""},
         job.metric ? `${fmt(job.metric.value, 4)} ${job.metric.name.replace("_", " ")}` : "–"),
      el("td", {}, duration(job)),
      el("td", {}, job.batch_id ? el("a", {href: `#/batch/${job.batch_id}`}, job.batch_id.slice(6, 14)) : ""),
      el("td", {class: "muted"}, job.id))));
    count.textContent = `${data.jobs.length} on this page`;
    next.disabled = !data.next;
    prev.disabled = pages.length < 2;
    next.onclick = () => { pages.push(data.next); load(); };
    prev.onclick = () => { pages.pop(); load(); };
  }
  await load();
  every(REFRESH_MS, () => load().catch(() => {}));
}

function dl(pairs) {
  return el("dl", {}, pairs.flatMap(([k, v, id]) => [el("dt", {}, k), el("dd", {id}, v)]));
}

async function jobPage(id) {
  const job = await api(`/api/jobs/${encodeURIComponent(id)}`);
  const curve = await api(`/api/jobs/${encodeURIComponent(id)}/curve?points=${MAX_POINTS}`);
  const data = FIELDS.map((f, i) => curve.points.map(p => p[i]));
  const stateEl = el("span", {id: "job-state"}, stateBadge(job.state));
  const pointsEl = el("span", {id: "points", "data-count": String(data[0].length)}, `${data[0].length} epochs`);
  const cancel = el("button", {id: "cancel", class: "danger", disabled: !["QUEUED", "RUNNING"].includes(job.state)},
                    "Cancel");
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      const r = await api(`/api/jobs/${encodeURIComponent(id)}/cancel`,
                          {method: "POST", headers: {"X-CSRF-Token": session.csrf}});
      stateEl.replaceChildren(stateBadge(r.state));
    } catch (err) {
      cancel.disabled = false;
      document.getElementById("job-message").textContent = `cancel failed: ${err.message || err}`;
    }
  });
  const downloads = ["npz", "safetensors", "onnx"].map(f => el("a", {class: "button", id: `download-${f}`,
    href: `/api/jobs/${encodeURIComponent(id)}/model.${f}`, download: `${id}.${f}`,
    hidden: !job.has_result}, `Download ${f}`));
  const charts = el("div", {class: "grid", id: "charts"});
  const r = job.result;
  main.replaceChildren(
    el("h1", {}, job.name || "(unnamed job)", " ", stateEl),
    el("div", {class: "actions"}, cancel, ...downloads, pointsEl,
       job.batch_id ? el("a", {href: `#/batch/${job.batch_id}`}, "its batch") : null),
    el("p", {class: "muted", id: "job-message"}, job.message || ""),
    charts,
    el("div", {class: "grid"},
      el("div", {class: "card"}, el("h3", {}, "Job"), dl([
        ["id", job.id], ["labels", labelText(job.labels) || "–"], ["attempt", job.attempt],
        ["created", when(job.created_at)], ["started", when(job.started_at)], ["finished", when(job.finished_at)],
        ["failure", job.failure_reason === "FAILURE_REASON_UNSPECIFIED" ? "–" : job.failure_reason]])),
      el("div", {class: "card", id: "result"}, el("h3", {}, "Result"), r ? dl([
        ["stop reason", r.stop_reason], ["epochs run", r.epochs_run], ["best epoch", r.best_epoch || "–"],
        ["train loss", fmt(r.final.train_loss)], ["train accuracy", fmt(r.final.train_accuracy)],
        ["val loss", fmt(r.final.val_loss)], ["val accuracy", fmt(r.final.val_accuracy)],
        ...SCORES.filter(([, k]) => r.final[k] !== null && r.final[k] !== undefined).map(([t, k]) => [t, fmt(r.final[k])]),
        ["queued", `${fmt(r.timings.queued, 3)} s`], ["compile", `${fmt(r.timings.compile, 3)} s`],
        ["train", `${fmt(r.timings.train, 3)} s`], ["total", `${fmt(r.timings.total, 3)} s`],
        ["dtype", r.dtype], ["BLAS", r.blas_kernel || "–"], ["weights sha256", r.weights_sha256, "sha256"]])
        : el("p", {class: "muted"}, "No result yet."))),
    el("h2", {}, "Spec"), el("pre", {id: "spec"}, job.spec_yaml));

  const hasAcc = data[2].some(v => v !== null) || data[4].some(v => v !== null);
  const loss = chart(charts, "Loss", [{label: "train loss"}, {label: "val loss"}], [data[0], data[1], data[3]]);
  const acc = hasAcc ? chart(charts, "Accuracy", [{label: "train accuracy"}, {label: "val accuracy"}],
                             [data[0], data[2], data[4]]) : null;
  const lr = chart(charts, "Learning rate", [{label: "learning rate"}], [data[0], data[5]]);
  // The validation rows' scores: macro-F1 for class targets, MAE, RMSE and R² for regression targets.
  const has = i => data[i].some(v => v !== null);
  const cols = has(6) ? [6] : [7, 8, 9].filter(has);
  const scores = cols.length ? chart(charts, has(6) ? "Validation macro-F1" : "Validation MAE, RMSE and R²",
                                     cols.map(i => ({label: FIELDS[i].replace("val_", "val ")})),
                                     [data[0], ...cols.map(i => data[i])]) : null;
  let shown = data;
  function redraw() {
    shown = thin(shown, MAX_POINTS);
    loss.setData([shown[0], shown[1], shown[3]]);
    if (acc) acc.setData([shown[0], shown[2], shown[4]]);
    lr.setData([shown[0], shown[5]]);
    if (scores) scores.setData([shown[0], ...cols.map(i => shown[i])]);
    pointsEl.dataset.count = String(shown[0].length);
    pointsEl.dataset.last = String(shown[0][shown[0].length - 1] || 0);
    pointsEl.textContent = `${shown[0][shown[0].length - 1] || 0} epochs`;
  }
  redraw();
  if (["QUEUED", "RUNNING", "CANCELLING"].includes(curve.state)) {
    const source = new EventSource(`/api/jobs/${encodeURIComponent(id)}/events?after=${curve.after}`);
    cleanup.push(() => source.close());
    source.addEventListener("points", e => {
      for (const p of JSON.parse(e.data)) FIELDS.forEach((_, i) => shown[i].push(p[i]));
      redraw();
    });
    source.addEventListener("state", e => {
      const s = JSON.parse(e.data);
      stateEl.replaceChildren(stateBadge(s.state));
      document.getElementById("job-message").textContent = s.message || "";
      cancel.disabled = !["QUEUED", "RUNNING"].includes(s.state);
    });
    source.addEventListener("end", () => {
      source.close();
      setTimeout(() => { if (location.hash === `#/job/${id}`) route(); }, 300);   // the result, downloads
    });
  }
}

function sortable(table, rows, columns, render) {
  let key = null, dir = 1;
  const body = el("tbody");
  const head = el("tr", {}, columns.map(c => {
    const th = el("th", {class: `sortable ${c.num ? "num" : ""}`, "data-key": c.key}, c.label);
    th.addEventListener("click", () => {
      dir = key === c.key ? -dir : 1;
      key = c.key;
      head.querySelectorAll("th").forEach(h => h.classList.remove("sorted-asc", "sorted-desc"));
      th.classList.add(dir > 0 ? "sorted-asc" : "sorted-desc");
      draw();
    });
    return th;
  }));
  function draw() {
    const sorted = key === null ? rows : [...rows].sort((a, b) => {
      const x = columns.find(c => c.key === key).value(a), y = columns.find(c => c.key === key).value(b);
      if (x === y) return 0;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * dir;
    });
    body.replaceChildren(...sorted.map(render));
  }
  table.append(el("thead", {}, head), body);
  draw();
}

async function batchPage(id) {
  const b = await api(`/api/batches/${encodeURIComponent(id)}`);
  const metrics = ["train_loss", "train_accuracy", "val_loss", "val_accuracy"].filter(m => b.stats[m]);
  const columns = [
    {key: "state", label: "State", value: j => j.state},
    {key: "name", label: "Name", value: j => j.name},
    ...b.fields.map(f => ({key: `f:${f}`, label: f, num: true, value: j => j.fields[f]})),
    ...metrics.map(m => ({key: m, label: m.replace("_", " "), num: true, value: j => j.latest ? j.latest[m] : null})),
  ];
  const table = el("table", {id: "batch-table"});
  sortable(table, b.jobs, columns, j => el("tr", {"data-job": j.id},
    el("td", {}, stateBadge(j.state)), el("td", {}, el("a", {href: `#/job/${j.id}`}, j.name || j.id)),
    ...b.fields.map(f => el("td", {class: "num"}, fmt(j.fields[f]))),
    ...metrics.map(m => el("td", {class: "num", "data-key": m}, fmt(j.latest ? j.latest[m] : null)))));
  const summary = el("table", {id: "batch-stats"}, el("thead", {}, el("tr", {},
    el("th", {}, "metric"), el("th", {class: "num"}, "mean"), el("th", {class: "num"}, "std"),
    el("th", {class: "num"}, "runs"))), el("tbody", {}, metrics.map(m => el("tr", {class: "summary", "data-metric": m},
      el("td", {}, m.replace("_", " ")), el("td", {class: "num mean"}, fmt(b.stats[m].mean)),
      el("td", {class: "num"}, fmt(b.stats[m].std)), el("td", {class: "num"}, b.stats[m].n)))));
  const plots = el("div", {class: "grid", id: "batch-plots"});
  main.replaceChildren(el("h1", {}, `Batch ${id}`),
    el("p", {class: "muted"}, `${b.jobs.length} runs`, b.folds ? ` · cross-validation over ${b.folds}` : "",
       b.fields.length ? ` · swept: ${b.fields.join(", ")}` : ""),
    table, el("h2", {}, "Mean and spread"), summary, plots);
  const metric = metrics.includes("val_loss") ? "val_loss" : metrics[0];
  if (!metric) return;
  const noLine = {paths: () => null, points: {show: true, size: 8}};
  for (const f of b.fields) {
    const pts = b.jobs.filter(j => typeof j.fields[f] === "number" && j.latest && j.latest[metric] !== null)
      .map(j => [j.fields[f], j.latest[metric]]).sort((p, q) => p[0] - q[0]);
    if (!pts.length) continue;
    chart(plots, `${metric.replace("_", " ")} against ${f}${f === b.folds ? " (the folds' spread)" : ""}`,
          [Object.assign({label: metric}, noLine)], [pts.map(p => p[0]), pts.map(p => p[1])], {xLabel: f});
  }
  const runs = Object.entries(b.curves);
  if (runs.length) {
    const epochs = [...new Set(runs.flatMap(([, pts]) => pts.map(p => p[0])))].sort((x, y) => x - y);
    const col = FIELDS.indexOf(metric.startsWith("val") && runs.some(([, p]) => p.some(q => q[3] !== null))
                               ? metric : "train_loss");
    const series = runs.map(([jid]) => {
      const job = b.jobs.find(j => j.id === jid) || {fields: {}};
      const swept = b.fields.map(f => `${f.split(".").pop()}=${fmt(job.fields[f])}`).join(" ");
      return {label: swept || job.name || jid};
    });
    const data = [epochs, ...runs.map(([, pts]) => {
      const by = new Map(pts.map(p => [p[0], p[col]]));
      return epochs.map(e => by.has(e) ? by.get(e) : null);
    })];
    chart(plots, `${FIELDS[col].replace("_", " ")} of ${runs.length} runs overlaid`, series, data);
  }
}

async function datasetsPage() {
  const d = await api("/api/datasets");
  main.replaceChildren(el("h1", {}, "Datasets"), el("table", {id: "datasets-table"},
    el("thead", {}, el("tr", {}, ["Name", "Arrays", "Size", "Uploaded", "Used by", "Id"].map(h => el("th", {}, h)))),
    el("tbody", {}, d.datasets.map(ds => el("tr", {"data-dataset": ds.id},
      el("td", {}, ds.name), el("td", {}, ds.arrays.map(a => `${a.name} ${a.dtype} (${a.shape.join("×")})`).join(", ")),
      el("td", {class: "num"}, `${(ds.size_bytes / 1024).toFixed(1)} KiB`), el("td", {}, when(ds.created_at)),
      el("td", {}, ds.jobs.length ? ds.jobs.map(j => el("a", {href: `#/job/${j.id}`, style: "margin-right:6px"},
                                                       j.name || j.id.slice(0, 8))) : "–"),
      el("td", {class: "muted"}, ds.id.slice(0, 16) + "…"))))));
  if (!d.datasets.length) main.append(el("p", {class: "muted"}, "No datasets uploaded yet."));
}

async function serverPage() {
  await drawServer();
  every(REFRESH_MS * 2, () => drawServer().catch(() => {}));
}

async function drawServer() {
  const s = await api("/api/server");
  const limits = Object.entries(s.limits || {});
  main.replaceChildren(el("h1", {}, "Server"),
    el("div", {class: "grid"},
      el("div", {class: "card"}, el("h3", {}, "Workers and queue"), dl([
        ["version", s.version], ["executor", s.executor], ["workers", s.workers, "workers"],
        ["threads per worker", s.threads_per_worker], ["running", s.running, "running"],
        ["queue depth", Object.entries(s.queue_depth).map(([p, n]) => `priority ${p}: ${n}`).join(", ") || "0",
         "queue-depth"],
        ...Object.entries(s.jobs_by_state).map(([k, v]) => [`jobs ${k}`, v])])),
      el("div", {class: "card"}, el("h3", {}, "Kernels"), el("table", {id: "kernels"},
        el("thead", {}, el("tr", {}, ["dtype", "state", "workers ready", "seconds"].map(h => el("th", {}, h)))),
        el("tbody", {}, (s.kernels || []).map(k => el("tr", {}, el("td", {}, k.dtype), el("td", {}, k.state),
          el("td", {class: "num"}, k.workers_ready || 0), el("td", {class: "num"}, fmt(k.seconds || 0, 2)))))))),
    el("h2", {}, "Limits"), el("table", {id: "limits"}, el("tbody", {}, limits.map(([k, v]) =>
      el("tr", {}, el("td", {}, k), el("td", {class: "num"}, fmt(Number(v))))))));
}

// ------------------------------------------------------------------------------ router

async function route() {
  cleanup.forEach(fn => fn());
  cleanup = [];
  const [path, query] = (location.hash.slice(1) || "/jobs").split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean);
  document.querySelectorAll("nav a").forEach(a => a.classList.toggle("active", a.dataset.page === parts[0]));
  try {
    if (parts[0] === "login") return showLogin(params.has("failed"));
    if (session === null) {
      session = await api("/api/session");
      document.getElementById("who").textContent = session.auth ? `owner: ${session.owner}` : "";
    }
    if (parts[0] === "job" && parts[1]) await jobPage(decodeURIComponent(parts[1]));
    else if (parts[0] === "batch" && parts[1]) await batchPage(decodeURIComponent(parts[1]));
    else if (parts[0] === "datasets") await datasetsPage();
    else if (parts[0] === "server") await serverPage();
    else await jobsPage(params);
    document.body.dataset.ready = path;
  } catch (err) {
    if (err instanceof Unauthorized) { session = null; showLogin(false); return; }
    main.replaceChildren(el("p", {class: "error", id: "error"}, String(err.message || err)));
  }
}

window.addEventListener("hashchange", route);
route();
