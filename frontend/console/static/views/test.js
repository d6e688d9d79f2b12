// Test page: drop a photo, choose the detection and masking parameters, and see the
// original with its detections next to the masked result (POST /test/mask).

import * as api from "../api.js";
import { bytes, clear, facts, h, ms, photoWithFaces, plainPhoto, shortId, toast } from "../ui.js";

const MIME = { jpeg: "image/jpeg", png: "image/png", webp: "image/webp" };
const urls = []; // object URLs of the last result, freed on the next one

function field(name, label, input, help) {
  input.id = `f-${name}`;
  input.name = name;
  return h("div", { class: "field" }, h("label", { for: input.id }, label), input,
    help ? h("small", { class: "muted" }, help) : null);
}

const numberInput = (value, min, max, step) => h("input", { type: "number", value, min, max, step, required: true });

function choice(value, options) {
  return h("select", {}, options.map((o) => h("option", { value: o, selected: o === value }, o)));
}

function objectUrl(blob) {
  const url = URL.createObjectURL(blob);
  urls.push(url);
  return url;
}

function freeUrls() {
  while (urls.length) URL.revokeObjectURL(urls.pop());
}

function decodeBase64(text, type) {
  const raw = atob(text);
  const data = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i += 1) data[i] = raw.charCodeAt(i);
  return new Blob([data], { type });
}

function showResult(box, file, body) {
  freeUrls();
  const { width, height } = body.image;
  const original = photoWithFaces(objectUrl(file), width, height, body.detections,
    `your photo with ${body.summary.face_count} detected faces marked`);
  const masked = plainPhoto(objectUrl(decodeBase64(body.output.image_base64, MIME[body.output.format])),
    width, height, `the masked result (${body.masking.method})`);
  const p = body.profiling;
  const recorded = body.job_id
    ? [h("a", { href: `#/jobs/${body.job_id}` }, `job ${shortId(body.job_id)}`), " on ",
      h("a", { href: `#/images/${body.image_id}` }, `image ${shortId(body.image_id)}`)]
    : "not recorded (storage off or failed)";
  clear(box,
    h("div", { class: "result-head" },
      h("p", { class: "face-count" }, h("strong", { id: "face-count" }, String(body.summary.face_count)),
        ` face${body.summary.face_count === 1 ? "" : "s"} found and ${body.masking.regions_masked} masked`),
      h("a", { class: "button", href: masked.querySelector("img").src,
        download: `masked.${body.output.format === "jpeg" ? "jpg" : body.output.format}` }, "Download result")),
    h("div", { class: "panels two" },
      h("div", {}, h("h2", { class: "small-title" }, "Detections"), original),
      h("div", {}, h("h2", { class: "small-title" }, `Masked · ${body.masking.method}, strength `
        + `${body.masking.strength}, padding ${body.masking.padding}`), masked)),
    h("div", { class: "columns" },
      h("section", { class: "card" }, h("h2", {}, "Timings"), facts([
        ["Decode", ms(p.decode_ms)], ["Detect + mask (Triton)", ms(p.inference_ms)], ["of which mask", ms(p.mask_ms)],
        ["Encode", ms(p.encode_ms)], ["Recording", p.storage_ms != null ? ms(p.storage_ms) : null],
        ["Total", ms(p.total_ms)],
      ])),
      h("section", { class: "card" }, h("h2", {}, "Result"), facts([
        ["Model", `${body.processing.model} at ${body.processing.input_size.join("×")}`],
        ["Photo", `${width}×${height}, ${bytes(body.image.size_bytes)}`],
        ["Output", `${body.output.format.toUpperCase()}, ${bytes(body.output.size_bytes)}`],
        ["Confidence", body.summary.face_count
          ? `${body.summary.min_confidence.toFixed(2)} – ${body.summary.max_confidence.toFixed(2)}` : null],
        ["Recorded as", h("span", {}, recorded)],
      ]))));
}

export async function render(main) {
  const file = h("input", { id: "photo", name: "image", type: "file", accept: "image/*", required: true });
  const dropName = h("span", { class: "muted" }, "No photo chosen");
  const drop = h("label", { class: "drop", for: "photo" },
    h("strong", {}, "Drop a photo here"), h("span", {}, " or click to choose one"), h("br"), dropName);
  const chosen = () => {
    const f = file.files[0];
    dropName.textContent = f ? `${f.name} · ${bytes(f.size)}` : "No photo chosen";
    drop.classList.toggle("has-file", Boolean(f));
  };
  file.addEventListener("change", chosen);
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files.length) {
      file.files = event.dataTransfer.files;
      chosen();
    }
  });

  const submit = h("button", { class: "button primary", type: "submit" }, "Detect and mask");
  const output = h("section", { class: "result", "aria-live": "polite" });
  const form = h("form", { class: "tester card" },
    h("div", { class: "drop-wrap" }, file, drop),
    h("fieldset", {}, h("legend", {}, "Detection"),
      field("confidence", "Confidence", numberInput(0.5, 0, 1, 0.05), "minimum score of a face"),
      field("nms_threshold", "NMS threshold", numberInput(0.4, 0, 1, 0.05), "overlap that merges two boxes"),
      field("max_faces", "Max faces", numberInput(0, 0, 10000, 1), "0 = no limit")),
    h("fieldset", {}, h("legend", {}, "Masking"),
      field("method", "Method", choice("gaussian", ["gaussian", "pixelate", "solid", "elliptical"])),
      field("strength", "Strength", numberInput(199, 2, 1001, 1), "blur kernel or pixel block size"),
      field("padding", "Padding", numberInput(0.15, 0, 2, 0.05), "box growth, fraction of its size")),
    h("fieldset", {}, h("legend", {}, "Output"),
      field("format", "Format", choice("jpeg", ["jpeg", "png", "webp"])),
      field("quality", "Quality", numberInput(95, 1, 100, 1), "JPEG and WebP")),
    h("div", { class: "actions" }, submit));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const photo = file.files[0];
    if (!photo) {
      toast("Choose a photo first.", "error");
      return;
    }
    const query = {};
    for (const [name, value] of new FormData(form)) if (name !== "image") query[name] = value;
    const upload = new FormData();
    upload.append("image", photo, photo.name);
    submit.disabled = true;
    submit.textContent = "Working…";
    output.setAttribute("aria-busy", "true");
    try {
      const body = await api.request("POST", "test/mask", { form: upload, query });
      showResult(output, photo, body);
    } catch (error) {
      clear(output, h("div", { class: "notice error", role: "alert" }, error.message));
    } finally {
      submit.disabled = false;
      submit.textContent = "Detect and mask";
      output.removeAttribute("aria-busy");
    }
  });
  main.append(h("h1", {}, "Test"),
    h("p", { class: "muted" }, "Runs the same pipeline as POST /api/v1/mask. In storage-backed mode the call is ",
      "recorded like any other (without an API key)."),
    form, output);
}
