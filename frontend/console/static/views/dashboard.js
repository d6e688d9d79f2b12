// Dashboard: the /stats figures, live health over the last hour (views/health.js, polled
// while the dashboard is shown), and a chart of the last 24 hours (jobs per hour by type).

import * as api from "../api.js";
import { bytes, count, empty, h, s } from "../ui.js";
import { fetchRecent, liveHealth } from "./health.js";
import { storageOff } from "./storage.js";

const hourFormat = new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit", timeZone: "UTC" });

const plural = (n, noun) => `${count(n)} ${noun}${n === 1 ? "" : "s"}`;

function card(label, value, note, kind) {
  return h("section", { class: ["stat", kind] }, h("h2", {}, label), h("p", { class: "value" }, value),
    note ? h("p", { class: "muted small" }, note) : null);
}

/** Stacked bars (detect below, mask above) for the 24 clock hours, with a table twin. */
function activityChart(hourly, room) {
  const width = Math.max(340, Math.min(960, room)); // drawn at the width it gets: legible axes on phones
  const height = 220;
  const pad = { left: 34, right: 8, top: 12, bottom: 26 };
  const peak = Math.max(1, ...hourly.map((x) => x.detect + x.mask));
  const step = 10 ** Math.floor(Math.log10(peak));
  const top = Math.ceil(peak / step) * step;
  const slot = (width - pad.left - pad.right) / hourly.length;
  const y = (value) => height - pad.bottom - (value / top) * (height - pad.top - pad.bottom);
  const chart = s("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `jobs per hour over the last 24 hours, at most ${peak} in one hour` });
  for (const tick of [0, top / 2, top]) {
    chart.append(s("line", { class: "grid", x1: pad.left, x2: width - pad.right, y1: y(tick), y2: y(tick) }),
      s("text", { class: "axis", x: pad.left - 6, y: y(tick) + 4, "text-anchor": "end" }, count(tick)));
  }
  hourly.forEach((entry, i) => {
    const x = pad.left + i * slot + slot * 0.15;
    const w = slot * 0.7;
    const label = `${hourFormat.format(new Date(entry.hour))} UTC: ${entry.detect} detect, ${entry.mask} mask, `
      + `${entry.faces} faces`;
    chart.append(s("g", { class: "bar" },
      s("rect", { class: "detect", x, width: w, y: y(entry.detect), height: y(0) - y(entry.detect) }),
      s("rect", { class: "mask", x, width: w, y: y(entry.detect + entry.mask), height: y(0) - y(entry.mask) }),
      s("rect", { class: "hit", x: x - slot * 0.15, width: slot, y: pad.top, height: y(0) - pad.top }),
      s("title", {}, label)));
    if (i % 3 === 0) {
      chart.append(s("text", { class: "axis", x: x + w / 2, y: height - 8, "text-anchor": "middle" },
        hourFormat.format(new Date(entry.hour)).slice(0, 2)));
    }
  });
  const table = h("table", { class: "table compact" },
    h("thead", {}, h("tr", {}, ["Hour (UTC)", "Detect", "Mask", "Faces"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, hourly.map((entry) => h("tr", {}, h("td", {}, hourFormat.format(new Date(entry.hour))),
      h("td", {}, entry.detect), h("td", {}, entry.mask), h("td", {}, entry.faces)))));
  return h("section", { class: "card" },
    h("div", { class: "card-head" }, h("h2", {}, "Last 24 hours"),
      h("ul", { class: "legend" }, h("li", { class: "detect" }, "detect"), h("li", { class: "mask" }, "mask"))),
    chart, h("details", {}, h("summary", {}, "Show as a table"), table));
}

function methods(byMethod, byType) {
  const total = Math.max(1, ...Object.values(byMethod));
  return h("section", { class: "card" }, h("h2", {}, "Jobs by type and method"),
    h("ul", { class: "bars" },
      Object.entries(byType).map(([type, n]) => h("li", {}, h("span", {}, type), h("span"), h("strong", {}, count(n)))),
      Object.entries(byMethod).map(([method, n]) => {
        const bar = h("span", { class: "meter" });
        bar.style.setProperty("--share", `${(100 * n) / total}%`);
        return h("li", { class: "method" }, h("span", {}, `mask · ${method}`), bar, h("strong", {}, count(n)));
      })));
}

/** `signal` (app.js) aborts when another page is shown: it ends the live section's polling. */
export async function render(main, query, signal) {
  main.append(h("h1", {}, "Dashboard"));
  const recent = fetchRecent(); // beside /stats, so that the page is drawn once, complete
  // Built only once /stats has answered: a page that fails to draw starts no polling.
  const live = async () => liveHealth(await recent, { signal, room: () => main.clientWidth - 88 });
  let stats;
  try {
    stats = await api.get("stats");
  } catch (error) {
    if (error.status === 501) return main.append(storageOff(error), await live()); // live health needs no storage
    throw error;
  }
  const day = stats.last_24h;
  main.append(
    h("div", { class: "stats" },
      card("Images", count(stats.images_total), `${bytes(stats.images_bytes)} of originals`),
      card("Jobs", count(stats.jobs_total),
        `${count(stats.jobs_by_type.detect)} detect · ${count(stats.jobs_by_type.mask)} mask`
        + (stats.jobs_by_type.mask_video ? ` · ${count(stats.jobs_by_type.mask_video)} video` : "")),
      card("Faces found", count(stats.faces_total), "over all jobs"),
      card("Last 24 hours", count(day.jobs), `${plural(day.images, "new image")} · ${plural(day.faces, "face")}`),
      card("Processed outputs", bytes(stats.processed_bytes), "masked photos kept"),
      card("Cleanup queue", count(stats.cleanup_pending),
        stats.cleanup_pending ? "objects still to delete: run ./face-api cleanup" : "nothing waiting",
        stats.cleanup_pending ? "warn" : null)),
    await live(),
    stats.jobs_total ? activityChart(day.hourly, main.clientWidth - 48)
      : empty("Nothing recorded yet.", h("a", { class: "button primary", href: "#/test" }, "Try the test page")),
    stats.jobs_total ? methods(stats.jobs_by_method, stats.jobs_by_type) : null);
}
