"""What the HTTP layer alone costs per photo, against the in-process detect or mask pipeline.

The service's CPU targets compare ``/api/v1/detect`` and ``/api/v1/mask`` with
the in-process pipelines, both on the same two cores, the load generator
included. Whatever the service does beyond a pipeline's own work (decode,
network, post-processing, masking, encode) is overhead, and its least part is
the HTTP exchange itself: gunicorn and uvicorn workers receiving a multipart
upload and sending the answer, and the HTTP client on the other end. This
benchmark measures that floor on its own:

* an **empty endpoint** served as the service is (gunicorn, the same number of
  uvicorn workers, the same worker class and keep-alive): it reads the upload
  and sends the answer the endpoint gives for that photo, made once at start-up
  (``detect``: the JSON body, by the service's own response builder from the
  reference detector's faces; ``mask``: the masked JPEG of the in-process mask
  pipeline). No decode, no Triton, no database, no API key;
* the **same client** as the service benchmarks (httpx, one connection per
  concurrent request, the same multipart bodies), at the same concurrency;
* in the same run, the **in-process pipeline** of benchmarks/detect_throughput.py
  or benchmarks/mask_vs_deface.py on the same photos.

It prints the CPU per request of the floor (server and client), its share of
the in-process pipeline's cost per photo, and the service / in-process ratio of
a service that did the pipeline's work at the in-process cost and added only
this floor. (A service can do that work for less than the in-process reference:
the detect reference shares one multi-threaded session between 8 threads, the
service runs one-thread sessions side by side; so this is a yardstick of the
floor's weight, not a bound.)

    .venv/bin/python -m benchmarks.http_floor                      # detect, concurrency 1 and 8
    .venv/bin/python -m benchmarks.http_floor --endpoint mask --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid

import httpx
from fastapi import FastAPI, File, UploadFile
from fastapi.responses import Response
from turbojpeg import TJPF_RGB, TurboJPEG

from benchmarks.cpu_by_process import CLIENT, GUNICORN, load, spent_by_label
from benchmarks.detect_throughput import FP32_MODEL, run_in_process
from benchmarks.harness import SAMPLE_PHOTOS, summary
from benchmarks.mask_vs_deface import Judge, mask_in_process
from benchmarks.mask_vs_deface import run_in_process as run_mask_in_process
from frontend.imaging.decode import DecodedImage
from frontend.inference.catalog import Pipeline
from frontend.inference.triton import Faces
from frontend.services.detection import Detected, DetectParams, build_response
from runtime.ports import free_port
from tests.integration.stack import ROOT
from tests.reference.scrfd_reference import ReferenceSCRFD


def detect_answer(reference: ReferenceSCRFD, turbo: TurboJPEG, photo: bytes) -> bytes:
    """The JSON body /api/v1/detect gives for ``photo``: the reference detector's faces, written
    by the service's own response builder (frontend/services/detection.py)."""
    rgb = turbo.decode(photo, pixel_format=TJPF_RGB)
    found = reference.detect(rgb)
    faces = Faces(scores=found.scores, boxes=found.boxes, landmarks=found.landmarks,
                  scale=(found.det_scale, found.det_scale), candidates_before_nms=found.candidates_before_nms,
                  candidates_after_nms=found.candidates_after_nms, inference_ms=9.1, preprocess_ms=1.2,
                  blob_ms=0.4, decode_ms=0.3, nms_ms=0.1)
    image = DecodedImage(pixels=rgb, channels=3, format="JPEG")
    pipeline = Pipeline(name="detect_scrfd_500m", kind="detect", detector="scrfd_500m",
                        input_size=(640, 640), landmarks=True)
    body = build_response("0f3c9a6e2b7d4c18a5e9f0b1c2d3e4f5", Detected(image, faces, decode_ms=2.0),
                          DetectParams(0.5, 0.4, 0), pipeline, len(photo), time.perf_counter())
    body.image_id, body.job_id = str(uuid.uuid4()), str(uuid.uuid4())  # as storage-backed mode fills them
    return body.model_dump_json().encode()


# What each endpoint answers for a photo (mask: the in-process pipeline's masked JPEG), and as what.
ANSWERS = {"detect": (detect_answer, "application/json"), "mask": (mask_in_process, "image/jpeg")}


def create_app(endpoint: str = "detect") -> FastAPI:
    """The empty endpoint (gunicorn imports it: ``benchmarks.http_floor:create_app('mask')``)."""
    app = FastAPI()
    # Each sample photo gets its own answer (told apart by size).
    answer, media_type = ANSWERS[endpoint]
    reference, turbo = ReferenceSCRFD(FP32_MODEL), TurboJPEG()
    photos = [(ROOT / "samples" / name).read_bytes() for name in SAMPLE_PHOTOS]
    answers = {len(photo): answer(reference, turbo, photo) for photo in photos}

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.post("/floor")
    async def floor(image: UploadFile = File(...)) -> Response:
        data = await image.read()
        return Response(answers[len(data)], media_type=media_type)

    return app


