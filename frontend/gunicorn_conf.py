"""gunicorn settings that belong to the code rather than the command line: the log
format and the metrics folder that all workers share.

Load it with ``--config python:frontend.gunicorn_conf`` (./face-api serve and the
container image do).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from frontend.observability.logs import logging_config  # (imports no prometheus_client: see on_starting)
from frontend.settings import Settings

# prometheus_client's own name for its multiprocess folder.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

_settings = Settings()
logconfig_dict = logging_config(_settings.log_format)
# X-Forwarded-For/-Proto count only from FACE_API_TRUSTED_PROXIES; empty = from no one
# (gunicorn and uvicorn would otherwise believe any process on 127.0.0.1).
forwarded_allow_ips = _settings.trusted_proxies

# gunicorn >= 25 opens a control socket at one fixed path per user ($HOME/.gunicorn);
# several face-api instances on one machine would share it. Nothing here uses it.
control_socket_disable = True

_made_metrics_dir: str | None = None


def on_starting(server) -> None:
    """Give the workers a metrics folder before they fork (prometheus_client reads the
    variable when it is imported): the operator's PROMETHEUS_MULTIPROC_DIR, emptied
    of an earlier run's counts, or a private temporary folder."""
    global _made_metrics_dir
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        for stale in [*Path(directory).glob("*.db"), Path(directory) / "history.json"]:
            stale.unlink(missing_ok=True)
    else:
        directory = _made_metrics_dir = tempfile.mkdtemp(prefix="face-api-metrics-")
        os.environ[MULTIPROC_ENV] = directory
    server.log.info("metrics of all workers are summed in %s", directory)


def child_exit(server, worker) -> None:
    """A worker is gone: its in-flight gauge leaves the sum; its counters stay counted."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    if _made_metrics_dir:
        shutil.rmtree(_made_metrics_dir, ignore_errors=True)
