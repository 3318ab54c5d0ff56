// mediamill web page: libraries, jobs with live progress (Server-Sent Events), failures and an
// item browser. Plain ES module, no build step. Server data reaches the page only through
// textContent and DOM properties, never innerHTML: paths and errors come from user files.

const TOKEN_KEY = "mediamill.token";
const ITEM_PAGE = 50;
const FAILURE_PAGE = 100;
const JOB_PAGE = 50;
const FINISHED = new Set(["completed", "failed", "cancelled"]);
const ACTIONS = {
  pause: new Set(["queued", "running"]),
  resume: new Set(["paused"]),
  cancel: new Set(["queued", "running", "paused"]),
  delete: new Set(["paused", "completed", "failed", "cancelled"]),
};

const $ = (id) => document.getElementById(id);

const state = {
  token: "",
  processors: [],
  libraries: [],
  jobs: new Map(), // job_id -> {job, el}
  pending: new Map(), // job_id -> latest status not yet drawn
  frame: 0,
  events: null,
  retryDelay: 1000,
  retryTimer: 0,
  everOpen: false,
  browser: { library: "", processor: "", q: "", offset: 0, total: 0, abort: null, timer: 0 },
  selection: { library: "", paths: new Set() },
};

// ---------------------------------------------------------------- small helpers

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-") || key.startsWith("aria-") || key === "for" || key === "role") {
      node.setAttribute(key, value === true ? "" : String(value));
    } else node[key] = value;
  }
  for (const child of children) {
    if (child !== null && child !== undefined && child !== "") {
      node.append(child instanceof Node ? child : String(child));
    }
  }
  return node;
}

function parseTime(value) {
  if (!value) return null;
  // the server speaks UTC; a timestamp without an offset is UTC too, not local time
  const text = /[zZ]|[+-]\d\d:?\d\d$/.test(value) ? value : `${value}Z`;
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? null : date;
}

function formatTime(value) {
  const date = parseTime(value);
  if (!date) return "";
  const sameDay = date.toDateString() === new Date().toDateString();
  return sameDay
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })
    : date.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

function formatSpan(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

function formatSize(bytes) {
  if (bytes === null || bytes === undefined) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${unit ? value.toFixed(value < 10 ? 1 : 0) : value} ${units[unit]}`;
}

function formatCount(n) {
  return Number(n || 0).toLocaleString();
}

function setMessage(node, text, kind = "info") {
  node.textContent = text;
  node.dataset.kind = kind;
}

// ---------------------------------------------------------------- banners

function banner(key, message, { kind = "error", action = null } = {}) {
  const host = $("banners");
  let node = host.querySelector(`[data-key="${key}"]`);
  if (!node) {
    node = el("div", { class: "banner", "data-key": key, role: kind === "error" ? "alert" : "status" });
    host.append(node);
  }
  node.dataset.kind = kind;
  node.replaceChildren(el("span", { class: "banner-text", text: message }));
  if (action) {
    node.append(el("button", { type: "button", class: "secondary", text: action.label, onclick: action.run }));
  }
  node.append(
    el("button", {
      type: "button",
      class: "banner-close",
      "aria-label": "Dismiss",
      text: "×",
      onclick: () => node.remove(),
    }),
  );
}

function clearBanner(key) {
  $("banners").querySelector(`[data-key="${key}"]`)?.remove();
}

// ---------------------------------------------------------------- API access

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function detailText(detail, fallback) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    // FastAPI validation errors: [{loc: ["body", "path"], msg: "..."}]
    return detail
      .map((d) => {
        const loc = Array.isArray(d.loc) ? d.loc.filter((p) => p !== "body").join(".") : "";
        return loc ? `${loc}: ${d.msg}` : String(d.msg ?? JSON.stringify(d));
      })
      .join("; ");
  }
  if (detail && typeof detail === "object") return JSON.stringify(detail);
  return fallback;
}

async function api(method, path, body, { signal } = {}) {
  const headers = { Accept: "application/json" };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      signal,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    banner("network", "Cannot reach the mediamill server. Check that it is running, then retry.", {
      action: { label: "Retry", run: () => { clearBanner("network"); loadAll(); } },
    });
    throw new ApiError(0, "network error: the server cannot be reached");
  }
  clearBanner("network");
  let data = null;
  const text = await response.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    let message = detailText(data?.detail, `${response.status} ${response.statusText}`.trim());
    // 422 answers list what was wrong next to a short detail
    if (Array.isArray(data?.errors) && data.errors.length) message += `: ${detailText(data.errors, "")}`;
    if (response.status === 401 || response.status === 403) askForToken(message);
    throw new ApiError(response.status, message);
  }
  return data;
}

function askForToken(detail) {
  const why = state.token ? "The API token was refused" : "This action needs the API token";
  banner("auth", `${why} (${detail}). Enter the token under “API token” at the top.`, {
    action: { label: "Enter token", run: openTokenBox },
  });
  openTokenBox();
}

function openTokenBox() {
  const box = $("token-box");
  box.open = true;
  $("token-input").focus();
}

function reportError(error, where) {
  if (error.name === "AbortError") return;
  if (error instanceof ApiError && (error.status === 0 || error.status === 401 || error.status === 403)) {
    return; // already shown by a banner
  }
  if (where) setMessage(where, error.message, "error");
  else banner("error", error.message);
}

// ---------------------------------------------------------------- token

function initToken() {
  const hash = new URLSearchParams(window.location.hash.slice(1));
  const fromUrl = hash.get("token");
  if (fromUrl) {
    localStorage.setItem(TOKEN_KEY, fromUrl);
    hash.delete("token");
    const rest = hash.toString();
    // keep the token out of the address bar, history and screenshots
    history.replaceState(null, "", window.location.pathname + window.location.search + (rest ? `#${rest}` : ""));
  }
  state.token = localStorage.getItem(TOKEN_KEY) || "";
  $("token-input").value = state.token;
  $("token-box").dataset.set = state.token ? "yes" : "no";

  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setToken($("token-input").value.trim());
    $("token-box").open = false;
  });
  $("token-clear").addEventListener("click", () => {
    $("token-input").value = "";
    setToken("");
  });
}

function setToken(token) {
  state.token = token;
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
  $("token-box").dataset.set = token ? "yes" : "no";
  clearBanner("auth");
  connectEvents();
  loadAll();
  loadWorkers();
  setInterval(loadWorkers, WORKERS_EVERY);
}

