// wardstream dashboard: plain JS, no dependencies (the network may be
// offline). The token lives in sessionStorage and travels only in the
// Authorization header; live updates are Server-Sent Events read with
// fetch() so that the token never appears in a URL.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { token: "", me: null, acked: new Map(), history: [], streamAbort: null, retry: null };

function takeToken() {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    sessionStorage.setItem("wardstream.token", decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  state.token = sessionStorage.getItem("wardstream.token") || "";
}

async function api(path, opts = {}) {
  const headers = Object.assign({ "Authorization": "Bearer " + state.token }, opts.headers || {});
  const res = await fetch(path, Object.assign({}, opts, { headers }));
  if (res.status === 401) {
    signOut("Your token was rejected: " + ((await res.json().catch(() => ({}))).error || "unauthorized"));
    throw new Error("unauthorized");
  }
  return res;
}

function signOut(msg) {
  sessionStorage.removeItem("wardstream.token");
  state.token = "";
  if (state.streamAbort) state.streamAbort.abort();
  clearTimeout(state.retry);
  $("#main").hidden = true;
  $("#logout").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = msg || "";
  $("#who").textContent = "";
  setLive(false);
}

function setLive(on) {
  const el = $("#live");
  el.className = "live " + (on ? "on" : "off");
  el.textContent = on ? "live" : "offline";
}

// --- rendering (textContent only: data never becomes markup) ---

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function fill(tableSel, rows, build, emptyText) {
  const tbody = $(tableSel + " tbody");
  tbody.replaceChildren();
  if (!rows.length) {
    const tr = document.createElement("tr");
    tr.className = "empty";
    const td = cell(tr, emptyText);
    td.colSpan = $(tableSel + " thead tr").children.length;
    tbody.appendChild(tr);
    return;
  }
  for (const r of rows) {
    const tr = document.createElement("tr");
    build(tr, r);
    tbody.appendChild(tr);
  }
}

const ms = (v) => Number(v || 0);
function clock(v) {
  const n = ms(v);
  return n ? new Date(n).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
}
function when(v) {
  const n = ms(v);
  return n ? new Date(n).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }) : "";
}
function pct(x) { return (100 * (x || 0)).toFixed(0) + "%"; }

function bar(td, ratio) {
  const b = document.createElement("span");
  b.className = "bar" + (ratio < 0.6 ? " bad" : ratio < 0.8 ? " warn" : "");
  b.style.width = Math.round(60 * Math.max(0, Math.min(1, ratio || 0))) + "px";
  td.prepend(b);
}

function render(d) {
  $("#today").textContent = (d.today || "") + (d.timezone && d.timezone !== "UTC" ? " (" + d.timezone + ")" : "");
  fill("#wards", d.wards || [], (tr, w) => {
    cell(tr, w.ward); cell(tr, w.patients); cell(tr, w.due); cell(tr, w.taken); cell(tr, w.missed);
    bar(cell(tr, pct(w.ratio)), w.ratio); cell(tr, pct(w.ratio7d));
  }, "no doses due today yet");

  const alerts = d.openAlerts || [];
  // Forget local acknowledgements once the pipeline reflects them.
  for (const id of state.acked.keys()) {
    if (!alerts.some((a) => a.alertId === id)) state.acked.delete(id);
  }
  $("#alert-count").textContent = alerts.length >= 100 ? "100+" : alerts.length;
  fill("#alerts", alerts, (tr, a) => {
    tr.dataset.alertId = a.alertId;
    cell(tr, a.priority, "p-" + a.priority); cell(tr, a.alertType);
    cell(tr, (a.subjectType || "") + " " + (a.subjectId || a.patientId || a.deviceId || ""));
    cell(tr, a.ward); cell(tr, a.message, "msg"); cell(tr, when(a.openedTimeMs));
    const td = cell(tr, "");
    const btn = document.createElement("button");
    btn.className = "ack";
    btn.dataset.alertId = a.alertId;
    // state.acked: 0 while the request is in flight, then its time.
    const acking = state.acked.has(a.alertId);
    btn.textContent = !acking ? "Acknowledge" : state.acked.get(a.alertId) ? "acknowledged" : "acknowledging…";
    btn.disabled = acking || !(state.me && state.me.canWrite);
    if (!(state.me && state.me.canWrite)) btn.title = "your role cannot acknowledge";
    btn.addEventListener("click", () => ack(a.alertId, btn));
    td.appendChild(btn);
  }, "no open alerts");

  const missed = d.missedToday || [];
  // The snapshot lists at most 100 (stream.go): a full list means more.
  $("#missed-count").textContent = missed.length >= 100 ? "100+" : missed.length;
  fill("#missed", missed, (tr, m) => {
    cell(tr, clock(m.scheduledTimeMs)); cell(tr, m.patientId); cell(tr, m.medicationId); cell(tr, m.ward);
  }, "no missed doses today");

  fill("#anomalies", d.anomalies || [], (tr, a) => {
    cell(tr, clock(a.meta && a.meta.eventTimeMs)); cell(tr, a.level, "l-" + a.level);
    cell(tr, (a.score || 0).toFixed(1)); cell(tr, a.patientId); cell(tr, a.deviceId);
    cell(tr, (a.reasons || []).join(", "), "msg");
  }, "no anomalies");

  fill("#camera", d.cameraEvents || [], (tr, e) => {
    cell(tr, clock(e.startTimeMs)); cell(tr, e.cameraId); cell(tr, e.eventType); cell(tr, e.zone); cell(tr, e.personCount || 0);
  }, "no camera events");

  renderPipeline(d.pipeline || {});
  const errs = Object.keys(d.errors || {});
  $("#errors").textContent = errs.length ? "Unavailable right now: " + errs.join(", ") : "";
  $("#updated").textContent = new Date(d.generatedAt || Date.now()).toLocaleTimeString();
}

