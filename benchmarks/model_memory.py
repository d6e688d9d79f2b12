"""The default service's memory with every model loaded (as before explicit model control)
and with only the pipelines the settings select, in one run.

For each mode a stack is started with the default settings (FACE_API_TRITON_LOAD=all
for the first), and the PSS of all its processes (serve, tritonserver, every Python
stub, the gunicorn master and workers), summed, is read:

1. idle, once the stack is up (and has settled for ``--settle`` seconds);
2. idle, after each default pipeline has served each sample photo once
   (/api/v1/detect, /api/v1/mask, /v1/multi-embeddings);
3. the peak during a burst of large photos (12 Mpx JPEGs, ``--burst`` requests per
   endpoint at concurrency 4), and idle again after it.

It prints one table for the two modes and, after the sample photos, where the
memory is, by process kind (the stubs by model).

    .venv/bin/python -m benchmarks.model_memory [--modes all selected] [--env NAME=VALUE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx
from PIL import Image

from benchmarks.harness import LIFTED_LIMITS, SAMPLE_PHOTOS, upload
from benchmarks.memory_budget import MemorySampler, process_tree
from tests.integration.stack import ROOT, start_stack

MODES = {"all": {"FACE_API_TRITON_LOAD": "all"}, "selected": {}}
LARGE_SIZE = (4000, 3000)
GB = 1e9


def pss(pid: int) -> dict[str, int]:
    """Pss, Pss_Anon, Pss_File, Pss_Shmem of one process, in bytes (empty when it is gone)."""
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return {}
    found = {}
    for line in lines:
        key, _, rest = line.partition(":")
        if key.startswith("Pss"):
            found[key] = int(rest.split()[0]) * 1024
    return found


def label(pid: int, root: int) -> str:
    """What a process of the service is: serve, tritonserver, stub <model>, gunicorn master or worker,
    video job worker."""
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return "gone"
    command = " ".join(words)
    if pid == root:
        return "serve (supervisor)"
    if "triton_python_backend_stub" in command and len(words) > 1:
        return "stub " + words[1].split("/")[-3]  # its first argument is .../<model>/<version>/model.py
    if "tritonserver" in command:
        return "tritonserver"
    if "gunicorn" in command:
        return "gunicorn master" if parent == root else "gunicorn worker"
    if "frontend.video.worker" in command:
        return "video job worker"
    return command[:40]


def snapshot(root: int) -> dict[str, list[dict[str, int]]]:
    """Every process of the service by label: its Pss figures."""
    found: dict[str, list[dict[str, int]]] = defaultdict(list)
    for pid in process_tree(root):
        figures = pss(pid)
        if figures:
            found[label(pid, root)].append(figures)
    return found


def total(shot: dict[str, list[dict[str, int]]], key: str = "Pss") -> int:
    return sum(p.get(key, 0) for processes in shot.values() for p in processes)


def large_jpeg() -> bytes:
    """players.jpg (22 faces) scaled up to 12 Mpx."""
    image = Image.open(ROOT / "samples" / "players.jpg").convert("RGB").resize(LARGE_SIZE)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


async def serve_each(url: str, key: str | None, photos: list[bytes], concurrency: int = 1) -> list[int]:
    """Every photo through detect, mask and recognize (``concurrency`` requests at a time)."""
    headers = {"X-API-Key": key} if key else {}
    async with httpx.AsyncClient(base_url=url, timeout=300, headers=headers) as http:
        gate = asyncio.Semaphore(concurrency)

        async def one(path: str, photo: bytes) -> int:
            async with gate:
                if path.startswith("/v1/"):
                    response = await http.post(path, json={"image": base64.b64encode(photo).decode()})
                else:
                    response = await http.post(path, **upload(photo))
                return response.status_code

        calls = [one(path, photo) for photo in photos
                 for path in ("/api/v1/detect", "/api/v1/mask", "/v1/multi-embeddings")]
        return list(await asyncio.gather(*calls))


def settle(seconds: float) -> None:
    time.sleep(seconds)


def measure(mode: str, extra: dict[str, str], burst: int, settle_s: float) -> dict:
    env = {**LIFTED_LIMITS, **MODES[mode], **extra}
    print(f"[{mode}] starting the stack …", flush=True)
    stack = start_stack(Path(tempfile.mkdtemp(prefix=f"bench-model-memory-{mode}-")), env=env)
    root = stack.process.pid
    figures: dict = {"mode": mode}
    try:
        settle(settle_s)
        shot = snapshot(root)
        figures["processes"] = sum(len(p) for p in shot.values())
        figures["stubs"] = sum(len(p) for name, p in shot.items() if name.startswith("stub "))
        figures["idle at start"] = total(shot)

        samples = [(ROOT / "samples" / name).read_bytes() for name in SAMPLE_PHOTOS]
        statuses = asyncio.run(serve_each(stack.url, stack.first_key, samples))
        assert set(statuses) == {200}, statuses
        settle(settle_s)
        served = snapshot(root)
        figures["after one photo per pipeline"] = total(served)
        figures["breakdown"] = served

        sampler = MemorySampler(root)
        sampler.start()
        large = [large_jpeg()] * burst
        statuses = asyncio.run(serve_each(stack.url, stack.first_key, large, concurrency=4))
        sampler.stopped.set()
        sampler.join()
        figures["burst answers"] = {code: statuses.count(code) for code in sorted(set(statuses))}
        figures["peak during the burst"] = sampler.peak
        settle(settle_s)
        after = snapshot(root)
        figures["idle after the burst"] = total(after)
        figures["after burst breakdown"] = after
    finally:
        stack.stop()
    served_gb = figures["after one photo per pipeline"] / GB
    print(f"[{mode}] {figures['stubs']} stubs; idle after serving {served_gb:.2f} GB", flush=True)
    return figures


ROWS = ("idle at start", "after one photo per pipeline", "peak during the burst", "idle after the burst")


def report(results: list[dict]) -> None:
    names = {"all": "every model loaded (before)", "selected": "selected pipelines only (now)"}
    print()
    print("| PSS of all the service's processes | " + " | ".join(names[r["mode"]] for r in results) + " |")
    print("|---|" + "---:|" * len(results))
    counts = (f"{r['processes']} ({r['stubs']})" for r in results)
    print("| processes (Python stubs) | " + " | ".join(counts) + " |")
    for row in ROWS:
        print(f"| {row} | " + " | ".join(f"{r[row] / GB:.2f} GB" for r in results) + " |")
    print("| burst answers | " + " | ".join(str(r["burst answers"]) for r in results) + " |")
    for key, title in (("breakdown", "after one photo per pipeline"),
                       ("after burst breakdown", "after the burst")):
        print()
        print(f"By process, {title} (MB PSS: total = anonymous + file + shared memory):")
        print()
        labels = sorted({name for r in results for name in r[key]},
                        key=lambda n: -max(sum(p["Pss"] for p in r[key].get(n, [])) for r in results))
        print("| process | " + " | ".join(r["mode"] for r in results) + " |")
        print("|---|" + "---:|" * len(results))
        for name in labels:
            cells = []
            for r in results:
                processes = r[key].get(name, [])
                if not processes:
                    cells.append("–")
                    continue
                parts = [sum(p.get(k, 0) for p in processes) / 1e6
                         for k in ("Pss", "Pss_Anon", "Pss_File", "Pss_Shmem")]
                cells.append(f"{len(processes)} × = {parts[0]:.0f} "
                             f"({parts[1]:.0f} + {parts[2]:.0f} + {parts[3]:.0f})")
            print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", nargs="+", choices=sorted(MODES), default=["all", "selected"])
    parser.add_argument("--burst", type=int, default=8, help="large photos per endpoint")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds of idle before each reading")
    parser.add_argument("--env", action="append", default=[], help="extra NAME=VALUE for the stacks")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.env)
    report([measure(mode, extra, args.burst, args.settle) for mode in args.modes])


if __name__ == "__main__":
    main()
