"""POST /api/v1/mask (gaussian, JPEG) against deface and the in-process reference.

All three anonymise the same photos in the same run:

* deface (PyPI ``deface``: CenterFace on onnxruntime), the command-line tool
  people use for this job, installed into its own venv under .cache/ (it
  needs opencv-python and numpy 2, which must not meet our environment);
  per-photo cost = (time for N photos − time for 1 photo) / (N − 1), so its
  start-up is not held against it;
* the in-process reference: TurboJPEG decode -> SCRFD-500M (the independent
  tests/reference implementation) -> the service's masking maths -> TurboJPEG
  encode, in threads of this process;
* the service: the real stack (Triton + frontend) over HTTP on loopback.

"Every reference face masked" is checked on each output: inside every face the
reference detector finds on the original, the output must differ clearly from it
(on enlarged photos, judged at the source photo's size: see Judge).

    .venv/bin/python -m benchmarks.mask_vs_deface                  # starts its own stack
    .venv/bin/python -m benchmarks.mask_vs_deface --url http://127.0.0.1:8080 --api-key xyl_...
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from turbojpeg import TJPF_RGB, TurboJPEG

from benchmarks.harness import (
    SAMPLE_PHOTOS,
    add_service_arguments,
    client,
    percentile,
    service,
    time_requests,
    time_threads,
    upload,
)
from tests.integration.stack import ROOT
from tests.reference.scrfd_reference import ReferenceSCRFD
from triton_python.masking import mask_faces  # the service's masking maths, used in-process

DEFACE_VENV = ROOT / ".cache/deface-venv"
DEFACE_PACKAGES = ["deface==1.5.0", "onnxruntime==1.31.1", "onnx==1.23.2"]
CHANGED = 8.0  # mean absolute difference (grey levels) that counts as "masked" ...
DETAIL_LEFT = 0.25  # ... or this fraction of the face's fine detail (Laplacian variance) left


def ensure_deface() -> Path:
    deface = DEFACE_VENV / "bin/deface"
    if not deface.exists():
        print(f"installing {' '.join(DEFACE_PACKAGES)} into {DEFACE_VENV} …", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(DEFACE_VENV)], check=True)
        subprocess.run([str(DEFACE_VENV / "bin/pip"), "install", "-q", "--disable-pip-version-check",
                        *DEFACE_PACKAGES], check=True)
    return deface


def detail(pixels: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY), cv2.CV_32F).var())


class Judge:
    """The reference faces of each photo, and how many of them an output masked.

    On enlarged photos (--photo-scale) both the photo and the output are judged
    shrunk back to the source's size: enlarging adds no detail, and a 23 px face
    enlarged to 75 px is a smooth blob whose only "fine detail" is JPEG noise,
    which no blur can be seen to remove.
    """

    def __init__(self, photos: dict[str, bytes], scale: float, turbo: TurboJPEG):
        reference = ReferenceSCRFD(ROOT / "model_repository/scrfd_500m/1/model.onnx")
        self.turbo, self.scale = turbo, scale
        decoded = {name: self._decode(data) for name, data in photos.items()}
        self.boxes = {name: reference.detect(rgb).boxes for name, rgb in decoded.items()}
        self.originals = {name: self._judged(rgb) for name, rgb in decoded.items()}  # as judged

    def _decode(self, data: bytes) -> np.ndarray:
        return self.turbo.decode(data, pixel_format=TJPF_RGB)

    def _judged(self, rgb: np.ndarray) -> np.ndarray:
        if self.scale == 1.0:
            return rgb
        size = (round(rgb.shape[1] / self.scale), round(rgb.shape[0] / self.scale))
        return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)

    def faces(self) -> int:
        return sum(len(boxes) for boxes in self.boxes.values())

    def masked(self, name: str, output: bytes) -> int:
        return masked_faces(self.originals[name], self._judged(self._decode(output)),
                            self.boxes[name] / self.scale)


def masked_faces(original: np.ndarray, output: np.ndarray, boxes: np.ndarray) -> int:
    """Reference faces whose central half clearly changed, or lost its fine detail
    (a blur barely moves the mean of a smooth, low-contrast face)."""
    count = 0
    for x1, y1, x2, y2 in boxes:
        w, h = x2 - x1, y2 - y1
        cx1, cy1, cx2, cy2 = (int(x1 + w / 4), int(y1 + h / 4), int(x2 - w / 4), int(y2 - h / 4))
        before, after = original[cy1:cy2, cx1:cx2], output[cy1:cy2, cx1:cx2]
        changed = np.abs(after.astype(int) - before).mean() > CHANGED
        blurred = detail(after) < DETAIL_LEFT * detail(before)
        count += bool(changed or blurred)
    return count


def enlarged(data: bytes, scale: float, turbo: TurboJPEG) -> bytes:
    """The JPEG ``data`` enlarged ``scale`` times (Lanczos, quality 92), or unchanged at 1."""
    if scale == 1.0:
        return data
    rgb = turbo.decode(data, pixel_format=TJPF_RGB)
    size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
    return turbo.encode(np.ascontiguousarray(cv2.resize(rgb, size, interpolation=cv2.INTER_LANCZOS4)),
                        quality=92, pixel_format=TJPF_RGB)


def run_deface(photos: dict[str, bytes], copies: int, judge: Judge) -> dict:
    deface = ensure_deface()
    folder = Path(tempfile.mkdtemp(prefix="deface-"))
    try:
        files = []
        for i in range(copies):
            for name, data in photos.items():
                path = folder / f"{i:03d}_{name}"
                path.write_bytes(data)
                files.append(path)

        def timed(paths: list[Path]) -> float:
            started = time.perf_counter()
            subprocess.run([str(deface), *map(str, paths), "--backend", "onnxrt"], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return time.perf_counter() - started

        one = timed(files[:1])
        many = timed(files)
        per_photo = (many - one) / (len(files) - 1)
        outputs = {name: (folder / f"000_{name.replace('.jpg', '_anonymized.jpg')}").read_bytes()
                   for name in photos}
        masked = sum(judge.masked(name, output) for name, output in outputs.items())
        return {"label": f"deface 1.5 (CLI, {len(files)} photos)", "concurrency": 1,
                "throughput": 1.0 / per_photo, "p50_ms": per_photo * 1000, "p95_ms": float("nan"),
                "masked": f"{masked}/{judge.faces()}", "startup_s": one - per_photo}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def mask_in_process(reference: ReferenceSCRFD, turbo: TurboJPEG, photo: bytes) -> bytes:
    """The in-process mask pipeline on one JPEG: what /api/v1/mask?method=gaussian&format=jpeg answers."""
    rgb = turbo.decode(photo, pixel_format=TJPF_RGB)
    masked, _ = mask_faces(rgb, reference.detect(rgb).boxes, "gaussian", 199, 0.15)
    return turbo.encode(masked, quality=95, pixel_format=TJPF_RGB)


def run_in_process(photos: dict[str, bytes], concurrency: int, requests: int, turbo: TurboJPEG,
                   judge: Judge) -> dict:
    reference = ReferenceSCRFD(ROOT / "model_repository/scrfd_500m/1/model.onnx", threads=1)
    names = list(photos)
    outputs: dict[str, bytes] = {}

    def one(i: int) -> None:
        name = names[i % len(names)]
        outputs[name] = mask_in_process(reference, turbo, photos[name])

    for i in range(len(names)):  # warm-up
        one(i)
    latencies, elapsed = time_threads(one, concurrency, requests)
    return row("in-process reference", concurrency, latencies, elapsed, outputs, judge)


async def run_service(url: str, api_key: str | None, photos: dict[str, bytes], concurrency: int,
                      requests: int, judge: Judge) -> dict:
    names = list(photos)
    outputs: dict[str, bytes] = {}
    uploads = {name: upload(data, name) for name, data in photos.items()}
    async with client(url, api_key, concurrency) as http:
        async def one(i: int) -> None:
            name = names[i % len(names)]
            response = await http.post("/api/v1/mask", params={"method": "gaussian", "format": "jpeg"},
                                       **uploads[name])
            response.raise_for_status()
            outputs[name] = response.content

        for i in range(len(names)):  # warm-up
            await one(i)
        latencies, elapsed = await time_requests(one, concurrency, requests)
    return row("service (HTTP -> Triton)", concurrency, latencies, elapsed, outputs, judge)


def row(label, concurrency, latencies, elapsed, outputs: dict[str, bytes], judge: Judge) -> dict:
    masked = sum(judge.masked(name, output) for name, output in outputs.items())
    return {"label": label, "concurrency": concurrency, "throughput": len(latencies) / elapsed,
            "p50_ms": percentile(latencies, 0.5) * 1000, "p95_ms": percentile(latencies, 0.95) * 1000,
            "masked": f"{masked}/{judge.faces()}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_service_arguments(parser, requests=90, concurrency=[1, 8])
    parser.add_argument("--deface-copies", type=int, default=8, help="copies of each photo for deface")
    parser.add_argument("--photo-scale", type=float, default=1.0,
                        help="enlarge the sample photos by this factor first (3.2 makes players.jpg "
                             "3958x2560, the size of a phone photo); all three sides get the same files")
    args = parser.parse_args()
    turbo = TurboJPEG()
    photos = {name: enlarged((ROOT / "samples" / name).read_bytes(), args.photo_scale, turbo)
              for name in SAMPLE_PHOTOS}
    judge = Judge(photos, args.photo_scale, turbo)
    sizes = ", ".join(f"{name} {turbo.decode_header(data)[0]}x{turbo.decode_header(data)[1]}"
                      for name, data in photos.items())
    print(f"photos: {sizes} ({judge.faces()} reference faces); "
          f"{args.requests} requests per measurement", flush=True)

    print("measuring deface …", flush=True)
    rows = [run_deface(photos, args.deface_copies, judge)]
    with service(args.url, args.api_key, args.storage) as (url, api_key):
        for concurrency in args.concurrency:
            print(f"measuring concurrency {concurrency} …", flush=True)
            rows.append(run_in_process(photos, concurrency, args.requests, turbo, judge))
            rows.append(asyncio.run(run_service(url, api_key, photos, concurrency, args.requests, judge)))

    print(f"\n{'pipeline':<34} {'conc':>4} {'photos/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'faces masked':>13}")
    for r in rows:
        print(f"{r['label']:<34} {r['concurrency']:>4} {r['throughput']:>9.1f} {r['p50_ms']:>8.1f} "
              f"{r['p95_ms']:>8.1f} {r['masked']:>13}")
    deface = rows[0]
    print(f"\ndeface start-up (not counted above): {deface['startup_s']:.1f} s")
    for reference_row, measured in zip(rows[1::2], rows[2::2]):
        print(f"concurrency {measured['concurrency']}: service / deface = "
              f"{measured['throughput'] / deface['throughput']:.1f}x, service / in-process = "
              f"{measured['throughput'] / reference_row['throughput']:.2f}")


if __name__ == "__main__":
    main()
