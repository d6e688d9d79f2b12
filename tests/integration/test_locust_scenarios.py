"""The locust scenarios (benchmarks/locustfile.py) and the load curve against the real stack.

Each run is a subprocess of benchmarks.load_curve: importing locust monkey-patches
the standard library for gevent, which the rest of this test session must not get.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.integration.stack import ADMIN_PASSWORD, ROOT

SCENARIOS = ["DetectUser", "MaskUser", "RecognitionUser", "MixedUser", "AdminUser", "FaceApiUser"]
TABLE_ROW = re.compile(r"^\| (\d+)(?: ◀ knee)? \| (\d+) \| ([\d.]+) \|", re.MULTILINE)


def load_curve(stack, api_key: str, out, *args: str) -> dict:
    """Run benchmarks.load_curve against ``stack``; its report.json."""
    env = {**os.environ, "FACE_API_ADMIN_USERNAME": "admin", "FACE_API_ADMIN_PASSWORD": ADMIN_PASSWORD}
    command = [sys.executable, "-m", "benchmarks.load_curve", "--url", stack.url, "--api-key", api_key,
               "--out", str(out), "--warmup", "0.5", *args]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return json.loads((out / "report.json").read_text())


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_scenario_runs_requests_without_failures(stack, api_key, tmp_path, scenario):
    report = load_curve(stack, api_key, tmp_path, "--scenario", scenario, "--users", "3",
                        "--step-seconds", "2")
    [step] = report["steps"]
    problems = json.dumps(step["errors"] + step["exceptions"], indent=1)
    assert step["requests"] > 0, problems
    assert step["failures"] == 0, problems
    assert step["exceptions"] == [], problems


def test_load_curve_writes_the_report_table_and_plot(stack, api_key, tmp_path):
    report = load_curve(stack, api_key, tmp_path, "--scenario", "DetectUser", "--users", "1", "2",
                        "--step-seconds", "3")

    assert [step["users"] for step in report["steps"]] == [1, 2]
    assert all(step["throughput"] > 0 and step["failures"] == 0 for step in report["steps"])
    assert report["knee"]["users"] in (1, 2)
    # The stack runs here, so the CPU of its processes is counted: the detector works (in CPU
    # mode inside the detect pipeline's model).
    assert report["steps"][-1]["cpu_cores"].get("stub detect_scrfd_500m", 0) > 0
    rows = TABLE_ROW.findall((tmp_path / "report.md").read_text())
    assert [int(users) for users, _, _ in rows] == [1, 2]
    assert all(float(throughput) > 0 for _, _, throughput in rows)
    assert (tmp_path / "load-curve.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
