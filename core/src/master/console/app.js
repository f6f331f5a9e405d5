// dm's web console: plain ES modules, no build step, no dependencies. Every action goes
// through the documented API (docs/api.md); pages are drawn from API answers with DOM calls
// only (no HTML from data), and redrawn every few seconds.

const POLL_MS = 2000;
const tokenKey = "dm-token";

// ---------- API ----------

class ApiError extends Error {
  constructor(status, report) {
    super(report.message || `HTTP ${status}`);
    this.status = status;
    this.code = report.code || "";
    this.hint = report.hint || "";
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(tokenKey);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { message: text }; }
  if (res.status === 401) showLogin(true);
  if (!res.ok) throw new ApiError(res.status, data || {});
  return data;
}

const enc = encodeURIComponent;

// ---------- DOM helpers ----------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function table(headers, rows) {
  return h("table", {},
    h("thead", {}, h("tr", {}, headers.map(([label, cls]) => h("th", { class: cls }, label)))),
    h("tbody", {}, rows));
}

function stage(s) {
  return h("span", { class: `stage stage-${s}`, "data-stage": s }, s);
}

function duration(secs) {
  if (secs === null || secs === undefined) return "-";
  if (secs < 60) return `${secs}s`;
  if (secs < 3600) return `${Math.floor(secs / 60)}m${String(secs % 60).padStart(2, "0")}s`;
  return `${Math.floor(secs / 3600)}h${String(Math.floor(secs / 60) % 60).padStart(2, "0")}m`;
}

function num(n) {
  return n === undefined || n === null ? "-" : Math.round(n).toLocaleString("en-US");
}

