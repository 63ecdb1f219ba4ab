// Alert rules: list, create, edit, enable or disable, delete, and each rule's history. The form
// has the common fields; "More (JSON)" holds the rest (channels, group_by, cooldown, ...).
import { api, el, field, getKey, showError } from "../api.js";

const FORM_FIELDS = ["name", "type", "filter", "window", "comparison", "threshold", "severity", "direction", "sensitivity", "enabled", "id", "tenant", "revision", "created_at", "updated_at"];
const list = (s) => s.split(",").map((x) => x.trim()).filter(Boolean);

export function mount(main) {
  document.title = "Alerts · Strata";
  const rows = el("tbody", { id: "rules" });
  const history = el("section", { id: "history" });
  const name = el("input", { required: true, maxlength: 200 });
  const type = el("select", {}, ["threshold", "anomaly", "new_pattern"].map((t) => el("option", { value: t }, t)));
  const services = el("input", { placeholder: "checkout, auth" });
  const levels = el("input", { placeholder: "ERROR, FATAL" });
  const q = el("input", { class: "mono", placeholder: "payment AND timeout" });
  const win = el("input", { value: "5m", size: 6 });
  const comparison = el("select", {}, [">", ">=", "<", "<=", "==", "!="].map((c) => el("option", { value: c }, c)));
  const threshold = el("input", { type: "number", value: "0", step: "any", size: 6 });
  const severity = el("select", {}, ["warning", "critical", "info"].map((s) => el("option", { value: s }, s)));
  const direction = el("select", {}, ["up", "down", "both"].map((s) => el("option", { value: s }, s)));
  const sensitivity = el("input", { type: "number", min: 1, max: 20, value: 5, size: 4 });
  const extra = el("textarea", { rows: 3, spellcheck: "false" }, '{"channels": []}');
  const submit = el("button", {}, "Create rule");
  const cancel = el("button", { type: "button", class: "secondary", hidden: true }, "Cancel edit");
  const threshFields = el("div", { class: "toolbar" }, field("Comparison", comparison), field("Threshold", threshold));
  const anomalyFields = el("div", { class: "toolbar", hidden: true }, field("Direction", direction), field("Sensitivity", sensitivity));
  const form = el("form", { class: "card", "aria-label": "Alert rule" },
    el("div", { class: "toolbar" }, field("Rule name", name), field("Type", type), field("Services", services), field("Levels", levels), el("div", { class: "field grow" }, el("label", { for: "rule-q" }, "Query"), Object.assign(q, { id: "rule-q" }))),
    el("div", { class: "toolbar" }, field("Window", win), field("Severity", severity), threshFields, anomalyFields),
    field("More (JSON: channels, group_by, cooldown, slide, for_evaluations, ...)", extra),
    el("p", { class: "toolbar" }, submit, cancel));
  main.append(el("h1", {}, "Alert rules"),
    el("table", {}, el("thead", {}, el("tr", {}, ["Name", "Type", "Condition", "State", ""].map((h) => el("th", { scope: "col" }, h)))), rows),
    el("h2", { id: "form-title" }, "New rule"), form, history);

  let editing = null;
  type.addEventListener("change", () => {
    anomalyFields.hidden = type.value !== "anomaly";
    threshFields.hidden = type.value === "anomaly";
  });

  function spec() {
    let more;
    try { more = JSON.parse(extra.value || "{}"); } catch (e) { throw new Error(`More (JSON) is not valid JSON: ${e.message}`); }
    const s = { ...more, name: name.value.trim(), type: type.value, window: win.value.trim(), severity: severity.value,
      filter: { ...(more.filter || {}), services: list(services.value), levels: list(levels.value).map((l) => l.toUpperCase()), q: q.value.trim() || null } };
    if (type.value === "anomaly") Object.assign(s, { direction: direction.value, sensitivity: Number(sensitivity.value) });
    else Object.assign(s, { comparison: comparison.value, threshold: Number(threshold.value) });
    return s;
  }

  function edit(rule) {
    editing = rule;
    name.value = rule.name; type.value = rule.type; type.dispatchEvent(new Event("change"));
    services.value = (rule.filter.services || []).join(", "); levels.value = (rule.filter.levels || []).join(", ");
    q.value = rule.filter.q || ""; win.value = `${rule.window}s`; severity.value = rule.severity;
    comparison.value = rule.comparison; threshold.value = rule.threshold;
    if (rule.direction) direction.value = rule.direction;
    if (rule.sensitivity) sensitivity.value = rule.sensitivity;
    const rest = Object.fromEntries(Object.entries(rule).filter(([k]) => !FORM_FIELDS.includes(k)));
    extra.value = JSON.stringify(rest, null, 1);
    submit.textContent = "Save rule";
    cancel.hidden = false;
    document.getElementById("form-title").textContent = `Edit rule "${rule.name}"`;
    name.focus();
  }

  function reset() {
    editing = null;
    form.reset();
    type.dispatchEvent(new Event("change"));
    extra.value = '{"channels": []}';
    submit.textContent = "Create rule";
    cancel.hidden = true;
    document.getElementById("form-title").textContent = "New rule";
  }

  async function showHistory(rule) {
    try {
      const h = await api("/v1/alerts/history", { params: { rule_id: rule.id, limit: 50 } });
      history.replaceChildren(el("h2", {}, `History of "${rule.name}"`), h.length
        ? el("table", {}, el("thead", {}, el("tr", {}, ["Window end", "State", "Value", "Group", "Reason"].map((x) => el("th", {}, x)))),
          el("tbody", {}, h.map((e) => el("tr", {}, el("td", {}, e.window_end), el("td", {}, e.state), el("td", {}, e.value ?? ""),
            el("td", {}, JSON.stringify(e.group)), el("td", {}, e.reason)))))
        : el("p", { class: "muted" }, "This rule has not changed state yet."));
      history.querySelector("h2").setAttribute("tabindex", "-1");
      history.querySelector("h2").focus();
    } catch (e) { showError(e); }
  }

  async function act(rule, verb) {
    try {
      if (verb === "delete") {
        if (!confirm(`Delete the rule "${rule.name}"? Its history stays.`)) return;
        await api(`/v1/alerts/rules/${rule.id}`, { method: "DELETE" });
      } else await api(`/v1/alerts/rules/${rule.id}/${verb}`, { method: "POST" });
      await refresh();
    } catch (e) { showError(e); }
  }

  function condition(r) {
    if (r.type === "anomaly") return `${r.direction} anomaly, sensitivity ${r.sensitivity}, window ${r.window}s`;
    return `${r.aggregation} ${r.comparison} ${r.threshold} in ${r.window}s`;
  }

  async function refresh() {
    if (!getKey()) return showError("sign in with an API key first (the field at the top right)");
    try {
      const rules = await api("/v1/alerts/rules");
      rows.replaceChildren(...rules.map((r) => el("tr", {},
        el("td", {}, r.name), el("td", {}, r.type), el("td", {}, condition(r)),
        el("td", {}, el("span", { class: `badge ${r.enabled ? "on" : "off"}` }, r.enabled ? "enabled" : "disabled")),
        el("td", {},
          el("button", { type: "button", class: "link", onclick: () => edit(r), "aria-label": `Edit ${r.name}` }, "edit"), " ",
          el("button", { type: "button", class: "link", onclick: () => act(r, r.enabled ? "disable" : "enable"), "aria-label": `${r.enabled ? "Disable" : "Enable"} ${r.name}` }, r.enabled ? "disable" : "enable"), " ",
          el("button", { type: "button", class: "link", onclick: () => showHistory(r), "aria-label": `History of ${r.name}` }, "history"), " ",
          el("button", { type: "button", class: "link", onclick: () => act(r, "delete"), "aria-label": `Delete ${r.name}` }, "delete")))));
      if (!rules.length) rows.append(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No rules yet: create one below.")));
    } catch (e) { showError(e); }
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const body = spec();
      if (editing) await api(`/v1/alerts/rules/${editing.id}`, { method: "PUT", body: { ...body, enabled: editing.enabled } });
      else await api("/v1/alerts/rules", { method: "POST", body });
      showError(null);
      reset();
      await refresh();
    } catch (err) { showError(err); }
  });
  cancel.addEventListener("click", reset);
  refresh();
  return { refresh };
}
