// eft review: the queue and the fit view.  Plain JavaScript, no build step.
// Every value shown comes from the JSON API and is written with textContent only.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  info: null,
  // The queue opens on the fits nobody has judged yet, worst first.
  filters: { sort: "quality", status: "unreviewed", dataset: "", flag: "" },
  offset: 0,
  limit: 50,
  items: [],
  selected: 0,
  fit: null,
  busy: false,
  overlayReady: false, // decision keys wait until the fit's overlay is on screen
  confirmFor: null, // fit id whose blind accept awaits a second press
  prefetched: [], // Image objects of the next overlays (kept so they finish loading)
  last: null, // the fit last opened (saved per file: "continue where I left off")
};

// ---- remembered queue (per annotation file, in this browser) -------------------------

function memoryKey() {
  return "eft-review:" + ((state.info && state.info.file_sha256) || "file");
}

function remember() {
  try {
    localStorage.setItem(memoryKey(), JSON.stringify({
      filters: state.filters, offset: state.offset, selected: state.selected,
      last: state.last,
    }));
  } catch (e) { /* storage full or disabled: nothing to remember */ }
}

function recall() {
  let saved = null;
  try { saved = JSON.parse(localStorage.getItem(memoryKey()) || "null"); } catch (e) {}
  if (!saved || typeof saved !== "object") return;
  const f = saved.filters || {};
  for (const key of Object.keys(state.filters)) {
    if (typeof f[key] === "string") state.filters[key] = f[key];
  }
  if (Number.isInteger(saved.offset) && saved.offset >= 0) state.offset = saved.offset;
  if (Number.isInteger(saved.selected) && saved.selected >= 0) state.selected = saved.selected;
  if (typeof saved.last === "string") state.last = saved.last;
}

function showFilters() {
  for (const key of Object.keys(state.filters)) {
    const sel = $("f-" + key);
    if ([...sel.options].some((o) => o.value === state.filters[key])) {
      sel.value = state.filters[key];
    } else {
      state.filters[key] = sel.value;
    }
  }
}

// ---- helpers -------------------------------------------------------------------------

async function api(path, body) {
  const opts = body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  };
  const resp = await fetch(path, opts);
  let data = null;
  try { data = await resp.json(); } catch (e) { data = null; }
  if (!resp.ok) {
    throw new Error((data && data.error) || `${resp.status} ${resp.statusText}`);
  }
  return data;
}

function query(extra) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries({ ...state.filters, ...extra })) {
    if (v !== "" && v !== null && v !== undefined) p.set(k, String(v));
  }
  return p.toString();
}

function fmt(v, digits) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v === "number") {
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(2) : v.toFixed(digits ?? 3);
  }
  return String(v);
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

let toastTimer = null;
function toast(msg, isError) {
  const t = $("toast");
  t.textContent = msg;
  t.className = "show" + (isError ? " error" : "");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.className = ""; }, isError ? 4000 : 1500);
}

function annotator() {
  return $("annotator").value.trim() || (state.info && state.info.default_annotator);
}

function fillTable(table, rows) {
  table.replaceChildren();
  for (const [k, v] of rows) {
    const tr = el("tr");
    tr.append(el("td", k), el("td", v));
    table.append(tr);
  }
}

function setProgress(p) {
  if (!p) return;
  $("progress-text").textContent =
    `reviewed ${p.reviewed}/${p.total} · accepted ${p.accepted} · rejected ${p.rejected}` +
    ` · flagged ${p.flagged}`;
  $("progress-bar").max = Math.max(1, p.total);
  $("progress-bar").value = p.reviewed;
}

// ---- queue ---------------------------------------------------------------------------

async function loadInfo() {
  const info = await api("/api/info");
  state.info = info;
  $("file").textContent = `${info.annotations || ""} · ${info.count} fits` +
    (info.stale_decisions ? ` · ${info.stale_decisions} earlier decision(s) judged other ` +
      "versions of these fits and do not count" : "");
  const saved = localStorage.getItem("eft-review-annotator");
  $("annotator").value = saved || info.default_annotator;
  const ds = $("f-dataset");
  for (const d of info.datasets) ds.append(new Option(d || "(none)", d));
  const fl = $("f-flag");
  for (const f of info.flags) fl.append(new Option(f, f));
  setProgress(info.progress);
  recall();
  showFilters();
}

