"""Start and stop the real stack (`python -m runtime serve`) for tests, on free ports."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
FIRST_KEY = re.compile(r"^\[serve\]\s+(xyl_[A-Za-z0-9_-]+)\s*$", re.MULTILINE)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Stack:
    process: subprocess.Popen
    url: str
    triton_http: int
    triton_grpc: int
    triton_metrics: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def first_key(self) -> str | None:
        """The API key that serve printed when it found the database empty."""
        match = FIRST_KEY.search(self.log())
        return match.group(1) if match else None

    def worker_pids(self) -> set[str]:
        """The gunicorn workers that answered requests, from the access log."""
        return set(re.findall(r'\[(\d+)\] INFO .*"POST [^"]*" \d{3}', self.log()))

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


def start_stack(tmp: Path, env: dict[str, str] | None = None, timeout: float = 180) -> Stack:
    """Run the serve command like a user would, and wait until /health says 200.

    The database and the rate-limit state live in ``tmp`` unless ``env`` says otherwise.
    """
    port, http, grpc, metrics = (free_port() for _ in range(4))
    environment = {
        **os.environ,
        "FACE_API_DATABASE_URL": f"sqlite:///{tmp}/face-api.sqlite3",
        "FACE_API_RATE_LIMIT_FILE": str(tmp / "rate-limits.sqlite3"),
        "FACE_API_PORT": str(port), "FACE_API_TRITON_HTTP_PORT": str(http),
        "FACE_API_TRITON_GRPC_PORT": str(grpc), "FACE_API_TRITON_METRICS_PORT": str(metrics),
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    log_path = tmp / f"stack-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "runtime", "serve"], cwd=ROOT,
                                   env=environment, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    stack = Stack(process, f"http://127.0.0.1:{port}", http, grpc, metrics, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the stack exited with {process.returncode}:\n{stack.log()[-3000:]}")
        try:
            if httpx.get(f"{stack.url}/health", timeout=2).status_code == 200:
                return stack
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stack.stop()
    raise RuntimeError(f"the stack was not healthy within {timeout} s:\n{stack.log()[-3000:]}")
