// The page of `evol view`: episode table, one episode as a conversation, two files side by side
// on one task, and a run's learning curve and phase timings. Episodes are untrusted: every
// string from the API goes into the page as textContent (never innerHTML); images only as
// data:image URLs. Pages: #/ (home), #/episode?file&id, #/compare?a&b&env&task.
"use strict";

const POLL_MS = 2000; // how often a page asks for what a running writer appended
const PAGE_SIZE = 50;
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];
const IMAGE_URL = /^data:image\/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]+$/;
const SVG_NS = "http://www.w3.org/2000/svg";

const view = { source: null, refresh: null, busy: false, table: null };

// ---- small helpers --------------------------------------------------------------------------
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "text") node.textContent = value;
    else if (key === "className") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function svgEl(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function hashLink(route, params, text) {
  return el("a", { href: "#/" + route + "?" + new URLSearchParams(params).toString(), text });
}

function token() {
  return sessionStorage.getItem("evolToken") || "";
}

function setStatus(text, isError = false) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.className = isError ? "error" : "";
}

async function api(path, params = {}) {
  const url = new URL("api/" + path, document.baseURI);
  for (const [key, value] of Object.entries(params)) {
    if (value !== "" && value !== null && value !== undefined) url.searchParams.set(key, value);
  }
  const headers = token() ? { Authorization: "Bearer " + token() } : {};
  const response = await fetch(url, { headers });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = (body.error && body.error.message) || response.statusText;
    throw new Error(response.status + ": " + message);
  }
  return body;
}

function taskLabel(key) {
  // The canonical task JSON ({"options": {...}, "seed": n}) as "seed n · task k · split s".
  let task;
  try {
    task = JSON.parse(key);
  } catch {
    return key;
  }
  if (!task || typeof task !== "object") return String(key);
  const parts = [];
  const add = (name, value) => {
    if (value === null || value === undefined) return;
    parts.push(name + " " + (typeof value === "object" ? JSON.stringify(value) : value));
  };
  add("seed", task.seed);
  for (const [name, value] of Object.entries(task.options || {})) add(name, value);
  for (const [name, value] of Object.entries(task)) if (name !== "seed" && name !== "options") add(name, value);
  return parts.join(" · ") || "(no task)";
}

function number(value, digits = 3) {
  return typeof value === "number" ? String(Number(value.toFixed(digits))) : "";
}

function outcomeCell(success) {
  return el("td", { className: success ? "ok" : "fail", text: success ? "✓ yes" : "✗ no" });
}

// ---- the episode table ----------------------------------------------------------------------
function refreshOptions(box, options) {
  const current = Array.from(box.options, (option) => option.value);
  if (JSON.stringify(current) === JSON.stringify(options.map(([value]) => value))) return;
  const chosen = box.value;
  box.replaceChildren(...options.map(([value, text]) => el("option", { value, text })));
  box.value = chosen;
}

