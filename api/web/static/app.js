// The shell: sign in and out, the current page's link, and the page's own module (imported only
// for the page being shown, so a cold load fetches one page's code).
import { getKey, setKey, signOut, showError } from "./api.js";

const PAGES = { "/ui": "search", "/ui/dashboards": "dashboards", "/ui/alerts": "alerts", "/ui/admin": "admin" };
const path = location.pathname.replace(/\/+$/, "") || "/ui";
const name = PAGES[path];

for (const a of document.querySelectorAll("nav a")) {
  if (a.getAttribute("href") === path) a.setAttribute("aria-current", "page");
}

function showSignedIn() {
  const signed = Boolean(getKey());
  document.getElementById("signin").hidden = signed;
  document.getElementById("signed").hidden = !signed;
}

let page = null;

document.getElementById("signin").addEventListener("submit", (e) => {
  e.preventDefault();
  const key = document.getElementById("key");
  setKey(key.value.trim(), document.getElementById("remember").checked);
  key.value = "";
  showSignedIn();
  showError(null);
  if (page && page.refresh) page.refresh();
});
document.getElementById("signout").addEventListener("click", () => {
  signOut();
  showSignedIn();
  document.getElementById("key").focus();
});
showSignedIn();

const main = document.getElementById("main");
if (!name) {
  main.innerHTML = "";
  main.append(Object.assign(document.createElement("h1"), { textContent: "No such page" }));
  document.title = "Not found · Strata";
} else {
  import(`./pages/${name}.js`).then((mod) => {
    main.innerHTML = "";
    page = mod.mount(main) || null;
  }).catch((err) => showError(err));
}
