"""What every benchmark here shares: the service to measure, the timing loops, the figures.

Each benchmark says what one request is (a function of the request's index)
and hands it to ``time_threads`` (the in-process side: threads of this process)
or ``time_requests`` (the service side: concurrent HTTP requests); both return
every request's latency and the wall time of the whole run, from which
``summary`` makes a table row.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.integration.stack import start_stack

# The bundled photos every benchmark sends (1, 5 and 22 faces; 0.07 to 1 MP).
SAMPLE_PHOTOS = ["yaoming.jpg", "gdp.jpg", "players.jpg"]
LIFTED_LIMITS = {"FACE_API_RATE_LIMIT_DETECT": "1000000/minute", "FACE_API_RATE_LIMIT_MASK": "1000000/minute",
                 "FACE_API_RATE_LIMIT_RECOGNITION": "1000000/minute"}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(label: str, concurrency: int, latencies: list[float], elapsed: float) -> dict:
    return {"label": label, "concurrency": concurrency, "requests": len(latencies),
            "throughput": len(latencies) / elapsed, "p50_ms": statistics.median(latencies) * 1000,
            "p95_ms": percentile(latencies, 0.95) * 1000}


def add_service_arguments(parser: argparse.ArgumentParser, requests: int, concurrency: list[int]) -> None:
    """The options every benchmark of the service takes."""
    parser.add_argument("--url", help="a running service (default: start one)")
    parser.add_argument("--api-key", help="X-API-Key for --url (a started stack uses its first key)")
    parser.add_argument("--requests", type=int, default=requests, help="requests per measurement")
    parser.add_argument("--concurrency", type=int, nargs="+", default=concurrency)
    parser.add_argument("--storage", choices=("on", "off"), default="on",
                        help="a started stack records every call (storage-backed mode, the default) or not")


@contextlib.contextmanager
def service(url: str | None, api_key: str | None, storage: str = "on",
            env: dict[str, str] | None = None) -> Iterator[tuple[str, str | None]]:
    """(url, API key) of the service to measure: the given one, or a stack started for the run
    (with ``env`` added to its environment).

    A started stack keeps API keys and the limiter on (their cost is part of the
    service) with the limits lifted, so that what is measured is not 429s.
    """
    if url is not None:
        yield url, api_key
        return
    env = {**LIFTED_LIMITS, "FACE_API_STORAGE_ENABLED": "true" if storage == "on" else "false", **(env or {})}
    print(f"starting the stack (storage-backed mode {storage}) …", flush=True)
    stack = start_stack(Path(tempfile.mkdtemp(prefix="bench-")), env=env)
    try:
        yield stack.url, stack.first_key
    finally:
        stack.stop()


def client(url: str, api_key: str | None, concurrency: int, timeout: float = 120) -> httpx.AsyncClient:
    """An HTTP client for the service with one connection per concurrent request."""
    headers = {"X-API-Key": api_key} if api_key else {}
    return httpx.AsyncClient(base_url=url, timeout=timeout, headers=headers,
                             limits=httpx.Limits(max_connections=concurrency))


def upload(photo: bytes, filename: str = "photo.jpg") -> dict:
    """``http.post`` arguments uploading ``photo`` as the multipart field ``image``.

    The body is built once per photo, not per request: the load generator shares
    the service's two cores, and httpx assembling a multipart body on every call
    cost ~1 ms of them. The bytes on the wire are the same.
    """
    boundary = "face-api-benchmark-" + "0" * 16
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{filename}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    return {"content": head + photo + f"\r\n--{boundary}--\r\n".encode(),
            "headers": {"Content-Type": f"multipart/form-data; boundary={boundary}"}}


def time_threads(one: Callable[[int], object], concurrency: int, requests: int) -> tuple[list[float], float]:
    """Run ``one(i)`` for i in range(requests) on ``concurrency`` threads: (latencies, wall time)."""
    latencies: list[float] = []
    lock = threading.Lock()

    def timed(i: int) -> None:
        started = time.perf_counter()
        one(i)
        with lock:
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(timed, range(requests)))
    return latencies, time.perf_counter() - started


async def time_requests(one: Callable[[int], Awaitable[object]], concurrency: int,
                        requests: int) -> tuple[list[float], float]:
    """Await ``one(i)`` for i in range(requests), ``concurrency`` at a time: (latencies, wall time)."""
    latencies: list[float] = []
    counter = iter(range(requests))

    async def worker() -> None:
        for i in counter:
            started = time.perf_counter()
            await one(i)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started