function episodeTable(file, facets) {
  const query = { env: "", agent: "", success: "", error: "", sort: "line", order: "asc", offset: 0 };
  const counts = el("span", { className: "muted", id: "episode-count" });
  const body = el("tbody");
  const select = (id, label, options, key) => {
    const box = el("select", { id });
    for (const [value, text] of options) box.append(el("option", { value, text }));
    box.addEventListener("change", () => {
      query[key] = box.value;
      query.offset = 0;
      load();
    });
    return el("label", {}, label, box);
  };
  const facetOptions = (values) => [["", "any"], ...values.map((v) => [v, v || "(none)"])];
  const errorBox = el("input", { id: "filter-error", type: "search", placeholder: "text in error" });
  let typing = null;
  errorBox.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => {
      query.error = errorBox.value;
      query.offset = 0;
      load();
    }, 250);
  });
  const controls = el(
    "div",
    { className: "controls" },
    select("filter-env", "env", facetOptions(facets.envs), "env"),
    select("filter-agent", "agent", facetOptions(facets.agents), "agent"),
    select("filter-success", "success", [["", "any"], ["true", "yes"], ["false", "no"]], "success"),
    el("label", {}, "error", errorBox),
    select("sort", "sort", [["line", "file order"], ["reward", "reward"], ["turns", "turns"], ["task", "task"]], "sort"),
    select("order", "order", [["asc", "ascending"], ["desc", "descending"]], "order"),
  );
  const header = el("tr");
  for (const [name, sortKey] of [["#", "line"], ["env"], ["task", "task"], ["success"], ["reward", "reward"],
    ["turns", "turns"], ["agent"], ["error"]]) {
    const th = el("th", { text: name });
    if (sortKey) {
      th.className = "sortable";
      th.addEventListener("click", () => {
        query.order = query.sort === sortKey && query.order === "asc" ? "desc" : "asc";
        query.sort = sortKey;
        controls.querySelector("#sort").value = sortKey;
        controls.querySelector("#order").value = query.order;
        load();
      });
    }
    header.append(th);
  }
  const previous = el("button", { id: "page-previous", text: "← previous", type: "button" });
  const next = el("button", { id: "page-next", text: "next →", type: "button" });
  previous.addEventListener("click", () => {
    query.offset = Math.max(0, query.offset - PAGE_SIZE);
    load();
  });
  next.addEventListener("click", () => {
    query.offset += PAGE_SIZE;
    load();
  });
  let shown = "";
  let asked = 0; // the latest request: an older answer arriving late is dropped

  async function load() {
    const mine = ++asked;
    const answer = await api("episodes", { file, ...query, limit: PAGE_SIZE });
    if (mine !== asked) return;
    const fingerprint = JSON.stringify([answer.matched, answer.offset, answer.rows.map((e) => e.id)]);
    counts.textContent = `${answer.matched} shown of ${answer.episodes} episodes` +
      (answer.bad_lines ? ` · ${answer.bad_lines} bad lines skipped` : "") +
      (answer.torn_bytes ? " · a last line still being written" : "");
    previous.disabled = query.offset === 0;
    next.disabled = query.offset + PAGE_SIZE >= answer.matched;
    // A growing file may bring envs or agents the menus have not listed yet.
    refreshOptions(controls.querySelector("#filter-env"), facetOptions(answer.envs));
    refreshOptions(controls.querySelector("#filter-agent"), facetOptions(answer.agents));
    if (fingerprint === shown) return;
    shown = fingerprint;
    body.replaceChildren(...answer.rows.map((row) => {
      const tr = el("tr", { "data-id": row.id });
      tr.append(
        el("td", {}, hashLink("episode", { file, id: row.id }, String(row.id))),
        el("td", { text: row.env }),
        el("td", { text: taskLabel(row.task) }),
        outcomeCell(row.success),
        el("td", { className: "num", text: number(row.reward) }),
        el("td", { className: "num", text: String(row.turns) }),
        el("td", { text: row.agent }),
        el("td", { className: "error", text: row.error || "" }),
      );
      tr.addEventListener("click", (event) => {
        if (event.target.tagName !== "A") location.hash = "#/episode?" + new URLSearchParams({ file, id: row.id });
      });
      return tr;
    }));
  }

  const node = el("div", { className: "episode-table" }, controls,
    el("table", { id: "episodes" }, el("thead", {}, header), body),
    el("div", { className: "pager" }, previous, next, counts));
  return { node, load };
}

// ---- one episode ------------------------------------------------------------------------------
function imageNode(url) {
  if (typeof url !== "string" || !IMAGE_URL.test(url)) return el("div", { className: "muted", text: "[image not shown]" });
  return el("img", { src: url, alt: "observation image" });
}