async function loadQueue() {
  let data = await api("/api/fits?" + query({ offset: state.offset, limit: state.limit }));
  if (state.offset > 0 && state.offset >= data.total) { // remembered page is gone
    state.offset = Math.max(0, Math.floor((data.total - 1) / state.limit) * state.limit);
    data = await api("/api/fits?" + query({ offset: state.offset, limit: state.limit }));
  }
  state.items = data.items;
  state.total = data.total;
  state.selected = Math.min(state.selected, Math.max(0, data.items.length - 1));
  setProgress(data.progress);
  const body = $("queue-body");
  body.replaceChildren();
  data.items.forEach((it, k) => {
    const tr = el("tr");
    tr.dataset.id = it.id;
    if (k === state.selected) tr.className = "sel";
    const q = it.quality;
    tr.append(
      el("td", String(state.offset + k + 1), "num"), el("td", it.id), el("td", it.dataset),
      el("td", fmt(q.reproj_px, 1), "num"), el("td", fmt(q.reproj_frac_bbox, 3), "num"),
      el("td", fmt(q.loss_2d_final), "num"), el("td", fmt(q.iterations), "num"),
      el("td", fmt(q.max_abs_beta, 2), "num"), el("td", it.flags.join(", ")),
      el("td", it.status, "st-" + it.status), el("td", it.decided_by || ""));
    tr.addEventListener("click", () => openFit(it.id));
    body.append(tr);
  });
  const last = state.offset + data.items.length;
  $("page-info").textContent = data.total
    ? `${state.offset + 1}–${last} of ${data.total}` : "no fits match";
  $("queue-total").textContent = `${data.total} matching`;
  $("page-prev").disabled = state.offset === 0;
  $("page-next").disabled = last >= data.total;
  $("continue").disabled = !state.last && !data.items.length;
  remember();
}

// "Continue where I left off": the fit last opened, or the one after it once it has
// been judged; else the first fit of the queue.
async function continueReview() {
  if (state.last) {
    try {
      const f = await api("/api/fit?" + query({ id: state.last }));
      if (f.status === "unreviewed" || !f.next) return openFit(f.id);
      return openFit(f.next);
    } catch (e) { state.last = null; } // no longer in this file
  }
  if (state.items.length) return openFit(state.items[0].id);
  toast("no fits in this queue");
  return null;
}

function showQueue() {
  $("fit-view").hidden = true;
  $("queue-view").hidden = false;
  state.fit = null;
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  loadQueue().catch((e) => toast(e.message, true));
}

// ---- fit view ------------------------------------------------------------------------

async function openFit(id) {
  const f = await api("/api/fit?" + query({ id }));
  if (!state.fit || state.fit.id !== f.id) state.confirmFor = null;
  state.fit = f;
  state.last = f.id;
  remember();
  $("queue-view").hidden = true;
  $("fit-view").hidden = false;
  const want = "#fit=" + encodeURIComponent(id);
  if (location.hash !== want) history.replaceState(null, "", want);
  renderFit(f);
  prefetch(f.upcoming || []);
}

function prefetch(urls) {
  state.prefetched = urls.map((u) => { const im = new Image(); im.src = u; return im; });
}

function showBanner(f) {
  const b = $("image-banner");
  const problem = f.image_problem;
  b.hidden = !problem;
  b.classList.toggle("confirm", state.confirmFor === f.id);
  if (!problem) return;
  const what = problem === "missing" ? "is missing" : "cannot be read";
  b.textContent = state.confirmFor === f.id
    ? `The image ${what}: you have not seen this person. Press a again (or click accept) ` +
      "to accept anyway, or any other key to go on."
    : `Image ${what}: ${f.image_name || "(no name)"} — the overlay is drawn on flat grey, ` +
      "not on the photo. Accepting needs a confirmation.";
}