/// A sparkline of `values` (the last hour), scaled to its own maximum.
function spark(values, label) {
  const w = 120, ht = 22;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", w);
  svg.setAttribute("height", ht);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  if (values.length > 1) {
    const max = Math.max(...values, 1);
    const pts = values.map((v, i) =>
      `${(i / (values.length - 1)) * (w - 2) + 1},${ht - 1 - (v / max) * (ht - 2)}`);
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("points", pts.join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", "currentColor");
    line.setAttribute("stroke-width", "1.5");
    svg.append(line);
  }
  return svg;
}

// ---------- notices, login, roles ----------

function notice(text, ok) {
  const n = document.getElementById("notice");
  n.textContent = text;
  n.className = ok ? "ok" : "";
  n.hidden = !text;
}

function showLogin(show) {
  document.getElementById("login").hidden = !show;
}

let viewer = false;

/// Runs an action of the API; a refusal shows its message and hint.
async function act(what, fn) {
  try {
    await fn();
    notice(`${what}: done`, true);
    await refresh();
  } catch (e) {
    if (e.code === "DM-API-7302") {
      viewer = true;
      document.body.classList.add("viewer");
    }
    notice(`${what}: ${e.message}${e.hint ? ` (${e.hint})` : ""}`, false);
    await refresh();
  }
}

function button(label, what, fn, cls) {
  return h("button", {
    class: cls, disabled: viewer, "data-action": label,
    title: viewer ? "this token may only read" : undefined,
    onclick: () => act(what, fn),
  }, label);
}

// ---------- pages ----------

function lagOf(t) {
  const lags = t.subtasks.map((s) => s.lag_seconds).filter((l) => l !== null && l !== undefined);
  return lags.length ? Math.max(...lags) : null;
}

function rowsOf(t) {
  return t.subtasks.reduce((a, s) => a + (s.rows_per_sec || 0), 0);
}

/// What the task does: the stage it should have (pause-task, resume-task), unless a subtask
/// stopped on its own (an error pauses it).
function effectiveStage(t) {
  for (const worst of ["paused", "stopped", "new", "waiting"]) {
    if (t.subtasks.some((s) => s.stage === worst)) return worst;
  }
  return t.stage;
}

function phaseOf(t) {
  return [...new Set(t.subtasks.map((s) => s.phase))].join(", ") || "-";
}

async function tasksPage() {
  const [tasks, history] = await Promise.all([
    api("GET", "/api/v1/tasks"),
    api("GET", "/api/v1/history").catch(() => ({})),
  ]);
  if (!tasks.length) {
    return [h("h1", {}, "Tasks"), h("p", { class: "muted" },
      "No task yet: dm ctl start-task task.yaml (or POST /api/v1/tasks).")];
  }
  const rows = tasks.map((t) => {
    const hist = history[t.name] || [];
    return h("tr", { "data-task": t.name },
      h("td", {}, h("a", { href: `#/tasks/${enc(t.name)}` }, t.name)),
      h("td", { "data-field": "stage" }, stage(effectiveStage(t))),
      h("td", { "data-field": "phase" }, phaseOf(t)),
      h("td", { class: "num", "data-field": "lag" }, duration(lagOf(t))),
      h("td", { class: "num", "data-field": "rows" }, num(rowsOf(t))),
      h("td", { class: "wide-only" }, spark(hist.map((p) => p.lag_seconds || 0), "lag, last hour")),
      h("td", { class: "wide-only" }, spark(hist.map((p) => p.rows_per_sec || 0), "rows/s, last hour")),
      h("td", { class: "muted" }, t.subtasks.map((s) => s.source_id).join(", ")));
  });
  return [h("h1", {}, "Tasks"), table(
    [["Task"], ["Stage"], ["Phase"], ["Lag", "num"], ["Rows/s", "num"],
     ["Lag, 1 h", "wide-only"], ["Rows/s, 1 h", "wide-only"], ["Sources"]], rows)];
}

function errorCard(task, s) {
  const e = s.last_error;
  if (!e) return null;
  const sql = h("textarea", { "aria-label": "statements replacing the transaction",
    placeholder: "statements that replace the failed transaction, one per line" });
  const at = { source: s.source_id };
  return h("div", { class: "card error", "data-error": e.code },
    h("strong", {}, `${e.code}`), " ", h("span", { class: "muted" }, e.position ? `at ${e.position}` : ""),
    h("pre", {}, e.message),
    e.hint ? h("p", {}, "Hint: ", e.hint) : null,
    h("div", { class: "actions" },
      button("Resume", "resume", () => api("POST", `/api/v1/tasks/${enc(task)}/resume`,
        { sources: [s.source_id] }), "primary"),
      button("Skip the transaction", "binlog skip", () =>
        api("POST", `/api/v1/tasks/${enc(task)}/binlog-skip`, at))),
    h("details", {}, h("summary", {}, "Replace the transaction with statements"), sql,
      h("div", { class: "actions" }, button("Replace", "binlog replace", () =>
        api("POST", `/api/v1/tasks/${enc(task)}/binlog-replace`, {
          ...at, sql: sql.value.split("\n").map((l) => l.trim()).filter(Boolean),
        })))));
}

function tablesProgress(s) {
  if (!s.tables || !s.tables.length) return null;
  const rows = s.tables.map((t) => {
    const pct = t.chunks_total ? (100 * t.chunks_done) / t.chunks_total : 0;
    // Through the CSSOM: the page's policy refuses style attributes.
    const fill = h("div", {});
    fill.style.width = `${pct}%`;
    return h("tr", {},
      h("td", {}, t.table),
      h("td", {}, h("div", { class: "bar", title: `${pct.toFixed(0)}%` }, fill)),
      h("td", { class: "num" }, `${t.chunks_done}/${t.chunks_total}`),
      h("td", { class: "num" }, num(t.rows)),
      h("td", { class: "num" }, num(t.rows_estimated)));
  });
  return [h("h2", {}, `Tables (ETA ${duration(s.eta_seconds)})`),
    table([["Table"], ["Chunks"], ["", "num"], ["Rows", "num"], ["Estimated", "num"]], rows)];
}

function subtaskCard(task, s) {
  const field = (label, value, name) =>
    h("div", {}, h("span", { class: "muted" }, label), h("span", { "data-field": name }, value));
  return h("div", { class: "card", "data-source": s.source_id },
    h("div", { class: "grid" },
      field("Source", s.source_id, "source"),
      field("Worker", s.worker || "-", "worker"),
      field("Stage", stage(s.stage), "stage"),
      field("Phase", s.phase, "phase"),
      field("Position", s.position || "-", "position"),
      field("Source position", s.masterBinlog || "-", "source-position"),
      field("Lag", duration(s.lag_seconds), "lag"),
      field("Rows/s", num(s.rows_per_sec), "rows"),
      field("Rows applied", num(s.rows_applied), "applied"),
      field("Rows copied", num(s.rows_loaded), "loaded"),
      field("Safe mode", s.safe_mode ? "on" : "off", "safe-mode"),
      field("Throttle", s.throttle || "-", "throttle")),
    s.warnings && s.warnings.length ? h("pre", {}, s.warnings.join("\n")) : null,
    errorCard(task, s),
    tablesProgress(s));
}

async function taskPage(name) {
  const path = `/api/v1/tasks/${enc(name)}`;
  const [t, validation] = await Promise.all([
    api("GET", path),
    api("GET", `${path}/validation`).catch(() => null),
  ]);
  return [
    h("h1", {}, `Task ${t.name} `, stage(effectiveStage(t))),
    h("div", { class: "actions" },
      button("Pause", "pause", () => api("POST", `${path}/pause`, { sources: [] })),
      button("Resume", "resume", () => api("POST", `${path}/resume`, { sources: [] }), "primary"),
      button("Verify", "verify", async () => { lastVerify = await api("POST", `${path}/verify`, { fix: false }); }),
      button("Stop", "stop", () => {
        if (!confirm(`Stop task ${name}? Its checkpoints stay; start-task resumes it.`)) return Promise.resolve();
        return api("DELETE", path);
      }, "danger")),
    t.warnings.length ? h("pre", {}, t.warnings.join("\n")) : null,
    t.subtasks.map((s) => subtaskCard(name, s)),
    verifyReport(),
    validationReport(validation),
  ];
}

/// Continuous validation (`dm ctl validation start`), when it ran.
function validationReport(v) {
  if (!v || !v.runs) return null;
  const when = v.last_finished ? new Date(v.last_finished * 1000).toLocaleTimeString() : "-";
  return [h("h2", {}, "Validation"),
    h("p", {}, `${v.runs} runs, last at ${when}: `,
      v.equal ? h("span", { class: "level-ok" }, "equal") :
        h("span", { class: "level-fail" }, `${v.differences} differences`),
      ` over ${num(v.rows)} rows of ${v.tables} tables`),
    v.error ? h("pre", {}, `${v.error.code}: ${v.error.message}`) : null,
    v.diffs.length ? table([["Table"], ["Key"], ["Fix"]], v.diffs.map(([tb, d]) =>
      h("tr", {}, h("td", {}, tb), h("td", {}, d.key), h("td", {}, h("pre", {}, d.fix))))) : null];
}

let lastVerify = null;

function verifyReport() {
  if (!lastVerify) return null;
  const rows = lastVerify.flatMap((r) => [
    h("tr", {}, h("td", {}, r.table), h("td", {}, r.source), h("td", { class: "num" }, num(r.rows)),
      h("td", { class: "num" }, num(r.differences)), h("td", {}, r.skipped || (r.differences ? "differs" : "equal"))),
    ...r.diffs.map((d) => h("tr", {}, h("td", { colspan: 5 }, h("pre", {}, `${d.key}: ${d.fix}`)))),
  ]);
  return [h("h2", {}, "Verify"),
    table([["Table"], ["Source"], ["Rows", "num"], ["Differences", "num"], [""]], rows)];
}

async function locksPage() {
  const locks = await api("GET", "/api/v1/shard-ddl-locks");
  const rows = locks.map((l) => h("tr", {},
    h("td", {}, l.task), h("td", {}, l.target), h("td", {}, l.mode),
    h("td", {}, l.arrived.map((d) => `${d.shard.source}:${d.shard.table}`).join(", ")),
    h("td", {}, l.waiting_for.map((s) => `${s.source}:${s.table}`).join(", ")),
    h("td", {}, l.conflict || ""),
    h("td", {}, button("Unlock", "unlock", () => api("POST", "/api/v1/shard-ddl-locks/unlock",
      { task: l.task, target: l.target, action: "exec" })))));
  return [h("h1", {}, "Shard DDL locks"), locks.length
    ? table([["Task"], ["Table"], ["Mode"], ["Arrived"], ["Awaited"], ["Conflict"], [""]], rows)
    : h("p", { class: "muted" }, "No lock: no shard DDL is waiting.")];
}

async function sourcesPage() {
  const sources = await api("GET", "/api/v1/sources");
  const rows = sources.map((s) => h("tr", {},
    h("td", {}, s.source_id), h("td", {}, s.address), h("td", {}, s.worker || "-"),
    h("td", {}, s.enable_relay ? (s.relay ? `${s.relay.stage} ${s.relay.position || ""}` : "on") : "off"),
    h("td", { class: "num" }, s.relay ? `${s.relay.files} files, ${num(s.relay.bytes / 1048576)} MiB` +
      (s.relay.free_bytes ? `, ${num(s.relay.free_bytes / 1073741824)} GiB free` : "") : "")));
  return [h("h1", {}, "Sources"),
    table([["Source"], ["Address"], ["Worker"], ["Relay"], ["Relay log", "num"]], rows)];
}

async function membersPage() {
  const [m, sources] = await Promise.all([api("GET", "/api/v1/members"), api("GET", "/api/v1/sources")]);
  const masters = m.masters.map((x) => h("tr", {}, h("td", {}, x.name), h("td", {}, x.addr),
    h("td", {}, x.leader ? "leader" : ""), h("td", {}, x.alive ? "alive" : "down")));
  const workers = m.workers.map((w) => h("tr", {}, h("td", {}, w.name), h("td", {}, w.stage),
    h("td", {}, (w.sources && w.sources.length ? w.sources.join(", ") : w.source) || "-")));
  const src = h("select", { "aria-label": "source" }, sources.map((s) => h("option", {}, s.source_id)));
  const wk = h("select", { "aria-label": "worker" }, m.workers.map((w) => h("option", {}, w.name)));
  return [h("h1", {}, "Members"),
    h("p", {}, "Leader: ", m.leader || "-"),
    masters.length ? [h("h2", {}, "Masters"), table([["Name"], ["Address"], [""], [""]], masters)] : null,
    h("h2", {}, "Workers"), table([["Name"], ["Stage"], ["Sources"]], workers),
    h("h2", {}, "Transfer a source"),
    h("div", { class: "actions" }, src, "to", wk, button("Transfer", "transfer-source", () =>
      api("POST", `/api/v1/sources/${enc(src.value)}/transfer`, { source: src.value, worker: wk.value })))];
}

// The check page keeps its text between redraws: it is drawn once.
function checkPage() {
  const file = h("input", { value: "task.yaml", "aria-label": "file name" });
  const text = h("textarea", { rows: 16, "aria-label": "task file", placeholder: "the task file (YAML)" });
  const out = h("div", {});
  const upload = h("input", { type: "file", accept: ".yaml,.yml", onchange: async (e) => {
    const f = e.target.files[0];
    if (f) { file.value = f.name; text.value = await f.text(); }
  } });
  const run = async () => {
    try {
      const findings = await api("POST", "/api/v1/tasks/check", { file: file.value, content: text.value });
      out.replaceChildren(table([["Subject"], ["Check"], ["Level"], ["Message"], ["Fix"]],
        findings.map((f) => h("tr", {}, h("td", {}, f.subject), h("td", {}, f.check),
          h("td", { class: `level-${f.level}` }, f.level), h("td", {}, f.message), h("td", {}, f.fix)))));
      notice("", true);
    } catch (e) {
      notice(`check-task: ${e.message}`, false);
    }
  };
  return [h("h1", {}, "Check a task file"), h("div", { class: "actions" }, upload, file), text,
    h("div", { class: "actions" }, h("button", { class: "primary", onclick: run }, "Check")), out];
}

// ---------- router ----------

const pages = {
  tasks: () => tasksPage(),
  task: (arg) => taskPage(arg),
  locks: () => locksPage(),
  sources: () => sourcesPage(),
  members: () => membersPage(),
};

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  if (parts[0] === "tasks" && parts[1]) return ["task", decodeURIComponent(parts[1])];
  return [parts[0] in pages || parts[0] === "check" ? parts[0] : "tasks", null];
}