function contentNode(content) {
  const box = el("div", { className: "content" });
  const parts = Array.isArray(content) ? content : [content];
  for (const part of parts) {
    if (typeof part === "string") {
      box.append(IMAGE_URL.test(part) ? imageNode(part) : el("div", { className: "text", text: part }));
    } else if (part && part.type === "text") {
      box.append(el("div", { className: "text", text: String(part.text ?? "") }));
    } else if (part && part.type === "image_url") {
      const url = part.image_url && typeof part.image_url === "object" ? part.image_url.url : part.image_url;
      box.append(imageNode(url));
    } else if (part && part.type === "image") {
      box.append(imageNode(part.image ?? part.url));
    } else {
      box.append(el("div", { className: "text", text: JSON.stringify(part) }));
    }
  }
  return box;
}

function conversation(episode) {
  const node = el("div", { className: "conversation" });
  const rewards = Array.isArray(episode.rewards) ? episode.rewards : [];
  const actions = Array.isArray(episode.actions) ? episode.actions : [];
  let step = 0;
  for (const message of Array.isArray(episode.messages) ? episode.messages : []) {
    const role = ["system", "user", "assistant"].includes(message && message.role) ? message.role : "other";
    const head = el("div", { className: "role", text: role === "other" ? String(message && message.role) : role });
    const box = el("div", { className: "msg " + role }, head, contentNode(message ? message.content : ""));
    if (role === "assistant") {
      if (step < rewards.length) {
        head.append(el("span", { className: "reward", text: `step ${step + 1} · reward ${number(rewards[step])}` }));
      }
      if (step < actions.length && actions[step] !== message.content) {
        box.append(el("div", { className: "sent", text: "sent to the env: " + actions[step] }));
      }
      step += 1;
    }
    node.append(box);
  }
  return node;
}

function summaryList(episode) {
  const list = el("dl", { className: "summary" });
  const add = (name, value, className = "") => {
    if (value === null || value === undefined || value === "") return;
    list.append(el("dt", { text: name }),
      el("dd", { className, text: typeof value === "object" ? JSON.stringify(value) : String(value) }));
  };
  add("env", episode.env);
  add("task", taskLabel(JSON.stringify(episode.task ?? null)));
  add("success", episode.success ? "yes" : "no", episode.success ? "ok" : "fail");
  add("reward", episode.reward);
  add("turns", episode.turns);
  add("truncated", episode.truncated ? "yes" : null);
  add("agent", episode.agent);
  add("fault", episode.fault, "error-text");
  add("error", episode.error, "error-text");
  add("outcome", episode.outcome && Object.keys(episode.outcome).length ? episode.outcome : null);
  add("timing", episode.timing && Object.keys(episode.timing).length ? episode.timing : null);
  return list;
}

async function showEpisode(params) {
  const file = params.get("file") || "";
  const id = Number(params.get("id"));
  const answer = await api("episode", { file, id: params.get("id") });
  const nav = el("div", { className: "controls" },
    id > 0 ? hashLink("episode", { file, id: id - 1 }, "← previous episode") : null,
    hashLink("episode", { file, id: id + 1 }, "next episode →"),
    el("a", { href: "#/", text: "back to the list" }));
  document.getElementById("main").replaceChildren(
    el("section", {}, el("h2", { text: `Episode ${id} of ${file || view.source.name}` }), nav, summaryList(answer.episode)),
    el("section", {}, el("h2", { text: "Conversation" }), conversation(answer.episode)));
}

