// Jobs: every recorded detect and mask call and every video job, filterable by type and
// method, and one job with its photo (detections drawn), masked output, parameters and
// payload. Video jobs show their state, with a progress bar while they run; a page that
// shows a queued or running one asks again every POLL_MS until none is left.

import * as api from "../api.js";
import { bytes, clear, count, empty, facts, h, ms, pager, photoWithFaces, plainPhoto, shortId, when } from "../ui.js";
import { storageOff } from "./storage.js";

const PER_PAGE = 25;
const METHODS = ["gaussian", "pixelate", "solid", "elliptical"];
const TYPES = ["detect", "mask", "mask_video"];
const POLL_MS = 2000;
const active = (job) => job.state === "queued" || job.state === "running";

/** A video job's state: a progress bar while it runs, a badge otherwise (the error as its title). */
export function videoState(job) {
  const { frames_done: done = 0, frames_total: total = null } = job.progress || {};
  if (job.state !== "running") {
    return h("span", { class: ["badge", job.state], title: job.error || undefined }, job.state);
  }
  const label = total ? `${count(done)} of ${count(total)} frames` : `${count(done)} frames`;
  return h("span", { class: "progress-cell" },
    h("progress", { max: total || undefined, value: total ? Math.min(done, total) : undefined,
      "aria-label": `progress: ${label}` }),
    h("span", { class: "muted small", title: label }, total ? `${Math.floor((100 * done) / total)}%` : label));
}

/** Call ``load`` every POLL_MS while ``again(answer)`` says so, the tab is visible and the
 * view is shown (``signal``); ``draw`` each answer. A failed call keeps what is shown. */
function poll(signal, load, draw, again) {
  let timer;
  const tick = () => {
    timer = setTimeout(async () => {
      if (signal.aborted) return;
      if (!document.hidden) {
        try {
          const answer = await load();
          if (signal.aborted) return;
          draw(answer);
          if (!again(answer)) return;
        } catch {
          // keep the last figures; the next tick tries again
        }
      }
      tick();
    }, POLL_MS);
  };
  signal.addEventListener("abort", () => clearTimeout(timer), { once: true });
  tick();
}

/** A table of jobs; each row links to the job, or (with choose) selects it in place. */
export function jobRows(jobs, { choose = null, showImage = true } = {}) {
  const head = ["Job", "Type", "Method", "Faces", "Model", "Time", "API key", "When"];
  if (showImage) head.splice(1, 0, "Image");
  return h("div", { class: "table-wrap" }, h("table", { class: "table" },
    h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, jobs.map((job) => h("tr", { dataset: { job: job.id } },
      h("td", {}, h("a", { href: `#/jobs/${job.id}` }, h("code", {}, shortId(job.id))),
        choose ? h("button", { class: "button small ghost", type: "button", "aria-pressed": "false",
          onclick: () => choose(job) }, "Show") : null),
      showImage ? h("td", {}, h("a", { href: `#/images/${job.image_id}` }, h("code", {}, shortId(job.image_id))))
        : null,
      h("td", {}, h("span", { class: ["badge", job.job_type] }, job.job_type)),
      h("td", {}, job.method || h("span", { class: "muted" }, "–")),
      h("td", { class: "num" }, job.face_count),
      h("td", {}, job.model),
      h("td", { class: "num" }, job.state && job.state !== "done" ? videoState(job) : ms(job.total_ms)),
      h("td", {}, job.api_key_id ? h("code", { title: job.api_key_id }, shortId(job.api_key_id))
        : h("span", { class: "muted", title: "the console's test page" }, "console")),
      h("td", {}, when(job.created_at)))))));
}