function renderFit(f) {
  $("fit-title").textContent = f.id;
  $("fit-pos").textContent = f.in_queue
    ? `${f.position + 1} of ${f.matching} in this queue`
    : `not in this queue (${f.matching} match)`;
  const st = $("fit-status");
  st.textContent = f.status + (f.decided_by ? ` by ${f.decided_by}` : "");
  st.className = "status " + f.status;
  st.dataset.status = f.status;
  showBanner(f);
  const img = $("overlay");
  if (img.dataset.src !== f.overlay_url) {
    state.overlayReady = false;
    $("fit-view").dataset.ready = "false";
    $("overlay-wait").hidden = false;
    img.dataset.src = f.overlay_url;
    img.src = f.overlay_url;
    if (img.complete && img.naturalWidth > 0) overlayLoaded();
  }
  const link = $("image-link");
  link.hidden = !f.image_url;
  if (f.image_url) link.href = f.image_url;
  const q = f.quality;
  fillTable($("quality"), [
    ["reprojection (px)", fmt(q.reproj_px, 2)],
    ["reprojection / box side", fmt(q.reproj_frac_bbox, 4)],
    ["2D loss initial", fmt(q.loss_2d_init)],
    ["2D loss final", fmt(q.loss_2d_final)],
    ["iterations", fmt(q.iterations)],
    ["converged", fmt(q.converged)],
    ["max |β|", fmt(q.max_abs_beta, 2)],
    ["pose NLL", fmt(q.pose_nll, 1)],
    ["annotated keypoints", fmt(q.n_valid_keypoints)],
    ["automatic verdict", q.accepted ? "accepted" : "rejected"],
    ["flags", f.flags.length ? f.flags.join(", ") : "none"],
  ]);
  const ex = f.exemplar;
  fillTable($("exemplar"), [
    ["dataset", f.dataset || "–"],
    ["image", f.image_name || "–"],
    ["source format", ex.source],
    ["bbox centre", ex.center.map((v) => fmt(v, 1)).join(", ")],
    ["bbox scale", fmt(ex.scale)],
    ["image size", ex.image_size ? ex.image_size.join(" × ") : "–"],
    ["annotated 2D keypoints", fmt(ex.annotated_keypoints)],
    ["camera [s, tx, ty]", ex.cam_weak.map((v) => fmt(v)).join(", ")],
    ["betas", ex.betas.map((v) => fmt(v, 2)).join(" ")],
  ]);
  const p = (state.info && state.info.provenance) || {};
  const cfg = p.config && p.config.type ? p.config.type.split(".").pop() : "–";
  fillTable($("provenance"), [
    ["created", p.created || "–"],
    ["eft version", p.eft_version || "–"],
    ["body model", p.body_model ? p.body_model.name : "–"],
    ["regressor", p.regressor ? p.regressor.name : "–"],
    ["config", cfg],
    ["dataset / split", [p.dataset, p.split].filter(Boolean).join(" / ") || "–"],
    ["file sha256", state.info ? state.info.file_sha256.slice(0, 16) + "…" : "–"],
  ]);
  const note = $("body-note");
  note.hidden = !(state.info && state.info.body_note);
  if (!note.hidden) note.textContent = state.info.body_note;
  const hist = $("history");
  hist.replaceChildren();
  for (const r of f.history) {
    const li = el("li", `${r.created.replace("T", " ").slice(0, 19)} ${r.annotator}: ` +
      r.decision + (r.note ? ` — ${r.note}` : ""), r.withdrawn ? "withdrawn" : "");
    hist.append(li);
  }
  if (!f.history.length) hist.append(el("li", "no decisions yet", "muted"));
}

async function refreshFit() {
  if (!state.fit) return;
  state.fit = await api("/api/fit?" + query({ id: state.fit.id }));
  renderFit(state.fit);
}

function overlayLoaded() {
  const img = $("overlay");
  if (!state.fit || img.dataset.src !== state.fit.overlay_url) return;
  state.overlayReady = true;
  $("fit-view").dataset.ready = "true";
  $("overlay-wait").hidden = true;
}

async function decide(decision, note) {
  const f = state.fit;
  if (!f || state.busy) return;
  if (decision !== "note" && !state.overlayReady) {
    toast("wait for the overlay: decisions need the fit on screen", true);
    return;
  }
  if (decision === "accept" && f.image_problem && state.confirmFor !== f.id) {
    state.confirmFor = f.id;
    showBanner(f);
    return;
  }
  state.confirmFor = null;
  state.busy = true;
  try {
    const res = await api("/api/decisions",
      { fit_id: f.id, decision, note: note || "", annotator: annotator() });
    toast(`${decision} ${f.id}`);
    if (decision === "note") { await refreshFit(); return; }
    setProgressFromServer();
    if (f.next) await openFit(f.next);
    else { await refreshFit(); toast(`${res.status}: end of this queue`); }
  } catch (e) {
    toast(e.message, true);
  } finally {
    state.busy = false;
  }
}

async function undo() {
  if (state.busy) return;
  state.busy = true;
  try {
    const res = await api("/api/undo", { annotator: annotator() });
    if (!res.row) { toast("nothing to undo"); return; }
    toast(`undid ${res.row.note.split(" ")[1]} on ${res.fit_id}`);
    setProgressFromServer();
    await openFit(res.fit_id);
  } catch (e) {
    toast(e.message, true);
  } finally {
    state.busy = false;
  }
}

