"""The monitoring files operators use: the Prometheus config and alerting rules in deploy/prometheus/
(checked and unit-tested by promtool) and the Grafana dashboard in deploy/grafana/, whose queries must
parse as PromQL and name only metrics the frontend exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERT_RULES = PROMETHEUS_DIR / "alerts.yml"
ALERT_TESTS = PROMETHEUS_DIR / "alerts.test.yml"
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "face-api-dashboard.json"

# What the dashboard must show, as the series names its queries must use.
DASHBOARD_REQUIRED_METRICS = {
    "up",
    "face_api_http_requests_total",
    "face_api_http_request_duration_seconds_bucket",
    "face_api_http_requests_in_flight",
    "face_api_triton_requests_total",
    "face_api_triton_request_duration_seconds_bucket",
    "nv_inference_queue_duration_us",
    "nv_inference_compute_infer_duration_us",
    "nv_inference_request_success",
    "face_api_faces_per_request_bucket",
    "face_api_image_pixels_bucket",
    "face_api_upload_bytes_bucket",
    "face_api_rate_limit_refusals_total",
    "face_api_auth_failures_total",
    "face_api_database_operations_total",
    "face_api_database_operation_duration_seconds_bucket",
    "face_api_storage_operations_total",
    "face_api_storage_operation_duration_seconds_bucket",
    "face_api_cleanup_queue_depth",
}
REQUIRED_ALERTS = {
    "FaceApiDown", "TritonDown", "FaceApiHighErrorRatio", "FaceApiHighLatencyP95", "TritonQueueTimeHigh",
    "FaceApiStorageFailures", "FaceApiDatabaseFailures", "FaceApiCleanupQueueGrowing",
}
METRIC_NAME = re.compile(r"\b(?:face_api|nv)_[a-z0-9_]+\b")
# The sample suffixes prometheus_client adds to a family name: counters, histograms.
SAMPLE_SUFFIX = re.compile(r"_(?:total|bucket|count|sum)$")


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not on PATH: it comes with Debian's `prometheus` package, "
                    "which `./face-api test` installs (or: apt-get install prometheus)")
    return path


def run_promtool(*args: str, cwd: Path = REPO_ROOT) -> None:
    result = subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (
        f"promtool {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def alert_rules() -> list[dict]:
    return [rule for group in load_yaml(ALERT_RULES)["groups"] for rule in group["rules"] if "alert" in rule]


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_panels() -> list[dict]:
    """Every panel but the rows themselves, also those kept inside collapsed rows."""
    panels = []
    for panel in dashboard()["panels"]:
        if panel.get("type") == "row":
            panels.extend(panel.get("panels", []))
        else:
            panels.append(panel)
    return panels


def dashboard_exprs() -> list[str]:
    return [target["expr"] for panel in dashboard_panels() for target in panel.get("targets", [])]


def metric_names(exprs: list[str]) -> set[str]:
    names = set()
    for expr in exprs:
        # Label values and legend templates are not metric names.
        without_strings = re.sub(r'"[^"]*"', '""', expr)
        names.update(METRIC_NAME.findall(without_strings))
        if re.search(r"\bup\s*\{", without_strings):
            names.add("up")
    return names


def test_prometheus_config_is_valid_with_its_rule_file():
    run_promtool("check", "config", str(PROMETHEUS_CONFIG))


def test_prometheus_config_scrapes_the_jobs_that_alerts_and_dashboard_select():
    config = load_yaml(PROMETHEUS_CONFIG)
    assert config["rule_files"] == ["alerts.yml"]
    assert config["global"]["scrape_interval"] == "15s"
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    expected = {"face-api": "127.0.0.1:8080", "triton": "127.0.0.1:8002"}
    assert set(jobs) == set(expected)
    for name, target in expected.items():
        assert jobs[name].get("metrics_path", "/metrics") == "/metrics", name
        assert [t for static in jobs[name]["static_configs"] for t in static["targets"]] == [target], name


def test_alert_rules_are_valid():
    run_promtool("check", "rules", str(ALERT_RULES))


def test_alert_rules_pass_their_unit_tests():
    # From the rules' folder: alerts.test.yml names alerts.yml relative to it.
    run_promtool("test", "rules", ALERT_TESTS.name, cwd=PROMETHEUS_DIR)


def test_every_alert_has_a_severity_a_for_and_what_to_tell_the_operator():
    rules = alert_rules()
    assert REQUIRED_ALERTS <= {rule["alert"] for rule in rules}
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert "for" in rule, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_every_alert_is_tested_firing_and_quiet():
    firing, quiet = set(), set()
    for case in load_yaml(ALERT_TESTS)["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = {rule["alert"] for rule in alert_rules()}
    assert alerts - firing == set(), "alerts with no test case where they fire"
    assert alerts - quiet == set(), "alerts with no test case where they stay quiet"
    assert firing | quiet <= alerts, "test cases for alerts that do not exist"


def test_dashboard_identity_and_datasource_variable():
    board = dashboard()
    assert (board["uid"], board["title"]) == ("face-api", "Face API")
    assert board["schemaVersion"] >= 36
    assert board["time"] == {"from": "now-1h", "to": "now"} and board["refresh"] == "30s"
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"


def test_dashboard_panels_are_well_formed():
    board = dashboard()
    rows = [panel for panel in board["panels"] if panel.get("type") == "row"]
    assert rows, "the panels are grouped in rows"
    every_id = [panel["id"] for panel in board["panels"]] + [p["id"] for row in rows for p in row["panels"]]
    assert len(every_id) == len(set(every_id)), "panel ids repeat"
    panels = dashboard_panels()
    assert len(panels) >= 15
    for panel in panels:
        title = panel.get("title")
        assert title, panel
        assert panel["type"] in {"timeseries", "stat"}, title
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= 24, title
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, title
        assert panel["fieldConfig"]["defaults"].get("unit"), title
        assert panel["targets"], title
        for target in panel["targets"]:
            assert target.get("expr", "").strip() and target.get("refId"), title
            assert "legendFormat" in target, title
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), title


def test_dashboard_covers_every_required_topic():
    missing = DASHBOARD_REQUIRED_METRICS - metric_names(dashboard_exprs())
    assert missing == set(), "metrics the dashboard does not show"


def test_dashboard_queries_parse_as_promql(tmp_path):
    # promtool has no bare PromQL check, so each query becomes a recording rule.
    rules = []
    for panel in dashboard_panels():
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", "5m")
            assert "$" not in expr, f"{panel['title']}: a dashboard variable promtool cannot resolve"
            rules.append({"record": f"dashboard:panel_{panel['id']}_{target['refId']}", "expr": expr})
    rule_file = tmp_path / "dashboard-rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run_promtool("check", "rules", str(rule_file))


def test_alerts_and_dashboard_name_only_metrics_the_frontend_exports():
    from frontend.observability.metrics import exported_names

    exprs = dashboard_exprs() + [rule["expr"] for rule in alert_rules()]
    referenced = {SAMPLE_SUFFIX.sub("", name) for name in metric_names(exprs) if name.startswith("face_api_")}
    assert referenced, "no face_api_ metric found in the queries"
    assert referenced - set(exported_names()) == set(), "metrics the frontend does not export"
