"""CPU time per request, by process, while the service is under load.

Starts a stack (storage off, limits lifted), sends ``--requests`` detect or
mask requests at concurrency 8 over the sample photos, and reads each process's
user + system time from /proc before and after: where the two cores go. Only
the started stack's processes (descendants of its serve command) and this one are
counted, so other stacks on the same machine do not blur the figures.

    .venv/bin/python -m benchmarks.cpu_by_process detect --requests 300
    .venv/bin/python -m benchmarks.cpu_by_process mask --env FACE_API_TRITON_SHARED_MEMORY=false
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path

from benchmarks.harness import LIFTED_LIMITS, SAMPLE_PHOTOS, client, time_requests, upload
from tests.integration.stack import ROOT, start_stack

PATHS = {"detect": "/api/v1/detect", "mask": "/api/v1/mask?method=gaussian&format=jpeg"}
TICKS = os.sysconf("SC_CLK_TCK")
GUNICORN, CLIENT = "gunicorn (master + workers)", "benchmark client"  # process labels


def cpu_seconds(root: int | None = None) -> dict[int, tuple[str, float]]:
    """pid -> (process label, user + system CPU seconds) for the stack's processes and this one
    (with ``root``: only that process's descendants, the stack's, and this one)."""
    found, parents = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        label = _label(command, pid)
        if label:
            found[pid] = (label, (int(fields[11]) + int(fields[12])) / TICKS)
    if root is None:
        return found
    return {pid: value for pid, value in found.items() if pid == os.getpid() or _descends(pid, root, parents)}


def _descends(pid: int, root: int, parents: dict[int, int]) -> bool:
    seen = set()
    while pid not in seen and pid > 1:
        if pid == root:
            return True
        seen.add(pid)
        pid = parents.get(pid, 0)
    return False


def _label(command: str, pid: int) -> str | None:
    if "triton_python_backend_stub" in command:
        words = command.split()  # a stub's first argument is .../<model>/<version>/model.py
        path = words[1].split("/") if len(words) > 1 else []
        # Anything else naming the stub (pgrep -f triton_python_backend_stub) is not one.
        return "stub " + path[-3] if len(path) >= 3 and path[-1] == "model.py" else None
    if "tritonserver" in command:
        return "tritonserver"
    if "gunicorn" in command:
        return GUNICORN
    if pid == os.getpid():
        return CLIENT
    return None


async def load(url: str, api_key: str | None, path: str, requests: int, root: int | None = None,
               concurrency: int = 8):
    """Upload the sample photos to ``path``: (cpu_seconds before, after, latencies, wall time)."""
    uploads = [upload((ROOT / "samples" / name).read_bytes()) for name in SAMPLE_PHOTOS]
    async with client(url, api_key, concurrency) as http:
        async def one(i: int) -> None:
            (await http.post(path, **uploads[i % len(uploads)])).raise_for_status()

        for i in range(2 * len(SAMPLE_PHOTOS)):  # warm-up
            await one(i)
        before = cpu_seconds(root)
        latencies, elapsed = await time_requests(one, concurrency, requests)
        return before, cpu_seconds(root), latencies, elapsed


def spent_by_label(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds each kind of process (cpu_seconds' labels) spent between two readings."""
    spent: dict[str, float] = {}
    for pid, (label, seconds) in after.items():
        spent[label] = spent.get(label, 0.0) + seconds - before.get(pid, (label, 0.0))[1]
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("endpoint", choices=sorted(PATHS))
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--env", nargs="*", default=[], metavar="NAME=VALUE",
                        help="extra environment for the stack (e.g. FACE_API_WORKERS=1)")
    args = parser.parse_args()
    env = {**LIFTED_LIMITS, "FACE_API_STORAGE_ENABLED": "false", **dict(e.split("=", 1) for e in args.env)}
    print(f"starting the stack ({' '.join(args.env) or 'defaults'}) …", flush=True)
    stack = start_stack(Path(tempfile.mkdtemp(prefix="cpu-")), env=env)
    try:
        before, after, _, elapsed = asyncio.run(load(stack.url, stack.first_key, PATHS[args.endpoint],
                                                     args.requests, stack.process.pid))
    finally:
        stack.stop()
    spent = spent_by_label(before, after)
    print(f"\n{args.endpoint}: {args.requests / elapsed:.1f} requests/s at concurrency 8")
    print(f"{'process':<34} {'CPU ms / request':>17}")
    for label, seconds in sorted(spent.items(), key=lambda item: -item[1]):
        if seconds > 0:
            print(f"{label:<34} {seconds * 1000 / args.requests:>17.1f}")
    print(f"{'total':<34} {sum(spent.values()) * 1000 / args.requests:>17.1f}")


if __name__ == "__main__":
    main()
