"""Storage-backed mode on PostgreSQL + a real S3 server (SeaweedFS): the whole flow from
upload to deletion, and what happens to deletions while S3 is down (the cleanup queue,
finished by the maintenance command and at start-up).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import httpx
import pytest
from botocore.exceptions import ClientError

from frontend.settings import Settings
from runtime.serve import prepare_database
from tests.integration.conftest import LIMITS, PHOTO_FACES, unique_photo
from tests.integration.stack import ROOT, start_stack
from tests.support.s3_server import S3Server, s3_server

BUCKET = f"face-api-admin-{secrets.token_hex(4)}"


def env_public(s3: S3Server) -> str:
    """Another name of the same server: the stack signs browser links for it."""
    return s3.endpoint.replace("127.0.0.1", "localhost")


def original_key(data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    return f"originals/{sha[:2]}/{sha}.png"


@pytest.fixture(scope="module")
def s3() -> S3Server:
    with s3_server() as server:
        if not server.restartable:
            pytest.skip("FACE_API_TEST_S3_ENDPOINT's server cannot be stopped and started by the tests")
        yield server


@pytest.fixture(scope="module")
def database_url(postgres_server):
    with postgres_server.database() as url:
        yield url


@pytest.fixture(scope="module")
def env(s3, database_url) -> dict[str, str]:
    return {**LIMITS, **s3.env(BUCKET), "FACE_API_DATABASE_URL": database_url,
            "FACE_API_S3_PUBLIC_ENDPOINT": env_public(s3)}


@pytest.fixture(scope="module")
def stack(tmp_path_factory, env):
    running = start_stack(tmp_path_factory.mktemp("s3-stack"), env=env)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(stack):
    with httpx.Client(base_url=stack.url, timeout=60, headers={"X-API-Key": stack.first_key}) as http:
        yield http


@pytest.fixture
def s3_back(s3):
    """Whatever a test does to the server, the next one finds it running."""
    yield s3
    s3.start()


def exists(s3: S3Server, key: str) -> bool:
    try:
        s3.client().head_object(Bucket=BUCKET, Key=key)
    except ClientError as error:
        if error.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def follow(admin: httpx.Client, path: str) -> tuple[str, bytes]:
    """The admin API's 302, followed without credentials: (where it pointed, what it served)."""
    redirect = admin.get(path)
    assert redirect.status_code == 302, redirect.text
    location = redirect.headers["location"]
    with httpx.Client(timeout=30) as anonymous:
        served = anonymous.get(location, follow_redirects=True)
    assert served.status_code == 200, served.text
    return location, served.content


def tasks(database_url: str) -> list[dict]:
    async def read() -> list[dict]:
        connection = await asyncpg.connect(database_url, timeout=5)
        try:
            rows = await connection.fetch("SELECT object_key, attempts, last_error FROM cleanup_tasks")
            return [dict(row) for row in rows]
        finally:
            await connection.close()

    return asyncio.run(read())


def masked_image(client: httpx.Client, data: bytes) -> tuple[str, str, bytes]:
    response = client.post("/api/v1/mask", params={"format": "png"}, files={"image": ("p.png", data)})
    assert response.status_code == 200, response.text
    return response.headers["x-image-id"], response.headers["x-job-id"], response.content


def test_upload_list_download_delete(s3, client, admin):
    data = unique_photo("gdp.jpg")
    image_id, mask_job, processed = masked_image(client, data)
    detected = client.post("/api/v1/detect", files={"image": ("p.png", data)}).json()
    assert detected["image_id"] == image_id and detected["job_id"] != mask_job
    assert exists(s3, original_key(data)) and exists(s3, f"processed/{mask_job}.png")

    listed = admin.get("/images").json()
    assert listed["items"][0]["id"] == image_id and listed["items"][0]["job_count"] == 2
    detail = admin.get(f"/images/{image_id}").json()
    assert [job["id"] for job in detail["jobs"]] == [detected["job_id"], mask_job]
    assert detail["processed_url"].startswith(env_public(s3))  # the public endpoint signs it
    assert detail["original_url"].startswith(s3.endpoint)  # the private one signs the original
    jobs = admin.get("/jobs", params={"job_type": "mask"}).json()
    assert jobs["items"][0]["id"] == mask_job and jobs["items"][0]["face_count"] == PHOTO_FACES["gdp.jpg"]

    location, original = follow(admin, f"/images/{image_id}/download")
    assert location.startswith(s3.endpoint) and "X-Amz-Signature=" in location
    assert original == data
    location, output = follow(admin, f"/jobs/{mask_job}/download")
    assert location.startswith(env_public(s3)) and output == processed

    assert admin.delete(f"/images/{image_id}").status_code == 204
    assert not exists(s3, original_key(data)) and not exists(s3, f"processed/{mask_job}.png")
    assert admin.get(f"/images/{image_id}").status_code == 404
    assert admin.get("/stats").json()["cleanup_pending"] == 0