function filters(query) {
  const select = (name, label, options) => h("label", {}, label, h("select", { name },
    h("option", { value: "" }, "all"),
    options.map((o) => h("option", { value: o, selected: query.get(name) === o }, o))));
  const form = h("form", { class: "filters", role: "search" },
    select("job_type", "Type", TYPES), select("method", "Method", METHODS),
    h("button", { class: "button", type: "submit" }, "Filter"));
  const go = (event) => {
    event.preventDefault();
    const params = new URLSearchParams();
    for (const [name, value] of new FormData(form)) if (value) params.set(name, value);
    location.hash = `#/jobs?${params}`;
  };
  form.addEventListener("submit", go);
  form.addEventListener("change", go); // a choice applies at once; the button serves keyboards and no-change
  return form;
}

export async function renderList(main, query, signal) {
  main.append(h("h1", {}, "Jobs"));
  const page = Math.max(1, Number(query.get("page")) || 1);
  const wanted = { job_type: query.get("job_type"), method: query.get("method") };
  const load = () => api.get("jobs", { page, per_page: PER_PAGE, ...wanted });
  let result;
  try {
    result = await load();
  } catch (error) {
    if (error.status === 501) return main.append(storageOff(error));
    throw error;
  }
  main.append(filters(query));
  if (!result.total) {
    return main.append(empty(wanted.job_type || wanted.method ? "No jobs match these filters."
      : "No jobs yet: every detect and mask call is recorded here."));
  }
  const hrefOf = (n) => {
    const params = new URLSearchParams({ ...Object.fromEntries(Object.entries(wanted).filter(([, v]) => v)),
      page: n });
    return `#/jobs?${params}`;
  };
  let table = jobRows(result.items);
  main.append(table, pager(result.page, result.pages, result.total, hrefOf, "jobs"));
  if (signal && result.items.some(active)) {
    poll(signal, load, (fresh) => {
      const redrawn = jobRows(fresh.items);
      table.replaceWith(redrawn);
      table = redrawn;
    }, (fresh) => fresh.items.some(active));
  }
}

/** A video job: first frames of the original and the masked video, its state and figures. */
function videoDetail(job) {
  const input = job.result.input || {};
  const width = input.width || 16;
  const height = input.height || 9;
  const panels = [h("div", {}, h("h2", { class: "small-title" }, "Original (first frame)"),
    plainPhoto(api.imageThumbnail(job.image_id, 640), width, height, "first frame of the original video"))];
  if (job.processed_url) {
    panels.push(h("div", {}, h("h2", { class: "small-title" }, `Masked (${job.method}, first frame)`),
      plainPhoto(api.jobThumbnail(job.id, 640), width, height, "first frame of the masked video")));
  }
  const downloads = [h("a", { class: "button", href: api.imageDownload(job.image_id), download: "" },
    "Download original")];
  if (job.processed_url) {
    downloads.push(h("a", { class: "button", href: api.jobDownload(job.id), download: "" }, "Download masked"));
  }
  const timings = job.result.timings || {};
  return [
    h("nav", { class: "crumbs", "aria-label": "breadcrumb" }, h("a", { href: "#/jobs" }, "Jobs"), " / ",
      shortId(job.id)),
    h("div", { class: "page-head" }, h("h1", {}, "Video job ", h("code", {}, shortId(job.id))),
      h("div", { class: "actions" }, downloads)),
    h("section", { class: "card" }, h("h2", {}, "State"), facts([
      ["State", videoState(job)],
      ["Frames", job.progress ? `${count(job.progress.frames_done)} of ${job.progress.frames_total === null
        ? "?" : count(job.progress.frames_total)}` : null],
      ["Error", job.error],
      ["Runs", job.attempts ? String(job.attempts) : null],
      ["Started", job.started_at ? when(job.started_at) : null],
      ["Finished", job.finished_at ? when(job.finished_at) : null],
    ])),
    h("div", { class: ["panels", panels.length > 1 && "two"] }, panels),
    h("div", { class: "columns" },
      h("section", { class: "card" }, h("h2", {}, "Call"), facts([
        ["Type", job.job_type], ["Method", job.method], ["Model", job.model],
        ["Faces", job.state === "done" ? String(job.face_count) : null],
        ["Video", h("a", { href: `#/images/${job.image_id}` }, h("code", {}, shortId(job.image_id)))],
        ["API key", job.api_key_id ? h("code", {}, job.api_key_id) : "none"],
        ["When", when(job.created_at)],
        ["Input", input.width ? `${input.width}×${input.height}, ${input.frames} frames, ${input.fps} fps, `
          + `${input.video_codec}` : null],
        ["Output", job.processed_size_bytes ? `${job.processed_content_type}, ${bytes(job.processed_size_bytes)}`
          : null],
      ])),
      h("section", { class: "card" }, h("h2", {}, "Parameters"),
        facts(Object.entries(job.parameters).map(([k, v]) => [k, String(v)]))),
      h("section", { class: "card" }, h("h2", {}, "Timings"),
        Object.keys(timings).length ? facts(Object.entries(timings).map(([k, v]) => [k.replace(/_ms$/, ""), ms(v)]))
          : h("p", { class: "muted" }, "When the job is done.")))];
}

