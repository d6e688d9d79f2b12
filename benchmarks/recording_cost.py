"""CPU and wall time of recording one call in storage-backed mode, in process.

Runs the frontend's own recorder (frontend/services/archive/recording.py) against a
fresh SQLite database (migrated as the service does) and a local object store in a
temporary folder, with the three sample photos in turn and a 22-face detect job as
the result: what every /api/v1/detect costs a worker on top of the answer when
recording is on. ``--fresh`` makes every upload new bytes (each is stored and gets
its image row); by default the photos repeat, as they do in the throughput benchmarks.

    .venv/bin/python -m benchmarks.recording_cost              # repeated photos
    .venv/bin/python -m benchmarks.recording_cost --fresh      # every photo new
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from frontend.persistence.database import create_database
from frontend.persistence.migrate import upgrade
from frontend.services.archive import Archive, NewJob, Upload
from frontend.storage.local import LocalObjectStore
from frontend.storage.signing import UrlSigner
from tests.integration.stack import ROOT

PHOTOS = ("yaoming.jpg", "gdp.jpg", "players.jpg")
POINTS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def detect_job(faces: int = 22) -> NewJob:
    """A job shaped like a /detect answer's record (its result is what takes the JSON encoding)."""
    found = [{"index": i, "bbox": {"x1": 1.5, "y1": 2.5, "x2": 30.5, "y2": 40.5}, "confidence": 0.91,
              "landmarks": {p: {"x": 10.25, "y": 20.75} for p in POINTS}} for i in range(faces)]
    return NewJob(job_type="detect", parameters={"confidence": 0.5, "nms_threshold": 0.4, "max_faces": 0},
                  result={"detections": found, "summary": {"face_count": faces}}, face_count=faces,
                  model="scrfd_500m", total_ms=30.0)


async def measure(folder: Path, calls: int, fresh: bool) -> tuple[float, float]:
    """(CPU ms, wall ms) per recorded call, after one untimed call per photo."""
    url = f"sqlite:///{folder}/face-api.sqlite"
    upgrade(url)
    photos = [(ROOT / "samples" / name).read_bytes() for name in PHOTOS]
    job = detect_job()
    objects = LocalObjectStore(folder / "objects", UrlSigner(b"k" * 32, 3600))
    await objects.start()
    async with create_database(url) as database:
        archive = Archive(database, objects)

        async def one(i: int) -> None:
            data = photos[i % len(photos)]
            if fresh:  # bytes after the JPEG's end: another upload, the same picture
                data += i.to_bytes(4, "big")
            recorded = await archive.try_record(Upload(data, "JPEG", 100, 100, 3), job)
            if recorded.error is not None:
                raise RuntimeError(recorded.error)

        for i in range(len(photos)):
            await one(calls + i)  # (new bytes too, when --fresh)
        cpu, wall = time.process_time(), time.perf_counter()
        for i in range(calls):
            await one(i)
        return ((time.process_time() - cpu) / calls * 1000, (time.perf_counter() - wall) / calls * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--fresh", action="store_true", help="every upload is new bytes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        cpu, wall = asyncio.run(measure(Path(folder), args.calls, args.fresh))
    kind = "new photos" if args.fresh else "repeated photos"
    print(f"recording one call ({kind}, {args.calls} calls): {cpu:.2f} ms CPU, {wall:.2f} ms wall")


if __name__ == "__main__":
    main()
