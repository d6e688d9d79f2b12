"""Faces embedded per second through the recognition API against the in-process reference.

Both sides do the same work on the same photos in the same run, with the
reference in tests/reference/ (onnxruntime in this process, threads sharing the
sessions) and the service the real stack over HTTP. Prints a table and the ratio.

* ``--endpoint multi-embeddings`` (default): every face of the group photo
  (players.jpg, 22 faces), the photo sent as base64 JSON as the contract says:
  JPEG -> decode -> SCRFD-500M -> 5-point alignment of every face -> ArcFace
  MobileFaceNet (all faces in one batch) -> unit-length embeddings.
* ``--endpoint feature``: POST /v1/file/feature, the largest face of each sample
  photo in turn (multipart upload), one face aligned and embedded per request.

    .venv/bin/python -m benchmarks.recognition_throughput          # starts its own stack
    .venv/bin/python -m benchmarks.recognition_throughput --endpoint feature --concurrency 1 8
    .venv/bin/python -m benchmarks.recognition_throughput --url http://127.0.0.1:8080 --api-key xyl_...
"""

from __future__ import annotations

import argparse
import asyncio
import base64

import numpy as np
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
from tests.reference.arcface_reference import ReferenceArcFace, align
from tests.reference.scrfd_reference import ReferenceSCRFD

PHOTO = "players.jpg"


def run_in_process(photos: list[bytes], concurrency: int, requests: int, largest_only: bool = False
                   ) -> tuple[dict, float]:
    """(summary, faces per request on average) of the reference pipeline."""
    turbo = TurboJPEG()
    detector = ReferenceSCRFD(ROOT / "model_repository/scrfd_500m/1/model.onnx")
    recognizer = ReferenceArcFace(ROOT / "model_repository/arcface_w600k_mbf/1/model.onnx")

    def embed(i: int = 0) -> int:
        rgb = turbo.decode(photos[i % len(photos)], pixel_format=TJPF_RGB)
        faces = detector.detect(rgb)
        landmarks = faces.landmarks
        if largest_only and len(landmarks):  # /v1/*feature: the face with the largest box
            areas = (faces.boxes[:, 2] - faces.boxes[:, 0]) * (faces.boxes[:, 3] - faces.boxes[:, 1])
            landmarks = landmarks[[int(np.argmax(areas))]]
        return len(recognizer.embed([align(rgb, points) for points in landmarks]))

    faces = [embed(i) for i in range(len(photos))]  # warm-up, and the face counts
    latencies, elapsed = time_threads(embed, concurrency, requests)
    return summary("in-process reference", concurrency, latencies, elapsed), sum(faces) / len(faces)


async def run_service(url: str, api_key: str | None, photos: list[bytes], concurrency: int,
                      requests: int, endpoint: str) -> tuple[dict, float]:
    """(summary, faces per request on average) of the service."""
    uploads = [upload(photo) for photo in photos]
    async with client(url, api_key, concurrency) as http:
        async def one(i: int) -> int:
            photo = photos[i % len(photos)]
            if endpoint == "feature":
                response = await http.post("/v1/file/feature", **uploads[i % len(photos)])
                response.raise_for_status()
                return 1
            body = {"image": base64.b64encode(photo).decode(), "maxResults": 128}
            response = await http.post("/v1/multi-embeddings", json=body)
            response.raise_for_status()
            return len(response.json()["embeddings_info_list"])

        faces = [await one(i) for i in range(len(photos))]  # warm-up, and the face counts
        latencies, elapsed = await time_requests(one, concurrency, requests)
    return summary("service (HTTP -> Triton)", concurrency, latencies, elapsed), sum(faces) / len(faces)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_service_arguments(parser, requests=30, concurrency=[1, 4])
    parser.add_argument("--endpoint", choices=["multi-embeddings", "feature"], default="multi-embeddings",
                        help="every face of players.jpg (base64 JSON), or /v1/file/feature: the largest "
                             "face of each sample photo in turn")
    args = parser.parse_args()
    names = SAMPLE_PHOTOS if args.endpoint == "feature" else [PHOTO]
    photos = [(ROOT / "samples" / name).read_bytes() for name in names]
    print(f"{args.endpoint}: {', '.join(names)}; {args.requests} photos per measurement", flush=True)

    rows = []
    with service(args.url, args.api_key, args.storage) as (url, api_key):
        for concurrency in args.concurrency:
            print(f"measuring concurrency {concurrency} …", flush=True)
            largest_only = args.endpoint == "feature"
            for result, faces in (run_in_process(photos, concurrency, args.requests, largest_only),
                                  asyncio.run(run_service(url, api_key, photos, concurrency, args.requests,
                                                          args.endpoint))):
                rows.append({**result, "faces_per_s": result["throughput"] * faces, "faces": faces})

    print(f"\n{'pipeline':<26} {'conc':>4} {'faces':>5} {'faces/s':>8} {'p50 ms':>8} {'p95 ms':>8}")
    for row in rows:
        print(f"{row['label']:<26} {row['concurrency']:>4} {row['faces']:>5.1f} {row['faces_per_s']:>8.1f} "
              f"{row['p50_ms']:>8.1f} {row['p95_ms']:>8.1f}")
    print()
    for reference, measured in zip(rows[::2], rows[1::2]):
        ratio = measured["faces_per_s"] / reference["faces_per_s"]
        print(f"concurrency {measured['concurrency']}: service / in-process faces per second = {ratio:.2f}")


if __name__ == "__main__":
    main()
