// The API key and calls to the API. The key lives in sessionStorage (gone when the tab closes)
// unless the user asks to be remembered (localStorage); Sign out clears both.
const NAME = "strata-key";

export function getKey() {
  return sessionStorage.getItem(NAME) || localStorage.getItem(NAME) || "";
}

export function setKey(key, remember) {
  signOut();
  (remember ? localStorage : sessionStorage).setItem(NAME, key);
}

export function signOut() {
  sessionStorage.removeItem(NAME);
  localStorage.removeItem(NAME);
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// The API's error bodies are {"detail": "text"}, {"detail": {"message": ...}} or FastAPI's
// validation list [{"loc": [...], "msg": ...}]; each becomes one sentence a user can act on.
export function describe(status, body) {
  const d = body && body.detail;
  if (typeof d === "string") return d;
  if (Array.isArray(d)) {
    return d.map((e) => `${(e.loc || []).filter((p) => p !== "body").join(".") || "request"}: ${e.msg}`).join("; ");
  }
  if (d && d.message) return d.message; // a query error's message already says where
  return `the API answered ${status}`;
}

export async function api(path, { method = "GET", params, body } = {}) {
  const key = getKey();
  if (!key) throw new ApiError(401, "sign in with an API key first (the field at the top right)");
  let url = path;
  if (params) {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (v === undefined || v === null || v === "") continue;
      for (const one of Array.isArray(v) ? v : [v]) p.append(k, one);
    }
    if ([...p].length) url += "?" + p;
  }
  const headers = { "X-API-Key": key };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let r;
  try {
    r = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, `cannot reach the API (${e.message})`);
  }
  if (r.status === 204) return null;
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!r.ok) throw new ApiError(r.status, data ? describe(r.status, data) : `the API answered ${r.status} ${r.statusText}`);
  return data;
}

export function showError(err) {
  const box = document.getElementById("error");
  if (!err) { box.hidden = true; box.textContent = ""; return; }
  box.textContent = err instanceof ApiError || err instanceof Error ? err.message : String(err);
  box.hidden = false;
}

// Small DOM helper: el("td", {class: "x"}, "text", child)
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c);
  return node;
}

// A labelled form field: label + control, for forms that read well with a screen reader.
export function field(label, control) {
  if (!control.id) control.id = "f-" + Math.random().toString(36).slice(2, 9);
  return el("div", { class: "field" }, el("label", { for: control.id }, label), control);
}

export function isoAgo(seconds, now = Date.now()) {
  return new Date(now - seconds * 1000).toISOString();
}
