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
from pathlib import Path

from turbojpeg import TJPF_RGB, TurboJPEG

from benchmarks.harness import (
    SAMPLE_PHOTOS,
    add_service_arguments,
    client,
    service,
    summary,
    time_requests,
    time_threads,
    upload,
)
from tests.integration.stack import ROOT
from tests.reference.scrfd_reference import ReferenceSCRFD

FP32_MODEL = ROOT / "model_repository/scrfd_500m/1/model.onnx"


def run_in_process(photos: list[bytes], concurrency: int, requests: int, model: Path = FP32_MODEL,
                   label: str = "in-process reference") -> dict:
    turbo = TurboJPEG()
    reference = ReferenceSCRFD(model)

    def one(i: int) -> None:
        reference.detect(turbo.decode(photos[i % len(photos)], pixel_format=TJPF_RGB))

    for i in range(len(photos)):  # warm-up
        one(i)
    latencies, elapsed = time_threads(one, concurrency, requests)
    return summary(label, concurrency, latencies, elapsed)


async def run_service(url: str, api_key: str | None, photos: list[bytes], concurrency: int,
                      requests: int, label: str = "service (HTTP -> Triton)") -> dict:
    uploads = [upload(photo) for photo in photos]
    async with client(url, api_key, concurrency, timeout=60) as http:
        async def one(i: int) -> None:
            response = await http.post("/api/v1/detect", **uploads[i % len(photos)])
            response.raise_for_status()

        for i in range(len(photos)):  # warm-up
            await one(i)
        latencies, elapsed = await time_requests(one, concurrency, requests)
    return summary(label, concurrency, latencies, elapsed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_service_arguments(parser, requests=150, concurrency=[1, 8])
    args = parser.parse_args()
    photos = [(ROOT / "samples" / name).read_bytes() for name in SAMPLE_PHOTOS]
    print(f"photos: {', '.join(SAMPLE_PHOTOS)}; {args.requests} requests per measurement", flush=True)

    rows = []
    with service(args.url, args.api_key, args.storage) as (url, api_key):
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