// ---------------------------------------------------------------- live events (SSE)

function setLive(mode, text) {
  const node = $("live");
  node.dataset.state = mode;
  node.textContent = text;
}

function connectEvents() {
  clearTimeout(state.retryTimer);
  state.events?.close();
  const query = state.token ? `?access_token=${encodeURIComponent(state.token)}` : "";
  const source = new EventSource(`/api/events${query}`);
  state.events = source;
  setLive("connecting", "connecting…");
  source.addEventListener("open", () => {
    setLive("live", "live");
    clearBanner("events");
    state.retryDelay = 1000;
    // after a reconnect, catch up once on what changed while the stream was down
    if (state.everOpen) loadJobs();
    state.everOpen = true;
  });
  source.addEventListener("job", (event) => {
    try {
      queueJob(JSON.parse(event.data));
    } catch (error) {
      console.warn("unreadable job event", error);
    }
  });
  source.addEventListener("job_deleted", (event) => {
    try {
      forgetJob(JSON.parse(event.data).job_id);
    } catch (error) {
      console.warn("unreadable job_deleted event", error);
    }
  });
  source.addEventListener("error", () => {
    if (source !== state.events) return;
    if (source.readyState === EventSource.CLOSED) {
      setLive("off", "offline");
      whyStreamClosed(source.url);
    } else {
      setLive("connecting", "reconnecting…");
    }
  });
}

async function whyStreamClosed(url) {
  // EventSource hides the HTTP status: ask once with fetch, so a wrong token is not retried
  // forever and a server that is down gets a clear message
  const abort = new AbortController();
  let status = 0;
  try {
    const response = await fetch(url, { signal: abort.signal, headers: { Accept: "text/event-stream" } });
    status = response.status;
    abort.abort();
  } catch {
    status = 0;
  }
  if (status === 401 || status === 403) {
    clearBanner("events");
    askForToken("live updates were refused");
    return;
  }
  const why = status ? `the server answered ${status}` : "the server cannot be reached";
  banner("events", `Live progress stopped: ${why}. Reconnecting…`, { kind: "warn" });
  state.retryTimer = setTimeout(connectEvents, state.retryDelay);
  state.retryDelay = Math.min(state.retryDelay * 2, 30000);
}

// ---------------------------------------------------------------- jobs

function queueJob(job) {
  if (!job || !job.job_id) return;
  state.pending.set(job.job_id, job);
  if (!state.frame) state.frame = requestAnimationFrame(flushJobs);
}

function flushJobs() {
  state.frame = 0;
  const batch = [...state.pending.values()];
  state.pending.clear();
  for (const job of batch) upsertJob(job);
  updateJobsEmpty();
}

// a job deleted here or on another page, by the CLI or through the API
function forgetJob(jobId) {
  state.pending.delete(jobId);
  state.jobs.get(jobId)?.el.remove();
  state.jobs.delete(jobId);
  updateJobsEmpty();
  updateFinishedCount();
}

function isStale(known, incoming) {
  // a late HTTP answer must not undo a newer live event
  if (FINISHED.has(known.status) && !FINISHED.has(incoming.status)) return true;
  return known.status === incoming.status && (incoming.processed_items ?? 0) < (known.processed_items ?? 0);
}

function upsertJob(job, { append = false } = {}) {
  let entry = state.jobs.get(job.job_id);
  if (entry && isStale(entry.job, job)) return;
  if (!entry) {
    entry = { job, el: makeJobRow(job), failures: { offset: 0, total: 0, open: false } };
    state.jobs.set(job.job_id, entry);
    placeJob(entry, { append });
  }
  const wasFinished = FINISHED.has(entry.job.status);
  entry.job = job;
  drawJob(entry);
  if (!wasFinished && FINISHED.has(job.status)) {
    placeJob(entry);
    onJobFinished(entry);
  }
}

// Jobs at work stay in sight; finished ones fold away behind "N finished", except the one
// the user just started, which stays where they watch it until they start another.
function placeJob(entry, { append = false } = {}) {
  const finished = FINISHED.has(entry.job.status) && !entry.el.classList.contains("just-started");
  const list = finished ? $("job-done-list") : $("job-list");
  if (entry.el.parentElement !== list || append) {
    if (append) list.append(entry.el);
    else list.prepend(entry.el);
  }
  updateFinishedCount();
}

function updateFinishedCount() {
  const n = $("job-done-list").children.length;
  $("jobs-finished").hidden = n === 0;
  $("jobs-finished-count").textContent = `${formatCount(n)} finished`;
}

function makeJobRow(job) {
  const row = $("job-template").content.firstElementChild.cloneNode(true);
  row.dataset.jobId = job.job_id;
  row.querySelector(".job-progress").dataset.jobId = job.job_id;
  row.querySelector(".job-status").dataset.jobId = job.job_id;
  for (const button of row.querySelectorAll("[data-action]")) {
    button.addEventListener("click", () => jobAction(job.job_id, button.dataset.action, button));
  }
  row.querySelector(".job-failures").addEventListener("click", () => toggleFailures(job.job_id));
  row.querySelector(".failures-prev").addEventListener("click", () => pageFailures(job.job_id, -1));
  row.querySelector(".failures-next").addEventListener("click", () => pageFailures(job.job_id, 1));
  return row;
}

