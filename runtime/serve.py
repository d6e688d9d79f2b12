"""./face-api serve: embedded Triton on the CPU, then the frontend under gunicorn.

Start order: Triton (loading only the pipelines the settings select and what they
call, see runtime/selection.py; wait until they are ready), then gunicorn with
uvicorn workers and the video job workers (runtime/video_workers.py). Stop order on
SIGINT/SIGTERM: the frontend first (no new requests reach Triton), then the video
workers (each puts its running job back in the queue), then Triton. If Triton dies while serving, the
frontend keeps answering (/health 503, requests 503) and Triton is restarted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from frontend.inference.shared_memory import frontend_shm_prefix, remove_leftovers
from frontend.settings import Settings
from runtime.admin_password import admin_environment
from runtime.allocator import give_back_free_memory, tuned_environment
from runtime.cpu_repository import OnnxTuning
from runtime.database_setup import prepare_database  # noqa: F401 (tests call it as serve's)
from runtime.paths import ROOT, RUN, model_sources
from runtime.selection import LoadPlan
from runtime.triton_server import EmbeddedTriton
from runtime.video_workers import VideoWorkers, worker_count


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container's cpuset sets)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def say(message: str) -> None:
    print(f"[serve] {message}", flush=True)


def frontend_environment(settings: Settings, extra_env: dict[str, str] | None = None,
                         own_triton: bool = True) -> dict[str, str]:
    """The environment of the frontend's processes: gunicorn and the video workers."""
    env = tuned_environment({**os.environ, **(extra_env or {})}, frontend=True)
    if own_triton:
        # Our Triton runs on this host: photos can reach it through /dev/shm (unless the
        # operator says otherwise).
        env.setdefault("FACE_API_TRITON_SHARED_MEMORY", "true")
        env["FACE_API_TRITON_URL"] = f"127.0.0.1:{settings.triton_grpc_port}"
    return env


def start_frontend(settings: Settings, port: int, workers: int,
                   extra_env: dict[str, str] | None = None, own_triton: bool = True) -> subprocess.Popen:
    env = frontend_environment(settings, extra_env, own_triton)
    command = [
        sys.executable, "-m", "gunicorn", "frontend.app:create_app()",
        "--worker-class", "uvicorn_worker.UvicornWorker",
        "--workers", str(workers), "--bind", f"{settings.host}:{port}",
        "--graceful-timeout", "10", "--timeout", "60", "--keep-alive", "5",
        # Request lines come from the app itself (frontend/observability): no gunicorn access log.
        # (gunicorn_conf also sets which proxies' X-Forwarded-* headers count)
        "--log-level", "info", "--config", "python:frontend.gunicorn_conf",
    ]
    # Its own session: Ctrl-C reaches this supervisor only, which stops things in order.
    return subprocess.Popen(command, env=env, start_new_session=True)


def keep_state_private() -> None:
    """Whatever this process and its children create (databases and SQLite's -wal/-shm files,
    objects, logs, Triton's derived repository) is the user's alone: 0600 files, 0700 folders.
    A umask, rather than chmod after the fact, also covers the files created later; `.run/`
    itself is closed too, which shields what an earlier version left readable inside it."""
    os.umask(0o077)
    RUN.mkdir(mode=0o700, parents=True, exist_ok=True)
    RUN.chmod(0o700)


def serve(port: int | None = None, workers: int | None = None, frontend: bool = True,
          triton_here: bool = True) -> int:
    """Triton and the frontend (``./face-api serve``), only Triton (``runtime triton``), or
    only the frontend, towards the Triton servers of FACE_API_TRITON_URL (``runtime frontend``)."""
    keep_state_private()
    settings = Settings()
    port = port or settings.port
    workers = workers or settings.workers
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    triton = EmbeddedTriton(http_port=settings.triton_http_port, grpc_port=settings.triton_grpc_port,
                            metrics_port=settings.triton_metrics_port,
                            onnx_tuning=OnnxTuning(settings.onnx_instances, settings.onnx_threads,
                                                   settings.onnx_spinning,
                                                   settings.onnx_idle_threads or usable_cores(),
                                                   settings.cpu_fused_pipelines),
                            sources=model_sources(),
                            plan=LoadPlan.from_environment(settings.detector, settings.recognizer),
                            log=say)
    gunicorn = None
    video = None
    try:
        admin_env = admin_environment(settings, say) if frontend else {}
        # In a process of its own: the migrations, SQLAlchemy and the archive code then never
        # load into this supervisor, which lives as long as the service (~50 MB less).
        if frontend and subprocess.run([sys.executable, "-m", "runtime.database_setup", str(port)],
                                       cwd=ROOT).returncode != 0:
            return 1
        if triton_here:
            triton.start()
            say(f"Triton metrics: http://127.0.0.1:{settings.triton_metrics_port}/metrics")
        if frontend:
            say(f"starting the frontend on http://{settings.host}:{port} ({workers} workers)"
                + ("" if triton_here else f", Triton at {settings.triton_url}"))
            gunicorn = start_frontend(settings, port, workers, admin_env, own_triton=triton_here)
            video = VideoWorkers(worker_count(settings),
                                 frontend_environment(settings, admin_env, triton_here), say)
            video.start()
        give_back_free_memory()
        say("running; Ctrl-C stops")
        while not stop.wait(1.0):
            if gunicorn is not None and gunicorn.poll() is not None:
                say(f"the frontend exited with code {gunicorn.returncode}; stopping")
                return gunicorn.returncode or 1
            if video is not None and not stop.is_set():
                video.check()  # a worker that died is started again
            if triton_here and triton.process.poll() is not None and not stop.is_set():
                say(f"tritonserver exited unexpectedly (code {triton.process.returncode}); "
                    "restarting it — the frontend answers 503 meanwhile")
                triton.stop()
                time.sleep(2)
                triton.start()
                give_back_free_memory()
        return 0
    except RuntimeError as error:
        say(f"error: {error}")
        return 1
    finally:
        if gunicorn is not None and gunicorn.poll() is None:
            say("stopping the frontend …")
            gunicorn.send_signal(signal.SIGTERM)
            try:
                gunicorn.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(gunicorn.pid, signal.SIGKILL)
                gunicorn.wait()
        if gunicorn is not None:
            remove_leftovers(frontend_shm_prefix(gunicorn.pid))  # regions of workers that were killed
        if video is not None:
            video.stop()  # each puts its running job back in the queue
        triton.stop()
        say("stopped")
