"""Throughput and latency of POST /api/v1/detect against the in-process reference pipeline.

Both sides do the same work on the same photos in the same run: JPEG bytes ->
TurboJPEG decode -> SCRFD-500M (onnxruntime, CPU) -> decoded faces. The
reference is tests/reference/scrfd_reference.py called in this process (threads
share one onnxruntime session); the service is the real stack (Triton + the
frontend) over HTTP on loopback. Prints a table and the service/in-process ratio.

    .venv/bin/python -m benchmarks.detect_throughput            # starts its own stack
    .venv/bin/python -m benchmarks.detect_throughput --url http://127.0.0.1:8080 --api-key xyl_...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from turbojpeg import TJPF_RGB, TurboJPEG

from tests.integration.stack import ROOT, start_stack
from tests.reference.scrfd_reference import ReferenceSCRFD

PHOTOS = ["yaoming.jpg", "gdp.jpg", "players.jpg"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(label: str, concurrency: int, latencies: list[float], elapsed: float) -> dict:
    return {"label": label, "concurrency": concurrency, "requests": len(latencies),
            "throughput": len(latencies) / elapsed, "p50_ms": statistics.median(latencies) * 1000,
            "p95_ms": percentile(latencies, 0.95) * 1000}


def run_in_process(photos: list[bytes], concurrency: int, requests: int) -> dict:
    turbo = TurboJPEG()
    reference = ReferenceSCRFD(ROOT / "model_repository/scrfd_500m/1/model.onnx")
    for data in photos:  # warm-up
        reference.detect(turbo.decode(data, pixel_format=TJPF_RGB))
    latencies: list[float] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        started = time.perf_counter()
        reference.detect(turbo.decode(photos[i % len(photos)], pixel_format=TJPF_RGB))
        with lock:
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(requests)))
    return summary("in-process reference", concurrency, latencies, time.perf_counter() - started)


async def run_service(url: str, api_key: str | None, photos: list[bytes], concurrency: int,
                      requests: int) -> dict:
    latencies: list[float] = []
    counter = iter(range(requests))
    headers = {"X-API-Key": api_key} if api_key else {}
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=headers,
                                 limits=httpx.Limits(max_connections=concurrency)) as http:
        for data in photos:  # warm-up
            (await http.post("/api/v1/detect", files={"image": ("p.jpg", data)})).raise_for_status()

        async def worker() -> None:
            for i in counter:
                started = time.perf_counter()
                response = await http.post("/api/v1/detect",
                                           files={"image": ("p.jpg", photos[i % len(photos)])})
                response.raise_for_status()
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return summary("service (HTTP -> Triton)", concurrency, latencies, time.perf_counter() - started)


@contextlib.contextmanager
def service(url: str | None, api_key: str | None) -> Iterator[tuple[str, str | None]]:
    """(url, API key) of the service to measure: the given one, or a stack started for the run.

    A started stack keeps API keys and the limiter on (their cost is part of the
    service) with the limits lifted, so that what is measured is not 429s.
    """
    if url is not None:
        yield url, api_key
        return
    print("starting the stack …", flush=True)
    stack = start_stack(Path(tempfile.mkdtemp(prefix="bench-")), env={
        "FACE_API_RATE_LIMIT_DETECT": "1000000/minute", "FACE_API_RATE_LIMIT_MASK": "1000000/minute"})
    try:
        yield stack.url, stack.first_key
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running service (default: start one)")
    parser.add_argument("--api-key", help="X-API-Key for --url (a started stack uses its first key)")
    parser.add_argument("--requests", type=int, default=150, help="requests per measurement")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    photos = [(ROOT / "samples" / name).read_bytes() for name in PHOTOS]
    print(f"photos: {', '.join(PHOTOS)}; {args.requests} requests per measurement", flush=True)

    rows = []
    with service(args.url, args.api_key) as (url, api_key):
        for concurrency in args.concurrency:
            print(f"measuring concurrency {concurrency} …", flush=True)
            rows.append(run_in_process(photos, concurrency, args.requests))
            rows.append(asyncio.run(run_service(url, api_key, photos, concurrency, args.requests)))

    print(f"\n{'pipeline':<26} {'conc':>4} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8}")
    for row in rows:
        print(f"{row['label']:<26} {row['concurrency']:>4} {row['throughput']:>8.1f} "
              f"{row['p50_ms']:>8.1f} {row['p95_ms']:>8.1f}")
    print()
    for reference, measured in zip(rows[::2], rows[1::2]):
        ratio = measured["throughput"] / reference["throughput"]
        print(f"concurrency {measured['concurrency']}: service / in-process throughput = {ratio:.2f}")


if __name__ == "__main__":
    main()