function drawJob(entry) {
  const { job, el: row } = entry;
  const q = (sel) => row.querySelector(sel);
  const progress = Math.min(1, Math.max(0, Number(job.progress) || 0));
  row.dataset.status = job.status;
  q(".job-processor").textContent = job.processor;
  q(".job-library").textContent = job.library ?? "—";
  const badge = q(".job-status");
  badge.textContent = job.status;
  badge.dataset.status = job.status;
  const bar = q(".job-progress");
  bar.value = progress * 100;
  const pct = `${Math.floor(progress * 100)}%`;
  bar.setAttribute("aria-label", `${job.processor} on ${job.library ?? "?"}: ${pct}`);
  q(".job-pct").textContent = pct;
  q(".job-count").textContent = `${formatCount(job.processed_items)}/${formatCount(job.total_items)}`;
  q(".job-ok").textContent = `✓ ${formatCount(job.succeeded)} ok`;
  const failed = q(".job-failed");
  failed.textContent = `✗ ${formatCount(job.failed)} failed`;
  failed.dataset.some = job.failed > 0 ? "yes" : "no";
  q(".job-skipped").textContent = `${formatCount(job.skipped)} skipped`;
  const running = job.status === "running";
  q(".job-rate").textContent = running && job.rate ? `${Number(job.rate).toFixed(job.rate < 10 ? 1 : 0)}/s` : "";
  q(".job-eta").textContent = running && job.eta_seconds !== null && job.eta_seconds !== undefined
    ? `ETA ${formatSpan(job.eta_seconds)}` : "";
  q(".job-when").textContent = jobWhen(job);
  // a dry run did nothing: say what it would do, never show it as work done
  const dry = job.summary?.dry_run === true;
  row.dataset.dryRun = dry ? "yes" : "no";
  if (dry && FINISHED.has(job.status)) {
    const would = job.summary.would_process;
    const actions = Object.entries(job.summary.actions || {}).map(([a, n]) => `${formatCount(n)} ${a}`);
    badge.textContent = "dry run";
    q(".job-count").textContent = would !== undefined
      ? `would process ${formatCount(would)} item${would === 1 ? "" : "s"}`
      : `would do: ${actions.join(", ") || "nothing"}`;
    q(".job-pct").textContent = "";
    for (const sel of [".job-ok", ".job-failed", ".job-skipped"]) q(sel).textContent = "";
  }
  const error = q(".job-error");
  const note = job.requested && !FINISHED.has(job.status) ? `${job.requested} requested…` : "";
  error.textContent = job.error || note;
  error.dataset.kind = job.error ? "error" : "info";
  error.hidden = !error.textContent;
  for (const button of row.querySelectorAll("[data-action]")) {
    button.hidden = !ACTIONS[button.dataset.action].has(job.status);
  }
  const failuresButton = q(".job-failures");
  failuresButton.hidden = !(job.failed > 0) && !entry.failures.open;
  failuresButton.textContent = entry.failures.open ? "Hide failures" : `Failures (${formatCount(job.failed)})`;
}

function jobWhen(job) {
  const created = formatTime(job.created_at);
  const started = parseTime(job.started_at);
  const ended = parseTime(job.completed_at);
  if (ended && started) return `finished ${formatTime(job.completed_at)} · took ${formatSpan((ended - started) / 1000)}`;
  if (ended) return `ended ${formatTime(job.completed_at)}`;
  if (started) return `started ${formatTime(job.started_at)}`;
  return created ? `created ${created}` : "";
}

function onJobFinished(entry) {
  const { job } = entry;
  if (entry.failures.open) loadFailures(job.job_id);
  const b = state.browser;
  if (b.library === job.library && b.processor === job.processor) loadItems();
  loadLibraries();
}

function updateJobsEmpty() {
  $("jobs-empty").hidden = state.jobs.size > 0;
}

async function loadJobs() {
  try {
    const data = await api("GET", `/api/jobs?limit=${JOB_PAGE}`);
    const seen = new Set();
    // newest first, as the server lists them
    for (const job of data.jobs) {
      seen.add(job.job_id);
      upsertJob(job, { append: true });
    }
    // reorder to the server's order and drop jobs deleted elsewhere
    for (const job of data.jobs) placeJob(state.jobs.get(job.job_id), { append: true });
    for (const [id, entry] of state.jobs) {
      if (!seen.has(id) && FINISHED.has(entry.job.status)) {
        entry.el.remove();
        state.jobs.delete(id);
      }
    }
    $("jobs-total").textContent = data.total > data.jobs.length ? `(latest ${data.jobs.length} of ${formatCount(data.total)})` : "";
    updateJobsEmpty();
    updateFinishedCount();
  } catch (error) {
    reportError(error);
  }
}

