"""Memory under hostile load: 32 concurrent maximum-size uploads mixed with ordinary traffic.

Starts a stack with the default limits (storage off, rate limits lifted), then:

1. ordinary traffic alone: detect calls on the sample photos at concurrency 4, for
   ``--seconds``; their p95 is the baseline;
2. the same ordinary traffic while 32 clients at once upload a small PNG that decodes to
   the maximum size (7000 x 7000 = 49 Mpx, under FACE_API_MAX_IMAGE_PIXELS), half to
   /api/v1/mask and half to /api/v1/detect.

Throughout, the whole service's memory (PSS of serve, Triton, its stubs and the
gunicorn workers, summed) is sampled every 0.2 s. It prints the idle and peak
memory, the large uploads' answers (200, and 503 refusals from the pixel budget),
and the ordinary requests' p95 against the baseline.

    .venv/bin/python -m benchmarks.memory_budget [--seconds 20] [--env FACE_API_PIXEL_BUDGET=...]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import tempfile
import threading
import time
from pathlib import Path

import httpx
from PIL import Image

from benchmarks.harness import LIFTED_LIMITS, SAMPLE_PHOTOS, percentile, upload
from tests.integration.stack import ROOT, start_stack

LARGE_SIDE = 7000
LARGE_CLIENTS = 32


def large_png() -> bytes:
    """A photo that compresses to ~150 KB and decodes to 49 Mpx."""
    image = Image.new("RGB", (LARGE_SIDE, LARGE_SIDE), (128, 110, 90))
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (serve starts Triton and gunicorn in sessions of their own)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def pss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
    return total


def shm_bytes() -> int:
    """Bytes of the service's regions in /dev/shm (Triton's Python stubs and the workers' photo slots)."""
    return sum(path.stat().st_size for path in Path("/dev/shm").glob("faceapi*") if path.is_file())


class MemorySampler(threading.Thread):
    def __init__(self, root: int):
        super().__init__(daemon=True)
        self.root, self.peak, self.peak_shm, self.stopped = root, 0, 0, threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.2):
            self.peak = max(self.peak, pss_bytes(process_tree(self.root)))
            self.peak_shm = max(self.peak_shm, shm_bytes())


async def ordinary(url: str, seconds: float, concurrency: int = 4) -> list[float]:
    """Detect calls on the sample photos for ``seconds``: their latencies (only successes)."""
    uploads = [upload((ROOT / "samples" / name).read_bytes(), name) for name in SAMPLE_PHOTOS]
    latencies: list[float] = []
    failures: list[int] = []
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        async def user(i: int) -> None:
            n = i
            while time.monotonic() < deadline:
                started = time.perf_counter()
                response = await http.post("/api/v1/detect", **uploads[n % len(uploads)])
                n += 1
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - started)
                else:
                    failures.append(response.status_code)
        await asyncio.gather(*(user(i) for i in range(concurrency)))
    if failures:
        print(f"  ordinary requests that failed: {len(failures)} ({sorted(set(failures))})")
    return latencies


async def large(url: str, photo: bytes) -> list[int]:
    body = upload(photo, "large.png")
    async with httpx.AsyncClient(base_url=url, timeout=300,
                                 limits=httpx.Limits(max_connections=LARGE_CLIENTS)) as http:
        async def one(i: int) -> int:
            path = "/api/v1/mask" if i % 2 else "/api/v1/detect"
            return (await http.post(path, **body)).status_code
        return list(await asyncio.gather(*(one(i) for i in range(LARGE_CLIENTS))))


async def loaded(url: str, photo: bytes, seconds: float) -> tuple[list[float], list[int]]:
    latencies, statuses = await asyncio.gather(ordinary(url, seconds), large(url, photo))
    return latencies, statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument("--env", action="append", default=[], help="extra NAME=VALUE for the stack")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.env)
    env = {**LIFTED_LIMITS, "FACE_API_STORAGE_ENABLED": "false", "FACE_API_API_KEY_ENABLED": "false", **extra}
    photo = large_png()
    print(f"large upload: {len(photo)} bytes, {LARGE_SIDE}x{LARGE_SIDE} = {LARGE_SIDE ** 2 / 1e6:.0f} Mpx")
    print("starting the stack (default limits; storage off) …", flush=True)
    stack = start_stack(Path(tempfile.mkdtemp(prefix="bench-memory-")), env=env)
    try:
        asyncio.run(ordinary(stack.url, 3))  # warm every pipeline once
        idle, idle_shm = pss_bytes(process_tree(stack.process.pid)), shm_bytes()
        print(f"idle service memory (PSS, all processes): {idle / 2**30:.2f} GiB", flush=True)
        print(f"phase 1: ordinary traffic alone for {args.seconds:.0f} s …", flush=True)
        alone = asyncio.run(ordinary(stack.url, args.seconds))
        print(f"phase 2: the same, with {LARGE_CLIENTS} concurrent {LARGE_SIDE}x{LARGE_SIDE} uploads …",
              flush=True)
        sampler = MemorySampler(stack.process.pid)
        sampler.start()
        busy, statuses = asyncio.run(loaded(stack.url, photo, args.seconds))
        sampler.stopped.set()
        sampler.join()
        time.sleep(2)
        after, after_shm = pss_bytes(process_tree(stack.process.pid)), shm_bytes()
    finally:
        stack.stop()
    counted = {code: statuses.count(code) for code in sorted(set(statuses))}
    budget = extra.get("FACE_API_PIXEL_BUDGET", os.environ.get("FACE_API_PIXEL_BUDGET", "(the default)"))
    print()
    print(f"| pixel budget per worker | {budget} |")
    print("|---|---|")
    print(f"| service memory idle (PSS) | {idle / 2**30:.2f} GiB |")
    print(f"| service memory peak under the large uploads (PSS) | {sampler.peak / 2**30:.2f} GiB |")
    print(f"| service memory 2 s after them (PSS) | {after / 2**30:.2f} GiB |")
    shm = " / ".join(f"{value / 2**20:.0f}" for value in (idle_shm, sampler.peak_shm, after_shm))
    print(f"| /dev/shm regions idle / peak / after | {shm} MiB |")
    print(f"| large uploads answered | {counted} (503 = refused by the pixel budget) |")
    print(f"| ordinary detect p95 alone | {percentile(alone, 0.95) * 1000:.0f} ms ({len(alone)} requests) |")
    print(f"| ordinary detect p95 during the large uploads | {percentile(busy, 0.95) * 1000:.0f} ms "
          f"({len(busy)} requests) |")


if __name__ == "__main__":
    main()
