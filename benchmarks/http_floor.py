"""What the HTTP layer alone costs per photo, against the in-process detect pipeline.

The service's CPU targets compare ``/api/v1/detect`` with the in-process
pipeline, both on the same two cores, the load generator included. Whatever the
service does beyond the pipeline's own work (decode, letterbox, network,
post-processing) is overhead, and its least part is the HTTP exchange itself:
gunicorn and uvicorn workers receiving a multipart upload and answering JSON,
and the HTTP client sending it. This benchmark measures that floor on its own:

* an **empty endpoint** served exactly as the service is (gunicorn, the same
  number of uvicorn workers, the same worker class and keep-alive): it reads
  the upload and answers the JSON body /api/v1/detect gives for that photo,
  built once at start-up by the service's own response builder (no decode, no
  Triton, no database, no API key);
* the **same client** as the service benchmarks (httpx, one connection per
  concurrent request, the same multipart bodies), at the same concurrency;
* in the same run, the **in-process pipeline** of benchmarks/detect_throughput.py
  on the same photos, its CPU per photo taken from this process's CPU time.

It prints the CPU per request of the floor (server and client) and the best
service / in-process ratio that a service paying only this floor could reach:
the in-process pipeline's CPU per photo over that plus the floor.

    .venv/bin/python -m benchmarks.http_floor                  # concurrency 1 and 8
    .venv/bin/python -m benchmarks.http_floor --concurrency 8 --workers 1
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

from benchmarks.cpu_by_process import cpu_seconds
from benchmarks.detect_throughput import FP32_MODEL, run_in_process
from benchmarks.harness import SAMPLE_PHOTOS, client, summary, time_requests, upload
from frontend.imaging.decode import DecodedImage
from frontend.inference.catalog import Pipeline
from frontend.inference.triton import Faces
from frontend.services.detection import Detected, DetectParams, build_response
from runtime.ports import free_port
from tests.integration.stack import ROOT
from tests.reference.scrfd_reference import ReferenceSCRFD


def detect_answer(photo: bytes) -> bytes:
    """The JSON body /api/v1/detect gives for ``photo``: the reference detector's faces, written
    by the service's own response builder (frontend/services/detection.py)."""
    rgb = TurboJPEG().decode(photo, pixel_format=TJPF_RGB)
    found = ReferenceSCRFD(FP32_MODEL).detect(rgb)
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


def create_app():
    """The empty endpoint (gunicorn imports it: ``benchmarks.http_floor:create_app()``)."""
    app = FastAPI()
    # Each sample photo gets its own answer (told apart by size).
    photos = [(ROOT / "samples" / name).read_bytes() for name in SAMPLE_PHOTOS]
    answers = {len(photo): detect_answer(photo) for photo in photos}

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.post("/floor")
    async def floor(image: UploadFile = File(...)) -> Response:
        data = await image.read()
        return Response(answers[len(data)], media_type="application/json")

    return app


def start_floor(workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "benchmarks.http_floor:create_app()",
         "--worker-class", "uvicorn_worker.UvicornWorker", "--workers", str(workers),
         "--bind", f"127.0.0.1:{port}", "--keep-alive", "5", "--log-level", "warning"],
        cwd=ROOT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the empty endpoint did not start within 60 s")


async def load_floor(url: str, photos: list[bytes], concurrency: int, requests: int, root: int) -> dict:
    """The empty endpoint under load: its rate, p50, and CPU ms per request of server and client."""
    uploads = [upload(photo) for photo in photos]
    async with client(url, None, concurrency) as http:
        async def one(i: int) -> None:
            (await http.post("/floor", **uploads[i % len(uploads)])).raise_for_status()

        for i in range(4 * len(uploads)):  # warm-up
            await one(i)
        before = cpu_seconds(root)
        latencies, elapsed = await time_requests(one, concurrency, requests)
        after = cpu_seconds(root)
    spent = {"server": 0.0, "client": 0.0}
    for pid, (label, seconds) in after.items():
        spent["client" if pid == os.getpid() else "server"] += seconds - before.get(pid, (label, 0.0))[1]
    return {**summary("empty endpoint", concurrency, latencies, elapsed),
            **{f"{side}_ms": seconds * 1000 / requests for side, seconds in spent.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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

    process, url = start_floor(args.workers)
    rows = []
    try:
        for concurrency in args.concurrency:
            started = time.process_time()
            reference = run_in_process(photos, concurrency, args.requests)
            reference["cpu_ms"] = (time.process_time() - started) * 1000 / (args.requests + len(photos))
            floor = asyncio.run(load_floor(url, photos, concurrency, args.floor_requests, process.pid))
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
            best = reference["p50_ms"] / (reference["p50_ms"] + floor["p50_ms"])
            how = f"p50 {floor['p50_ms']:.1f} ms more, so at best {best:.2f}× the in-process rate"
        else:  # cores saturated: each photo holds them cores / throughput, plus the floor's CPU
            pipeline_ms = cores * 1000 / reference["throughput"]
            best = pipeline_ms / (pipeline_ms + overhead)
            how = f"{overhead:.2f} ms CPU more per photo, so at best {best:.2f}× the in-process rate"
        print(f"concurrency {reference['concurrency']}: a service that added only the floor: {how}")


if __name__ == "__main__":
    main()