async function jobAction(jobId, action, button) {
  if (action === "delete" && !window.confirm("Delete this job's record? Its results stay in the catalog.")) return;
  if (action === "cancel" && !window.confirm("Cancel this job?")) return;
  button.disabled = true;
  try {
    if (action === "delete") {
      await api("DELETE", `/api/jobs/${encodeURIComponent(jobId)}`);
      forgetJob(jobId);
    } else {
      const job = await api("POST", `/api/jobs/${encodeURIComponent(jobId)}/${action}`);
      if (job?.job_id) upsertJob(job);
    }
  } catch (error) {
    reportError(error);
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------- a job's failures

function toggleFailures(jobId) {
  const entry = state.jobs.get(jobId);
  if (!entry) return;
  entry.failures.open = !entry.failures.open;
  entry.el.querySelector(".failures").hidden = !entry.failures.open;
  entry.el.querySelector(".job-failures").setAttribute("aria-expanded", String(entry.failures.open));
  drawJob(entry);
  if (entry.failures.open) {
    entry.failures.offset = 0;
    loadFailures(jobId);
  }
}

function pageFailures(jobId, step) {
  const entry = state.jobs.get(jobId);
  if (!entry) return;
  entry.failures.offset = Math.max(0, entry.failures.offset + step * FAILURE_PAGE);
  loadFailures(jobId);
}

async function loadFailures(jobId) {
  const entry = state.jobs.get(jobId);
  if (!entry) return;
  const box = entry.el.querySelector(".failures");
  const range = box.querySelector(".failures-range");
  const list = box.querySelector(".failure-list");
  setMessage(range, "Loading failures…");
  const { offset } = entry.failures;
  try {
    const data = await api(
      "GET",
      `/api/jobs/${encodeURIComponent(jobId)}/items?status=failed&limit=${FAILURE_PAGE}&offset=${offset}`,
    );
    entry.failures.total = data.total;
    list.replaceChildren(
      ...data.items.map((item) =>
        el(
          "li",
          { class: "failure" },
          el("span", { class: "path", text: item.path }),
          el("span", { class: "cause", text: item.error || "failed (no cause recorded)" }),
          item.kind ? el("span", { class: "muted small", text: item.kind }) : null,
        ),
      ),
    );
    setMessage(
      range,
      data.total
        ? `Failures ${offset + 1}–${offset + data.items.length} of ${formatCount(data.total)}`
        : "No failed items.",
    );
    box.querySelector(".failures-prev").disabled = offset === 0;
    box.querySelector(".failures-next").disabled = offset + data.items.length >= data.total;
    box.querySelector(".pager").hidden = data.total <= FAILURE_PAGE;
  } catch (error) {
    reportError(error, range);
  }
}

// ---------------------------------------------------------------- libraries

function fillSelect(select, values, preferred) {
  const current = select.value || preferred;
  select.replaceChildren(...values.map((v) => el("option", { value: v, text: v })));
  if (values.includes(current)) select.value = current;
  else if (values.includes(preferred)) select.value = preferred;
  select.disabled = values.length === 0;
}

async function loadLibraries() {
  try {
    const data = await api("GET", "/api/libraries");
    state.libraries = data.libraries;
    drawLibraries();
  } catch (error) {
    reportError(error);
  }
}

function drawLibraries() {
  const list = $("library-list");
  const names = state.libraries.map((lib) => lib.name);
  const rows = state.libraries.map((lib) => {
    let row = list.querySelector(`li[data-library-id="${CSS.escape(String(lib.id))}"]`);
    if (!row) row = makeLibraryRow(lib);
    drawLibrary(row, lib);
    return row;
  });
  list.replaceChildren(...rows);
  $("library-empty").hidden = rows.length > 0;
  fillSelect($("job-library"), names);
  const before = state.browser.library;
  fillSelect($("browser-library"), names);
  state.browser.library = $("browser-library").value;
  if (before && state.browser.library !== before) onBrowserChange(); // it was removed
  updateSelectionUi();
}

function makeLibraryRow(lib) {
  const row = el("li", { class: "card library", "data-library-id": lib.id });
  const head = el(
    "div",
    { class: "card-head" },
    el("strong", { class: "library-name" }),
    el("span", { class: "badge library-kind" }),
  );
  const scan = el("button", { type: "button", class: "secondary library-scan", text: "Scan" });
  const browse = el("button", { type: "button", class: "secondary library-browse", text: "Browse items" });
  const stats = el("button", { type: "button", class: "secondary library-stats", text: "Statistics" });
  scan.addEventListener("click", () => scanLibrary(row.dataset.name, row));
  browse.addEventListener("click", () => {
    $("browser-library").value = row.dataset.name;
    onBrowserChange();
    $("browser").scrollIntoView({ behavior: "smooth", block: "start" });
  });
  stats.addEventListener("click", () => showStats(row.dataset.name));
  const start = el("div", { class: "card-actions library-start" });
  row.append(
    head,
    el("code", { class: "library-root" }),
    el("p", { class: "library-counts muted" }),
    el("p", { class: "library-watch", role: "status" }),
    el("p", { class: "library-report", role: "status" }),
    start,
    el("div", { class: "card-actions" }, scan, browse, stats),
  );
  if ((lib.kind || "folder") === "folder") row.append(makeAutomationForm(row));
  return row;
}

// the work a library's own buttons start: what suits its kind, among the server's processors
const CARD_JOBS = {
  folder: [["probe", "Probe"], ["audio", "Analyse audio"]],
  source: [["strm", "Export .strm"]],
};

function drawStartButtons(row, lib) {
  const box = row.querySelector(".library-start");
  const wanted = (CARD_JOBS[lib.kind || "folder"] ?? []).filter(([p]) => state.processors.includes(p));
  if (box.dataset.drawn === wanted.map(([p]) => p).join(",")) return;
  box.dataset.drawn = wanted.map(([p]) => p).join(",");
  box.replaceChildren(
    ...wanted.map(([processor, label]) => {
      const button = el("button", { type: "button", text: label, "data-processor": processor });
      button.addEventListener("click", () => startFromCard(row, processor, button));
      return button;
    }),
  );
}

async function startFromCard(row, processor, button) {
  const report = row.querySelector(".library-report");
  const body = { processor, library: row.dataset.name };
  if (processor === "strm") {
    const output = window.prompt("Folder on the server to write the .strm files to");
    if (!output) return;
    body.options = { output };
  }
  button.disabled = true;
  setMessage(report, `Starting ${processor}…`);
  try {
    const job = await launchJob(body);
    setMessage(report, `Started ${processor}: see it under Jobs.`, "ok");
    return job;
  } catch (error) {
    reportError(error, report);
    return null;
  } finally {
    button.disabled = false;
  }
}

// what runs by itself: processors for new and changed files, watch mode, schedule
function makeAutomationForm(row) {
  const field = (label, input) => el("label", {}, `${label} `, input);
  const form = el(
    "form",
    { class: "library-automation" },
    field("Processors (in order)", el("input", { name: "processors", placeholder: "probe,audio" })),
    field(
      "Watch",
      el("select", { name: "watch" }, ...["auto", "native", "poll", "off"].map((v) => el("option", { value: v, text: v }))),
    ),
    field("Poll every (s)", el("input", { name: "poll_seconds", type: "number", min: "1", step: "any" })),
    field("Schedule (cron)", el("input", { name: "schedule", placeholder: "0 3 * * *" })),
    el("button", { type: "submit", text: "Save" }),
    el("p", { class: "automation-msg", role: "status" }),
  );
  form.addEventListener("submit", (event) => saveAutomation(event, row, form));
  return el("details", {}, el("summary", { text: "Automation" }), form);
}

async function saveAutomation(event, row, form) {
  event.preventDefault();
  const msg = form.querySelector(".automation-msg");
  const value = (name) => form.elements[name].value.trim();
  const body = {
    processors: value("processors").split(",").map((p) => p.trim()).filter(Boolean),
    watch: value("watch"),
    schedule: value("schedule"),
  };
  if (value("poll_seconds")) body.poll_seconds = Number(value("poll_seconds"));
  try {
    await api("PUT", `/api/libraries/${encodeURIComponent(row.dataset.name)}/automation`, body);
    setMessage(msg, "Saved: the server picks it up within seconds.", "ok");
    await loadLibraries();
  } catch (error) {
    reportError(error, msg);
  }
}

function drawAutomation(row, lib) {
  const watch = row.querySelector(".library-watch");
  const w = lib.watch;
  const auto = lib.automation || {};
  const runs = (auto.processors || []).join(" → ");
  const text = w ? `Watch ${w.state}: ${w.detail}` : runs ? "Not watched yet" : "";
  setMessage(watch, [text, runs && `runs ${runs}`, auto.schedule && `schedule ${auto.schedule}`].filter(Boolean).join(" · "),
    w && w.state === "failed" ? "error" : "info");
  const form = row.querySelector(".library-automation");
  if (!form || form.contains(document.activeElement)) return; // never overwrite typing
  form.elements.processors.value = (auto.processors || []).join(",");
  form.elements.watch.value = auto.watch || "auto";
  form.elements.poll_seconds.value = auto.poll_seconds ?? "";
  form.elements.schedule.value = auto.schedule ?? "";
}

function drawLibrary(row, lib) {
  row.dataset.name = lib.name;
  row.querySelector(".library-name").textContent = lib.name;
  row.querySelector(".library-kind").textContent = lib.kind || "folder";
  row.querySelector(".library-root").textContent = lib.root;
  const counts = Object.entries(lib.counts || {})
    .filter(([, n]) => n)
    .map(([kind, n]) => `${formatCount(n)} ${kind}`);
  const total = Object.values(lib.counts || {}).reduce((a, n) => a + (n || 0), 0);
  const parts = [];
  parts.push(counts.length ? `${formatCount(total)} items: ${counts.join(" · ")}` : "no items");
  parts.push(lib.scanned_at ? `scanned ${formatTime(lib.scanned_at)}` : "never scanned");
  row.querySelector(".library-counts").textContent = parts.join(" — ");
  drawStartButtons(row, lib);
  drawAutomation(row, lib);
}

async function scanLibrary(name, row) {
  const button = row.querySelector(".library-scan");
  const report = row.querySelector(".library-report");
  button.disabled = true;
  button.textContent = "Scanning…";
  setMessage(report, "Scanning the folder…");
  try {
    const data = await api("POST", `/api/libraries/${encodeURIComponent(name)}/scan`);
    const r = data.report || {};
    const parts = ["found", "new", "changed", "unchanged", "missing"]
      .filter((k) => r[k] !== undefined)
      .map((k) => `${formatCount(r[k])} ${k}`);
    const problems = r.problem_count ?? (Array.isArray(r.problems) ? r.problems.length : 0);
    let text = `Scan done: ${parts.join(" · ")}`;
    if (problems) {
      const first = (r.problems || []).slice(0, 3).map((p) => `${p.path}: ${p.cause}`);
      text += ` · ${formatCount(problems)} skipped (${first.join("; ")}${problems > first.length ? "; …" : ""})`;
    }
    setMessage(report, text, problems ? "warn" : "ok");
    await loadLibraries();
    if (state.browser.library === name) loadItems();
  } catch (error) {
    reportError(error, report);
  } finally {
    button.disabled = false;
    button.textContent = "Scan";
  }
}

async function addLibrary(event) {
  event.preventDefault();
  const form = $("library-form");
  const msg = $("library-form-msg");
  const name = $("library-name").value.trim();
  const path = $("library-path").value.trim();
  if (!name || !path) {
    setMessage(msg, "Give the library a name and the folder's path on the server.", "error");
    return;
  }
  $("library-add").disabled = true;
  setMessage(msg, "Adding…");
  try {
    const lib = await api("POST", "/api/libraries", { name, path });
    form.reset();
    setMessage(msg, `Added “${lib.name}”.`, "ok");
    await loadLibraries();
    $("job-library").value = lib.name;
    $("browser-library").value = lib.name;
    onBrowserChange();
    const row = $("library-list").querySelector(`li[data-library-id="${CSS.escape(String(lib.id))}"]`);
    // a library is only useful once scanned: do it now unless the server already did
    if (row && !lib.scanned_at) await scanLibrary(lib.name, row);
  } catch (error) {
    reportError(error, msg);
  } finally {
    $("library-add").disabled = false;
  }
}

// ---------------------------------------------------------------- statistics (inline SVG)

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, text = "") {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text) node.textContent = text;
  return node;
}

