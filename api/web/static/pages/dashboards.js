// Dashboards: volume by level and service, error rate, top and new patterns, a metric rule's
// stat, and the panels a user adds and saves for the tenant (/v1/dashboards). Volume and metric
// panels read /v1/metrics/logs; metric rules are made here too (/v1/metrics/rules).
import { api, el, field, getKey, showError } from "../api.js";
import { bars, lines } from "../chart.js";

const RANGES = [[900, "last 15 minutes", "1m"], [3600, "last hour", "1m"], [6 * 3600, "last 6 hours", "5m"],
  [86400, "last 24 hours", "5m"], [7 * 86400, "last 7 days", "1h"]];
const REFRESH = [[0, "off"], [10, "every 10 s"], [30, "every 30 s"], [60, "every minute"]];
const KINDS = [["volume", "volume over time"], ["error_rate", "error rate"], ["top", "top values"], ["new_patterns", "new patterns"], ["metric", "a metric rule's stat"]];
const STATS = ["p50", "p95", "p99", "avg", "min", "max", "sum", "count"];
const UNITS = [["", "as logged"], ["ms", "ms"], ["s", "s"], ["bytes", "bytes"]];
const GROUPS = ["level", "service", "pattern", "host"];
export const OVERVIEW = [
  { title: "Volume by level", kind: "volume", group_by: "level" },
  { title: "Volume by service", kind: "volume", group_by: "service" },
  { title: "Error rate", kind: "error_rate", group_by: "level" },
  { title: "Services", kind: "top", group_by: "service" },
  { title: "Top patterns", kind: "top", group_by: "pattern" },
  { title: "New patterns", kind: "new_patterns", group_by: "pattern" },
];

const LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
const NO_PATTERN = "_none"; // the metrics' pattern of records the miner gave none (core/metrics.py)

// The metrics endpoint takes a list of levels, the search endpoints also a minimum (>=WARN) or a
// maximum (<=INFO): a panel's level is turned into the list for the former.
export function levelList(level) {
  const m = /^\s*([<>]=)\s*(\w+)\s*$/.exec(level || "");
  if (!m) return level;
  const at = LEVELS.indexOf(m[2].toUpperCase());
  if (at < 0) return level; // the API names what is wrong
  return (m[1] === ">=" ? LEVELS.slice(at) : LEVELS.slice(0, at + 1)).join(",");
}

// The metrics list only the steps that had records; a count line drops to 0 in between.
export function filled(points, { from, to, step_s }) {
  if (!step_s || from === undefined || to === undefined) return points;
  const at = new Map(points.map(([t, v]) => [t, v]));
  const out = [];
  for (let t = from; t < to; t += step_s) out.push([t, at.get(t) ?? 0]);
  for (const [t, v] of points) if (t < from || t >= to) out.push([t, v]);
  return out;
}

function opts(pairs, selected) {
  return pairs.map(([v, t]) => el("option", { value: v, selected: String(v) === String(selected) }, t));
}