export async function renderDetail(main, id, query, signal) {
  const load = () => api.get(`jobs/${encodeURIComponent(id)}`);
  const job = await load();
  if (job.job_type === "mask_video") {
    const page = h("div", {}, videoDetail(job));
    main.append(page);
    if (signal && active(job)) {
      poll(signal, load, (fresh) => clear(page, videoDetail(fresh)), active);
    }
    return;
  }
  const result = job.result;
  const { width, height } = result.image;
  const panels = [h("div", {}, h("h2", { class: "small-title" }, `Original, ${job.face_count} detected`),
    photoWithFaces(api.imageDownload(job.image_id), width, height, result.detections))];
  if (job.processed_url) {
    panels.push(h("div", {}, h("h2", { class: "small-title" }, `Masked (${job.method})`),
      plainPhoto(job.processed_url, width, height, "masked output")));
  }
  const profiling = result.profiling || {};
  const downloads = [h("a", { class: "button", href: api.imageDownload(job.image_id), download: "" },
    "Download original")];
  if (job.processed_url) {
    downloads.push(h("a", { class: "button", href: api.jobDownload(job.id), download: "" }, "Download masked"));
  }
  main.append(
    h("nav", { class: "crumbs", "aria-label": "breadcrumb" }, h("a", { href: "#/jobs" }, "Jobs"), " / ",
      shortId(job.id)),
    h("div", { class: "page-head" },
      h("h1", {}, `${job.job_type === "mask" ? "Mask" : "Detect"} job `, h("code", {}, shortId(job.id))),
      h("div", { class: "actions" }, downloads)),
    h("div", { class: ["panels", panels.length > 1 && "two"] }, panels),
    h("div", { class: "columns" },
      h("section", { class: "card" }, h("h2", {}, "Call"), facts([
        ["Type", job.job_type], ["Method", job.method], ["Model", job.model],
        ["Faces", String(job.face_count)],
        ["Image", h("a", { href: `#/images/${job.image_id}` }, h("code", {}, shortId(job.image_id)))],
        ["API key", job.api_key_id ? h("code", {}, job.api_key_id) : "the console's test page"],
        ["When", when(job.created_at)],
        ["Output", job.processed_size_bytes ? `${job.processed_content_type}, ${bytes(job.processed_size_bytes)}`
          : null],
      ])),
      h("section", { class: "card" }, h("h2", {}, "Parameters"),
        facts(Object.entries(job.parameters).map(([k, v]) => [k, String(v)]))),
      h("section", { class: "card" }, h("h2", {}, "Timings"), facts([
        ["Decode", ms(profiling.decode_ms)], ["Inference", ms(profiling.inference_ms)],
        ["Mask", profiling.mask_ms != null ? ms(profiling.mask_ms) : null],
        ["Encode", profiling.encode_ms != null ? ms(profiling.encode_ms) : null],
        ["Total", ms(job.total_ms)],
      ]))),
    h("section", { class: "card" }, h("details", {}, h("summary", {}, "Detection payload (JSON)"),
      h("pre", { class: "json" }, JSON.stringify(result, null, 2)))));
}