// ---- side by side -------------------------------------------------------------------------------
async function showCompare(params) {
  const files = view.source.files.map((f) => f.file);
  const stages = files.filter((name) => name.startsWith("eval/")); // by default: the first and last evaluations
  const choices = stages.length > 1 ? stages : files;
  const a = params.get("a") || choices[0] || "";
  const b = params.get("b") || choices[choices.length - 1] || "";
  const only = params.get("only") || "all";
  const go = (changes) => {
    location.hash = "#/compare?" + new URLSearchParams({ a, b, only, ...changes });
  };
  const picker = (id, value, side) => {
    const box = el("select", { id });
    for (const f of view.source.files) box.append(el("option", { value: f.file, text: f.label }));
    box.value = value;
    box.addEventListener("change", () => go({ [side]: box.value }));
    return box;
  };
  const differ = el("input", { type: "checkbox", id: "only-differ" });
  differ.checked = only === "differ";
  differ.addEventListener("change", () => go({ only: differ.checked ? "differ" : "all" }));
  const controls = el("div", { className: "controls" }, el("label", {}, "left", picker("compare-a", a, "a")),
    el("label", {}, "right", picker("compare-b", b, "b")), el("label", {}, differ, "only tasks whose outcome differs"));
  const sections = [el("section", {}, el("h2", { text: "Two stages side by side" }), controls)];
  if (params.get("task") !== null) {
    const answer = await api("compare", { a, b, env: params.get("env"), task: params.get("task") });
    const column = (file, episodes) => el("div", { className: "side" },
      el("h2", { text: `${file} · ${episodes.length} episode(s)` }),
      ...episodes.map((item) => el("div", {}, summaryList(item.episode), conversation(item.episode))));
    sections.push(el("section", {}, el("h2", { text: `${answer.env} · ${taskLabel(answer.task)}` }),
      el("div", { className: "side-by-side", id: "side-by-side" }, column(a, answer.a), column(b, answer.b))));
  }
  const tasks = await api("tasks", { a, b, only });
  const rows = tasks.tasks.map((t) => el("tr", {},
    el("td", { text: t.env }),
    el("td", {}, hashLink("compare", { a, b, only, env: t.env, task: t.task }, taskLabel(t.task))),
    el("td", { text: `${t.a[1]}/${t.a[0]}` }), el("td", { text: `${t.b[1]}/${t.b[0]}` })));
  sections.push(el("section", {}, el("h2", { text: `Shared tasks (${tasks.matched}${tasks.matched > tasks.tasks.length ? `, the first ${tasks.tasks.length} listed` : ""})` }),
    el("table", { id: "shared-tasks" }, el("thead", {}, el("tr", {}, el("th", { text: "env" }), el("th", { text: "task" }),
      el("th", { text: "left: successes" }), el("th", { text: "right: successes" }))), el("tbody", {}, ...rows))));
  document.getElementById("main").replaceChildren(...sections);
}

// ---- a run: learning curve and phases -----------------------------------------------------------
function learningCurve(rows) {
  const stages = [];
  const envs = [];
  const values = new Map(); // env -> stage -> success rate
  for (const row of rows) {
    if (typeof row.success_rate !== "number" || typeof row.stage !== "string") continue;
    const env = String(row.env ?? "");
    if (!stages.includes(row.stage)) stages.push(row.stage);
    if (!envs.includes(env)) envs.push(env);
    if (!values.has(env)) values.set(env, new Map());
    values.get(env).set(row.stage, row.success_rate);
  }
  const box = el("div", { className: "chart", id: "learning-curve" });
  if (!stages.length) {
    box.append(el("p", { className: "muted", text: "No evaluation yet: the curve appears with the first success_rate row of metrics.jsonl." }));
    return box;
  }
  const width = 760, height = 300, left = 52, right = 20, top = 16, bottom = 46;
  const x = (i) => left + (stages.length === 1 ? (width - left - right) / 2 : (i * (width - left - right)) / (stages.length - 1));
  const y = (rate) => top + (1 - rate) * (height - top - bottom);
  const chart = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, role: "img" });
  chart.append(svgEl("title", {}, "held-out success per env and stage"));
  for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
    chart.append(svgEl("line", { x1: left, x2: width - right, y1: y(tick), y2: y(tick), class: "grid" }));
    chart.append(svgEl("text", { x: left - 8, y: y(tick) + 4, "text-anchor": "end" }, `${tick * 100}%`));
  }
  chart.append(svgEl("line", { x1: left, x2: left, y1: top, y2: height - bottom, class: "axis" }));
  stages.forEach((stage, i) => chart.append(svgEl("text", { x: x(i), y: height - bottom + 18, "text-anchor": "middle", class: "stage" }, stage)));
  chart.append(svgEl("text", { x: (left + width) / 2, y: height - 6, "text-anchor": "middle" }, "stage"));
  const legend = el("div", { className: "legend" });
  envs.forEach((env, k) => {
    const color = COLORS[k % COLORS.length];
    const points = stages.map((stage, i) => [i, values.get(env).get(stage)]).filter(([, v]) => typeof v === "number");
    chart.append(svgEl("polyline", { points: points.map(([i, v]) => `${x(i)},${y(v)}`).join(" "), fill: "none", stroke: color, "stroke-width": 2 }));
    for (const [i, v] of points) {
      const dot = svgEl("circle", { cx: x(i), cy: y(v), r: 4, fill: color, class: "point", "data-stage": stages[i], "data-env": env });
      dot.append(svgEl("title", {}, `${env} · ${stages[i]}: ${(v * 100).toFixed(1)}%`));
      chart.append(dot);
    }
    const swatch = el("span", { className: "swatch" });
    swatch.style.background = color;
    legend.append(el("span", {}, swatch, env));
  });
  box.append(chart, legend);
  return box;
}

