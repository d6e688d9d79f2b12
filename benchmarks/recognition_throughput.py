"""Faces embedded per second through POST /v1/multi-embeddings against the in-process reference.

Both sides do the same work on the same group photo (players.jpg, 22 faces) in
the same run: JPEG bytes -> decode -> SCRFD-500M -> 5-point alignment of every
face -> ArcFace MobileFaceNet (all faces of the photo in one batch) -> unit-length
embeddings. The reference is tests/reference/ (onnxruntime in this process,
threads sharing the sessions); the service is the real stack over HTTP, with
the photo sent as base64 JSON as the contract says. Prints a table and the ratio.

    .venv/bin/python -m benchmarks.recognition_throughput          # starts its own stack
    .venv/bin/python -m benchmarks.recognition_throughput --url http://127.0.0.1:8080 --api-key xyl_...
"""

from __future__ import annotations

import argparse
import asyncio
import base64

from turbojpeg import TJPF_RGB, TurboJPEG

from benchmarks.harness import add_service_arguments, client, service, summary, time_requests, time_threads
from tests.integration.stack import ROOT
from tests.reference.arcface_reference import ReferenceArcFace, align
from tests.reference.scrfd_reference import ReferenceSCRFD

PHOTO = "players.jpg"


def run_in_process(photo: bytes, concurrency: int, requests: int) -> tuple[dict, int]:
    turbo = TurboJPEG()
    detector = ReferenceSCRFD(ROOT / "model_repository/scrfd_500m/1/model.onnx")
    recognizer = ReferenceArcFace(ROOT / "model_repository/arcface_w600k_mbf/1/model.onnx")

    def embed(_: int = 0) -> int:
        rgb = turbo.decode(photo, pixel_format=TJPF_RGB)
        faces = detector.detect(rgb)
        return len(recognizer.embed([align(rgb, points) for points in faces.landmarks]))

    faces = embed()  # warm-up, and the face count
    latencies, elapsed = time_threads(embed, concurrency, requests)
    return summary("in-process reference", concurrency, latencies, elapsed), faces


async def run_service(url: str, api_key: str | None, photo: bytes, concurrency: int,
                      requests: int) -> tuple[dict, int]:
    body = {"image": base64.b64encode(photo).decode(), "maxResults": 128}
    async with client(url, api_key, concurrency) as http:
        async def one(_: int):
            response = await http.post("/v1/multi-embeddings", json=body)
            response.raise_for_status()
            return response

        faces = len((await one(0)).json()["embeddings_info_list"])  # warm-up, and the face count
        latencies, elapsed = await time_requests(one, concurrency, requests)
    return summary("service (HTTP -> Triton)", concurrency, latencies, elapsed), faces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_service_arguments(parser, requests=30, concurrency=[1, 4])
    args = parser.parse_args()
    photo = (ROOT / "samples" / PHOTO).read_bytes()
    print(f"photo: {PHOTO}; {args.requests} photos per measurement", flush=True)

    rows = []
    with service(args.url, args.api_key, args.storage) as (url, api_key):
        for concurrency in args.concurrency:
            print(f"measuring concurrency {concurrency} …", flush=True)
            for result, faces in (run_in_process(photo, concurrency, args.requests),
                                  asyncio.run(run_service(url, api_key, photo, concurrency, args.requests))):
                rows.append({**result, "faces_per_s": result["throughput"] * faces, "faces": faces})

    print(f"\n{'pipeline':<26} {'conc':>4} {'faces':>5} {'faces/s':>8} {'p50 ms':>8} {'p95 ms':>8}")
    for row in rows:
        print(f"{row['label']:<26} {row['concurrency']:>4} {row['faces']:>5} {row['faces_per_s']:>8.1f} "
              f"{row['p50_ms']:>8.1f} {row['p95_ms']:>8.1f}")
    print()
    for reference, measured in zip(rows[::2], rows[1::2]):
        ratio = measured["faces_per_s"] / reference["faces_per_s"]
        print(f"concurrency {measured['concurrency']}: service / in-process faces per second = {ratio:.2f}")


if __name__ == "__main__":
    main()
