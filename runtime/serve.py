"""./face-api serve: embedded Triton on the CPU, then the frontend under gunicorn.

Start order: Triton (wait until the detect, mask and recognize pipelines are ready), then gunicorn
with uvicorn workers. Stop order on SIGINT/SIGTERM: the frontend first (no new
requests reach Triton), then Triton. If Triton dies while serving, the
frontend keeps answering (/health 503, requests 503) and Triton is restarted.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time

from sqlalchemy.engine import make_url

from frontend.auth.api_keys import ApiKeyStore
from frontend.inference.shared_memory import frontend_shm_prefix, remove_leftovers
from frontend.persistence import migrate
from frontend.persistence.database import create_database
from frontend.services.archive import clean_up
from frontend.settings import Settings
from runtime.admin_password import admin_environment
from runtime.allocator import tuned_environment
from runtime.cpu_repository import OnnxTuning
from runtime.paths import RUN
from runtime.triton_server import EmbeddedTriton


def say(message: str) -> None:
    print(f"[serve] {message}", flush=True)


def start_frontend(settings: Settings, port: int, workers: int,
                   extra_env: dict[str, str] | None = None, own_triton: bool = True) -> subprocess.Popen:
    env = tuned_environment({**os.environ, **(extra_env or {})})
    if own_triton:
        # Our Triton runs on this host: photos can reach it through /dev/shm (unless the
        # operator says otherwise).
        env.setdefault("FACE_API_TRITON_SHARED_MEMORY", "true")
        env["FACE_API_TRITON_URL"] = f"127.0.0.1:{settings.triton_grpc_port}"
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


async def _first_key(url: str) -> str | None:
    async with create_database(url) as database:
        return await ApiKeyStore(database).ensure_first_key()


def prepare_database(settings: Settings, port: int) -> None:
    """Migrate the schema (once, before the workers fork) and make a first API key on an empty database."""
    if not settings.database_enabled:
        return
    shown = make_url(settings.database_url).render_as_string(hide_password=True)
    say(f"database: {shown} (migrating to the newest schema)")
    try:
        migrate.upgrade(settings.database_url)
        key = asyncio.run(_first_key(settings.database_url)) if settings.api_key_enabled else None
    except Exception as error:
        raise RuntimeError(f"the database {shown} cannot be used: {error}") from error
    if key:
        say("created the first API key; it is shown only this once, so keep it:")
        say(f"    {key}")
        say("    curl -H 'X-API-Key: <key>' -F image=@samples/gdp.jpg "
            f"http://{settings.host}:{port}/api/v1/detect")
        say("manage keys with ./face-api keys create|list|revoke|activate|delete")
    if settings.storage_enabled:
        clean_up_objects(settings)


def clean_up_objects(settings: Settings) -> None:
    """Delete the objects that deleted images left queued (object storage was down then).

    Once, before the workers fork; it never stops the start: what fails stays queued.
    """
    try:
        report, left = asyncio.run(clean_up(settings))
    except Exception as error:
        say(f"object cleanup skipped (the queue is kept for the next start): {error}")
        return
    if report.deleted:
        say(f"object cleanup: deleted {report.deleted} queued objects")
    if left:
        last = f"; last error: {report.last_error}" if report.last_error else ""
        say(f"object cleanup: {left} objects stay queued (retried at the next start and by "
            f"./face-api cleanup){last}")


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
                                                   settings.onnx_spinning),
                            log=say)
    gunicorn = None
    pipelines = [settings.detect_pipeline, settings.mask_pipeline, settings.recognize_pipeline]
    try:
        admin_env = admin_environment(settings, say) if frontend else {}
        if frontend:
            prepare_database(settings, port)
        if triton_here:
            triton.start(required=pipelines)
            say(f"Triton metrics: http://127.0.0.1:{settings.triton_metrics_port}/metrics")
        if frontend:
            say(f"starting the frontend on http://{settings.host}:{port} ({workers} workers)"
                + ("" if triton_here else f", Triton at {settings.triton_url}"))
            gunicorn = start_frontend(settings, port, workers, admin_env, own_triton=triton_here)
        say("running; Ctrl-C stops")
        while not stop.wait(1.0):
            if gunicorn is not None and gunicorn.poll() is not None:
                say(f"the frontend exited with code {gunicorn.returncode}; stopping")
                return gunicorn.returncode or 1
            if triton_here and triton.process.poll() is not None and not stop.is_set():
                say(f"tritonserver exited unexpectedly (code {triton.process.returncode}); "
                    "restarting it — the frontend answers 503 meanwhile")
                triton.stop()
                time.sleep(2)
                triton.start(required=pipelines)
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
        triton.stop()
        say("stopped")
