// What the storage-backed pages show when storage is off (the admin API answers 501).

import { h } from "../ui.js";

export function storageOff(error) {
  return h("div", { class: "notice" },
    h("p", {}, h("strong", {}, "Storage-backed mode is off. "), "Calls are not recorded, so there are no images, ",
      "jobs or statistics to show. API keys and the test page still work."),
    h("p", { class: "muted small" }, error.message));
}
