// Jobs: every recorded detect and mask call, filterable by type and method, and one
// job with its photo (detections drawn), masked output, parameters and payload.

import * as api from "../api.js";
import { bytes, empty, facts, h, ms, pager, photoWithFaces, plainPhoto, shortId, when } from "../ui.js";
import { storageOff } from "./storage.js";

const PER_PAGE = 25;
const METHODS = ["gaussian", "pixelate", "solid", "elliptical"];

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
      h("td", { class: "num" }, ms(job.total_ms)),
      h("td", {}, job.api_key_id ? h("code", { title: job.api_key_id }, shortId(job.api_key_id))
        : h("span", { class: "muted", title: "the console's test page" }, "console")),
      h("td", {}, when(job.created_at)))))));
}

function filters(query) {
  const select = (name, label, options) => h("label", {}, label, h("select", { name },
    h("option", { value: "" }, "all"),
    options.map((o) => h("option", { value: o, selected: query.get(name) === o }, o))));
  const form = h("form", { class: "filters", role: "search" },
    select("job_type", "Type", ["detect", "mask"]), select("method", "Method", METHODS),
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

export async function renderList(main, query) {
  main.append(h("h1", {}, "Jobs"));
  const page = Math.max(1, Number(query.get("page")) || 1);
  const wanted = { job_type: query.get("job_type"), method: query.get("method") };
  let result;
  try {
    result = await api.get("jobs", { page, per_page: PER_PAGE, ...wanted });
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
  main.append(jobRows(result.items), pager(result.page, result.pages, result.total, hrefOf, "jobs"));
}

export async function renderDetail(main, id) {
  const job = await api.get(`jobs/${encodeURIComponent(id)}`);
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
