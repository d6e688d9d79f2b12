"""Storage-backed mode off (FACE_API_STORAGE_ENABLED=false), and storage on but down.

Off: nothing is written, detect/mask answer as usual with null ids, the storage-only
admin endpoints answer 501, and the admin preview still works.

Down: the caller still gets its result (200), without ids and with X-Storage-Error
naming what failed; object storage (a local store whose folder cannot be written)
and the database (PostgreSQL refusing connections) are each taken away for real.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid

import asyncpg
import httpx
import pytest

from tests.integration.conftest import LIMITS, PHOTO_FACES, unique_photo
from tests.integration.stack import ADMIN_PASSWORD, start_stack

ADMIN = ("admin", ADMIN_PASSWORD)
STORAGE_ONLY = [("GET", "/stats"), ("GET", "/images"), ("GET", "/images/{id}"), ("DELETE", "/images/{id}"),
                ("GET", "/images/{id}/download"), ("GET", "/jobs"), ("GET", "/jobs/{id}"),
                ("GET", "/jobs/{id}/download")]
STORAGE_OFF = {"detail": "storage-backed mode is off: set FACE_API_STORAGE_ENABLED=true"}



def files(data: bytes) -> dict:
    return {"image": ("photo.png", data)}


# --- storage off ---

@pytest.fixture(scope="module")
def off(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("storage-off")
    running = start_stack(tmp, env={**LIMITS, "FACE_API_STORAGE_ENABLED": "false"})
    with httpx.Client(base_url=running.url, timeout=60, headers={"X-API-Key": running.first_key}) as http:
        yield http, tmp
    running.stop()


def test_off_detect_and_mask_still_work_without_ids(off):
    client, tmp = off
    detected = client.post("/api/v1/detect", files=files(unique_photo()))
    assert detected.status_code == 200, detected.text
    body = detected.json()
    assert (body["image_id"], body["job_id"], body["profiling"]["storage_ms"]) == (None, None, None)
    assert body["summary"]["face_count"] == PHOTO_FACES["yaoming.jpg"]
    masked = client.post("/api/v1/mask", files=files(unique_photo()))
    assert masked.status_code == 200 and masked.headers["content-type"] == "image/jpeg"
    for response in (detected, masked):
        for header in ("x-image-id", "x-job-id", "x-storage-ms", "x-storage-error"):
            assert header not in response.headers
    assert not (tmp / "objects").exists()  # nothing written


@pytest.mark.parametrize("method, path", STORAGE_ONLY)
def test_off_storage_endpoints_answer_501(off, method, path):
    client, _ = off
    response = client.request(method, f"/api/v1/admin{path.format(id=uuid.uuid4())}", auth=ADMIN)
    assert response.status_code == 501 and response.json() == STORAGE_OFF


def test_off_the_admin_guard_still_comes_first(off):
    client, _ = off
    response = client.get("/api/v1/admin/images")  # no admin credentials
    assert response.status_code == 401


def test_off_the_preview_works_and_records_nothing(off):
    client, tmp = off
    response = client.post("/api/v1/admin/test/mask", params={"format": "png"}, files=files(unique_photo()),
                           auth=ADMIN)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["image_id"], body["job_id"], body["profiling"]["storage_ms"]) == (None, None, None)
    assert body["masking"]["regions_masked"] == 1 and body["output"]["format"] == "png"
    assert "x-storage-error" not in response.headers
    assert not (tmp / "objects").exists()


# --- storage on, but down ---

@pytest.fixture(scope="module")
def postgres_url(postgres_server):
    with postgres_server.database() as url:
        yield postgres_server, url


@pytest.fixture(scope="module")
def down(tmp_path_factory, postgres_url):
    """A stack on PostgreSQL without API keys (with them, a database outage is a 503 from the
    key check before any work is done: that path is tested in test_access_postgres_redis.py)."""
    _, url = postgres_url
    tmp = tmp_path_factory.mktemp("storage-down")
    running = start_stack(tmp, env={**LIMITS, "FACE_API_DATABASE_URL": url,
                                    "FACE_API_API_KEY_ENABLED": "false"})
    with httpx.Client(base_url=running.url, timeout=60) as http:
        yield http, tmp / "objects"
    running.stop()


def postgres(server_url: str, sql: str) -> None:
    async def run() -> None:
        connection = await asyncpg.connect(server_url, timeout=5)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(run())


def assert_not_recorded(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["x-storage-error"] == reason
    assert "x-image-id" not in response.headers and "x-job-id" not in response.headers


def test_down_object_storage_keeps_the_result(down):
    client, objects = down
    # recorded while it works
    assert client.post("/api/v1/detect", files=files(unique_photo())).json()["image_id"]
    broken = objects / "originals"
    shutil.rmtree(broken)
    broken.write_bytes(b"")  # a file where the store needs a folder: every put of an original fails
    try:
        detected = client.post("/api/v1/detect", files=files(unique_photo("gdp.jpg")))
        assert_not_recorded(detected, "object storage unavailable")
        body = detected.json()
        assert (body["image_id"], body["job_id"]) == (None, None)
        assert body["summary"]["face_count"] == PHOTO_FACES["gdp.jpg"]
        assert body["profiling"]["storage_ms"] >= 0

        masked = client.post("/api/v1/mask", params={"format": "webp"}, files=files(unique_photo()))
        assert_not_recorded(masked, "object storage unavailable")
        assert masked.headers["content-type"] == "image/webp" and masked.content[8:12] == b"WEBP"
        assert float(masked.headers["x-storage-ms"]) >= 0

        preview = client.post("/api/v1/admin/test/mask", files=files(unique_photo()), auth=ADMIN)
        assert_not_recorded(preview, "object storage unavailable")
        assert preview.json()["image_id"] is None and preview.json()["output"]["image_base64"]
    finally:
        broken.unlink()
    assert client.post("/api/v1/detect", files=files(unique_photo())).json()["image_id"]  # back


def test_down_database_keeps_the_result(down, postgres_url):
    client, _ = down
    server, url = postgres_url
    name = url.rsplit("/", 1)[1]
    before = client.get("/api/v1/admin/stats", auth=ADMIN).json()
    postgres(server.url, f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
    postgres(server.url, f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
    try:
        detected = client.post("/api/v1/detect", files=files(unique_photo()))
        assert_not_recorded(detected, "database unavailable")
        assert detected.json()["summary"]["face_count"] == PHOTO_FACES["yaoming.jpg"]
        masked = client.post("/api/v1/mask", files=files(unique_photo()))
        assert_not_recorded(masked, "database unavailable")
        assert masked.headers["content-type"] == "image/jpeg"
        listing = client.get("/api/v1/admin/images", auth=ADMIN)  # the admin API says so, in the contract
        assert listing.status_code == 503 and listing.json() == {
            "detail": "the database is unavailable; try again shortly"}
    finally:
        postgres(server.url, f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
    recorded = client.post("/api/v1/detect", files=files(unique_photo()))
    assert recorded.status_code == 200 and recorded.json()["image_id"]
    after = client.get("/api/v1/admin/stats", auth=ADMIN).json()
    assert after["jobs_total"] == before["jobs_total"] + 1  # only the call made after the outage


def test_down_nothing_half_recorded_stays_behind(down):
    client, _ = down
    images = client.get("/api/v1/admin/images", params={"per_page": 100}, auth=ADMIN).json()
    assert all(item["job_count"] >= 1 for item in images["items"])  # no image without its job
    assert client.get("/api/v1/admin/stats", auth=ADMIN).json()["cleanup_pending"] == 0
