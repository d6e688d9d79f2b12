"""The serve command as a process: Triton dying mid-service, and a clean shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import sample
from tests.integration.stack import start_stack


def pids(pattern: str) -> list[int]:
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return [int(p) for p in found.split()]


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory):
    # Without API keys (FACE_API_API_KEY_ENABLED=false), the other supported mode.
    stack = start_stack(tmp_path_factory.mktemp("lifecycle"), env={"FACE_API_API_KEY_ENABLED": "false",
                                                                  "FACE_API_SHARED_MEMORY_RECLAIM_S": "1"})
    yield stack
    stack.stop()


def shared_memory_regions(stack) -> set[str]:
    """The frontend's regions that Triton has registered (its system shared-memory status)."""
    status = httpx.get(f"http://127.0.0.1:{stack.triton_http}/v2/systemsharedmemory/status", timeout=10)
    status.raise_for_status()
    return {region["name"] for region in status.json() if region["name"].startswith("faceapi-fe")}


def test_triton_death_gives_503_then_recovers(own_stack):
    photo = sample("yaoming.jpg").read_bytes()
    with httpx.Client(base_url=own_stack.url, timeout=30) as http:
        for _ in range(4):  # both workers
            assert http.post("/api/v1/detect", files={"image": ("y.jpg", photo)}).status_code == 200
    before = shared_memory_regions(own_stack)
    assert before, "serve's workers send photos through shared memory"
    [triton] = pids(f"tritonserver.*--grpc-port={own_stack.triton_grpc}")
    os.kill(triton, signal.SIGKILL)
    time.sleep(0.5)

    with httpx.Client(base_url=own_stack.url, timeout=30) as http:
        started = time.monotonic()
        health = http.get("/health")
        response = http.post("/api/v1/detect", files={"image": ("y.jpg", photo)})
        assert time.monotonic() - started < 10  # a clear answer, not a hang
        assert health.status_code == 503
        assert health.json()["model_loaded"] is False and health.json()["status"] == "unavailable"
        assert response.status_code == 503
        assert response.json() == {"detail": "the inference server is unavailable; try again shortly"}
        assert response.headers["retry-after"] == "5"

        deadline = time.monotonic() + 120  # the supervisor restarts Triton
        while http.get("/health").status_code != 200:
            assert time.monotonic() < deadline, own_stack.log()[-2000:]
            time.sleep(0.5)
        # The new Triton knows none of the workers' regions: each worker's first call
        # falls back to gRPC and registers them again for the next ones.
        assert shared_memory_regions(own_stack) == set()
        for _ in range(6):
            again = http.post("/api/v1/detect", files={"image": ("y.jpg", photo)})
            assert again.status_code == 200 and again.json()["summary"]["face_count"] == 1
        masked = http.post("/api/v1/mask", params={"format": "png"}, files={"image": ("y.jpg", photo)})
        assert masked.status_code == 200 and masked.headers["x-face-count"] == "1"
    assert shared_memory_regions(own_stack)
    assert "restarting it" in own_stack.log()


async def detect_burst(url: str, photo: bytes, count: int, concurrency: int = 4) -> list[int]:
    """Status codes of ``count`` detect calls, each on a connection of its own (so that the
    kernel spreads them over the workers), ``concurrency`` at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> int:
        async with gate, httpx.AsyncClient(base_url=url, timeout=30) as http:
            return (await http.post("/api/v1/detect", files={"image": ("y.jpg", photo)})).status_code

    return list(await asyncio.gather(*(one() for _ in range(count))))


def test_every_worker_serves_within_a_second_of_triton_being_back(own_stack):
    """No flapping after an outage: each worker's channel is reconnected and used at once
    (gRPC's own reconnect backoff grows to minutes; ours is capped at 1 s)."""
    photo = sample("yaoming.jpg").read_bytes()
    [triton] = pids(f"tritonserver.*--grpc-port={own_stack.triton_grpc}")
    os.kill(triton, signal.SIGKILL)
    down_until = time.monotonic() + 8  # a longer outage: failed calls push the backoff up
    while time.monotonic() < down_until:
        asyncio.run(detect_burst(own_stack.url, photo, 4))
    ready = f"http://127.0.0.1:{own_stack.triton_http}/v2/health/ready"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(ready, timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, own_stack.log()[-2000:]
        time.sleep(0.2)
    time.sleep(1.0)
    statuses = asyncio.run(detect_burst(own_stack.url, photo, 20))
    health = [httpx.get(f"{own_stack.url}/health", timeout=10).status_code for _ in range(10)]
    assert statuses == [200] * 20 and health == [200] * 10, (statuses, health)


def test_a_killed_workers_shared_memory_is_reclaimed_while_serving(own_stack):
    photo = sample("gdp.jpg").read_bytes()
    for _ in range(5):  # until both workers have sent photos through shared memory
        asyncio.run(detect_burst(own_stack.url, photo, 8))
        if len(own_stack.worker_pids()) >= 2:
            break
    workers = {int(pid) for pid in own_stack.worker_pids() if Path(f"/proc/{pid}").exists()}
    victim = next(pid for pid in workers if list(Path("/dev/shm").glob(f"faceapi-fe*-{pid}_*")))
    regions = {path.name for path in Path("/dev/shm").glob(f"faceapi-fe*-{victim}_*")}
    assert regions & shared_memory_regions(own_stack)  # Triton maps some: they must be unregistered
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30  # the other worker reclaims them (every second here)
    while regions & (shared_memory_regions(own_stack) | {p.name for p in Path("/dev/shm").iterdir()}):
        assert time.monotonic() < deadline, "the dead worker's regions are still there"
        time.sleep(0.5)
    assert "reclaimed shared memory" in own_stack.log()
    assert asyncio.run(detect_burst(own_stack.url, photo, 4)) == [200] * 4


def test_sigterm_stops_everything_and_cleans_shared_memory(own_stack):
    serve_pid = own_stack.process.pid
    [master] = [pid for pid in pids(f"gunicorn.*127.0.0.1:{own_stack.url.rsplit(':', 1)[1]}")
                if Path(f"/proc/{pid}/stat").read_text().split()[3] == str(serve_pid)]
    assert list(Path("/dev/shm").glob(f"faceapi-fe{master}-*"))  # the workers' photo regions
    assert own_stack.stop(timeout=60) == 0
    log = own_stack.log()
    # The frontend stops before Triton, so no request is cut off mid-inference.
    assert log.index("stopping the frontend") < log.index("stopping tritonserver")
    assert pids(f"--grpc-port={own_stack.triton_grpc}") == []
    assert pids(f"127.0.0.1:{own_stack.url.rsplit(':', 1)[1]}") == []
    assert list(Path("/dev/shm").glob(f"faceapi{serve_pid}_*")) == []
    assert list(Path("/dev/shm").glob(f"faceapi-fe{master}-*")) == []