function phaseTable(rows, state) {
  const phases = rows.filter((row) => typeof row.phase === "string" && typeof row.seconds === "number");
  const done = state && Array.isArray(state.done) ? state.done : [];
  const table = el("table", { id: "phases" },
    el("thead", {}, el("tr", {}, el("th", { text: "phase" }), el("th", { text: "seconds" }), el("th", { text: "share" }))));
  const total = phases.reduce((sum, row) => sum + row.seconds, 0);
  const body = el("tbody", {}, ...phases.map((row) => el("tr", {}, el("td", { text: row.phase }),
    el("td", { className: "num", text: row.seconds.toFixed(1) }),
    el("td", { className: "num", text: total ? `${((100 * row.seconds) / total).toFixed(0)}%` : "" }))));
  body.append(el("tr", {}, el("th", { text: "total" }), el("th", { className: "num", text: total.toFixed(1) }), el("th")));
  table.append(body);
  return el("div", {}, table, el("p", { className: "muted", text: `${done.length} phase(s) finished (state.json)` }));
}

function trainingTable(rows) {
  // The learn phases' rows of metrics.jsonl: {"stage", "examples", "tokens", "train_s", "losses"}.
  const trained = rows.filter((row) => typeof row.train_s === "number");
  if (!trained.length) return null;
  const cell = (value) => el("td", { className: "num", text: typeof value === "number" ? number(value) : "" });
  return el("table", { id: "training" },
    el("thead", {}, el("tr", {}, ...["training", "examples", "tokens", "seconds", "last loss"].map((t) => el("th", { text: t })))),
    el("tbody", {}, ...trained.map((row) => el("tr", {}, el("td", { text: String(row.stage ?? "") }), cell(row.examples),
      cell(row.tokens), cell(row.train_s), cell(Array.isArray(row.losses) ? row.losses[row.losses.length - 1] : null)))));
}

function filesTable(files, chosen, pick) {
  const rows = files.map((f) => {
    const link = el("a", { href: "#/", text: f.label });
    link.addEventListener("click", (event) => {
      event.preventDefault();
      pick(f.file);
    });
    return el("tr", { className: f.file === chosen ? "chosen" : "", "data-file": f.file },
      el("td", {}, link), el("td", { className: "num", text: String(f.episodes) }),
      el("td", { className: "num", text: f.episodes ? `${((100 * f.successes) / f.episodes).toFixed(1)}%` : "" }),
      el("td", { className: "num", text: f.bad_lines ? String(f.bad_lines) : "" }));
  });
  return el("table", { id: "files" }, el("thead", {}, el("tr", {}, el("th", { text: "trajectories" }),
    el("th", { text: "episodes" }), el("th", { text: "success" }), el("th", { text: "bad lines" }))), el("tbody", {}, ...rows));
}

