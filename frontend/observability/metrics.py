"""The frontend's Prometheus metrics, correct across every gunicorn worker.

Each worker counts in its own process; prometheus_client's multiprocess mode
keeps those counts in files under ``PROMETHEUS_MULTIPROC_DIR`` (set by
``frontend/gunicorn_conf.py`` before the workers fork), and ``/metrics`` sums
the files of all workers, dead ones included: a worker that restarts loses
nothing it counted. Without that variable (a plain ``uvicorn`` or a test
client) the counts are this process's own.

Labels stay bounded: route templates (never raw paths), pipeline names from
the model repository, and short fixed vocabularies for kinds and outcomes.
"""

from __future__ import annotations

import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
if os.environ.get(MULTIPROC_ENV):
    # Metrics without labels write their file as they are defined, below: the folder must be
    # there even in a process that imports this before gunicorn creates it (serve itself).
    os.makedirs(os.environ[MULTIPROC_ENV], exist_ok=True)
# 5 ms (a refused request) to 30 s (a large photo masked on a busy CPU).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0)
BACKEND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FACE_BUCKETS = (0, 1, 2, 3, 5, 10, 20, 50, 100, 200, 500)
PIXEL_BUCKETS = (1e5, 3e5, 1e6, 2e6, 4e6, 8e6, 12e6, 2e7, 3e7, 5e7)
BYTE_BUCKETS = (1e4, 5e4, 1e5, 2.5e5, 5e5, 1e6, 2.5e6, 5e6, 1e7, 2e7, 6e7)

# --- HTTP ---
HTTP_REQUESTS = Counter(
    "face_api_http_requests", "HTTP requests answered, by route template, method and status code",
    ["route", "method", "status"])
HTTP_LATENCY = Histogram(
    "face_api_http_request_duration_seconds",
    "Time from a request's arrival to the last byte of its answer, by route template",
    ["route", "method"], buckets=LATENCY_BUCKETS)
IN_FLIGHT = Gauge(
    "face_api_http_requests_in_flight", "HTTP requests being served now (all workers)",
    multiprocess_mode="livesum")

# --- inference ---
TRITON_CALLS = Counter(
    "face_api_triton_requests",
    "Inference calls to Triton by pipeline and outcome (ok, unavailable, rejected)",
    ["pipeline", "outcome"])
TRITON_LATENCY = Histogram(
    "face_api_triton_request_duration_seconds", "Time the frontend waited for one Triton inference call",
    ["pipeline"], buckets=LATENCY_BUCKETS)
FACES = Histogram(
    "face_api_faces_per_request", "Faces found per request that ran inference, by route template",
    ["route"], buckets=FACE_BUCKETS)
PIXELS = Histogram(
    "face_api_image_pixels", "Decoded photo size in pixels, per photo sent to inference, by route template",
    ["route"], buckets=PIXEL_BUCKETS)
UPLOAD_BYTES = Histogram(
    "face_api_upload_bytes", "Uploaded photo bytes per request, by route template",
    ["route"], buckets=BYTE_BUCKETS)

# --- access ---
RATE_LIMITED = Counter(
    "face_api_rate_limit_refusals", "Requests refused with 429, by rate limit "
    "(detect, mask, recognition, admin_login)", ["limit"])
AUTH_FAILURES = Counter(
    "face_api_auth_failures", "Refused credentials by kind (missing_key, unknown_key, inactive_key, "
    "admin_login)", ["kind"])

# --- persistence ---
DATABASE_OPS = Counter(
    "face_api_database_operations", "Database statements by kind (select, insert, update, delete, other) "
    "and outcome (ok, error)", ["operation", "outcome"])
DATABASE_LATENCY = Histogram(
    "face_api_database_operation_duration_seconds", "Time of one database statement, by kind",
    ["operation"], buckets=BACKEND_BUCKETS)
STORAGE_OPS = Counter(
    "face_api_storage_operations", "Object-storage operations by kind (put, get, delete, exists, "
    "download_url) and outcome (ok, not_found, error)", ["operation", "outcome"])
STORAGE_LATENCY = Histogram(
    "face_api_storage_operation_duration_seconds", "Time of one object-storage operation, by kind",
    ["operation"], buckets=BACKEND_BUCKETS)

# Read from the database at each scrape (one COUNT), not counted by the workers.
CLEANUP_QUEUE = "face_api_cleanup_queue_depth"
CLEANUP_QUEUE_HELP = "Stored objects whose deletion is still queued (object storage failed when asked)"

# Series that alerts watch with increase() exist from the start at 0: increase() cannot see the
# first error of a series that only appears with it.
for _kind in ("select", "insert", "update", "delete", "other"):
    DATABASE_OPS.labels(_kind, "error")
for _kind in ("put", "get", "delete", "exists", "download_url"):
    STORAGE_OPS.labels(_kind, "error")
for _limit in ("detect", "mask", "recognition", "admin_login"):
    RATE_LIMITED.labels(_limit)
for _kind in ("missing_key", "unknown_key", "inactive_key", "admin_login"):
    AUTH_FAILURES.labels(_kind)

DEFINED = (HTTP_REQUESTS, HTTP_LATENCY, IN_FLIGHT, TRITON_CALLS, TRITON_LATENCY, FACES, PIXELS, UPLOAD_BYTES,
           RATE_LIMITED, AUTH_FAILURES, DATABASE_OPS, DATABASE_LATENCY, STORAGE_OPS, STORAGE_LATENCY)


async def observed(count: Counter, latency: Histogram, kind: str, call, *args,
                   outcome_of=lambda error: "error", **kwargs):
    """``await call(*args, **kwargs)``, counted under (kind, outcome) and timed under kind;
    ``outcome_of`` names the outcome of an exception (it is raised again)."""
    outcome = "ok"
    started = time.perf_counter()
    try:
        return await call(*args, **kwargs)
    except BaseException as error:
        outcome = outcome_of(error)
        raise
    finally:
        count.labels(kind, outcome).inc()
        latency.labels(kind).observe(time.perf_counter() - started)


def exported_names() -> set[str]:
    """Every metric family /metrics can show (prometheus_client's names: no _total or _bucket)."""
    return {metric._name for metric in DEFINED} | {CLEANUP_QUEUE}


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


class _Fixed:
    """A collector of gauges whose values were read just before the scrape."""

    def __init__(self, gauges: dict[str, tuple[str, float]]):
        self.gauges = gauges

    def collect(self):
        for name, (help_text, value) in self.gauges.items():
            yield GaugeMetricFamily(name, help_text, value=value)


def collect_registry() -> CollectorRegistry:
    """A registry over every worker's counts (or this process's, outside multiprocess mode)."""
    directory = multiprocess_dir()
    if directory is None:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    return registry


def render(cleanup_queue_depth: int | None = None) -> tuple[bytes, str]:
    """The text exposition of all metrics, and its content type."""
    text = generate_latest(collect_registry())
    if cleanup_queue_depth is not None:
        extra = CollectorRegistry()
        extra.register(_Fixed({CLEANUP_QUEUE: (CLEANUP_QUEUE_HELP, float(cleanup_queue_depth))}))
        text += generate_latest(extra)
    return text, CONTENT_TYPE_LATEST
