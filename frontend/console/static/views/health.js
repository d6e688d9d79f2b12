// The dashboard's "Live health · last hour": request rate, p95 latency and error rate
// (GET /metrics/recent), with a per-minute chart and its table twin. Polled every 15 s
// while the dashboard is shown: the view's `signal` (app.js) ends the polling.

import * as api from "../api.js";
import { clear, count, h, s } from "../ui.js";

export const POLL_MS = 15_000;

const minuteFormat = new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit", timeZone: "UTC" });
const clockFormat = new Intl.DateTimeFormat("en-GB", { timeStyle: "medium", timeZone: "UTC" });
const percentFormat = new Intl.NumberFormat("en-GB", { style: "percent", maximumSignificantDigits: 2 });
const axisFormat = new Intl.NumberFormat("en-GB", { maximumFractionDigits: 3 });

const plural = (n, noun) => `${count(n)} ${noun}${n === 1 ? "" : "s"}`;
const minute = (iso) => minuteFormat.format(new Date(iso));

/** Requests per second: two decimals below 10, one below 100, none above. */
function perSecond(n) {
  if (n === null || n === undefined) return "–";
  if (n < 10) return n.toFixed(2);
  return n < 100 ? n.toFixed(1) : count(Math.round(n));
}

/** Milliseconds without the unit: one decimal below 10. */
const millis = (n) => (n === null || n === undefined ? "–" : n < 10 ? n.toFixed(1) : count(Math.round(n)));

/** A round number at or above `peak` (1, 2, 3 … times a power of ten) for an axis's top. */
function roundTop(peak, fallback) {
  if (!(peak > 0)) return fallback;
  const step = 10 ** Math.floor(Math.log10(peak));
  return Math.ceil(peak / step - 1e-9) * step;
}

/** The endpoint's answer as { body } or { error }: never rejects. */
export function fetchRecent() {
  return api.get("metrics/recent").then((body) => ({ body }), (error) => ({ error }));
}

function figure(label, value, unit, note, kind) {
  return h("section", { class: ["stat", kind] }, h("h3", {}, label),
    h("p", { class: "value" }, value, unit && value !== "–" ? [" ", h("span", { class: "unit" }, unit)] : null),
    h("p", { class: "muted small" }, note));
}

function figures(body) {
  const since = body.since ? ` since ${minute(body.since)} UTC` : "";
  return [
    figure("Request rate", perSecond(body.rate_per_s), "req/s", `${plural(body.requests, "request")}${since}`),
    figure("p95 latency", millis(body.p95_ms), "ms",
      body.p95_ms === null || body.p95_ms === undefined ? "no requests yet" : "95% of answers were faster"),
    figure("Error rate", percentFormat.format(body.error_ratio || 0), null,
      body.errors ? plural(body.errors, "server error") + " (5xx)" : "no server errors (5xx)",
      body.errors ? "warn" : null),
  ];
}

/**
 * Two panels over the window, sharing the time axis: requests per second as bars above,
 * p95 latency as a line below (broken where a minute had no requests). The points are
 * placed by their time (each is the end of a step of about a minute), the newest at the
 * right edge; the hour before it fills in from the left as minutes pass.
 */
function minuteChart(answer, room) {
  const width = Math.max(340, Math.min(960, room)); // drawn at the width it gets, like the 24-hour chart
  const height = 210;
  const pad = { left: 40, right: 18, top: 20, bottom: 24 };
  const gap = 28; // between the panels: room for the lower one's title
  const panel = (height - pad.top - pad.bottom - gap) / 2;
  const step = (answer.step_s || 60) * 1000;
  const span = (answer.window_s || 3600) * 1000;
  const end = Date.parse(answer.points[answer.points.length - 1].time);
  const placed = answer.points.map((point) => ({ point, at: Date.parse(point.time) }))
    .filter(({ at }) => end - at < span);
  const plot = width - pad.left - pad.right;
  const slot = (plot * step) / span; // the width of one step
  const x = (at) => pad.left + plot - slot / 2 - ((end - at) / span) * plot; // the middle of the step ending at `at`
  const peakRate = Math.max(0, ...placed.map(({ point }) => point.rate_per_s || 0));
  const peakP95 = Math.max(0, ...placed.map(({ point }) => point.p95_ms || 0));
  const rateTop = roundTop(peakRate, 1);
  const p95Top = roundTop(peakP95, 100);
  const lower = pad.top + panel + gap; // the top of the p95 panel
  const rateY = (value) => pad.top + panel - (value / rateTop) * panel;
  const p95Y = (value) => lower + panel - (value / p95Top) * panel;
  const hasP95 = (point) => point.p95_ms !== null && point.p95_ms !== undefined;

  const chart = s("svg", { class: "chart live-chart", viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `requests per second and p95 latency per minute over the last hour: ${placed.length} `
      + `minute${placed.length === 1 ? "" : "s"}, at most ${perSecond(peakRate)} requests per second `
      + `and ${millis(peakP95)} ms` });
  for (const [title, top, y, format, at] of [["requests per second", rateTop, rateY, axisFormat.format, pad.top],
    ["p95 latency (ms)", p95Top, p95Y, count, lower]]) {
    chart.append(s("text", { class: "axis", x: pad.left, y: at - 7 }, title));
    for (const tick of [0, top]) {
      chart.append(s("line", { class: "grid", x1: pad.left, x2: width - pad.right, y1: y(tick), y2: y(tick) }),
        s("text", { class: "axis", x: pad.left - 6, y: y(tick) + 4, "text-anchor": "end" }, format(tick)));
    }
  }
  // The p95 line: one segment per run of neighbouring minutes that had requests.
  let path = "";
  let previous = null; // the time of the point before, when it had a p95
  for (const { point, at } of placed) {
    if (!hasP95(point)) {
      previous = null;
      continue;
    }
    const joined = previous !== null && at - previous < 2 * step;
    path += `${joined ? "L" : "M"}${x(at).toFixed(1)} ${p95Y(point.p95_ms).toFixed(1)}`;
    previous = at;
  }
  if (path) chart.append(s("path", { class: "latency", d: path }));
  for (const { point, at } of placed) {
    const w = slot * 0.7;
    const rate = point.rate_per_s || 0;
    const p95 = hasP95(point) ? `p95 ${millis(point.p95_ms)} ms` : "no requests";
    chart.append(s("g", { class: "minute" },
      s("rect", { class: "rate", x: x(at) - w / 2, width: w, y: rateY(rate), height: rateY(0) - rateY(rate) }),
      hasP95(point) ? s("circle", { class: "dot", cx: x(at), cy: p95Y(point.p95_ms), r: 2.2 }) : null,
      s("rect", { class: "hit", x: x(at) - slot / 2, width: slot, y: pad.top, height: p95Y(0) - pad.top }),
      s("title", {}, `${minute(point.time)} UTC: ${perSecond(point.rate_per_s)} requests per second `
        + `(${plural(point.requests, "request")}), ${p95}, ${plural(point.errors, "server error")}`)));
  }
  for (let back = 0; back < span; back += 10 * step) { // a time every ten minutes, back from the newest
    chart.append(s("text", { class: "axis", x: x(end - back), y: height - 8, "text-anchor": "middle" },
      minuteFormat.format(new Date(end - back))));
  }
  return chart;
}