// one horizontal bar per row ({name, count}), longest = full width; labels are data: text only
function barChart(title, rows, { limit = 12 } = {}) {
  const shown = rows.slice(0, limit);
  const rest = rows.slice(limit).reduce((sum, r) => sum + r.count, 0);
  if (rest) shown.push({ name: `${rows.length - limit} more`, count: rest });
  const total = rows.reduce((sum, r) => sum + r.count, 0) || 1;
  const max = Math.max(...shown.map((r) => r.count), 1);
  const rowHeight = 22;
  const width = 360;
  const labelWidth = 130;
  const barWidth = width - labelWidth - 80;
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${shown.length * rowHeight + 4}`,
    role: "img",
    class: "chart",
    "aria-label": `${title}: ${shown.map((r) => `${r.name} ${r.count}`).join(", ")}`,
  });
  shown.forEach((row, i) => {
    const y = i * rowHeight + 2;
    const label = row.name.length > 20 ? `${row.name.slice(0, 19)}…` : row.name;
    chart.append(
      svg("text", { x: labelWidth - 6, y: y + 15, "text-anchor": "end", class: "chart-label" }, label),
      svg("rect", {
        x: labelWidth,
        y: y + 3,
        width: Math.max(1, (row.count / max) * barWidth),
        height: rowHeight - 7,
        rx: 3,
        class: "chart-bar",
      }),
      svg("text", {
        x: labelWidth + Math.max(1, (row.count / max) * barWidth) + 5,
        y: y + 15,
        class: "chart-value",
      }, `${formatCount(row.count)} · ${Math.round((row.count / total) * 100)}%`),
    );
    chart.lastChild.previousSibling.append(svg("title", {}, `${row.name}: ${formatCount(row.count)}`));
  });
  return el("figure", { class: "chart-box" }, el("figcaption", { text: title }), chart);
}

async function showStats(name) {
  const panel = $("stats");
  panel.hidden = false;
  $("stats-title").textContent = `Statistics: ${name}`;
  const body = $("stats-body");
  const summary = $("stats-summary");
  setMessage(summary, "Counting…");
  body.replaceChildren();
  panel.scrollIntoView({ behavior: "smooth", block: "start" });
  try {
    const data = await api("GET", `/api/libraries/${encodeURIComponent(name)}/stats`);
    drawStats(data);
  } catch (error) {
    reportError(error, summary);
  }
}

function drawStats(data) {
  const probed = data.results?.probe ?? {};
  const parts = [
    `${formatCount(data.items)} items`,
    formatSize(data.size),
    data.duration ? `${formatSpan(data.duration)} of media` : null,
    probed.ok !== undefined ? `${formatCount(probed.ok)} probed` : "not probed yet",
  ];
  setMessage($("stats-summary"), parts.filter(Boolean).join(" · "));
  const charts = [
    ["Kinds", data.kinds],
    ["Containers", data.containers],
    ...Object.entries(data.codecs || {}).map(([kind, rows]) => [`${kind} codecs`, rows]),
    ["Video resolutions", data.resolutions],
    ["Bit rates", data.bit_rates],
    ["Tempo (BPM)", data.tempo],
    ["Keys (Camelot)", data.keys],
    ...Object.entries(data.failures || {}).map(([processor, rows]) => [`${processor} failures by cause`, rows]),
  ].filter(([, rows]) => Array.isArray(rows) && rows.length);
  $("stats-body").replaceChildren(...charts.map(([title, rows]) => barChart(title, rows)));
}

// ---------------------------------------------------------------- starting jobs

function jobOptions() {
  const options = {};
  for (const [id, key] of [["job-workers", "workers"], ["job-batch", "batch_size"], ["job-limit", "limit"]]) {
    const raw = $(id).value.trim();
    if (raw) options[key] = Number.parseInt(raw, 10);
  }
  if ($("job-executor").value) options.executor = $("job-executor").value;
  if ($("job-force").checked) options.force = true;
  if ($("job-dry-run").checked) options.dry_run = true;
  return options;
}

async function startJob(kind) {
  const msg = $("job-form-msg");
  const form = $("job-form");
  if (!form.reportValidity()) return;
  const processor = $("job-processor").value;
  const body = { processor, library: $("job-library").value };
  let what = "all items";
  if (kind === "failed") {
    body.filter = "failed";
    what = "failed items";
  } else if (kind === "selected") {
    body.library = state.selection.library;
    body.items = [...state.selection.paths];
    what = `${body.items.length} selected item${body.items.length === 1 ? "" : "s"}`;
  }
  if (!processor || !body.library) {
    setMessage(msg, "Choose a processor and a library first.", "error");
    return;
  }
  const options = jobOptions();
  if (Object.keys(options).length) body.options = options;
  const buttons = form.querySelectorAll(".actions button");
  for (const b of buttons) b.disabled = true;
  setMessage(msg, "Starting…");
  try {
    const answer = await launchJob(body);
    if (answer?.dry_run) setMessage(msg, dryRunText(answer), "ok");
    else setMessage(msg, `Started ${processor} on ${what} of “${body.library}”.`, "ok");
    if (kind === "selected") clearSelection();
  } catch (error) {
    reportError(error, msg);
  } finally {
    for (const b of buttons) b.disabled = false;
    updateSelectionUi();
  }
}

// a dry run made no job and changed nothing: say so, and what the job would do
function dryRunText(plan) {
  const n = plan.would_process;
  let head = `Dry run of ${plan.processor ?? "the job"} on “${plan.library}”: nothing was changed. `
    + `Would process ${formatCount(n)} item${n === 1 ? "" : "s"}`;
  if (plan.failed) head += `, ${formatCount(plan.failed)} of which would fail`;
  const lines = [`${head}.`];
  const actions = Object.entries(plan.actions || {}).map(([a, k]) => `${formatCount(k)} ${a}`);
  if (actions.length) lines.push(actions.join(", "));
  const detail = plan.plans?.length ? plan.plans : plan.sample || [];
  lines.push(...detail.slice(0, 10));
  if (detail.length > 10) lines.push(`… and ${formatCount(n - 10)} more`);
  return lines.join("\n");
}

// start a job, show it at once and bring it into view, marked as the one just started
// (a dry run answers with what it would do instead: no job is made)
async function launchJob(body) {
  const job = await api("POST", "/api/jobs", body);
  if (job?.job_id) {
    upsertJob(job);
    updateJobsEmpty();
    const row = state.jobs.get(job.job_id)?.el;
    if (row) {
      for (const old of document.querySelectorAll(".job.just-started")) {
        old.classList.remove("just-started");
        const before = [...state.jobs.values()].find((e) => e.el === old);
        if (before) placeJob(before);
      }
      row.classList.add("just-started");
      row.scrollIntoView({ behavior: "smooth", block: "nearest" });
    }
  }
  return job;
}

async function loadProcessors() {
  try {
    const data = await api("GET", "/api/processors");
    state.processors = data.processors;
    fillSelect($("job-processor"), state.processors, "probe");
    fillSelect($("browser-processor"), state.processors, "probe");
    state.browser.processor = $("browser-processor").value;
    if (state.libraries.length) drawLibraries();
  } catch (error) {
    reportError(error);
  }
}

// ---------------------------------------------------------------- item browser

function onBrowserChange() {
  const b = state.browser;
  b.library = $("browser-library").value;
  b.processor = $("browser-processor").value;
  b.q = $("browser-q").value.trim();
  b.offset = 0;
  if (state.selection.library && state.selection.library !== b.library) clearSelection();
  loadItems();
}

async function loadItems() {
  const b = state.browser;
  const list = $("item-list");
  const range = $("browser-range");
  b.abort?.abort();
  if (!b.library) {
    list.replaceChildren();
    range.textContent = "Add a library to browse its items.";
    return;
  }
  const abort = new AbortController();
  b.abort = abort;
  const params = new URLSearchParams({ library: b.library, limit: String(ITEM_PAGE), offset: String(b.offset) });
  if (b.q) params.set("q", b.q);
  if (b.processor) params.set("processor", b.processor);
  range.textContent = "Loading…";
  try {
    // a newer search aborts this one
    const data = await api("GET", `/api/items?${params}`, undefined, { signal: abort.signal });
    if (abort !== b.abort) return;
    b.total = data.total;
    list.replaceChildren(...data.items.map(itemRow));
    range.textContent = data.total
      ? `${formatCount(b.offset + 1)}–${formatCount(b.offset + data.items.length)} of ${formatCount(data.total)}`
      : b.q ? "No item matches this search." : "No items: scan the library first.";
    $("browser-prev").disabled = b.offset === 0;
    $("browser-next").disabled = b.offset + data.items.length >= data.total;
    syncPageCheckbox();
  } catch (error) {
    if (error.name !== "AbortError") reportError(error, range);
  }
}

let itemSeq = 0;

function itemRow(item) {
  itemSeq += 1;
  const id = `item-${itemSeq}`;
  const box = el("input", { type: "checkbox", id, class: "item-check" });
  box.checked = state.selection.paths.has(item.path);
  box.dataset.path = item.path;
  box.addEventListener("change", () => {
    toggleSelected(item.path, box.checked);
    syncPageCheckbox();
  });
  const status = item.status || "not processed";
  // a name that is not UTF-8 reads as its best guess, flagged, with the stored form on hover
  const label = el("label", { for: id, class: "path", text: item.readable_path ?? item.path });
  if (item.readable_path) label.title = `stored as ${item.path}`;
  const head = el(
    "div",
    { class: "item-head" },
    box,
    label,
    item.readable_path ? el("span", { class: "badge odd-name", text: "name not UTF-8" }) : null,
  );
  const facts = el(
    "div",
    { class: "item-facts" },
    el("span", { class: "badge item-status", "data-status": item.status || "none", text: status }),
    item.kind ? el("span", { class: "muted", text: item.kind }) : null,
    item.size !== undefined && item.size !== null ? el("span", { class: "muted", text: formatSize(item.size) }) : null,
  );
  const row = el("li", { class: "item" }, head, facts);
  if (item.kind === "comic") row.append(comicCover(state.browser.library, item.path));
  for (const line of describeData(item.data, state.browser.processor)) {
    row.append(line instanceof Node ? line : el("p", { class: `item-${line.kind}`, text: line.text }));
  }
  if (item.error) row.append(el("p", { class: "item-error", text: item.error }));
  return row;
}

function comicCover(library, path) {
  // an <img src> cannot send the token: fetch the cover, show it from a blob URL
  const img = el("img", { class: "comic-cover", alt: `cover of ${path}`, width: "80" });
  const params = new URLSearchParams({ library, path, size: "160" });
  const headers = state.token ? { Authorization: `Bearer ${state.token}` } : {};
  fetch(`/api/cover?${params}`, { headers })
    .then((response) => (response.ok ? response.blob() : null))
    .then((blob) => {
      if (blob) img.src = URL.createObjectURL(blob);
      else img.remove();
    })
    .catch(() => img.remove());
  img.addEventListener("load", () => URL.revokeObjectURL(img.src));
  return img;
}

function describeComic(data) {
  // the comic processor's result: its ComicInfo.xml fields and what the run did
  const info = data.comicinfo || {};
  const title = [info.Series, info.Number !== undefined ? `#${info.Number}` : null,
    info.Volume !== undefined ? `vol. ${info.Volume}` : null, info.Year, info.Title]
    .filter((v) => v !== undefined && v !== null && v !== "");
  const lines = [];
  if (title.length) lines.push({ kind: "tags", text: title.join(" · ") });
  const more = ["Publisher", "Writer", "Format", "LanguageISO", "PageCount"]
    .filter((k) => info[k] !== undefined)
    .map((k) => `${k}: ${info[k]}`);
  if (data.pages !== undefined) more.push(`${data.pages} pages`);
  if (data.format) more.push(data.format);
  if (data.action) more.push(data.action);
  if (more.length) lines.push({ kind: "meta", text: more.join(" · ") });
  if (data.note || data.blocked) lines.push({ kind: "meta", text: data.note || data.blocked });
  return lines;
}