export function mount(main) {
  document.title = "Dashboards · Strata";
  const url = new URLSearchParams(location.search);
  const picker = el("select", { id: "dashboard" }, el("option", { value: "" }, "Overview"));
  const range = el("select", { id: "range" }, opts(RANGES.map(([s, t]) => [s, t]), url.get("range") || 3600));
  const refreshSel = el("select", { id: "refresh" }, opts(REFRESH, url.get("refresh") || 0));
  const refreshBtn = el("button", { type: "button", class: "secondary" }, "Refresh");
  const updated = el("span", { class: "muted", id: "updated", "aria-live": "polite" });
  const grid = el("div", { class: "grid", id: "panels" });

  const title = el("input", { required: true, maxlength: 200 });
  const kind = el("select", {}, opts(KINDS, "volume"));
  const groupBy = el("select", {}, opts(GROUPS.map((g) => [g, g]), "service"));
  const pService = el("input", { size: 12 });
  const pLevel = el("input", { size: 8, placeholder: ">=WARN" });
  const pRule = el("select", { id: "panel-rule" }, el("option", { value: "" }, "(metric panels)"));
  const pStat = el("select", {}, opts(STATS.map((v) => [v, v]), "p95"));
  const addForm = el("form", { class: "toolbar card", "aria-label": "Add a panel" },
    field("Panel title", title), field("Shows", kind), field("Group by", groupBy), field("Only service", pService),
    field("Only level", pLevel), field("Metric rule", pRule), field("Stat", pStat), el("button", {}, "Add panel"));
  const rName = el("input", { required: true, maxlength: 200 });
  const rService = el("input", { size: 12 });
  const rField = el("input", { required: true, size: 10, placeholder: "latency" });
  const rUnit = el("select", {}, opts(UNITS, ""));
  const ruleForm = el("form", { class: "toolbar card", "aria-label": "New metric rule" },
    field("Rule name", rName), field("Service", rService), field("Field", rField), field("Bare numbers in", rUnit),
    el("button", {}, "Create rule"));
  const nameInput = el("input", { required: true, maxlength: 200 });
  const saveForm = el("form", { class: "toolbar", "aria-label": "Save the dashboard" },
    field("Dashboard name", nameInput), el("button", {}, "Save dashboard"));
  const deleteBtn = el("button", { type: "button", class: "danger", hidden: true }, "Delete dashboard");
  saveForm.append(deleteBtn);

  main.append(el("h1", {}, "Dashboards"),
    el("div", { class: "toolbar" }, field("Dashboard", picker), field("Time range", range), field("Auto-refresh", refreshSel), refreshBtn, updated),
    grid, el("h2", {}, "Add a panel"), addForm, saveForm,
    el("h2", {}, "Metric rules"), el("p", { class: "note" }, "A rule turns a field of the records it selects (latency=722ms) into count, sum, min, max and quantiles per minute; a metric panel charts one."),
    ruleForm);

  let current = { id: null, name: "", panels: OVERVIEW };
  let saved = [];
  let timer = null;
  let edits = 0; // panels added or removed: a list that arrives after keeps them instead of switching

  function rangeNow() {
    const span = Number(range.value), to = Math.floor(Date.now() / 1000);
    const step = RANGES.find(([s]) => s === span)[2];
    return { span, from: to - span, to, step };
  }
  const iso = (s) => new Date(s * 1000).toISOString();

  // Counts per step as the ingest job computed them on the stream: cheap over any range.
  function metrics(panel, r, groupBy) {
    return api("/v1/metrics/logs", { params: { service: panel.service, level: levelList(panel.level), group_by: groupBy, from: iso(r.from), to: iso(r.to), step: r.step } });
  }

  async function top(panel, from, to, by, limit) {
    return api("/v1/logs/top", { params: { q: panel.q, service: panel.service, level: panel.level, from: iso(from), to: iso(to), by, limit } });
  }

  // Metrics name a pattern by its id; people read its template. The records of the range carry
  // both, so the texts come from ranking those records by pattern, limited to these ids.
  async function patternTexts(ids, r) {
    const named = ids.filter((id) => id && id !== NO_PATTERN);
    if (!named.length) return new Map();
    const q = named.map((id) => `pattern_id:${id}`).join(" OR ");
    const t = await api("/v1/logs/top", { params: { q, from: iso(r.from), to: iso(r.to), by: "pattern", limit: named.length } });
    return new Map(t.items.map((i) => [i.pattern_id, i.value]));
  }

  // What a series of a metrics panel is called: a pattern's text (its id on hover), else the value.
  async function labelled(m, panel, r) {
    const by = panel.group_by;
    const texts = by === "pattern" ? await patternTexts(m.series.map((s) => s.labels.pattern), r) : new Map();
    return m.series.map((s) => {
      const value = s.labels[by] ?? (Object.values(s.labels).join(" ") || "all");
      if (by !== "pattern") return { label: value, points: filled(s.points, m) };
      const label = value === NO_PATTERN ? "(no pattern)" : texts.get(value) ?? value;
      return { label, title: `pattern id ${value}`, points: filled(s.points, m) };
    });
  }

  // Ranked patterns: the template text, with its id on hover.
  const withIds = (items) => items.map((i) => (i.pattern_id ? { ...i, title: `${i.value}\npattern id ${i.pattern_id}` } : i));

  async function render(panel, body, r) {
    if (panel.kind === "metric") {
      const by = ["service", "level"].includes(panel.group_by) ? panel.group_by : undefined;
      const m = await api("/v1/metrics/logs", { params: { rule: panel.rule, stat: panel.stat, service: panel.service, level: levelList(panel.level), group_by: by, from: iso(r.from), to: iso(r.to), step: r.step } });
      const series = m.series.map((s) => ({ label: (by && s.labels[by]) || m.rule.field, points: s.points }));
      body.replaceChildren(el("p", { class: "note" }, `${m.stat} of ${m.rule.field}${m.unit ? ` (${m.unit})` : ""}`),
        series.length ? lines(series, r.from, r.to, { unit: m.unit }) : el("p", { class: "note" }, "no values in this range"));
    } else if (panel.kind === "volume") {
      const m = await metrics(panel, r, panel.group_by);
      const series = await labelled(m, panel, r);
      body.replaceChildren(series.length ? lines(series, r.from, r.to) : el("p", { class: "note" }, "no logs in this range"));
    } else if (panel.kind === "error_rate") {
      const m = await metrics(panel, r, "level");
      const at = {};
      for (const s of m.series) for (const [t, v] of s.points) {
        const slot = (at[t] ||= [0, 0]);
        slot[1] += v;
        if (["ERROR", "FATAL"].includes(s.labels.level)) slot[0] += v;
      }
      const points = Object.entries(at).map(([t, [e, n]]) => [Number(t), n ? (100 * e) / n : 0]);
      const all = Object.values(at).reduce((a, [e, n]) => [a[0] + e, a[1] + n], [0, 0]);
      body.replaceChildren(el("p", { class: "note" }, `${all[1] ? ((100 * all[0]) / all[1]).toFixed(1) : "0"}% of ${all[1]} logs are ERROR or FATAL`),
        points.length ? lines([{ label: "error %", points }], r.from, r.to, { unit: "%" }) : el("p", { class: "note" }, "no logs in this range"));
    } else if (panel.kind === "top") {
      const t = await top(panel, r.from, r.to, panel.group_by, 10);
      body.replaceChildren(t.items.length ? bars(withIds(t.items)) : el("p", { class: "note" }, "no logs in this range"));
    } else if (panel.kind === "new_patterns") {
      const [now, before] = await Promise.all([top(panel, r.from, r.to, "pattern", 100), top(panel, r.from - r.span, r.from, "pattern", 1000)]);
      const seen = new Set(before.items.map((i) => i.value));
      const fresh = now.items.filter((i) => !seen.has(i.value)).slice(0, 10);
      body.replaceChildren(el("p", { class: "note" }, "patterns not seen in the span before this one"),
        fresh.length ? bars(withIds(fresh)) : el("p", { class: "note" }, "no new patterns"));
    }
  }

  function draw() {
    if (!getKey()) { showError("sign in with an API key first (the field at the top right)"); return; }
    showError(null);
    const r = rangeNow();
    grid.replaceChildren();
    current.panels.forEach((panel, i) => {
      const body = el("div", { class: "panel-body" }, el("p", { class: "note" }, "loading…"));
      const head = el("h3", {}, el("span", {}, panel.title));
      if (current.id !== null || current.panels !== OVERVIEW) {
        head.append(el("button", { type: "button", class: "link", "aria-label": `Remove panel ${panel.title}`, onclick: () => {
          current = { ...current, panels: current.panels.filter((_, j) => j !== i) };
          edits += 1;
          draw();
        } }, "remove"));
      }
      const filters = [panel.service && `service ${panel.service}`, panel.level && `level ${panel.level}`].filter(Boolean).join(", ");
      grid.append(el("section", { class: "card panel", "aria-label": panel.title }, head, filters ? el("p", { class: "note" }, filters) : null, body));
      render(panel, body, r).catch((e) => body.replaceChildren(el("p", { class: "error", role: "status" }, e.message)));
    });
    updated.textContent = `updated ${new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })}`;
  }

  function schedule() {
    clearInterval(timer);
    const s = Number(refreshSel.value);
    if (s) timer = setInterval(draw, s * 1000);
  }

  function choose(id) {
    const d = saved.find((x) => x.id === id);
    current = d ? { id: d.id, name: d.name, panels: d.panels } : { id: null, name: "", panels: OVERVIEW };
    picker.value = d ? d.id : "";
    nameInput.value = current.name;
    deleteBtn.hidden = !d;
    const p = new URLSearchParams(location.search);
    d ? p.set("d", d.id) : p.delete("d");
    history.replaceState(null, "", p.size ? "?" + p : location.pathname);
    draw();
  }

  async function load(selectId) {
    if (!getKey()) return draw();
    const seen = edits;
    try {
      saved = await api("/v1/dashboards");
    } catch (e) { saved = []; showError(e); }
    picker.replaceChildren(el("option", { value: "" }, "Overview"), ...saved.map((d) => el("option", { value: d.id }, d.name)));
    if (seen !== edits) { picker.value = current.id || ""; return; }
    choose(selectId);
  }

  addForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const panel = { title: title.value.trim(), kind: kind.value, group_by: groupBy.value, service: pService.value.trim(), level: pLevel.value.trim() };
    if (panel.kind === "metric") {
      if (!pRule.value) { showError("a metric panel charts a metric rule: choose one, or create one below"); return; }
      Object.assign(panel, { rule: pRule.value, stat: pStat.value });
    }
    current = { ...current, panels: [...current.panels, panel] };
    edits += 1;
    title.value = "";
    draw();
  });
  saveForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { name: nameInput.value.trim(), panels: current.panels.map(({ title, kind, group_by, service = "", level = "", q = "", rule, stat }) => ({ title, kind, group_by, service, level, q, ...(kind === "metric" ? { rule, stat } : {}) })) };
    try {
      const d = current.id ? await api(`/v1/dashboards/${current.id}`, { method: "PUT", body }) : await api("/v1/dashboards", { method: "POST", body });
      showError(null);
      await load(d.id);
      updated.textContent = `saved "${d.name}"`;
    } catch (err) { showError(err); }
  });
  deleteBtn.addEventListener("click", async () => {
    if (!current.id || !confirm(`Delete the dashboard "${current.name}"?`)) return;
    try { await api(`/v1/dashboards/${current.id}`, { method: "DELETE" }); await load(""); } catch (err) { showError(err); }
  });
  async function loadRules(selectId) {
    if (!getKey()) return;
    try {
      const rules = await api("/v1/metrics/rules");
      pRule.replaceChildren(el("option", { value: "" }, "(metric panels)"), ...rules.map((x) => el("option", { value: x.id }, `${x.name} (${x.field})`)));
      if (selectId) pRule.value = selectId;
    } catch (e) { showError(e); }
  }
  ruleForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const service = rService.value.trim();
    const body = { name: rName.value.trim(), field: rField.value.trim(), unit: rUnit.value, filter: service ? { services: [service] } : {} };
    try {
      const made = await api("/v1/metrics/rules", { method: "POST", body });
      showError(null);
      await loadRules(made.id);
      kind.value = "metric";
      updated.textContent = `rule "${made.name}" created: the job evaluates it within seconds`;
      rName.value = "";
    } catch (err) { showError(err); }
  });
  picker.addEventListener("change", () => choose(picker.value));
  range.addEventListener("change", draw);
  refreshSel.addEventListener("change", schedule);
  refreshBtn.addEventListener("click", draw);
  load(url.get("d") || "");
  loadRules();
  schedule();
  return { refresh: () => { loadRules(pRule.value); return load(picker.value); } };
}