function renderPipeline(p) {
  $("#throughput").textContent = (p.totalPerSecond || 0).toFixed(0);
  $("#lag").textContent = p.totalLag || 0;
  const ok = (c) => (c && c.ok ? "up" : "down");
  $("#stores").textContent = ok(p.kafka) + " / " + ok(p.clickhouse);
  fill("#groups", p.groups || [], (tr, g) => {
    cell(tr, g.group); cell(tr, g.error ? "error" : g.state); cell(tr, g.lag);
  }, "no consumer groups");
  const roles = $("#roles");
  roles.replaceChildren();
  for (const r of p.roles || []) {
    const li = document.createElement("li");
    li.textContent = r.role + (r.ready ? " ready" : " not ready");
    if (!r.ready) { li.className = "down"; li.title = r.error || ""; }
    roles.appendChild(li);
  }
  if (p.checkedAt) {
    state.history.push(p.totalPerSecond || 0);
    if (state.history.length > 60) state.history.shift();
    const max = Math.max(1, ...state.history);
    // Right-aligned: the newest sample at the right edge; a lone sample is a flat line.
    const h = state.history.length === 1 ? [state.history[0], state.history[0]] : state.history;
    const pts = h.map((v, i) => (300 - (h.length - 1 - i) * 300 / 59).toFixed(1) + "," + (48 - 46 * v / max).toFixed(1));
    $("#spark polyline").setAttribute("points", pts.join(" "));
  }
}

async function ack(id, btn) {
  // Pending from the click on: a re-render by the live stream while the
  // request is in flight must not offer the button again.
  state.acked.set(id, 0);
  btn.disabled = true;
  btn.textContent = "acknowledging…";
  try {
    const res = await api("/api/v1/alerts/" + encodeURIComponent(id) + "/ack", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: "{}",
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(body.error || res.statusText);
    state.acked.set(id, Date.now());
    btn.textContent = "acknowledged";
  } catch (e) {
    state.acked.delete(id);
    btn.disabled = false;
    btn.textContent = "Acknowledge";
    $("#errors").textContent = "Acknowledging " + id + " failed: " + e.message;
  }
}

// --- live stream ---

async function stream() {
  clearTimeout(state.retry);
  const ctl = new AbortController();
  state.streamAbort = ctl;
  try {
    const res = await api("/api/v1/stream", { signal: ctl.signal, headers: { "Accept": "text/event-stream" } });
    if (!res.ok) throw new Error("stream HTTP " + res.status);
    setLive(true);
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const frame = buf.slice(0, i);
        buf = buf.slice(i + 2);
        let event = "message", data = "";
        for (const line of frame.split("\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data += line.slice(5).trim();
        }
        if (event === "snapshot" && data) render(JSON.parse(data));
      }
    }
  } catch (e) {
    if (e.name === "AbortError" || e.message === "unauthorized") return;
  }
  setLive(false);
  if (state.token) state.retry = setTimeout(stream, 3000);
}

async function start() {
  takeToken();
  if (!state.token) { signOut(""); return; }
  try {
    const me = await api("/api/v1/me");
    if (!me.ok) { signOut((await me.json()).error); return; }
    state.me = await me.json();
    $("#who").textContent = state.me.user + " · " + state.me.tenant + " · " + state.me.roles.join(", ");
    $("#login").hidden = true;
    $("#main").hidden = false;
    $("#logout").hidden = false;
    const d = await api("/api/v1/dashboard");
    if (d.ok) render(await d.json());
    stream();
  } catch (e) {
    if (e.message !== "unauthorized") $("#login-error").textContent = e.message;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem("wardstream.token", $("#token").value.trim());
    $("#token").value = "";
    start();
  });
  $("#logout").addEventListener("click", () => signOut(""));
  start();
});