function describeStream(s) {
  const parts = [s.type, s.codec];
  if (s.type === "video") {
    if (s.attached_pic) parts.push("cover art");
    if (s.width && s.height) parts.push(`${s.width}x${s.height}`);
  } else if (s.type === "audio" && s.channels) {
    parts.push(`${s.channels}ch`);
  }
  if (s.language) parts.push(s.language);
  return parts.filter(Boolean).join(" ");
}

function camera(make, model) {
  // cameras often repeat the make in the model ("Canon" + "Canon EOS R5")
  if (make && model && model.toLowerCase().startsWith(make.toLowerCase())) return model;
  return [make, model].filter(Boolean).join(" ");
}

// FFmpeg's container names as people say them (the same table as mediamill/stats.py)
const CONTAINERS = {
  "mov,mp4,m4a,3gp,3g2,mj2": "MP4",
  "matroska,webm": "Matroska",
  mp3: "MP3",
  flac: "FLAC",
  ogg: "Ogg",
  wav: "WAV",
  aiff: "AIFF",
  asf: "WMA/WMV",
  avi: "AVI",
  mpegts: "MPEG-TS",
  mpeg: "MPEG-PS",
  aac: "AAC",
  flv: "FLV",
};

function containerName(name) {
  if (!name) return "";
  return CONTAINERS[name] ?? name.split(",")[0].toUpperCase();
}

