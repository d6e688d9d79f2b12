"""Metrics, request log lines and the live-health history, without Triton (none runs here):
metric names and bounded labels, route templates, the multiprocess sum of two workers,
/metrics access settings, the JSON and text log formats, histogram quantiles and the
minute-by-minute history."""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from frontend.app import create_app
from frontend.observability import context, history, logs, metrics
from frontend.persistence.database import statement_kind
from frontend.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ADMIN = ("admin", "admin-password-for-unit-tests")


def app_with(**overrides):
    settings = {"database_enabled": False, "storage_enabled": False, "api_key_enabled": False,
                "rate_limit_enabled": False, "admin_password": ADMIN[1], "max_upload_bytes": 100_000,
                **overrides}
    return create_app(Settings(**settings))


@pytest.fixture(scope="module")
def client():
    with TestClient(app_with()) as http:
        yield http


def count(route: str, method: str, status: str) -> float:
    value = REGISTRY.get_sample_value("face_api_http_requests_total",
                                      {"route": route, "method": method, "status": status})
    return value or 0.0


# --- names and labels ---

def test_every_metric_is_named_for_the_face_api_and_documented():
    names = metrics.exported_names()
    assert len(names) == len(metrics.DEFINED) + 1  # + the cleanup queue read at scrape time
    for metric in metrics.DEFINED:
        assert metric._name.startswith("face_api_"), metric._name
        assert len(metric._documentation) > 20, metric._name
    assert "face_api_http_requests" in names and metrics.CLEANUP_QUEUE in names


def test_latency_buckets_span_5_ms_to_30_s():
    assert metrics.LATENCY_BUCKETS[0] == 0.005 and metrics.LATENCY_BUCKETS[-1] == 30.0
    assert list(metrics.LATENCY_BUCKETS) == sorted(metrics.LATENCY_BUCKETS)


def test_requests_are_counted_under_their_route_template_never_the_raw_path(client):
    before = count("/api/v1/admin/images/{image_id}", "GET", "401")
    for image_id in ("a1", "b2", "c3"):
        assert client.get(f"/api/v1/admin/images/{image_id}").status_code == 401
    assert count("/api/v1/admin/images/{image_id}", "GET", "401") == before + 3
    routes = {s.labels["route"] for f in REGISTRY.collect() if f.name == "face_api_http_requests"
              for s in f.samples}
    assert not any(image_id in route for route in routes for image_id in ("a1", "b2", "c3")), routes


def test_unknown_paths_share_one_label(client):
    before = count("<unmatched>", "GET", "404")
    client.get("/no/such/page/12345")
    client.get("/another/unknown")
    assert count("<unmatched>", "GET", "404") == before + 2


def test_a_refusal_before_routing_keeps_its_route(client):
    """RequestContext refuses an oversized body before the router runs: still /api/v1/detect."""
    before = count("/api/v1/detect", "POST", "413")
    response = client.post("/api/v1/detect", content=b"x" * 300_000,
                           headers={"content-type": "multipart/form-data; boundary=x"})
    assert response.status_code == 413
    assert count("/api/v1/detect", "POST", "413") == before + 1


def test_latency_is_observed_and_nothing_is_left_in_flight(client):
    labels = {"route": "/health", "method": "GET"}
    before = REGISTRY.get_sample_value("face_api_http_request_duration_seconds_count", labels) or 0
    client.get("/health")
    assert REGISTRY.get_sample_value("face_api_http_request_duration_seconds_count", labels) == before + 1
    assert REGISTRY.get_sample_value("face_api_http_requests_in_flight") == 0


def test_error_series_exist_before_the_first_error():
    """Alerts use increase(), which cannot see the first sample of a series that appears with it."""
    value = REGISTRY.get_sample_value("face_api_storage_operations_total",
                                      {"operation": "put", "outcome": "error"})
    assert value is not None


@pytest.mark.parametrize(("query", "kind"), [
    (sa.select(sa.literal(1)), "select"),
    (sa.table("t", sa.column("a")).insert().values(a=1), "insert"),
    (sa.table("t", sa.column("a")).update().values(a=1), "update"),
    (sa.table("t", sa.column("a")).delete(), "delete"),
    ("SELECT 1", "select"), ("  insert into t values (1)", "insert"), ("PRAGMA journal_mode", "other"),
    ("", "other"),
])
def test_database_statements_get_a_bounded_kind(query, kind):
    assert statement_kind(query) == kind


# --- /metrics ---