function minuteTable(points) {
  return h("table", { class: "table compact" },
    h("thead", {}, h("tr", {}, ["Minute (UTC)", "Requests", "Per second", "p95 (ms)", "5xx"]
      .map((t, i) => h("th", { scope: "col", class: i ? "num" : null }, t)))),
    h("tbody", {}, points.map((point) => h("tr", {}, h("td", {}, minute(point.time)),
      h("td", { class: "num" }, count(point.requests)), h("td", { class: "num" }, perSecond(point.rate_per_s)),
      h("td", { class: "num" }, millis(point.p95_ms)), h("td", { class: "num" }, count(point.errors))))));
}

/**
 * The section, drawn from `first` (fetchRecent()'s answer, fetched beside /stats) and
 * then refreshed every POLL_MS until `signal` aborts. The nodes that can hold the focus
 * or an open state (the <details> and its summary) stay; only their contents change.
 */
export function liveHealth(first, { signal, room }) {
  const status = h("p", { class: "muted small live-status" });
  const body = h("div", { class: "live-body" });
  const tableSlot = h("div", { class: "table-wrap" });
  const details = h("details", { hidden: true }, h("summary", {}, "Show the minutes as a table"), tableSlot);
  // aria-live off: #app is a polite live region, and the figures change every 15 s.
  const section = h("section", { class: "card live", "aria-labelledby": "live-title", "aria-live": "off" },
    h("div", { class: "card-head" }, h("h2", { id: "live-title" }, "Live health · last hour"), status),
    body, details);
  let drawnAt = null; // when the figures on show were fetched
  let stopped = false;
  let timer = 0;

  function draw(answer) {
    drawnAt = new Date();
    const points = answer.points || [];
    clear(body, h("div", { class: "stats" }, figures(answer)),
      points.length ? minuteChart(answer, room())
        : h("p", { class: "muted small" }, "The per-minute chart fills in as minutes pass."));
    clear(tableSlot, points.length ? minuteTable(points) : null);
    details.hidden = !points.length;
    clear(status, `Updated ${clockFormat.format(drawnAt)} UTC · every ${POLL_MS / 1000} s`);
  }

  function fail(error) {
    if (error.status === 404 || error.status === 501) { // this server has no such figures: stop asking
      stopped = true;
      clearTimeout(timer);
      details.hidden = true;
      clear(status);
      clear(body, h("p", { class: "muted" }, `Live health is not available on this server (${error.message}).`));
    } else if (drawnAt) { // keep the last figures, and say how old they are
      clear(status, `Could not refresh (${error.message}): figures from ${clockFormat.format(drawnAt)} UTC`);
    } else {
      details.hidden = true;
      clear(body, h("p", { class: "muted" }, `Live health could not be loaded: ${error.message} `
        + `Trying again every ${POLL_MS / 1000} s.`));
    }
  }

  function schedule() {
    if (stopped || signal.aborted) return;
    timer = setTimeout(async () => {
      if (!document.hidden) { // a hidden tab asks for nothing; the next tick catches up
        const answer = await fetchRecent();
        if (signal.aborted) return;
        if (answer.error) fail(answer.error);
        else draw(answer.body);
      }
      schedule();
    }, POLL_MS);
  }

  signal.addEventListener("abort", () => clearTimeout(timer), { once: true });
  if (first.error) fail(first.error);
  else draw(first.body);
  schedule();
  return section;
}
