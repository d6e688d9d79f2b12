"""The video job workers that ./face-api serve runs beside gunicorn (frontend/video/worker.py).

FACE_API_VIDEO_WORKERS processes (0: none), each ``python -m frontend.video.worker`` in a
session of its own, so Ctrl-C reaches only the supervisor, which stops things in order:
the frontend, then these (each puts its running job back in the queue), then Triton. One
that dies is started again (no sooner than RESTART_GAP_S after its previous start, so a
worker that cannot start does not spin); its job's lease runs out and the job is queued
again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from frontend.inference.shared_memory import frontend_shm_prefix, remove_leftovers
from frontend.settings import Settings

RESTART_GAP_S = 5.0
STOP_TIMEOUT_S = 30.0


def worker_count(settings: Settings) -> int:
    """How many workers to run: none without the database and object storage they need."""
    return settings.video_workers if settings.database_enabled and settings.storage_enabled else 0


class VideoWorkers:
    def __init__(self, count: int, env: dict[str, str], say: Callable[[str], None]):
        self.count = count
        self.env = env
        self.say = say
        self.processes: list[subprocess.Popen | None] = [None] * count
        self.started_at = [0.0] * count

    def start(self) -> None:
        if self.count:
            self.say(f"starting {self.count} video job worker{'s' if self.count > 1 else ''}")
        for slot in range(self.count):
            self._start(slot)

    def _start(self, slot: int) -> None:
        self.started_at[slot] = time.monotonic()
        self.processes[slot] = subprocess.Popen([sys.executable, "-m", "frontend.video.worker"], env=self.env,
                                                start_new_session=True)

    def check(self) -> None:
        """Start again the workers that died (the supervisor calls this every second)."""
        for slot, process in enumerate(self.processes):
            if process is None or process.poll() is None:
                continue
            if time.monotonic() - self.started_at[slot] < RESTART_GAP_S:
                continue
            self.say(f"video worker {process.pid} exited with code {process.returncode}; starting another "
                     "(its job is queued again when its lease runs out)")
            self._start(slot)

    def stop(self) -> None:
        """SIGTERM to every worker (each puts its job back in the queue), SIGKILL to the ones
        still running after STOP_TIMEOUT_S."""
        running = [p for p in self.processes if p is not None and p.poll() is None]
        if running:
            self.say("stopping the video workers …")
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        # Shared-memory regions of workers that were killed (named after this supervisor).
        remove_leftovers(frontend_shm_prefix(os.getpid()))
