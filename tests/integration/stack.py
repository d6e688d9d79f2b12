"""Start and stop the real stack (`python -m runtime serve`) for tests, on free ports."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from runtime.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "admin-password-for-tests"
FIRST_KEY = re.compile(r"^\[serve\]\s+(xyl_[A-Za-z0-9_-]+)\s*$", re.MULTILINE)
TRITON_LOG = re.compile(r"log: (\S+tritonserver-\d+\.log)")

# Every stack this test session started, so that a failing test can show the logs of
# the stacks that died under it (see tests/integration/conftest.py).
STARTED: list[Stack] = []


@dataclass
class Stack:
    process: subprocess.Popen
    url: str
    triton_http: int
    triton_grpc: int
    triton_metrics: int
    log_path: Path
    stopped_by_test: bool = False
    url_signing_key: str = ""  # FACE_API_URL_SIGNING_KEY of the stack: tests can sign local download links

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def first_key(self) -> str | None:
        """The API key that serve printed when it found the database empty."""
        match = FIRST_KEY.search(self.log())
        return match.group(1) if match else None

    def diagnosis(self, chars: int = 4000) -> str:
        """The ends of the serve and Triton logs, for a test report."""
        report = f"serve exit code: {self.process.poll()}\n--- serve log ---\n{self.log()[-chars:]}"
        triton_logs = TRITON_LOG.findall(self.log())
        if triton_logs and Path(triton_logs[-1]).exists():
            tail = Path(triton_logs[-1]).read_text(errors="replace")[-chars:]
            report += f"\n--- {triton_logs[-1]} ---\n{tail}"
        return report

    def in_trouble(self) -> bool:
        """Exited, or on its way out, without a test having stopped it."""
        if self.stopped_by_test:
            return False
        log = self.log()
        return (self.process.poll() is not None
                or "[serve] the frontend exited" in log or "[serve] error:" in log)

    def worker_pids(self) -> set[str]:
        """The gunicorn workers that answered POST requests, from the JSON request lines."""
        return {str(line["pid"]) for line in self.request_lines() if line.get("method") == "POST"}

    def request_lines(self) -> list[dict]:
        """The frontend's request log lines (one JSON object per request) so far."""
        found = []
        for line in self.log().split("\n"):  # (splitlines would also split on U+2028 and the like)
            if line.startswith("{") and '"message": "request"' in line:
                found.append(json.loads(line))
        return found

    def stop(self, timeout: float = 60) -> int:
        self.stopped_by_test = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


def repository_copy(folder: Path) -> dict[str, str]:
    """A copy of model_repository/ and ensembles/ in ``folder`` for a stack that changes its models,
    so the real folders are never touched: small files copied, ONNX weights linked. Its
    environment (FACE_API_TRITON_REPOSITORIES) for start_stack."""
    def link_weights(source: str, destination: str) -> None:
        if source.endswith(".onnx"):
            os.symlink(Path(source).resolve(), destination)
        else:
            shutil.copy2(source, destination)

    copies = []
    for name in ("model_repository", "ensembles"):
        shutil.copytree(ROOT / name, folder / name, copy_function=link_weights,
                        ignore=shutil.ignore_patterns("__pycache__"))
        copies.append(str(folder / name))
    return {"FACE_API_TRITON_REPOSITORIES": ",".join(copies)}


def all_workers_started(stack: Stack) -> bool:
    log = stack.log()
    return 0 < log.count("Booting worker with pid") <= log.count("Application startup complete")


def start_stack(tmp: Path, env: dict[str, str] | None = None, timeout: float = 180) -> Stack:
    """Run the serve command like a user would, and wait until /health says 200 and
    every gunicorn worker has finished its start-up.

    The database, the rate-limit state and the local object store live in ``tmp``
    unless ``env`` says otherwise; the admin API takes ("admin", ADMIN_PASSWORD).
    """
    port, http, grpc, metrics = (free_port() for _ in range(4))
    environment = {
        **os.environ,
        "FACE_API_DATABASE_URL": f"sqlite:///{tmp}/face-api.sqlite3",
        "FACE_API_RATE_LIMIT_FILE": str(tmp / "rate-limits.sqlite3"),
        "FACE_API_STORAGE_DIR": str(tmp / "objects"),
        "FACE_API_ADMIN_USERNAME": "admin", "FACE_API_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "FACE_API_URL_SIGNING_KEY": secrets.token_hex(32),
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
    stack = Stack(process, f"http://127.0.0.1:{port}", http, grpc, metrics, log_path,
                  url_signing_key=environment["FACE_API_URL_SIGNING_KEY"])
    STARTED.append(stack)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the stack exited with {process.returncode}:\n{stack.diagnosis()}")
        try:
            if httpx.get(f"{stack.url}/health", timeout=2).status_code == 200 and all_workers_started(stack):
                return stack
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stack.stop()
    raise RuntimeError(f"the stack was not healthy within {timeout} s:\n{stack.diagnosis()}")