def test_metrics_are_served_in_the_prometheus_text_format(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# HELP face_api_http_requests_total" in response.text
    assert "# TYPE face_api_http_request_duration_seconds histogram" in response.text


def test_metrics_can_be_disabled():
    with TestClient(app_with(metrics_enabled=False)) as http:
        response = http.get("/metrics")
    assert response.status_code == 404 and "FACE_API_METRICS_ENABLED" in response.json()["detail"]


def test_metrics_token_is_required_when_set():
    token = "a-metrics-token-of-some-length"
    with TestClient(app_with(metrics_token=token)) as http:
        assert http.get("/metrics").status_code == 401
        for wrong in ("Bearer wrong-token-xxxxxxxx", f"Basic {token}"):
            assert http.get("/metrics", headers={"Authorization": wrong}).status_code == 401
        assert http.get("/metrics", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_metrics_stay_out_of_the_api_document(client):
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


# --- two workers, one sum ---

WORKER = textwrap.dedent("""
    import sys
    from frontend.observability import metrics
    metrics.HTTP_REQUESTS.labels("/api/v1/detect", "POST", "200").inc(int(sys.argv[1]))
    metrics.IN_FLIGHT.inc()
    metrics.HTTP_LATENCY.labels("/api/v1/detect", "POST").observe(0.2)
    print(__import__("os").getpid())
""")
SCRAPE = "from frontend.observability import metrics; print(metrics.render(3)[0].decode())"


def run_python(code: str, *args: str, folder: Path) -> str:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code, *args], env=env, check=True, capture_output=True,
                          text=True, cwd=ROOT).stdout


def sample(text: str, line_start: str) -> float:
    return float(next(line for line in text.splitlines() if line.startswith(line_start)).split()[-1])


def test_two_workers_counts_add_up_and_a_dead_worker_keeps_its_counts(tmp_path):
    first = int(run_python(WORKER, "2", folder=tmp_path))
    run_python(WORKER, "5", folder=tmp_path)
    text = run_python(SCRAPE, folder=tmp_path)
    detect = 'face_api_http_requests_total{method="POST",route="/api/v1/detect",status="200"}'
    assert sample(text, detect) == 7
    assert sample(text, "face_api_http_requests_in_flight") == 2
    assert sample(text, 'face_api_http_request_duration_seconds_count{method="POST"') == 2
    assert sample(text, "face_api_cleanup_queue_depth") == 3

    # gunicorn's child_exit hook: the worker is gone; what it counted is not.
    run_python(f"from prometheus_client import multiprocess; multiprocess.mark_process_dead({first})",
               folder=tmp_path)
    text = run_python(SCRAPE, folder=tmp_path)
    assert sample(text, detect) == 7
    assert sample(text, "face_api_http_requests_in_flight") == 1


# --- logs ---

def record(message: str, level: int = logging.INFO, **extra) -> logging.LogRecord:
    made = logging.LogRecord("face_api.test", level, __file__, 1, message, (), None)
    made.__dict__.update(extra)
    logs.RequestIdFilter().filter(made)
    return made


def test_a_request_line_is_one_json_object_with_its_fields():
    fields = {"request_id": "r-1", "method": "POST", "route": "/api/v1/detect", "path": "/api/v1/detect",
              "status": 200, "latency_ms": 12.5, "key_id": "k-1", "faces": 5, "bytes_in": 100,
              "bytes_out": 2000, "client": "127.0.0.1", "pid": 42}
    line = logs.JsonFormatter().format(record("request", fields=fields))
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "request" and parsed["level"] == "info"
    assert {key: parsed[key] for key in fields} == fields
    assert parsed["time"].endswith("Z")


def test_records_written_during_a_request_carry_its_id():
    tally, token = context.open_tally("req-123")
    try:
        inside = record("storage failed", logging.WARNING)
    finally:
        context.close_tally(token)
    outside = record("starting")
    assert json.loads(logs.JsonFormatter().format(inside))["request_id"] == "req-123"
    assert "request_id" not in json.loads(logs.JsonFormatter().format(outside))
    assert "[request req-123]" in logs.TextFormatter().format(inside)


def test_exceptions_stay_inside_one_json_line():
    try:
        raise ValueError("boom")
    except ValueError:
        made = record("failed", logging.ERROR, exc_info=sys.exc_info())
    parsed = json.loads(logs.JsonFormatter().format(made))
    assert "ValueError: boom" in parsed["exception"]


def test_text_request_lines_read_like_an_access_log():
    fields = {"request_id": "r-2", "method": "GET", "path": "/health", "status": 503, "latency_ms": 3.1,
              "client": "10.0.0.1", "key_id": None, "faces": None}
    text = logs.TextFormatter().format(record("request", fields=fields))
    assert '10.0.0.1 "GET /health" 503 3.1 ms id=r-2' in text and "key_id" not in text