const PITCHES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"];

// the Camelot code of a key: C major is 8B, A minor 8A (as mediamill/playlists.py)
function camelot(key, scale) {
  let pc = PITCHES.indexOf(key);
  if (pc < 0 || (scale !== "major" && scale !== "minor")) return "";
  const letter = scale === "major" ? "B" : "A";
  if (scale === "minor") pc = (pc + 3) % 12;
  return `${((8 + 7 * pc - 1) % 12) + 1}${letter}`;
}

function describeProbe(data) {
  const lines = [];
  const head = [];
  if (data.container) head.push(containerName(data.container));
  if (data.duration) head.push(formatDuration(data.duration));
  if (data.bit_rate) head.push(`${Math.round(data.bit_rate / 1000)} kb/s`);
  if (head.length) lines.push({ kind: "meta", text: head.join(" · ") });
  if (Array.isArray(data.streams) && data.streams.length) {
    lines.push({ kind: "streams", text: data.streams.map(describeStream).join(" · ") });
  }
  const tags = data.tags || {};
  const tagText = ["artist", "album", "title"].filter((k) => tags[k]).map((k) => `${k}: ${tags[k]}`);
  if (tagText.length) lines.push({ kind: "tags", text: tagText.join(" · ") });
  const img = data.image;
  if (img) {
    // the size as shown (orientation applied), where the probe gives it
    const [w, h] = [img.display_width || img.width, img.display_height || img.height];
    const bits = [img.format, w && h ? `${w}x${h}` : null,
      camera(img.make, img.model), img.lens,
      img.iso ? `ISO ${img.iso}` : null, img.taken_at,
      img.gps ? `GPS ${img.gps.lat.toFixed(4)}, ${img.gps.lon.toFixed(4)}` : null];
    lines.push({ kind: "meta", text: bits.filter(Boolean).join(" · ") });
  }
  return lines;
}