def test_concurrent_uploads_of_the_same_bytes_are_one_image(s3, client, admin):
    data = unique_photo()
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: client.post("/api/v1/mask", files={"image": ("p.png", data)}),
                                  range(8)))
    assert {r.status_code for r in responses} == {200}
    assert len({r.headers["x-image-id"] for r in responses}) == 1
    image = admin.get(f"/images/{responses[0].headers['x-image-id']}").json()
    assert image["job_count"] == 8 and exists(s3, original_key(data))


def test_s3_down_the_caller_still_gets_its_result(s3_back, client, admin):
    s3_back.stop()
    data = unique_photo()
    detected = client.post("/api/v1/detect", files={"image": ("p.png", data)})
    assert detected.status_code == 200
    assert detected.headers["x-storage-error"] == "object storage unavailable"
    assert detected.json()["image_id"] is None and detected.json()["summary"]["face_count"] == 1
    masked = client.post("/api/v1/mask", files={"image": ("p.png", data)})
    assert masked.status_code == 200 and masked.headers["content-type"] == "image/jpeg"
    assert masked.headers["x-storage-error"] == "object storage unavailable"
    assert "x-image-id" not in masked.headers
    s3_back.start()
    assert client.post("/api/v1/detect", files={"image": ("p.png", data)}).json()["image_id"]


def test_deleting_while_s3_is_down_queues_the_objects(s3_back, client, admin, env, database_url):
    data = unique_photo()
    image_id, job_id, _ = masked_image(client, data)
    processed_key = f"processed/{job_id}.png"
    s3_back.stop()
    assert admin.delete(f"/images/{image_id}").status_code == 204  # the metadata is gone at once
    assert admin.get(f"/images/{image_id}").status_code == 404
    assert admin.get("/stats").json()["cleanup_pending"] == 2
    queued = {task["object_key"]: task for task in tasks(database_url)}
    assert set(queued) == {original_key(data), processed_key}
    # The delete tried at once and gave up at the first failure (the store is down): one of
    # the two tasks (they share created_at, so either) records the attempt.
    assert sorted(task["attempts"] for task in queued.values()) == [0, 1]
    assert any(task["last_error"] for task in queued.values())

    # Still down: the maintenance command keeps the tasks and says so (exit 1).
    command = [sys.executable, "-m", "frontend.manage", "cleanup"]
    environment = {**os.environ, **env}
    failed = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "2 stay queued" in failed.stdout and "last error" in failed.stderr
    assert admin.get("/stats").json()["cleanup_pending"] == 2

    s3_back.start()
    assert exists(s3_back, original_key(data)) and exists(s3_back, processed_key)  # not deleted yet
    # The same bytes uploaded again meanwhile: the new image owns the original object now.
    again = client.post("/api/v1/detect", files={"image": ("p.png", data)}).json()
    assert again["image_id"] not in (None, image_id)

    done = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "deleted 1 objects; 1 were in use again and kept; 0 stay queued" in done.stdout
    assert not exists(s3_back, processed_key)
    assert exists(s3_back, original_key(data))
    assert follow(admin, f"/images/{again['image_id']}/download")[1] == data
    assert admin.get("/stats").json()["cleanup_pending"] == 0 and tasks(database_url) == []


def settings_of(env: dict[str, str]) -> Settings:
    return Settings(**{key.removeprefix("FACE_API_").lower(): value for key, value in env.items()})


def test_start_up_finishes_the_queue(s3_back, client, admin, env, database_url, capsys):
    data = unique_photo()
    image_id, job_id, _ = masked_image(client, data)
    s3_back.stop()
    assert admin.delete(f"/images/{image_id}").status_code == 204
    s3_back.start()
    assert len(tasks(database_url)) == 2

    prepare_database(settings_of(env), port=8080)  # what ./face-api serve does before the workers start
    assert "object cleanup: deleted 2 queued objects" in capsys.readouterr().out
    assert tasks(database_url) == []
    assert not exists(s3_back, original_key(data)) and not exists(s3_back, f"processed/{job_id}.png")


def test_start_up_with_s3_down_starts_anyway(s3_back, client, admin, env, database_url, capsys):
    data = unique_photo()
    image_id, _, _ = masked_image(client, data)
    s3_back.stop()
    assert admin.delete(f"/images/{image_id}").status_code == 204
    prepare_database(settings_of(env), port=8080)  # no exception: the start goes on
    assert "object cleanup: 2 objects stay queued" in capsys.readouterr().out
    assert len(tasks(database_url)) == 2
    s3_back.start()
    cleaned = subprocess.run([sys.executable, "-m", "frontend.manage", "cleanup"], cwd=ROOT,
                                 env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert cleaned.returncode == 0 and tasks(database_url) == []