def test_log_format_auto_follows_the_terminal(monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    assert logs.resolve("auto") == "json"
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert logs.resolve("auto") == "text"
    assert logs.resolve("json") == "json"


def test_gunicorn_gets_the_chosen_format():
    config = logs.logging_config("json")
    assert config["formatters"]["line"]["()"] is logs.JsonFormatter
    assert logs.logging_config("text")["formatters"]["line"]["()"] is logs.TextFormatter
    assert config["loggers"]["gunicorn.access"]["handlers"] == []  # request lines replace it


# --- history and quantiles ---

def buckets(*latencies: float) -> tuple[float, ...]:
    return tuple(float(sum(1 for value in latencies if value <= bound)) for bound in history.BOUNDS)


def test_quantile_interpolates_inside_the_bucket_like_promql():
    # 100 requests, all between 0.1 and 0.25 s: p95 lies 95 % of the way into that bucket.
    assert history.quantile(0.95, buckets(*[0.2] * 100)) == pytest.approx(0.1 + 0.15 * 0.95)
    assert history.quantile(0.5, buckets(*[0.003] * 10)) == pytest.approx(0.0025)
    assert history.quantile(0.95, buckets()) is None
    assert history.quantile(0.95, buckets(*[100.0] * 5)) == 30.0  # past the last bound: that bound


def snap(at: float, requests: float, errors: float, *latencies: float) -> history.Snapshot:
    return history.Snapshot(at, requests, errors, buckets(*latencies))


def test_summary_over_the_window_and_per_minute():
    t0 = 1_000_000.0
    snaps = [snap(t0, 0, 0), snap(t0 + 60, 60, 0, *[0.02] * 60), snap(t0 + 120, 180, 6, *[0.02] * 60,
                                                                       *[0.6] * 120)]
    now = snap(t0 + 150, 180, 6, *[0.02] * 60, *[0.6] * 120)
    summary = history.summarise(snaps, now)
    assert summary["requests"] == 180 and summary["errors"] == 6
    assert summary["rate_per_s"] == pytest.approx(180 / 150, abs=1e-3)
    assert summary["error_ratio"] == pytest.approx(6 / 180, abs=1e-4)
    assert [p["requests"] for p in summary["points"]] == [60, 120]
    assert [p["rate_per_s"] for p in summary["points"]] == [1.0, 2.0]
    assert summary["points"][0]["p95_ms"] < 25 < 500 < summary["points"][1]["p95_ms"] <= 750
    assert summary["points"][1]["error_ratio"] == 0.05


def test_snapshots_older_than_the_window_are_left_out():
    t0 = 2_000_000.0
    summary = history.summarise([snap(t0, 1000, 0), snap(t0 + 3000, 1010, 0)], snap(t0 + 3700, 1030, 0))
    assert summary["requests"] == 20 and summary["points"] == []


def test_a_restart_counts_again_from_zero():
    t0 = 3_000_000.0
    summary = history.summarise([snap(t0, 500, 5)], snap(t0 + 60, 12, 0, *[0.01] * 12))
    assert summary["requests"] == 12 and summary["errors"] == 0


def test_history_file_keeps_one_snapshot_per_minute(tmp_path):
    kept = history.History(str(tmp_path))
    assert kept.record(now=5000.0)
    assert not kept.record(now=5030.0)  # the same minute
    assert kept.record(now=5061.0)
    assert [s.at for s in history.History(str(tmp_path)).snapshots()] == [5000.0, 5061.0]
    for minute in range(100):
        kept.record(now=6000.0 + 60 * minute)
    assert len(kept.snapshots()) == history.WINDOW_S // history.STEP_S + 2


def test_recent_metrics_answer_for_the_console(client):
    client.get("/health")
    response = client.get("/api/v1/admin/metrics/recent", auth=ADMIN)
    assert response.status_code == 200
    body = response.json()
    assert body["window_s"] == 3600 and body["step_s"] == 60 and body["requests"] >= 1
    assert body["p95_ms"] is None or body["p95_ms"] > 0
    assert not math.isnan(body["rate_per_s"])
    assert client.get("/api/v1/admin/metrics/recent").status_code == 401


async def test_an_unhandled_error_is_counted_as_500_and_its_traceback_carries_the_request_id():
    from frontend.observability.requests import RequestObserver

    async def failing(scope, receive, send):
        raise RuntimeError("bug")

    scope = {"type": "http", "method": "GET", "path": "/boom", "headers": [], "app": None}
    before = count("<unmatched>", "GET", "500")
    with pytest.raises(RuntimeError):
        await RequestObserver(failing)(scope, None, None)
    assert count("<unmatched>", "GET", "500") == before + 1
    # What uvicorn logs next ("Exception in ASGI application") runs in the same task.
    assert record("Exception in ASGI application", logging.ERROR).request_id == scope["state"]["request_id"]


def test_a_json_line_stays_one_line_whatever_the_path_holds():
    fields = {"request_id": "r-3", "path": "/api/v1/\u2028x\u0085y\nz", "status": 404}
    line = logs.JsonFormatter().format(record("request", fields=fields))
    assert len(line.splitlines()) == 1 and json.loads(line)["path"] == fields["path"]