function describeAudio(data) {
  const music = [];
  if (Number.isFinite(data.bpm)) music.push(`${Math.round(data.bpm)} BPM`);
  if (data.key && data.scale) {
    const code = camelot(data.key, data.scale);
    music.push(`key ${code ? `${code} · ` : ""}${data.key} ${data.scale}`);
  }
  if (Number.isFinite(data.loudness)) music.push(`${data.loudness.toFixed(1)} LUFS`);
  if (Number.isFinite(data.duration)) music.push(formatDuration(data.duration));
  const feel = [];
  if (Number.isFinite(data.energy)) feel.push(`energy ${data.energy.toFixed(2)}`);
  if (Number.isFinite(data.danceability)) feel.push(`danceability ${data.danceability.toFixed(2)}`);
  if (Number.isFinite(data.loudness_range)) feel.push(`range ${data.loudness_range.toFixed(1)} LU`);
  const lines = [];
  if (music.length) lines.push({ kind: "meta", text: music.join(" · ") });
  if (feel.length) lines.push({ kind: "tags", text: feel.join(" · ") });
  return lines;
}

function describeFields(data) {
  const fields = Object.entries(data)
    .filter(([, v]) => v !== null && ["string", "number", "boolean"].includes(typeof v))
    .slice(0, 8)
    .map(([k, v]) => `${k}: ${typeof v === "number" && !Number.isInteger(v) ? v.toFixed(2) : v}`);
  return fields.length ? [{ kind: "meta", text: fields.join(" · ") }] : [];
}

// How each processor's result reads in the item browser. A view returns lines
// ({kind, text}, drawn as text) or DOM nodes (a cover image, say); add one per processor.
const RESULT_VIEWS = {
  probe: describeProbe,
  audio: describeAudio,
  comic: describeComic,
};

function describeData(data, processor) {
  if (!data || typeof data !== "object") return [];
  const view = RESULT_VIEWS[processor]
    ?? ("comicinfo" in data && "pages" in data ? describeComic : null)
    ?? (("streams" in data || "container" in data || "image" in data) ? describeProbe : describeFields);
  return view(data);
}

function toggleSelected(path, on) {
  const sel = state.selection;
  if (on) {
    if (sel.library !== state.browser.library) {
      sel.paths.clear();
      sel.library = state.browser.library;
    }
    sel.paths.add(path);
    // the selection's library is the one a job will run on: show it in the job form too
    $("job-library").value = sel.library;
  } else sel.paths.delete(path);
  updateSelectionUi();
}

function clearSelection() {
  state.selection.paths.clear();
  state.selection.library = "";
  for (const box of $("item-list").querySelectorAll(".item-check")) box.checked = false;
  syncPageCheckbox();
  updateSelectionUi();
}

function updateSelectionUi() {
  const n = state.selection.paths.size;
  $("selected-count").textContent = formatCount(n);
  $("job-start-selected").disabled = n === 0;
  $("job-start-selected").title = n ? `in library “${state.selection.library}”` : "select items in the item browser";
  $("browser-clear").disabled = n === 0;
}

function syncPageCheckbox() {
  const boxes = [...$("item-list").querySelectorAll(".item-check")];
  const all = $("browser-all");
  const checked = boxes.filter((b) => b.checked).length;
  all.checked = boxes.length > 0 && checked === boxes.length;
  all.indeterminate = checked > 0 && checked < boxes.length;
  all.disabled = boxes.length === 0;
}

// ---------------------------------------------------------------- workers

const WORKERS_EVERY = 5000;

async function loadWorkers() {
  try {
    const data = await api("GET", "/api/workers");
    drawWorkers(data);
  } catch (error) {
    reportError(error);
  }
}

function drawWorkers(data) {
  const rows = data.workers.map((w) => {
    const batches = w.current_batches.map((b) =>
      el("li", { text: `${b.processor}: ${formatCount(b.done)}/${formatCount(b.items)} items (job ${b.job.slice(0, 8) || "?"})` }),
    );
    const ago = Math.max(0, Date.now() / 1000 - w.last_heartbeat);
    return el(
      "li",
      { class: "card worker", "data-worker": w.name },
      el("strong", { text: w.host }),
      ` pid ${w.pid} · ${w.concurrency} at once · queues ${w.queues.join(", ")}`,
      el("div", { class: "muted", text: `runs ${w.processors.join(", ") || "nothing"} · ${formatCount(w.items_done)} items done · heard ${formatSpan(ago) || "now"} ago` }),
      batches.length ? el("ul", { class: "batches" }, ...batches) : el("div", { class: "muted", text: "idle" }),
    );
  });
  $("worker-list").replaceChildren(...rows);
  $("workers-total").textContent = rows.length ? `(${rows.length})` : "";
  const empty = $("workers-empty");
  empty.hidden = rows.length > 0;
  empty.textContent = data.error
    ? `Cannot ask the broker ${data.broker}: ${data.error}`
    : `No worker answers on ${data.broker}: start one with \`mediamill worker\`.`;
}

// ---------------------------------------------------------------- wiring

async function loadAll() {
  await Promise.all([loadProcessors(), loadLibraries(), loadJobs()]);
  if (state.browser.library) loadItems();
}

function init() {
  initToken();
  $("library-form").addEventListener("submit", addLibrary);
  $("job-form").addEventListener("submit", (event) => {
    event.preventDefault();
    startJob("all");
  });
  $("job-start-failed").addEventListener("click", () => startJob("failed"));
  $("job-start-selected").addEventListener("click", () => startJob("selected"));
  $("browser-form").addEventListener("submit", (event) => {
    event.preventDefault();
    onBrowserChange();
  });
  $("browser-library").addEventListener("change", onBrowserChange);
  $("browser-processor").addEventListener("change", onBrowserChange);
  $("browser-q").addEventListener("input", () => {
    clearTimeout(state.browser.timer);
    state.browser.timer = setTimeout(onBrowserChange, 250);
  });
  $("browser-prev").addEventListener("click", () => {
    state.browser.offset = Math.max(0, state.browser.offset - ITEM_PAGE);
    loadItems();
  });
  $("browser-next").addEventListener("click", () => {
    state.browser.offset += ITEM_PAGE;
    loadItems();
  });
  $("browser-all").addEventListener("change", (event) => {
    for (const box of $("item-list").querySelectorAll(".item-check")) {
      box.checked = event.target.checked;
      toggleSelected(box.dataset.path, box.checked);
    }
    syncPageCheckbox();
  });
  $("browser-clear").addEventListener("click", clearSelection);
  $("stats-close").addEventListener("click", () => { $("stats").hidden = true; });
  updateSelectionUi();
  connectEvents();
  loadAll();
  loadWorkers();
  setInterval(loadWorkers, WORKERS_EVERY);
}

init();
