"""The admin API-key endpoints through the real stack: a key created, renamed, deactivated,
activated and deleted there is taken, refused and forgotten by /api/v1/detect at once.
(Without a database they answer 501: tests/unit/test_admin_auth.py.)"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.conftest import sample
from tests.integration.stack import ADMIN_PASSWORD

KEYS = "/api/v1/admin/api-keys"
FIELDS = {"id", "name", "key_prefix", "key_suffix", "key_preview", "is_active", "request_count",
          "last_used_at", "created_at"}
PHOTO = sample("yaoming.jpg").read_bytes()


@pytest.fixture(scope="module")
def admin(stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=60, auth=("admin", ADMIN_PASSWORD)) as http:
        yield http


def detect_with(stack, key: str) -> httpx.Response:
    return httpx.post(f"{stack.url}/api/v1/detect", headers={"X-API-Key": key},
                      files={"image": ("y.jpg", PHOTO)}, timeout=60)


def create(admin: httpx.Client, name: str) -> dict:
    response = admin.post(KEYS, json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()


def test_key_lifecycle_takes_effect_at_once(stack, admin):
    created = create(admin, "  Production App ")
    key = created.pop("key")
    assert set(created) == FIELDS
    assert created["name"] == "Production App"  # surrounding spaces go
    assert key.startswith("xyl_") and len(key) == 47
    assert created["key_prefix"] == key[:8] and created["key_suffix"] == key[-4:]
    assert created["key_preview"] == f"{key[:8]}...{key[-4:]}"
    assert created["is_active"] is True and created["request_count"] == 0 and created["last_used_at"] is None
    path = f"{KEYS}/{created['id']}"

    assert detect_with(stack, key).status_code == 200
    fetched = admin.get(path).json()
    assert set(fetched) == FIELDS and "key" not in fetched  # the key is shown once only

    renamed = admin.patch(path, json={"name": "Renamed App"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Renamed App"
    assert renamed.json()["is_active"] is True

    off = admin.patch(path, json={"name": "Renamed App", "is_active": False})
    assert off.status_code == 200 and off.json()["is_active"] is False
    refused = detect_with(stack, key)
    assert refused.status_code == 403 and refused.json() == {"detail": "this API key is disabled"}

    assert admin.patch(path, json={"is_active": True}).json()["is_active"] is True
    assert detect_with(stack, key).status_code == 200

    deleted = admin.delete(path)
    assert deleted.status_code == 204 and deleted.content == b""
    assert detect_with(stack, key).status_code == 401
    assert admin.get(path).status_code == 404
    assert admin.delete(path).status_code == 404


def test_usage_is_counted(stack, admin):
    created = create(admin, "usage")
    for _ in range(2):
        assert detect_with(stack, created["key"]).status_code == 200
    path = f"{KEYS}/{created['id']}"
    deadline = time.monotonic() + 15  # the workers add their counts every 2 s
    while (record := admin.get(path).json())["request_count"] < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert record["request_count"] == 2 and record["last_used_at"] is not None
    assert record["last_used_at"] >= record["created_at"]


def test_list_is_newest_first_and_paginated(admin):
    names = [f"page test {uuid.uuid4().hex[:8]} {i}" for i in range(3)]
    ids = [create(admin, name)["id"] for name in names]
    first = admin.get(KEYS, params={"per_page": 2}).json()
    total = first["total"]
    assert total >= 3 and first["page"] == 1 and first["per_page"] == 2
    assert first["pages"] == (total + 1) // 2
    assert [item["id"] for item in first["items"]] == ids[::-1][:2]
    assert all(set(item) == FIELDS for item in first["items"])  # metadata only: no key
    second = admin.get(KEYS, params={"page": 2, "per_page": 2}).json()
    assert second["items"][0]["id"] == ids[0]
    everything = admin.get(KEYS, params={"per_page": 100}).json()
    assert everything["total"] == total and len(everything["items"]) == min(total, 100)
    created_at = [item["created_at"] for item in everything["items"]]
    assert created_at == sorted(created_at, reverse=True)
    beyond = admin.get(KEYS, params={"page": 10_000, "per_page": 100}).json()
    assert beyond["items"] == [] and beyond["total"] == total and beyond["page"] == 10_000
    for params in ({"page": 0}, {"per_page": 0}, {"per_page": 101}, {"page": "x"}):
        response = admin.get(KEYS, params=params)
        assert response.status_code == 422 and isinstance(response.json()["detail"], str), params


@pytest.mark.parametrize(("body", "message"), [
    ({"name": ""}, "name must not be empty"),
    ({"name": "   "}, "name must not be empty"),
    ({"name": "x" * 101}, "name must be at most 100 characters"),
    ({"name": "two\nlines"}, "control characters"),
    ({"name": 42}, "name"),
    ({"name": None}, "name"),
    ({}, "name"),
    ({"name": "ok", "is_active": False}, "is_active"),  # unknown fields are refused, not ignored
])
def test_create_refuses_bad_bodies(admin, body, message):
    response = admin.post(KEYS, json=body)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]


def test_create_refuses_malformed_json(admin):
    response = admin.post(KEYS, content=b'{"name": ', headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and isinstance(response.json()["detail"], str)


@pytest.mark.parametrize(("body", "message"), [
    ({}, "send name and/or is_active"),
    ({"name": None, "is_active": None}, "send name and/or is_active"),
    ({"name": " "}, "name must not be empty"),
    ({"is_active": "no"}, "is_active"),
    ({"is_active": 0}, "is_active"),
    ({"enabled": False}, "enabled"),
])
def test_update_refuses_bad_bodies(admin, body, message):
    key_id = create(admin, "update checks")["id"]
    response = admin.patch(f"{KEYS}/{key_id}", json=body)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]
    unchanged = admin.get(f"{KEYS}/{key_id}").json()
    assert unchanged["name"] == "update checks" and unchanged["is_active"] is True


@pytest.mark.parametrize("key_id", [str(uuid.uuid4()), "not-a-uuid", "x" * 37, "%20", "1"])
def test_unknown_ids_are_404(admin, key_id):
    for method, body in (("GET", None), ("PATCH", {"name": "n"}), ("DELETE", None)):
        response = admin.request(method, f"{KEYS}/{key_id}", json=body)
        assert response.status_code == 404, (method, response.text)
        assert response.json() == {"detail": "API key not found"}