let drawing = false;

async function refresh() {
  const [page, arg] = route();
  for (const a of document.querySelectorAll("header nav a")) {
    a.classList.toggle("active", a.dataset.page === (page === "task" ? "tasks" : page));
  }
  if (page === "check" || drawing) return;
  // A form being filled in (statements to replace with) is not redrawn under the user.
  const active = document.activeElement;
  if (active && (active.tagName === "TEXTAREA" || active.tagName === "SELECT")) return;
  if (document.querySelector("details[open]")) return;
  drawing = true;
  try {
    const content = await pages[page](arg);
    document.getElementById("main").replaceChildren(...[content].flat(3).filter(Boolean));
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    showLogin(false);
  } catch (e) {
    if (e.status !== 401) notice(`${e.message}${e.hint ? ` (${e.hint})` : ""}`, false);
  } finally {
    drawing = false;
  }
}

function navigate() {
  lastVerify = null;
  notice("", true);
  const [page] = route();
  if (page === "check") {
    document.getElementById("main").replaceChildren(...checkPage());
  }
  refresh();
}

document.getElementById("login").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem(tokenKey, document.getElementById("token").value.trim());
  document.getElementById("logout").hidden = false;
  viewer = false;
  navigate();
});
document.getElementById("logout").addEventListener("click", () => {
  sessionStorage.removeItem(tokenKey);
  location.reload();
});
document.getElementById("logout").hidden = !sessionStorage.getItem(tokenKey);
window.addEventListener("hashchange", navigate);
navigate();
setInterval(refresh, POLL_MS);
