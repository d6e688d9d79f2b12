// Small DOM helpers shared by the views: element builders, formatting, dialogs,
// toasts, pagination and the detection overlay. No framework, no inline styles
// or handlers (the Content-Security-Policy forbids both).

const SVG_NS = "http://www.w3.org/2000/svg";

function assign(node, props) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** h("a", {href, class, onclick}, ...children): an HTML element. */
export function h(tag, props, ...children) {
  const node = document.createElement(tag);
  assign(node, props);
  return append(node, children);
}

/** s("rect", {...}): an SVG element. */
export function s(tag, props, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  assign(node, props);
  return append(node, children);
}

export function clear(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

// --- formatting ---

const number = new Intl.NumberFormat("en-GB");
export const count = (n) => number.format(n ?? 0);

export function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = n;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

export const ms = (n) => (n === null || n === undefined ? "–" : `${n < 10 ? n.toFixed(1) : Math.round(n)} ms`);

const absolute = new Intl.DateTimeFormat("en-GB", { dateStyle: "medium", timeStyle: "short", timeZone: "UTC" });
const relative = new Intl.RelativeTimeFormat("en-GB", { numeric: "auto" });

export function when(iso) {
  if (!iso) return h("span", { class: "muted" }, "never");
  const date = new Date(iso);
  const seconds = (date - Date.now()) / 1000;
  const steps = [[60, "second"], [3600, "minute"], [86400, "hour"], [86400 * 30, "day"]];
  let text = `${absolute.format(date)} UTC`;
  for (const [limit, unit] of steps) {
    if (Math.abs(seconds) < limit) {
      const size = { second: 1, minute: 60, hour: 3600, day: 86400 }[unit];
      text = relative.format(Math.round(seconds / size), unit);
      break;
    }
  }
  return h("time", { datetime: iso, title: `${absolute.format(date)} UTC` }, text);
}

export const shortId = (id) => (id ? id.slice(0, 8) : "–");

// --- feedback ---

export function toast(message, kind = "info") {
  const note = h("div", { class: ["toast", kind] }, message);
  document.getElementById("toasts").append(note);
  setTimeout(() => note.remove(), kind === "error" ? 8000 : 4000);
}

export function problem(error) {
  return h("div", { class: "notice error", role: "alert" }, error.message || String(error));
}

/** A modal <dialog> (Esc and the Cancel button close it); resolves true on confirm. */
export function confirmDialog({ title, message, confirm = "Delete", danger = true }) {
  return new Promise((resolve) => {
    const ok = h("button", { class: ["button", danger ? "danger" : "primary"], value: "ok" }, confirm);
    const dialog = h("dialog", { class: "dialog", "aria-labelledby": "dialog-title" },
      h("form", { method: "dialog" },
        h("h2", { id: "dialog-title" }, title),
        h("p", {}, message),
        h("div", { class: "actions" },
          h("button", { class: "button", value: "cancel", autofocus: true }, "Cancel"), ok)));
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "ok");
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** A modal that shows something once (e.g. a new API key) with a Done button. */
export function infoDialog(title, ...content) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "dialog wide", "aria-labelledby": "dialog-title" },
      h("form", { method: "dialog" }, h("h2", { id: "dialog-title" }, title), ...content,
        h("div", { class: "actions" }, h("button", { class: "button primary", value: "done" }, "Done"))));
    dialog.addEventListener("close", () => {
      resolve();
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

export function promptDialog({ title, label, value = "", confirm = "Save", maxLength = 100 }) {
  return new Promise((resolve) => {
    const input = h("input", { id: "prompt-value", name: "value", value, required: true, maxlength: maxLength,
      autocomplete: "off" });
    const dialog = h("dialog", { class: "dialog", "aria-labelledby": "dialog-title" },
      h("form", { method: "dialog" },
        h("h2", { id: "dialog-title" }, title),
        h("label", { for: "prompt-value" }, label), input,
        h("div", { class: "actions" },
          h("button", { class: "button", value: "cancel", formnovalidate: true }, "Cancel"),
          h("button", { class: "button primary", value: "ok" }, confirm))));
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "ok" ? input.value.trim() : null);
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
    input.select();
  });
}

// --- lists ---

/** Previous / "page x of y" / next, as links so that the browser history works. */
export function pager(page, pages, total, hrefOf, noun) {
  const nav = h("nav", { class: "pager", "aria-label": "pages" });
  const link = (target, text, rel) => (target >= 1 && target <= pages
    ? h("a", { class: "button", href: hrefOf(target), rel }, text)
    : h("span", { class: "button disabled", "aria-disabled": "true" }, text));
  return append(nav, [link(page - 1, "← Newer", "prev"),
    h("span", { class: "muted" }, `Page ${page} of ${Math.max(pages, 1)} · ${count(total)} ${noun}`),
    link(page + 1, "Older →", "next")]);
}

export function empty(text, ...more) {
  return h("div", { class: "empty" }, h("p", {}, text), ...more);
}

// --- photos with their detections ---

/**
 * The photo with each detection drawn over it: box, five landmarks and the
 * confidence. Coordinates are in the upright image's pixels, so the overlay's
 * viewBox is the image size and it scales with the photo.
 */
export function photoWithFaces(src, width, height, detections, alt) {
  const size = Math.max(width, height);
  const overlay = s("svg", { class: "faces", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none",
    "aria-hidden": "true" });
  for (const face of detections || []) {
    const { x1, y1, x2, y2 } = face.bbox;
    const label = `${Math.round(face.confidence * 100)}%`;
    const font = Math.max(size / 45, 10);
    overlay.append(s("g", { class: "face" },
      s("rect", { x: x1, y: y1, width: x2 - x1, height: y2 - y1, rx: size / 300 }),
      Object.values(face.landmarks).map((p) => s("circle", { cx: p.x, cy: p.y, r: Math.max(size / 250, 2) })),
      s("rect", { class: "tag", x: x1, y: Math.max(y1 - font * 1.3, 0), width: font * 2.6, height: font * 1.3 }),
      s("text", { x: x1 + font * 0.2, y: Math.max(y1 - font * 1.3, 0) + font * 1.02, "font-size": font }, label),
      s("title", {}, `face ${face.index + 1}: confidence ${face.confidence.toFixed(3)}`)));
  }
  const faces = (detections || []).length;
  return h("figure", { class: "photo" },
    h("div", { class: "frame" },
      h("img", { src, alt: alt || `photo with ${faces} face${faces === 1 ? "" : "s"} marked`, width, height,
        decoding: "async" }),
      overlay));
}

export function plainPhoto(src, width, height, alt) {
  return h("figure", { class: "photo" }, h("div", { class: "frame" }, h("img", { src, alt, width, height })));
}

/** A definition list from [term, value] pairs (skips null values). */
export function facts(pairs) {
  return h("dl", { class: "facts" },
    pairs.filter(([, value]) => value !== null && value !== undefined)
      .map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
}
