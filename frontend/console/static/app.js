// The console's shell: who is logged in, the navigation, and which view the
// address (#/images/…) shows. Views live in views/, one per page.

import * as api from "./api.js";
import { clear, h, problem, toast } from "./ui.js";
import * as dashboard from "./views/dashboard.js";
import * as images from "./views/images.js";
import * as jobs from "./views/jobs.js";
import * as keys from "./views/keys.js";
import * as login from "./views/login.js";
import * as tester from "./views/test.js";

const PAGES = [
  { path: "", title: "Dashboard", view: dashboard.render },
  { path: "images", title: "Images", view: images.renderList, detail: images.renderDetail },
  { path: "jobs", title: "Jobs", view: jobs.renderList, detail: jobs.renderDetail },
  { path: "keys", title: "API keys", view: keys.render },
  { path: "test", title: "Test", view: tester.render },
];

const app = document.getElementById("app");
let user = null;
let shown = 0; // guards against a slow view drawing over a newer one
// The shown view's lifetime: aborted when another route is drawn, so that a view's
// timers and listeners (the dashboard's polling) end with it.
let lifetime = new AbortController();

/** "#/jobs/abc?page=2" -> { section: "jobs", id: "abc", query: URLSearchParams } */
function where() {
  const [path, search] = location.hash.replace(/^#\/?/, "").split("?");
  const [section = "", id = null] = path.split("/").map(decodeURIComponent);
  return { section, id, query: new URLSearchParams(search || "") };
}

function shell(current) {
  const nav = h("nav", { class: "nav", "aria-label": "console" },
    PAGES.map((page) => h("a", { href: `#/${page.path}`, "aria-current": page === current ? "page" : false },
      page.title)));
  const logoutButton = h("button", { class: "button ghost", type: "button", onclick: signOut }, "Log out");
  const main = h("main", { id: "main", tabindex: "-1" });
  clear(app,
    h("header", { class: "topbar" },
      h("a", { class: "brand", href: "#/" }, h("span", { class: "logo", "aria-hidden": "true" }), "Face API"),
      nav,
      h("div", { class: "who" }, h("span", { class: "muted", title: "logged in as" }, user), logoutButton)),
    main);
  return main;
}

/** Show the page the address names; `focus` moves the focus to it (not on the first load,
 * where the first Tab should reach the skip link). */
async function route(focus = true) {
  const ticket = ++shown;
  lifetime.abort();
  lifetime = new AbortController();
  const { signal } = lifetime;
  if (!user) {
    try {
      user = (await api.session()).username;
    } catch (error) {
      if (error.status !== 401) {
        clear(app, h("main", { class: "center" }, problem(error)));
        return;
      }
      login.render(app, async (name) => {
        user = name;
        await route(true);
      });
      return;
    }
  }
  const place = where();
  const page = PAGES.find((p) => p.path === place.section) || PAGES[0];
  document.title = `${page.title} · Face API admin`;
  const main = shell(page);
  main.setAttribute("aria-busy", "true"); // until the view has its data (tests wait on it too)
  try {
    await (place.id && page.detail ? page.detail(main, place.id, place.query, signal)
      : page.view(main, place.query, signal));
  } catch (error) {
    if (ticket !== shown || error.status === 401) return;
    main.append(problem(error));
  } finally {
    main.removeAttribute("aria-busy");
  }
  if (focus && ticket === shown && !main.contains(document.activeElement)) main.focus({ preventScroll: true });
}

async function signOut() {
  try {
    await api.logout();
  } catch (error) {
    toast(`Logging out failed: ${error.message}`, "error");
    return;
  }
  user = null;
  location.hash = "#/";
  await route();
  toast("Logged out.");
}

api.onUnauthorized(() => {
  if (!user) return;
  user = null;
  toast("Your session has ended: please log in again.", "error");
  route();
});

// The skip link moves the focus itself: following href="#main" would change the route.
document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault();
  document.getElementById("main")?.focus();
});
window.addEventListener("hashchange", () => route(true));
route(false);
