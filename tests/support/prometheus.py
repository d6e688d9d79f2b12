"""A real Prometheus for tests: Debian's ``prometheus`` binary on a free port, scraping
the targets it is given every second, with the project's alert rules loaded.

``./face-api test`` installs the Debian package (it also brings ``promtool``).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from runtime.ports import free_port

INTERVAL = "1s"  # of scrapes and rule evaluations: tests wait seconds, not minutes


def binary(name: str = "prometheus") -> str:
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"no {name} binary: it comes with Debian's prometheus package, which "
                           "./face-api test installs (or: apt-get install prometheus)")
    return found


class PrometheusServer:
    """One Prometheus; ``jobs`` maps a job name to (host:port, metrics path)."""

    def __init__(self, jobs: dict[str, tuple[str, str]], rule_files: list[Path] | None = None):
        self.folder = Path(tempfile.mkdtemp(prefix="prometheus-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        config = {
            "global": {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL},
            "rule_files": [str(path.resolve()) for path in rule_files or []],
            "scrape_configs": [
                {"job_name": job, "metrics_path": path, "static_configs": [{"targets": [target]}]}
                for job, (target, path) in jobs.items()],
        }
        (self.folder / "prometheus.yml").write_text(yaml.safe_dump(config))

    @property
    def log_path(self) -> Path:
        return self.folder / "prometheus.log"

    def start(self, timeout: float = 30) -> PrometheusServer:
        command = [binary(), f"--config.file={self.folder / 'prometheus.yml'}",
                   f"--storage.tsdb.path={self.folder / 'data'}",
                   f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"prometheus was not ready within {timeout} s:\n{self.log_tail()}")
            time.sleep(0.2)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else "(no log)"

    def api(self, path: str, **params) -> dict:
        """GET /api/v1/<path>'s ``data``; AssertionError with Prometheus's own words on an error."""
        body = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10).json()
        assert body.get("status") == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        """An instant query's result vector (each item: metric labels and [time, "value"])."""
        return self.api("query", query=expr)["result"]

    def value(self, expr: str) -> float | None:
        """The single value of an instant query, or None when it returns nothing."""
        result = self.query(expr)
        assert len(result) <= 1, f"{expr} returned {len(result)} series"
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
