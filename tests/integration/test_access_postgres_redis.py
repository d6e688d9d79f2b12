"""API keys and rate limits over HTTP, as a multi-node deployment runs them:
keys in PostgreSQL, limits in Redis, two gunicorn workers, and photos sent to
Triton inside the gRPC messages (no shared memory, as with Triton on another host)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time

import httpx
import pytest

from frontend.auth.api_keys import ApiKeyStore
from frontend.persistence.database import create_database
from tests.integration.conftest import sample
from tests.integration.stack import ROOT, start_stack
from tests.integration.test_rate_limits import (
    assert_refusals_are_documented,
    burst,
    keep_refused_until_both_workers_answered,
    statuses,
)
from tests.support.postgres import postgres_server
from tests.support.redis_server import redis_url

PHOTO = sample("yaoming.jpg").read_bytes()
KEY = re.compile(r"xyl_[A-Za-z0-9_-]{43}")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    with postgres_server() as postgres, postgres.database() as database_url, redis_url() as redis:
        stack = start_stack(tmp_path_factory.mktemp("pg-redis"), env={
            "FACE_API_DATABASE_URL": database_url, "FACE_API_REDIS_URL": redis,
            "FACE_API_WORKERS": "2", "FACE_API_API_KEY_USAGE_FLUSH_S": "0.5",
            "FACE_API_TRITON_SHARED_MEMORY": "false",
            "FACE_API_RATE_LIMIT_DETECT": "6/minute", "FACE_API_RATE_LIMIT_MASK": "3/minute"})
        stack.database_url = database_url
        try:
            yield stack
        finally:
            stack.stop()


def manage(stack, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FACE_API_DATABASE_URL": stack.database_url}
    return subprocess.run([sys.executable, "-m", "frontend.manage", "keys", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def new_key(stack, name: str) -> tuple[str, str]:
    """(full key, id) of a key made with the management command."""
    result = manage(stack, "create", "--name", name)
    assert result.returncode == 0, result.stderr
    [key] = KEY.findall(result.stdout)
    async def lookup() -> str:
        async with create_database(stack.database_url) as database:
            return (await ApiKeyStore(database).find(key)).id
    return key, asyncio.run(lookup())


def post(stack, key: str | None, path: str = "/api/v1/detect") -> httpx.Response:
    headers = {"X-API-Key": key} if key is not None else {}
    return httpx.post(stack.url + path, headers=headers, files={"image": ("y.jpg", PHOTO)}, timeout=60)


def test_first_key_printed_once_on_an_empty_database(deployment):
    assert deployment.first_key and KEY.fullmatch(deployment.first_key)
    assert post(deployment, deployment.first_key).status_code == 200


@pytest.mark.parametrize("key, status, detail", [
    (None, 401, "missing API key: send it in the X-API-Key header"),
    ("", 401, "missing API key: send it in the X-API-Key header"),
    ("xyl_" + "A" * 43, 401, "invalid API key"),
    ("not-a-key", 401, "invalid API key"),
])
def test_requests_without_a_valid_key_are_refused(deployment, key, status, detail):
    for path in ("/api/v1/detect", "/api/v1/mask"):
        response = post(deployment, key, path)
        assert response.status_code == status
        assert response.json() == {"detail": detail}
        assert "x-request-id" in response.headers


def test_key_lifecycle_over_http(deployment):
    key, key_id = new_key(deployment, "lifecycle")
    assert post(deployment, key).status_code == 200
    assert manage(deployment, "revoke", key_id).returncode == 0
    refused = post(deployment, key)
    assert refused.status_code == 403 and refused.json() == {"detail": "this API key is disabled"}
    assert manage(deployment, "activate", key_id).returncode == 0
    assert post(deployment, key).status_code == 200
    assert manage(deployment, "delete", key_id).returncode == 0
    assert post(deployment, key).status_code == 401
    assert manage(deployment, "revoke", key_id).returncode == 1  # unknown id now


def test_every_authenticated_request_is_counted(deployment):
    key, key_id = new_key(deployment, "counted")
    responses = asyncio.run(burst(deployment.url, "/api/v1/detect", 5, {"X-API-Key": key}))
    assert statuses(responses) == {200: 5}
    post(deployment, "xyl_" + "B" * 43)  # refused requests are not counted against anyone
    time.sleep(1.5)  # > FACE_API_API_KEY_USAGE_FLUSH_S: every worker has flushed

    async def record():
        async with create_database(deployment.database_url) as database:
            return await ApiKeyStore(database).get(key_id)
    stored = asyncio.run(record())
    assert stored.request_count == 5
    assert stored.last_used_at is not None
    listing = manage(deployment, "list").stdout
    assert key_id in listing and stored.key_preview in listing and key not in listing


def test_limits_are_per_key_and_hold_across_workers(deployment):
    first, _ = new_key(deployment, "limited-1")
    second, _ = new_key(deployment, "limited-2")
    responses = asyncio.run(burst(deployment.url, "/api/v1/detect", 10, {"X-API-Key": first}))
    assert statuses(responses) == {200: 6, 429: 4}
    assert_refusals_are_documented(responses, "6/minute")
    masks = asyncio.run(burst(deployment.url, "/api/v1/mask", 5, {"X-API-Key": first}))
    assert statuses(masks) == {200: 3, 429: 2}
    keep_refused_until_both_workers_answered(deployment, "/api/v1/detect", {"X-API-Key": first})
    others = asyncio.run(burst(deployment.url, "/api/v1/detect", 6, {"X-API-Key": second}))
    assert statuses(others) == {200: 6}  # another key has its own allowance


def test_photos_over_grpc_give_the_same_results_as_over_shared_memory(deployment, client):
    # `client` is the session stack's (photos through /dev/shm); this deployment sends them
    # inside the gRPC messages. Same detections, and a byte-identical masked PNG.
    photo = sample("gdp.jpg").read_bytes()
    status = httpx.get(f"http://127.0.0.1:{deployment.triton_http}/v2/systemsharedmemory/status", timeout=10)
    assert status.status_code == 200 and status.json() == []
    key = new_key(deployment, "transport")[0]
    with httpx.Client(base_url=deployment.url, timeout=60, headers={"X-API-Key": key}) as plain:
        over_grpc = plain.post("/api/v1/mask", params={"format": "png"}, files={"image": ("g.jpg", photo)})
        detected_grpc = plain.post("/api/v1/detect", files={"image": ("g.jpg", photo)})
    over_shm = client.post("/api/v1/mask", params={"format": "png"}, files={"image": ("g.jpg", photo)})
    detected_shm = client.post("/api/v1/detect", files={"image": ("g.jpg", photo)})
    assert over_grpc.status_code == over_shm.status_code == 200
    assert over_grpc.headers["x-face-count"] == over_shm.headers["x-face-count"] == "5"
    assert over_grpc.content == over_shm.content
    assert detected_grpc.json()["detections"] == detected_shm.json()["detections"]
