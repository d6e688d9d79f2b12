// API keys: list with their metadata, create (the full key shown once), rename,
// activate/deactivate and delete.

import * as api from "../api.js";
import { confirmDialog, count, empty, h, infoDialog, pager, promptDialog, toast, when } from "../ui.js";

const PER_PAGE = 50;

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Clipboard API refused (plain HTTP on another host): select the text instead.
    const field = button.parentElement.querySelector("input");
    field.select();
    toast("Copying was refused by the browser: the key is selected, press Ctrl+C.", "error");
    return;
  }
  button.textContent = "Copied ✓";
  toast("The key is on the clipboard.");
}

async function showNewKey(created) {
  const field = h("input", { id: "new-key", class: "mono", value: created.key, readonly: true,
    "aria-describedby": "new-key-warning" });
  const button = h("button", { class: "button primary", type: "button", onclick: () => copy(created.key, button) },
    "Copy");
  await infoDialog(`Key “${created.name}” created`,
    h("p", { id: "new-key-warning", class: "notice warn" }, h("strong", {}, "Copy it now. "),
      "This is the only time the full key is shown: the server keeps only its hash."),
    h("label", { for: "new-key" }, "API key (send it in the X-API-Key header)"),
    h("div", { class: "copy-row" }, field, button));
}

function row(key, refresh) {
  const act = async (work, done) => {
    try {
      await work();
    } catch (error) {
      toast(error.message, "error");
      return;
    }
    toast(done);
    await refresh();
  };
  const rename = async () => {
    const name = await promptDialog({ title: "Rename key", label: "Name", value: key.name });
    if (name && name !== key.name) {
      await act(() => api.request("PATCH", `api-keys/${key.id}`, { json: { name } }), `Renamed to “${name}”.`);
    }
  };
  const toggle = () => act(() => api.request("PATCH", `api-keys/${key.id}`, { json: { is_active: !key.is_active } }),
    key.is_active ? `“${key.name}” deactivated: it is refused from now on.` : `“${key.name}” is active again.`);
  const remove = async () => {
    const yes = await confirmDialog({ title: `Delete “${key.name}”?`,
      message: "Requests with this key are refused at once, and it cannot be restored. Deactivate it instead "
        + "if you may need it again." });
    if (yes) await act(() => api.request("DELETE", `api-keys/${key.id}`), `“${key.name}” deleted.`);
  };
  return h("tr", { dataset: { key: key.id } },
    h("td", {}, h("strong", {}, key.name)),
    h("td", {}, h("code", {}, key.key_preview)),
    h("td", {}, h("span", { class: ["badge", key.is_active ? "ok" : "off"] }, key.is_active ? "active" : "inactive")),
    h("td", { class: "num" }, count(key.request_count)),
    h("td", {}, when(key.last_used_at)),
    h("td", {}, when(key.created_at)),
    h("td", { class: "row-actions" },
      h("button", { class: "button small", type: "button", onclick: rename, "aria-label": `rename ${key.name}` },
        "Rename"),
      h("button", { class: "button small", type: "button", onclick: toggle,
        "aria-label": `${key.is_active ? "deactivate" : "activate"} ${key.name}` },
      key.is_active ? "Deactivate" : "Activate"),
      h("button", { class: "button small danger", type: "button", onclick: remove,
        "aria-label": `delete ${key.name}` }, "Delete")));
}

export async function render(main, query) {
  const page = Math.max(1, Number(query.get("page")) || 1);
  const list = h("div", { class: "table-wrap" });
  const paging = h("div");

  async function refresh() {
    const result = await api.get("api-keys", { page, per_page: PER_PAGE });
    if (!result.total) {
      list.replaceChildren(empty("No API keys: create one to call /api/v1/detect, /api/v1/mask and /v1/*."));
      paging.replaceChildren();
      return;
    }
    list.replaceChildren(h("table", { class: "table" },
      h("thead", {}, h("tr", {}, ["Name", "Key", "Status", "Requests", "Last used", "Created", "Actions"]
        .map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, result.items.map((key) => row(key, refresh)))));
    paging.replaceChildren(pager(result.page, result.pages, result.total, (n) => `#/keys?page=${n}`, "keys"));
  }

  const name = h("input", { id: "key-name", name: "name", required: true, maxlength: 100, autocomplete: "off",
    placeholder: "e.g. mobile app, staging" });
  const create = h("form", { class: "inline-form" },
    h("label", { for: "key-name" }, "New key for"), name,
    h("button", { class: "button primary", type: "submit" }, "Create key"));
  create.addEventListener("submit", async (event) => {
    event.preventDefault();
    let created;
    try {
      created = await api.request("POST", "api-keys", { json: { name: name.value.trim() } });
    } catch (error) {
      toast(error.message, "error");
      return;
    }
    name.value = "";
    await showNewKey(created);
    await refresh();
  });
  main.append(h("h1", {}, "API keys"),
    h("p", { class: "muted" }, "Keys are stored as hashes; request counts are added every few seconds."),
    h("section", { class: "card" }, create), list, paging);
  await refresh();
}