def start_floor(endpoint: str, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", f"benchmarks.http_floor:create_app({endpoint!r})",
         "--worker-class", "uvicorn_worker.UvicornWorker", "--workers", str(workers),
         "--bind", f"127.0.0.1:{port}", "--keep-alive", "5", "--log-level", "warning"],
        cwd=ROOT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("the empty endpoint did not start within 60 s (or exited)")


def in_process(endpoint: str, photos: list[bytes], concurrency: int, requests: int) -> dict:
    """The in-process pipeline of the endpoint's own benchmark, on the same photos."""
    if endpoint == "detect":
        return run_in_process(photos, concurrency, requests)
    turbo = TurboJPEG()
    named = dict(zip(SAMPLE_PHOTOS, photos))
    return run_mask_in_process(named, concurrency, requests, turbo, Judge(named, 1.0, turbo))


async def load_floor(url: str, concurrency: int, requests: int, root: int) -> dict:
    """The empty endpoint under load: its rate, p50, and CPU ms per request of server and client."""
    before, after, latencies, elapsed = await load(url, None, "/floor", requests, root, concurrency)
    spent = spent_by_label(before, after)
    return {**summary("empty endpoint", concurrency, latencies, elapsed),
            "server_ms": spent.get(GUNICORN, 0.0) * 1000 / requests,
            "client_ms": spent.get(CLIENT, 0.0) * 1000 / requests}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", choices=sorted(ANSWERS), default="detect",
                        help="whose answers the empty endpoint gives, and which in-process pipeline runs")
    parser.add_argument("--requests", type=int, default=400, help="in-process photos per measurement")
    parser.add_argument("--floor-requests", type=int, default=2000,
                        help="empty-endpoint requests per measurement (cheap; more give finer CPU figures)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (the service's default: 2)")
    args = parser.parse_args()
    photos = [(ROOT / "samples" / name).read_bytes() for name in SAMPLE_PHOTOS]
    cores = os.cpu_count() or 1
    print(f"photos: {', '.join(SAMPLE_PHOTOS)}; {args.requests} in-process photos and {args.floor_requests} "
          f"empty-endpoint requests per measurement; {cores} cores; {args.workers} workers", flush=True)

    process, url = start_floor(args.endpoint, args.workers)
    rows = []
    try:
        for concurrency in args.concurrency:
            started = time.process_time()
            reference = in_process(args.endpoint, photos, concurrency, args.requests)
            reference["cpu_ms"] = (time.process_time() - started) * 1000 / (args.requests + len(photos))
            floor = asyncio.run(load_floor(url, concurrency, args.floor_requests, process.pid))
            rows.append((reference, floor))
    finally:
        process.terminate()
        process.wait(timeout=30)

    print(f"\n{'':<26} {'conc':>4} {'req/s':>8} {'p50 ms':>8} {'CPU ms/req':>11}")
    for reference, floor in rows:
        print(f"{reference['label']:<26} {reference['concurrency']:>4} {reference['throughput']:>8.1f} "
              f"{reference['p50_ms']:>8.1f} {reference['cpu_ms']:>11.1f}")
        print(f"{'empty endpoint: server':<26} {floor['concurrency']:>4} {floor['throughput']:>8.1f} "
              f"{floor['p50_ms']:>8.1f} {floor['server_ms']:>11.2f}")
        print(f"{'empty endpoint: client':<26} {'':>4} {'':>8} {'':>8} {floor['client_ms']:>11.2f}")
    print()
    for reference, floor in rows:
        overhead = floor["server_ms"] + floor["client_ms"]
        if reference["concurrency"] == 1:  # one request at a time: the floor's round trip adds to the latency
            share = floor["p50_ms"] / reference["p50_ms"]
            best = reference["p50_ms"] / (reference["p50_ms"] + floor["p50_ms"])
            how = (f"p50 +{floor['p50_ms']:.1f} ms, {share:.1%} of the pipeline's "
                   f"{reference['p50_ms']:.1f} ms: {best:.2f}× its rate")
        else:  # cores saturated: each photo holds them cores / throughput, plus the floor's CPU
            pipeline_ms = cores * 1000 / reference["throughput"]
            share = overhead / pipeline_ms
            best = pipeline_ms / (pipeline_ms + overhead)
            how = (f"{overhead:.2f} ms CPU, {share:.1%} of the pipeline's {pipeline_ms:.1f} ms of the "
                   f"cores per photo: {best:.2f}× its rate")
        print(f"concurrency {reference['concurrency']}: the pipeline's own work at its in-process cost "
              f"plus only the floor: {how}")


if __name__ == "__main__":
    main()