function setProgressFromServer() {
  api("/api/progress").then(setProgress).catch(() => {});
}

function move(dir) {
  const f = state.fit;
  if (!f) return;
  const id = dir > 0 ? f.next : f.prev;
  if (id) openFit(id).catch((e) => toast(e.message, true));
  else toast(dir > 0 ? "last fit in this queue" : "first fit in this queue");
}

function openNote() {
  if (!state.fit) return;
  $("note-form").hidden = false;
  $("note").value = "";
  $("note").focus();
}

function doAction(action) {
  if (action === "accept" || action === "reject" || action === "flag") return decide(action);
  if (action === "note") return openNote();
  if (action === "next") return move(1);
  if (action === "prev") return move(-1);
  if (action === "undo") return undo();
  return null;
}

// ---- keyboard ------------------------------------------------------------------------

const FIT_KEYS = { a: "accept", r: "reject", f: "flag", n: "note", j: "next", k: "prev",
  u: "undo" };

function onKey(ev) {
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const tag = ev.target && ev.target.tagName;
  if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA") return;
  if (ev.repeat) { ev.preventDefault(); return; } // a held key decides nothing
  if (!$("fit-view").hidden) {
    if (state.confirmFor && ev.key !== "a" && state.fit) { // any other key: no blind accept
      state.confirmFor = null;
      showBanner(state.fit);
    }
    if (ev.key === "q" || ev.key === "Escape") { ev.preventDefault(); showQueue(); return; }
    const action = FIT_KEYS[ev.key];
    if (action) { ev.preventDefault(); doAction(action); }
    return;
  }
  if (ev.key === "c") {
    ev.preventDefault();
    continueReview().catch((e) => toast(e.message, true));
    return;
  }
  const n = state.items.length;
  if (!n) return;
  if (ev.key === "j" || ev.key === "ArrowDown") state.selected = Math.min(n - 1, state.selected + 1);
  else if (ev.key === "k" || ev.key === "ArrowUp") state.selected = Math.max(0, state.selected - 1);
  else if (ev.key === "Enter") { ev.preventDefault(); openFit(state.items[state.selected].id); return; }
  else return;
  ev.preventDefault();
  remember();
  [...$("queue-body").children].forEach((tr, k) => {
    tr.className = k === state.selected ? "sel" : "";
  });
}

// ---- start ---------------------------------------------------------------------------

function bind() {
  document.addEventListener("keydown", onKey);
  for (const key of ["sort", "status", "dataset", "flag"]) {
    $("f-" + key).addEventListener("change", (ev) => {
      state.filters[key] = ev.target.value;
      state.offset = 0;
      state.selected = 0;
      remember();
      loadQueue().catch((e) => toast(e.message, true));
      ev.target.blur();
    });
  }
  $("page-prev").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - state.limit);
    loadQueue().catch((e) => toast(e.message, true));
  });
  $("page-next").addEventListener("click", () => {
    state.offset += state.limit;
    loadQueue().catch((e) => toast(e.message, true));
  });
  $("back").addEventListener("click", showQueue);
  $("continue").addEventListener("click", () => {
    $("continue").blur();
    continueReview().catch((e) => toast(e.message, true));
  });
  for (const b of document.querySelectorAll("[data-action]")) {
    b.addEventListener("click", () => { b.blur(); doAction(b.dataset.action); });
  }
  $("annotator").addEventListener("change", () => {
    localStorage.setItem("eft-review-annotator", $("annotator").value.trim());
  });
  $("annotator").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" || ev.key === "Escape") $("annotator").blur();
  });
  $("note-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = $("note").value.trim();
    $("note-form").hidden = true;
    $("note").blur();
    if (text) decide("note", text);
  });
  $("note").addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") { $("note-form").hidden = true; $("note").blur(); }
  });
  const img = $("overlay");
  img.addEventListener("load", overlayLoaded);
  img.addEventListener("error", () => {
    $("overlay-wait").hidden = true;
    toast("overlay could not be loaded: decisions stay off for this fit", true);
  });
}

async function start() {
  bind();
  try {
    await loadInfo();
    const m = location.hash.match(/^#fit=(.+)$/);
    if (m) await openFit(decodeURIComponent(m[1]));
    else await loadQueue();
  } catch (e) {
    toast(e.message, true);
  }
}

document.addEventListener("DOMContentLoaded", start);