async function showHome() {
  const main = document.getElementById("main");
  const source = view.source;
  if (!source.files.length) {
    main.replaceChildren(el("section", {}, el("p", { className: "muted", text: "No trajectory files yet." })));
  }
  let file = sessionStorage.getItem("evolFile");
  if (!source.files.some((f) => f.file === file)) file = source.files.length ? source.files[0].file : null;
  const tableSection = el("section", {});
  const runSections = source.kind === "run" ? [el("section", { id: "curve-section" }), el("section", { id: "phase-section" }), el("section", { id: "files-section" })] : [];
  main.replaceChildren(...runSections, tableSection);

  const showTable = async (name, facets) => {
    file = name;
    sessionStorage.setItem("evolFile", name);
    view.table = episodeTable(name, facets);
    tableSection.replaceChildren(el("h2", { text: "Episodes · " + name }), view.table.node);
    await view.table.load();
  };
  let drawn = ""; // what the run sections show: redrawn only when it changed
  const refreshRun = async () => {
    const run = await api("run");
    source.files = run.files;
    const fingerprint = JSON.stringify([run.metrics, run.state, run.files, file]);
    if (fingerprint === drawn) return run.files;
    drawn = fingerprint;
    runSections[0].replaceChildren(el("h2", { text: "Learning curve (held-out success per env)" }), learningCurve(run.metrics));
    runSections[1].replaceChildren(el("h2", { text: "Phase timings" }), phaseTable(run.metrics, run.state),
      trainingTable(run.metrics));
    runSections[2].replaceChildren(el("h2", { text: "Trajectories of each phase" }),
      filesTable(run.files, file, (name) => showTable(name, run.files.find((f) => f.file === name))),
      source.files.length > 1 ? hashLink("compare", {}, "compare two stages side by side →") : null);
    return run.files;
  };
  const files = source.kind === "run" ? await refreshRun() : source.files;
  if (file) await showTable(file, files.find((f) => f.file === file));
  view.refresh = async () => {
    const latest = source.kind === "run" ? await refreshRun() : (await api("source")).files;
    if (view.table) await view.table.load();
    else if (latest.length) await showTable(latest[0].file, latest[0]); // the run wrote its first file
  };
}

// ---- routing and polling ------------------------------------------------------------------------
async function route() {
  view.refresh = null;
  view.table = null;
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  const params = new URLSearchParams(query || "");
  try {
    if (path === "episode") await showEpisode(params);
    else if (path === "compare") await showCompare(params);
    else await showHome();
    setStatus("");
  } catch (error) {
    setStatus(String(error.message || error), true);
  }
}

async function poll() {
  if (view.busy || !view.refresh || document.hidden) return;
  view.busy = true;
  try {
    await view.refresh();
    setStatus("updated " + new Date().toLocaleTimeString());
  } catch (error) {
    setStatus(String(error.message || error), true);
  } finally {
    view.busy = false;
  }
}

async function start() {
  const fragment = location.hash.match(/^#token=(.*)$/);
  if (fragment) { // the address `evol view --token` prints: keep the token, drop it from the address bar
    sessionStorage.setItem("evolToken", decodeURIComponent(fragment[1]));
    history.replaceState(null, "", location.pathname + location.search + "#/");
  }
  try {
    view.source = await api("source");
  } catch (error) {
    setStatus(String(error.message || error), true);
    document.getElementById("main").replaceChildren(el("p", { className: "error-text", text: String(error.message || error) }));
    return;
  }
  document.getElementById("source-name").textContent = `${view.source.kind === "run" ? "run" : "file"} ${view.source.name}`;
  const nav = document.getElementById("nav");
  nav.replaceChildren(el("a", { href: "#/", text: view.source.kind === "run" ? "run" : "episodes" }));
  if (view.source.files.length > 1) nav.append(el("a", { href: "#/compare", text: "side by side" }));
  window.addEventListener("hashchange", route);
  await route();
  setInterval(poll, POLL_MS);
}

start();
