// Search: query, filters and range; a histogram; results; a record's detail and the lines logged
// around it (its context); live tail over the API's WebSocket.
import { api, el, field, getKey, showError } from "../api.js";
import { histogram } from "../chart.js";

const RANGES = [["now-15m", "last 15 minutes"], ["now-1h", "last hour"], ["now-24h", "last 24 hours"],
  ["now-7d", "last 7 days"], ["now-30d", "last 30 days"], ["now-90d", "last 90 days"]];
const LEVELS = [["", "any level"], [">=DEBUG", "DEBUG and up"], [">=INFO", "INFO and up"], [">=WARN", "WARN and up"],
  [">=ERROR", "ERROR and up"], ["FATAL", "FATAL"]];

function options(pairs, selected) {
  return pairs.map(([v, t]) => el("option", { value: v, selected: v === selected }, t));
}

export function mount(main) {
  document.title = "Search · Strata";
  const url = new URLSearchParams(location.search);
  const q = el("input", { id: "q", name: "q", type: "search", class: "mono", value: url.get("q") || "",
    placeholder: 'payment AND (timeout OR "connection reset")', autofocus: true });
  const service = el("input", { id: "service", name: "service", size: 14, value: url.get("service") || "" });
  const level = el("select", { id: "level", name: "level" }, options(LEVELS, url.get("level") || ""));
  const range = el("select", { id: "range", name: "range" }, options(RANGES, url.get("from") || "now-1h"));
  const tailBtn = el("button", { type: "button", class: "secondary", id: "tail" }, "Live tail");
  const form = el("form", { class: "toolbar", role: "search", "aria-label": "Search logs" },
    el("div", { class: "field grow" }, el("label", { for: "q" }, "Query"), q),
    field("Service", service), field("Level", level), field("Time range", range),
    el("button", { id: "go" }, "Search"), tailBtn);
  const status = el("p", { id: "status", class: "muted", "aria-live": "polite" });
  const hist = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  hist.setAttribute("class", "hist");
  hist.setAttribute("aria-label", "matching logs over time, by level");
  hist.setAttribute("role", "img");
  const rows = el("tbody", { id: "rows" });
  const more = el("button", { class: "secondary", hidden: true, type: "button" }, "More");
  const detail = el("section", { id: "detail", class: "card", hidden: true, "aria-label": "Log detail", tabindex: "-1" });
  const results = el("div", {}, hist,
    el("table", { class: "logs" },
      el("thead", {}, el("tr", {}, ["Time (UTC)", "Level", "Service", "Host", "Message"].map((h) => el("th", { scope: "col" }, h)))),
      rows), el("p", {}, more));
  const split = el("div", { class: "split" }, results, detail);
  main.append(el("h1", {}, "Search"), form, status, split);

  let cursor = null, socket = null;
  // Each search or tail started makes the answers of those before it stale: a slow search that
  // answers after a newer one, or after the tail began, must not add its rows.
  let generation = 0;

  function params() {
    return { q: q.value, from: range.value, service: service.value.trim(), level: level.value };
  }

  function row(log, top) {
    const open = el("button", { class: "link", type: "button", onclick: () => openDetail(log) }, log.message);
    const tr = el("tr", {},
      el("td", {}, log.timestamp.replace("T", " ").slice(0, 23)), el("td", { class: log.level }, log.level),
      el("td", {}, log.service), el("td", {}, log.host), el("td", { class: "msg" }, open));
    top ? rows.prepend(tr) : rows.append(tr);
  }

  function tiers(body) {
    return (body.tiers || []).map((t) => t.status === "ok" ? `${t.tier} ${Math.round(t.took_ms)} ms` : `${t.tier} ${t.status}`).join(", ");
  }

  async function search(next) {
    stopTail();
    showError(null);
    const mine = ++generation;
    const p = { ...params(), limit: 200 };
    if (next && cursor) p.cursor = cursor;
    history.replaceState(null, "", "?" + new URLSearchParams(Object.entries(params()).filter(([, v]) => v)));
    status.textContent = "searching…";
    try {
      const [body, h] = await Promise.all([api("/v1/logs/search", { params: p }), next ? null : api("/v1/logs/histogram", { params: params() })]);
      if (mine !== generation) return;
      if (!next) { rows.replaceChildren(); histogram(hist, h.buckets); }
      body.logs.forEach((log) => row(log, false));
      cursor = body.cursor;
      more.hidden = !cursor;
      status.textContent = `${body.total_is_exact ? "" : "at least "}${body.total} logs · ${Math.round(body.took_ms)} ms · ${tiers(body)}`;
      if (!body.total) status.textContent = "no logs match; widen the time range or change the query";
    } catch (e) {
      if (mine !== generation) return;
      status.textContent = "";
      showError(e);
    }
  }

  function fields(log) {
    const dl = el("dl", { class: "fields" });
    const add = (k, v) => { if (v !== null && v !== undefined && v !== "" && !(Array.isArray(v) && !v.length)) dl.append(el("dt", {}, k), el("dd", {}, typeof v === "object" ? JSON.stringify(v) : String(v))); };
    for (const k of ["timestamp", "level", "service", "host", "environment", "region", "message", "log_id", "trace_id", "span_id", "pattern", "pattern_id", "source_format", "tags", "ingested_at"]) add(k, log[k]);
    for (const [k, v] of Object.entries(log.attributes || {})) add(`attributes.${k}`, v);
    return dl;
  }

  async function openDetail(log) {
    showError(null);
    split.classList.add("open");
    detail.hidden = false;
    const close = el("button", { type: "button", class: "secondary", onclick: () => { detail.hidden = true; split.classList.remove("open"); } }, "Close");
    detail.replaceChildren(el("h2", {}, "Log detail"), fields(log), el("h2", {}, "Context"), el("p", { class: "muted" }, "loading the lines around it…"), close);
    detail.focus();
    try {
      const ctx = await api(`/v1/logs/${encodeURIComponent(log.log_id)}/context`, { params: { timestamp: log.timestamp, before: 10, after: 10 } });
      const body = el("tbody", {});
      const line = (r, current) => body.append(el("tr", { class: current ? "current" : null },
        el("td", {}, r.timestamp.slice(11, 23)), el("td", { class: r.level }, r.level), el("td", { class: "msg" }, r.message)));
      ctx.before.forEach((r) => line(r, false));
      line(ctx.log, true);
      ctx.after.forEach((r) => line(r, false));
      detail.replaceChildren(el("h2", {}, "Log detail"), fields(ctx.log),
        el("h2", {}, `Context: ${ctx.log.service} on ${ctx.log.host}`),
        el("table", { class: "logs", id: "context" }, body), el("p", {}, close));
    } catch (e) {
      detail.querySelector("p.muted").textContent = `context unavailable: ${e.message}`;
    }
  }

  function stopTail() {
    if (socket) { socket.close(); socket = null; tailBtn.textContent = "Live tail"; }
  }

  function tail() {
    if (socket) return stopTail();
    if (!getKey()) return showError("sign in with an API key first (the field at the top right)");
    showError(null);
    generation += 1;
    const p = new URLSearchParams(Object.entries({ ...params(), from: "" }).filter(([, v]) => v));
    p.set("api_key", getKey());
    socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/logs/tail?${p}`);
    tailBtn.textContent = "Stop tail";
    rows.replaceChildren();
    more.hidden = true;
    socket.onmessage = (ev) => {
      const m = JSON.parse(ev.data);
      if (m.type === "logs") m.logs.forEach((log) => row(log, true));
      if (m.type === "subscribed") status.textContent = "following new logs…";
      if (m.type === "error") showError(m.message || m.detail || "live tail failed");
    };
    socket.onclose = (ev) => { if (ev.code >= 4000) showError(ev.reason); stopTail(); };
  }

  form.addEventListener("submit", (e) => { e.preventDefault(); search(false); });
  more.addEventListener("click", () => search(true));
  tailBtn.addEventListener("click", tail);
  if (url.get("q") !== null && getKey()) search(false);
  return { refresh: () => search(false) };
}
