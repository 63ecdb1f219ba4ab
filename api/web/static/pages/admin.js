// Admin: the tenant's retention per tier and its deletion log, and its API keys (create, rotate,
// revoke). Needs a key with the admin scope.
import { api, el, field, getKey, showError } from "../api.js";

const SCOPES = ["search", "ingest", "register", "admin"];
const LABELS = { hot_days: "Hot days (OpenSearch)", warm_days: "Warm days (Cassandra)", archive_days: "Archive days (S3)",
  metrics_1m_days: "Metrics per minute, days", metrics_1h_days: "Metrics per hour, days", metrics_1d_days: "Metrics per day, days" };
const SAID = { hot_days: "hot", warm_days: "warm", archive_days: "archive", metrics_1m_days: "metrics per minute",
  metrics_1h_days: "metrics per hour", metrics_1d_days: "metrics per day" };

export function mount(main) {
  document.title = "Admin · Strata";
  const days = {};
  const edited = new Set(); // fields the user typed in since they were last saved: a reading keeps them
  const retForm = el("form", { class: "toolbar card", "aria-label": "Retention" });
  const retFields = el("div", { class: "toolbar" });
  const retNow = el("p", { class: "muted", id: "retention-now", "aria-live": "polite" });
  retForm.append(retFields, el("button", {}, "Save retention"));
  const log = el("tbody", {});
  const keys = el("tbody", { id: "keys" });
  const keyName = el("input", { maxlength: 200 });
  const scopeBoxes = SCOPES.map((s) => el("input", { type: "checkbox", value: s, id: `scope-${s}`, checked: s === "search" }));
  const newKey = el("div", { "aria-live": "polite" });
  const keyForm = el("form", { class: "toolbar card", "aria-label": "New key" }, field("Key name", keyName),
    el("fieldset", { class: "toolbar" }, el("legend", {}, "Scopes"), scopeBoxes.map((b) => el("label", { class: "check", for: b.id }, b, b.value))),
    el("button", {}, "Create key"));
  main.append(el("h1", {}, "Admin"), el("h2", {}, "Retention"), retNow, retForm,
    el("h2", {}, "Deleted by retention"), el("table", {}, el("thead", {}, el("tr", {}, ["At", "Tier", "Target", "Reason", "Records"].map((h) => el("th", {}, h)))), log),
    el("h2", {}, "API keys"), el("table", {}, el("thead", {}, el("tr", {}, ["Name", "Key id", "Scopes", "Created", "Last used", "State", ""].map((h) => el("th", {}, h)))), keys),
    keyForm, newKey);

  // One field per tier the API keeps days for (it may know more than these labels); every field is
  // sent back on save, since a missing one would reset that tier to its default.
  function fieldsFor(defaults) {
    for (const k of Object.keys(defaults)) {
      if (days[k]) continue;
      days[k] = el("input", { type: "number", min: 0, size: 6, id: k, oninput: () => edited.add(k) });
      retFields.append(field(LABELS[k] || k.replace(/_/g, " "), days[k]));
    }
  }

  function showRetention(r) {
    fieldsFor(r.defaults);
    for (const k of Object.keys(days)) {
      if (!edited.has(k)) days[k].value = r.override[k] ?? "";
      days[k].placeholder = `default ${r.defaults[k]}`;
    }
    retNow.textContent = `In force for ${r.tenant}: ` + Object.keys(r.defaults).map((k) => `${SAID[k] || k} ${r.retention[k]} days`).join(", ") + " (empty fields keep the default).";
  }

  // A reading that left before the user's last change would show the old values: it is dropped.
  let changes = 0;

  async function refresh() {
    if (!getKey()) return showError("sign in with an API key first (the field at the top right)");
    const seen = changes;
    try {
      const [r, deleted, ks] = await Promise.all([api("/v1/retention"), api("/v1/retention/log", { params: { limit: 20 } }), api("/v1/keys")]);
      if (seen !== changes) return;
      showRetention(r);
      log.replaceChildren(...deleted.map((d) => el("tr", {}, el("td", {}, d.at), el("td", {}, d.tier), el("td", {}, d.target), el("td", {}, d.reason), el("td", {}, d.records ?? ""))));
      if (!deleted.length) log.append(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "Nothing deleted yet.")));
      keys.replaceChildren(...ks.map((k) => {
        const state = k.revoked_at ? "revoked" : k.expires_at ? `expires ${k.expires_at}` : "active";
        return el("tr", {}, el("td", {}, k.name || "(unnamed)"), el("td", { class: "mono" }, k.key_id), el("td", {}, k.scopes.join(", ")),
          el("td", {}, k.created_at.slice(0, 19)), el("td", {}, (k.last_used_at || "never").slice(0, 19)), el("td", {}, state),
          el("td", {}, k.revoked_at ? "" : [
            el("button", { type: "button", class: "link", "aria-label": `Rotate ${k.key_id}`, onclick: () => rotate(k) }, "rotate"), " ",
            el("button", { type: "button", class: "link", "aria-label": `Revoke ${k.key_id}`, onclick: () => revoke(k) }, "revoke")]));
      }));
    } catch (e) { showError(e); }
  }

  function shown(created) {
    newKey.replaceChildren(el("p", {}, `New key ${created.key_id} (shown only once, copy it now):`), el("p", { class: "secret", id: "new-key" }, created.key));
  }

  async function rotate(k) {
    changes += 1;
    try { shown(await api(`/v1/keys/${k.key_id}/rotate`, { method: "POST", body: { grace_s: 0 } })); await refresh(); } catch (e) { showError(e); }
  }
  async function revoke(k) {
    if (!confirm(`Revoke the key ${k.key_id}? Clients using it stop at once.`)) return;
    try { await api(`/v1/keys/${k.key_id}`, { method: "DELETE" }); await refresh(); } catch (e) { showError(e); }
  }

  retForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    changes += 1;
    const body = Object.fromEntries(Object.entries(days).map(([k, i]) => [k, i.value === "" ? null : Number(i.value)]));
    try {
      const saved = await api("/v1/retention", { method: "PUT", body });
      edited.clear();
      showRetention(saved);
      showError(null);
    } catch (err) { showError(err); }
  });
  keyForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    changes += 1;
    const scopes = scopeBoxes.filter((b) => b.checked).map((b) => b.value);
    try { shown(await api("/v1/keys", { method: "POST", body: { name: keyName.value.trim(), scopes } })); showError(null); keyName.value = ""; await refresh(); } catch (err) { showError(err); }
  });
  refresh();
  return { refresh };
}
