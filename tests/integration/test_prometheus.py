"""A real Prometheus (Debian's package) scrapes the real stack: the frontend's /metrics and
Triton's metrics. After a measured load, PromQL's request rate, p95 latency by route and
Triton queue time must agree with what the client measured and what the services expose;
the project's alert rules load and evaluate, and every dashboard query runs."""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import time

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from frontend.observability.metrics import LATENCY_BUCKETS
from tests.integration.conftest import metric
from tests.integration.stack import ROOT
from tests.support.prometheus import PrometheusServer

DETECT = "/api/v1/detect"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "face-api-dashboard.json"
LOAD_S = 10.0
WINDOW = "8s"  # inside the load: every sample of the window was taken while it ran


def wait_until(check, timeout: float = 20, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def prometheus(stack):
    server = PrometheusServer({"face-api": (stack.url.removeprefix("http://"), "/metrics"),
                               "triton": (f"127.0.0.1:{stack.triton_metrics}", "/metrics")},
                              rule_files=[ALERTS]).start()
    try:
        wait_until(lambda: server.value('sum(up{job=~"face-api|triton"})') == 2, what="both targets up")
        yield server
    finally:
        print(server.log_tail())
        server.remove()


@pytest.fixture(scope="module")
def load(stack, api_key, photos):
    """Detect calls at concurrency 2 for LOAD_S seconds: (latencies in s, requests/s, end time)."""
    latencies: list[float] = []

    async def run() -> float:
        async with httpx.AsyncClient(base_url=stack.url, timeout=60, headers={"X-API-Key": api_key}) as http:
            started = time.time()

            async def user() -> None:
                while time.time() - started < LOAD_S:
                    begun = time.perf_counter()
                    response = await http.post(DETECT, files={"image": ("g.jpg", photos["gdp.jpg"])})
                    assert response.status_code == 200, response.text
                    latencies.append(time.perf_counter() - begun)

            await asyncio.gather(user(), user())
            return time.time() - started

    elapsed = asyncio.run(run())
    return latencies, len(latencies) / elapsed, time.time()


def at_end(prometheus: PrometheusServer, expr: str, end: float) -> float | None:
    """``expr`` evaluated at the end of the load, once Prometheus has scraped past it."""
    time.sleep(max(0.0, end + 2.5 - time.time()))  # two scrape intervals
    result = prometheus.api("query", query=expr, time=f"{end:.3f}")["result"]
    return float(result[0]["value"][1]) if result else None


def test_request_rate_matches_what_the_client_measured(prometheus, load):
    latencies, client_rate, end = load
    rate = at_end(prometheus, f'sum(rate(face_api_http_requests_total{{route="{DETECT}"}}[{WINDOW}]))', end)
    assert rate is not None and 0.6 * client_rate <= rate <= 1.5 * client_rate, (rate, client_rate)


def test_p95_latency_by_route_lies_where_the_client_saw_it(prometheus, load):
    latencies, _, end = load
    p95 = at_end(prometheus, "histogram_quantile(0.95, sum by (le, route) (rate("
                 f'face_api_http_request_duration_seconds_bucket{{route="{DETECT}"}}[{WINDOW}])))', end)
    # The server's time is a little under the client's; a histogram knows buckets, not values.
    lower = max([0.0, *(b for b in LATENCY_BUCKETS if b <= 0.5 * statistics.median(latencies))])
    upper = min(b for b in (*LATENCY_BUCKETS, math.inf) if b >= max(latencies))
    assert p95 is not None and lower <= p95 <= upper, (p95, lower, upper, sorted(latencies)[-5:])


def test_request_counts_equal_what_the_frontend_exposes(prometheus, stack, load):
    expr = f'sum(face_api_http_requests_total{{route="{DETECT}",status="200"}})'
    direct = metric(stack.url, "face_api_http_requests_total", route=DETECT, status="200")
    assert direct >= len(load[0])
    wait_until(lambda: prometheus.value(expr) == direct, what=f"{expr} == {direct}")


def triton_metric(stack, name: str, model: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{stack.triton_metrics}/metrics", timeout=10).text
    # (the parser names a counter's samples <name>_total; the family keeps Triton's name)
    return sum(s.value for f in text_string_to_metric_families(text) if f.name == name for s in f.samples
               if s.labels.get("model") == model)


def test_triton_queue_time_is_scraped(prometheus, stack, load):
    # (CPU mode runs the detector inside the detect pipeline's model, so that model queues)
    assert triton_metric(stack, "nv_inference_request_success", "detect_scrfd_500m") >= len(load[0])
    detector = '{model="detect_scrfd_500m"}'
    for name in ("nv_inference_request_success", "nv_inference_queue_duration_us"):
        direct, expr = triton_metric(stack, name, "detect_scrfd_500m"), f"sum({name}{detector})"
        wait_until(lambda expr=expr, direct=direct: prometheus.value(expr) == direct,
                   what=f"{expr} == {direct}")
    # The alert's figure: average queue time per request over the load, in ms.
    queue_ms = at_end(prometheus, f"sum(rate(nv_inference_queue_duration_us{detector}[{WINDOW}])) "
                      f"/ sum(rate(nv_inference_request_success{detector}[{WINDOW}])) / 1000", load[2])
    assert queue_ms is not None and 0 <= queue_ms < max(load[0]) * 1000, queue_ms


def test_alert_rules_load_and_evaluate(prometheus):
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    expected = {rule["alert"] for group in groups for rule in group["rules"]}

    def rules() -> list[dict]:
        return [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]

    wait_until(lambda: all(r.get("health") == "ok" for r in rules()) and len(rules()) == len(expected),
               what="every rule evaluated")
    assert {rule["name"] for rule in rules()} == expected
    firing = [rule["name"] for rule in rules() if rule["state"] == "firing"]
    assert not {"FaceApiDown", "TritonDown"} & set(firing), firing


def dashboard_queries() -> list[str]:
    found = []

    def walk(panels: list[dict]) -> None:
        for panel in panels:
            found.extend(target["expr"] for target in panel.get("targets", []) if target.get("expr"))
            walk(panel.get("panels", []))

    walk(json.loads(DASHBOARD.read_text())["panels"])
    return found


def test_every_dashboard_query_runs_against_the_real_series(prometheus, load):
    queries = dashboard_queries()
    assert len(queries) >= 10
    empty = []
    for expr in queries:
        result = prometheus.query(expr.replace("$__rate_interval", "1m"))  # asserts it evaluates
        if not result:
            empty.append(expr)
    # Series that only exist after failures (5xx, refusals, storage errors) may be empty; the
    # traffic above must feed most panels.
    assert len(empty) <= len(queries) // 2, empty
