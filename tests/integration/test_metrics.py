"""The frontend's /metrics and request log lines on the real stack (two gunicorn workers,
Triton, SQLite, local object storage): counts that add up over both workers and survive a
worker's death, what inference, storage and refusals record, and one JSON line per request."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx

from tests.integration.conftest import PHOTO_FACES, metric, unique_photo
from tests.integration.stack import all_workers_started

DETECT = "/api/v1/detect"


async def detect_burst(url: str, key: str, photo: bytes, count: int) -> list[httpx.Response]:
    """``count`` concurrent detect calls on fresh connections, so both workers take some."""
    async with httpx.AsyncClient(base_url=url, timeout=60, headers={"X-API-Key": key}) as http:
        return await asyncio.gather(*(http.post(DETECT, files={"image": ("gdp.jpg", photo)})
                                      for _ in range(count)))


def test_counts_of_both_workers_add_up(stack, api_key, photos):
    before = metric(stack.url, "face_api_http_requests_total", route=DETECT, status="200")
    faces_before = metric(stack.url, "face_api_faces_per_request_sum", route=DETECT)
    triton_before = metric(stack.url, "face_api_triton_requests_total", outcome="ok")
    sent, answered_by = 0, set()
    while len(answered_by) < 2:  # which worker accepts a connection is the kernel's choice
        assert sent < 64, f"only worker {answered_by} answered"
        responses = asyncio.run(detect_burst(stack.url, api_key, photos["gdp.jpg"], 16))
        assert [r.status_code for r in responses] == [200] * 16
        sent += 16
        ids = {r.headers["x-request-id"] for r in responses}
        answered_by |= {line["pid"] for line in stack.request_lines() if line["request_id"] in ids}
    assert metric(stack.url, "face_api_http_requests_total", route=DETECT, status="200") == before + sent
    assert metric(stack.url, "face_api_faces_per_request_sum", route=DETECT) == \
        faces_before + sent * PHOTO_FACES["gdp.jpg"]
    assert metric(stack.url, "face_api_triton_requests_total", outcome="ok") == triton_before + sent


def test_inference_photo_and_storage_figures(stack, client, photos):
    labels = {"route": DETECT}
    pixels = metric(stack.url, "face_api_image_pixels_sum", **labels)
    uploaded = metric(stack.url, "face_api_upload_bytes_sum", **labels)
    puts = metric(stack.url, "face_api_storage_operations_total", operation="put", outcome="ok")
    inserts = metric(stack.url, "face_api_database_operations_total", operation="insert", outcome="ok")
    photo = unique_photo("yaoming.jpg")  # never stored before: its original is put
    response = client.post(DETECT, files={"image": ("y.png", photo)})
    assert response.status_code == 200
    image = response.json()["image"]
    assert metric(stack.url, "face_api_image_pixels_sum", **labels) == \
        pixels + image["width"] * image["height"]
    assert metric(stack.url, "face_api_upload_bytes_sum", **labels) == uploaded + len(photo)
    assert metric(stack.url, "face_api_storage_operations_total", operation="put", outcome="ok") >= puts + 1
    assert metric(stack.url, "face_api_database_operations_total", operation="insert",
                  outcome="ok") >= inserts + 2  # the image and its job
    assert metric(stack.url, "face_api_triton_request_duration_seconds_count",
                  pipeline="detect_scrfd_500m") > 0


def test_authentication_failures_by_kind(stack, photos):
    def failures(kind: str) -> float:
        return metric(stack.url, "face_api_auth_failures_total", kind=kind)

    missing, unknown, admin = failures("missing_key"), failures("unknown_key"), failures("admin_login")
    files = {"image": ("y.jpg", photos["yaoming.jpg"])}
    assert httpx.post(f"{stack.url}{DETECT}", files=files).status_code == 401
    unknown_key = {"X-API-Key": "xyl_nope"}
    assert httpx.post(f"{stack.url}{DETECT}", files=files, headers=unknown_key).status_code == 401
    assert httpx.get(f"{stack.url}/api/v1/admin/stats", auth=("admin", "wrong-password")).status_code == 401
    assert (failures("missing_key"), failures("unknown_key"), failures("admin_login")) == \
        (missing + 1, unknown + 1, admin + 1)
    refused = metric(stack.url, "face_api_http_requests_total", route=DETECT, status="401")
    assert refused >= 2  # refused before routing, still under the route's template


def test_labels_stay_bounded(stack, admin):
    for image_id in ("0" * 32, "f" * 32, "not-an-id"):
        admin.get(f"/images/{image_id}")
    text = httpx.get(f"{stack.url}/metrics").text
    assert 'route="/api/v1/admin/images/{image_id}"' in text
    assert "0" * 32 not in text and "not-an-id" not in text
    assert stack.first_key not in text


def test_a_killed_worker_loses_no_counts(stack, client, photos):
    for _ in range(3):
        assert client.post(DETECT, files={"image": ("y.jpg", photos["yaoming.jpg"])}).status_code == 200
    before = metric(stack.url, "face_api_http_requests_total", route=DETECT)
    victim = int(sorted(stack.worker_pids())[0])
    booted = stack.log().count("Booting worker with pid")
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while not (stack.log().count("Booting worker with pid") > booted and all_workers_started(stack)):
        assert time.monotonic() < deadline, "gunicorn did not replace the killed worker"
        time.sleep(0.5)
    assert metric(stack.url, "face_api_http_requests_total", route=DETECT) >= before
    assert metric(stack.url, "face_api_http_requests_in_flight") == 1  # this scrape itself


def test_one_json_line_per_request_with_its_id_and_key_id(stack, client, admin, photos):
    response = client.post(DETECT, files={"image": ("g.jpg", photos["gdp.jpg"])})
    request_id = response.headers["x-request-id"]
    key_ids = {key["id"] for key in admin.get("/api-keys").json()["items"]}
    deadline = time.monotonic() + 5
    while not (lines := [line for line in stack.request_lines() if line.get("request_id") == request_id]):
        assert time.monotonic() < deadline, "no request line for the request"
        time.sleep(0.1)
    assert len(lines) == 1
    line = lines[0]
    assert line["route"] == DETECT and line["method"] == "POST" and line["status"] == 200
    assert line["faces"] == PHOTO_FACES["gdp.jpg"] and line["bytes_in"] == len(photos["gdp.jpg"])
    assert line["key_id"] in key_ids and line["latency_ms"] > 0 and line["level"] == "info"
    worker_lines = [text for text in stack.log().splitlines() if text.startswith("{")]
    assert not [text for text in worker_lines if stack.first_key in text]  # (serve printed it once)


def test_warnings_carry_the_request_id(stack):
    response = httpx.post(f"{stack.url}/api/v1/admin/auth/login",
                          json={"username": "admin", "password": "not-the-password"})
    assert response.status_code == 401
    request_id = response.headers["x-request-id"]
    deadline = time.monotonic() + 5
    while f'"request_id": "{request_id}"' not in stack.log():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    warnings = [line for line in stack.log().splitlines()
                if request_id in line and '"level": "warning"' in line]
    assert warnings and "admin login failed" in warnings[0], warnings
