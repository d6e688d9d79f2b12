// Images: the gallery of stored uploads (newest first) and one image with its jobs,
// the detections of the chosen job drawn over the photo, downloads and delete.

import * as api from "../api.js";
import {
  bytes, clear, confirmDialog, count, empty, facts, h, pager, photoWithFaces, plainPhoto, shortId, toast, when,
} from "../ui.js";
import { jobRows } from "./jobs.js";
import { storageOff } from "./storage.js";

const PER_PAGE = 24;

function tile(image) {
  const thumbs = [h("img", { src: api.imageThumbnail(image.id), alt: `original ${shortId(image.id)}`, loading: "lazy",
    decoding: "async" })];
  if (image.processed_job_id) {
    thumbs.push(h("img", { class: "processed", src: api.jobThumbnail(image.processed_job_id),
      alt: `masked ${shortId(image.id)}`, loading: "lazy", decoding: "async" }));
  }
  return h("li", { class: "tile" },
    h("a", { href: `#/images/${image.id}`, "aria-label": `image ${shortId(image.id)}, ${image.width}×${image.height}` },
      h("div", { class: ["thumbs", thumbs.length > 1 && "pair"] }, thumbs),
      h("div", { class: "caption" },
        h("span", {}, `${image.width}×${image.height} · ${bytes(image.size_bytes)}`),
        h("span", { class: "badge" }, `${image.content_type.startsWith("video/") ? "video · " : ""}`
          + `${image.job_count} job${image.job_count === 1 ? "" : "s"}`)),
      h("div", { class: "caption muted small" }, when(image.created_at))));
}

export async function renderList(main, query) {
  main.append(h("h1", {}, "Images"));
  const page = Math.max(1, Number(query.get("page")) || 1);
  let result;
  try {
    result = await api.get("images", { page, per_page: PER_PAGE });
  } catch (error) {
    if (error.status === 501) return main.append(storageOff(error));
    throw error;
  }
  if (!result.total) {
    return main.append(empty("No images yet: every detect and mask call stores its upload here.",
      h("a", { class: "button primary", href: "#/test" }, "Try the test page")));
  }
  main.append(h("ul", { class: "gallery" }, result.items.map(tile)),
    pager(result.page, result.pages, result.total, (n) => `#/images?page=${n}`, "images"));
}

async function jobDetections(job) {
  return job ? (await api.get(`jobs/${job.id}`)).result.detections : [];
}

/** A video's original and, once a job masked it, the masked video: their first frames. */
function videoPanels(image, job) {
  const panels = [h("div", {}, h("h2", { class: "small-title" }, "Original video (first frame)"),
    plainPhoto(api.imageThumbnail(image.id, 640), image.width, image.height, "first frame of the video"))];
  if (job?.processed_url) {
    panels.push(h("div", {}, h("h2", { class: "small-title" }, `Masked (${job.method}, first frame)`),
      plainPhoto(api.jobThumbnail(job.id, 640), image.width, image.height,
        `first frame of the masked video of job ${shortId(job.id)}`)));
  }
  return panels;
}

export async function renderDetail(main, id) {
  const image = await api.get(`images/${encodeURIComponent(id)}`);
  const title = h("h1", {}, "Image ", h("code", {}, shortId(image.id)));
  const viewer = h("div", { class: "viewer" });
  let chosen = image.jobs[0] || null;

  async function show(job) {
    chosen = job;
    if (image.content_type.startsWith("video/")) {
      const panels = videoPanels(image, job);
      clear(viewer, h("div", { class: ["panels", panels.length > 1 && "two"] }, panels));
      markChosen(job);
      return;
    }
    const detections = await jobDetections(job);
    const original = photoWithFaces(image.original_url, image.width, image.height, detections,
      `original with ${detections.length} detections of job ${shortId(job?.id)} marked`);
    const panels = [h("div", {}, h("h2", { class: "small-title" }, job ? `Detections of job ${shortId(job.id)}`
      : "Original"), original)];
    if (job?.processed_url) {
      panels.push(h("div", {}, h("h2", { class: "small-title" }, `Masked (${job.method})`),
        plainPhoto(job.processed_url, image.width, image.height, `masked output of job ${shortId(job.id)}`)));
    }
    clear(viewer, h("div", { class: ["panels", panels.length > 1 && "two"] }, panels));
    markChosen(job);
  }

  function markChosen(job) {
    for (const row of table.querySelectorAll("tr[data-job]")) {
      row.classList.toggle("selected", row.dataset.job === job?.id);
      row.querySelector("button")?.setAttribute("aria-pressed", String(row.dataset.job === job?.id));
    }
  }

  const remove = h("button", { class: "button danger", type: "button", onclick: async () => {
    const yes = await confirmDialog({ title: "Delete this image?",
      message: `The original, its ${image.job_count} job${image.job_count === 1 ? "" : "s"} and their masked `
        + "outputs are deleted. This cannot be undone." });
    if (!yes) return;
    try {
      await api.request("DELETE", `images/${encodeURIComponent(image.id)}`);
    } catch (error) {
      toast(`Delete failed: ${error.message}`, "error");
      return;
    }
    toast(`Image ${shortId(image.id)} deleted.`);
    location.hash = "#/images";
  } }, "Delete image…");

  const table = jobRows(image.jobs, { choose: (job) => show(job), showImage: false });
  main.append(
    h("nav", { class: "crumbs", "aria-label": "breadcrumb" }, h("a", { href: "#/images" }, "Images"), " / ",
      shortId(image.id)),
    h("div", { class: "page-head" }, title, h("div", { class: "actions" },
      h("a", { class: "button", href: api.imageDownload(image.id), download: "" }, "Download original"), remove)),
    viewer,
    h("section", { class: "card" }, h("h2", {}, "About this image"), facts([
      ["Size", `${image.width}×${image.height} px, ${image.channels} channel${image.channels === 1 ? "" : "s"}`],
      ["File", `${image.content_type}, ${bytes(image.size_bytes)}`],
      ["SHA-256", h("code", { class: "wrap" }, image.sha256)],
      ["First uploaded", when(image.created_at)],
      ["Jobs", count(image.job_count)],
    ])),
    h("section", { class: "card" }, h("h2", {}, "Jobs on this image"),
      image.jobs.length ? table : empty("No jobs.")));
  await show(chosen);
}
