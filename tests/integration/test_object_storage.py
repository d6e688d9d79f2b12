"""Object storage on both backends, against real servers: the local folder behind the running
frontend (its signed /api/v1/files links), and S3 on a SeaweedFS started here (presigned URLs).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import httpx
import pytest

from frontend.settings import Settings
from frontend.storage import ObjectNotFound, ObjectStore, ObjectStoreError
from frontend.storage.local import LocalObjectStore
from frontend.storage.s3 import S3ObjectStore
from frontend.storage.signing import UrlSigner
from tests.integration.conftest import sample
from tests.integration.stack import Stack, start_stack
from tests.support.s3_server import S3Server, s3_server

BUCKET = f"face-api-{secrets.token_hex(4)}"
PHOTO = sample("gdp.jpg").read_bytes()


@pytest.fixture(scope="module")
def s3() -> S3Server:
    with s3_server() as server:
        yield server


def require_restartable(s3: S3Server) -> None:
    if not s3.restartable:
        pytest.skip("FACE_API_TEST_S3_ENDPOINT's server cannot be stopped and started by the tests")


def s3_settings(s3: S3Server, **changes) -> Settings:
    settings = Settings(storage_backend="s3", s3_endpoint=s3.endpoint, s3_region=s3.region, s3_bucket=BUCKET,
                        s3_access_key_id=s3.access_key, s3_secret_access_key=s3.secret_key,
                        s3_addressing_style="path")
    return settings.model_copy(update=changes)  # no validation: lets a test use a 1 s lifetime


@dataclass
class Backend:
    """A started store, and how to make another one like it with a different link lifetime."""

    name: str
    store: ObjectStore
    base: str  # relative links (the local backend's) are resolved against the frontend
    s3: S3Server | None = None
    stack: Stack | None = None

    def other(self, ttl_s: int) -> ObjectStore:
        if self.s3 is not None:
            return S3ObjectStore(s3_settings(self.s3, url_ttl_s=ttl_s))
        signer = UrlSigner(self.stack.url_signing_key.encode(), ttl_s)
        return LocalObjectStore(objects_folder(self.stack), signer)

    def fetch(self, url: str) -> httpx.Response:
        return httpx.get(urljoin(self.base, url), timeout=10)  # no API key: the link is the credential

    @property
    def expiry_parameter(self) -> str:
        return "X-Amz-Expires" if self.s3 is not None else "expires"


def objects_folder(stack: Stack) -> Path:
    return stack.log_path.parent / "objects"  # start_stack's FACE_API_STORAGE_DIR


@pytest.fixture(params=["local", "s3"])
async def backend(request) -> AsyncIterator[Backend]:
    if request.param == "s3":
        s3 = request.getfixturevalue("s3")
        chosen = Backend("s3", S3ObjectStore(s3_settings(s3)), s3.endpoint, s3=s3)
    else:
        stack = request.getfixturevalue("stack")
        store = LocalObjectStore(objects_folder(stack), UrlSigner(stack.url_signing_key.encode(), 900))
        chosen = Backend("local", store, stack.url, stack=stack)
    await chosen.store.start()
    yield chosen
    await chosen.store.close()


def new_key(extension: str = "jpg") -> str:
    return f"tests/{secrets.token_hex(2)}/{secrets.token_hex(16)}.{extension}"


def with_query(url: str, **changes: str) -> str:
    split = urlsplit(url)
    query = dict(parse_qsl(split.query))
    assert set(changes) <= set(query), (changes, query)
    return urlunsplit(split._replace(query=urlencode({**query, **changes})))


async def test_put_get_exists_overwrite_delete(backend):
    store, key = backend.store, new_key()
    assert not await store.exists(key)
    await store.put(key, PHOTO, "image/jpeg")
    assert await store.exists(key)
    assert await store.get(key) == PHOTO
    await store.put(key, b"replaced", "image/jpeg")
    assert await store.get(key) == b"replaced"
    await store.delete(key)
    assert not await store.exists(key)
    with pytest.raises(ObjectNotFound):
        await store.get(key)
    await store.delete(key)  # deleting a missing object is not an error
    assert await store.is_ready()


@pytest.mark.parametrize("key", ["../escape.jpg", "/absolute.jpg", "a\\b.jpg", "a/../../b.jpg", ".hidden",
                                 "x" * 256 + ".jpg"])
async def test_keys_outside_the_rules_are_refused(backend, key):
    with pytest.raises(ValueError, match="invalid object key"):
        await backend.store.put(key, b"x", "image/jpeg")
    with pytest.raises(ValueError):
        await backend.store.get(key)
    with pytest.raises(ValueError):
        await backend.store.download_url(key)


async def test_a_download_url_serves_the_object(backend):
    key = new_key()
    await backend.store.put(key, PHOTO, "image/jpeg")
    response = backend.fetch(await backend.store.download_url(key))
    assert response.status_code == 200, response.text
    assert response.content == PHOTO
    assert response.headers["content-type"] == "image/jpeg"
    if backend.name == "local":
        assert response.headers["x-content-type-options"] == "nosniff"
        cache = response.headers["cache-control"]
        assert cache.startswith("private, max-age=") and 890 <= int(cache.split("=")[1]) <= 900


async def test_a_download_url_cannot_be_pointed_at_another_object(backend):
    mine, other = new_key(), new_key()
    await backend.store.put(mine, b"mine", "image/jpeg")
    await backend.store.put(other, b"secret", "image/jpeg")
    url = await backend.store.download_url(mine)
    assert backend.fetch(url).status_code == 200
    moved = backend.fetch(url.replace(mine, other))
    assert moved.status_code == 403 and b"secret" not in moved.content
    if backend.name == "local":
        assert moved.json() == {"detail": "invalid download link"}


async def test_a_download_url_cannot_be_made_to_live_longer(backend):
    key = new_key()
    await backend.store.put(key, b"data", "image/jpeg")
    url = await backend.store.download_url(key)
    expiry = dict(parse_qsl(urlsplit(url).query))[backend.expiry_parameter]
    longer = backend.fetch(with_query(url, **{backend.expiry_parameter: str(int(expiry) + 3600)}))
    assert longer.status_code == 403
    if backend.name == "local":
        assert longer.json() == {"detail": "invalid download link"}
        for tampered in (with_query(url, signature="0" * 64), url.split("?")[0], url.split("&")[0]):
            refused = backend.fetch(tampered)
            assert refused.status_code == 403 and refused.json() == {"detail": "invalid download link"}


async def test_an_expired_download_url_is_refused(backend):
    store = backend.other(ttl_s=1)
    await store.start()
    try:
        key = new_key()
        await store.put(key, b"short-lived", "image/jpeg")
        url = await store.download_url(key)
        time.sleep(2.2)
        expired = backend.fetch(url)
        assert expired.status_code == 403 and b"short-lived" not in expired.content
        if backend.name == "local":
            assert expired.json() == {"detail": "download link expired"}
    finally:
        await store.close()


async def test_a_link_to_a_deleted_object_is_404(backend):
    key = new_key()
    await backend.store.put(key, b"data", "image/jpeg")
    url = await backend.store.download_url(key)
    await backend.store.delete(key)
    gone = backend.fetch(url)
    assert gone.status_code == 404
    if backend.name == "local":
        assert gone.json() == {"detail": "the file no longer exists"}


def test_the_running_frontend_reports_its_local_storage(stack):
    body = httpx.get(f"{stack.url}/health", timeout=10).json()
    assert body["storage_enabled"] is True and body["storage_ready"] is True
    assert (objects_folder(stack) / ".url-signing-key").exists() is False  # the configured key is used


async def test_links_for_the_public_endpoint_are_signed_for_its_host(s3):
    public = s3.endpoint.replace("127.0.0.1", "localhost")
    store = S3ObjectStore(s3_settings(s3, s3_public_endpoint=public))
    await store.start()
    try:
        key = new_key("webp")
        await store.put(key, b"processed", "image/webp")
        internal, outside = await store.download_url(key), await store.download_url(key, public=True)
        assert urlsplit(internal).netloc == urlsplit(s3.endpoint).netloc
        assert urlsplit(outside).netloc == urlsplit(public).netloc
        for url in (internal, outside):
            response = httpx.get(url, timeout=10)
            assert response.status_code == 200 and response.content == b"processed"
            assert response.headers["content-type"] == "image/webp"
        # A link signed for one host does not work through the other.
        assert httpx.get(outside.replace("localhost", "127.0.0.1"), timeout=10).status_code == 403
    finally:
        await store.close()


async def test_a_missing_bucket_is_created_or_refused(s3):
    bucket = f"face-api-{secrets.token_hex(4)}"
    with pytest.raises(RuntimeError, match="does not exist and FACE_API_S3_CREATE_BUCKET is false"):
        await S3ObjectStore(s3_settings(s3, s3_bucket=bucket, s3_create_bucket=False)).start()
    store = S3ObjectStore(s3_settings(s3, s3_bucket=bucket))
    await store.start()
    try:
        assert bucket in [b["Name"] for b in s3.client().list_buckets()["Buckets"]]
        assert await store.is_ready()
    finally:
        await store.close()


async def test_wrong_credentials_stop_the_start(s3):
    with pytest.raises(RuntimeError, match="check the S3 credentials"):
        await S3ObjectStore(s3_settings(s3, s3_secret_access_key="not-the-secret")).start()


async def test_an_s3_outage_fails_fast_and_passes(s3):
    require_restartable(s3)
    store = S3ObjectStore(s3_settings(s3))
    await store.start()
    key = new_key()
    await store.put(key, b"kept", "image/jpeg")
    s3.stop()
    try:
        for operation in (store.get(key), store.put(new_key(), b"x", "image/jpeg"), store.exists(key),
                          store.delete(key)):
            started = time.monotonic()
            with pytest.raises(ObjectStoreError) as raised:
                await operation
            assert not isinstance(raised.value, ObjectNotFound)
            assert time.monotonic() - started < 5
        assert not await store.is_ready()
        # A worker that starts while S3 is down keeps going, not ready, and retries on use.
        late = S3ObjectStore(s3_settings(s3))
        await late.start()
        assert not await late.is_ready()
    finally:
        s3.start()
    try:
        assert await store.is_ready() and await late.is_ready()
        assert await store.get(key) == b"kept" and await late.get(key) == b"kept"
    finally:
        await store.close()
        await late.close()


def test_a_frontend_on_s3_survives_outages(s3, tmp_path):
    """The whole stack on the s3 backend: S3 down at start-up and later, then back."""
    require_restartable(s3)
    s3.stop()
    bringing_back = threading.Thread(target=restart_once_warned, args=(s3, tmp_path), daemon=True)
    bringing_back.start()
    try:
        stack = start_stack(tmp_path, env=s3.env(f"face-api-{secrets.token_hex(4)}"))
    finally:
        bringing_back.join(timeout=120)
        s3.start()
    try:
        assert "object storage not ready at start-up" in stack.log(), "S3 was up before the workers started"
        body = httpx.get(f"{stack.url}/health", timeout=10).json()
        assert body["storage_enabled"] is True and body["storage_ready"] is True
        files = httpx.get(f"{stack.url}/api/v1/files/originals/x.jpg?expires=1&signature=00", timeout=10)
        assert files.status_code == 501 and "local storage backend" in files.json()["detail"]
        s3.stop()
        try:
            down = httpx.get(f"{stack.url}/health", timeout=15)
            assert down.status_code == 503 and down.json()["storage_ready"] is False
        finally:
            s3.start()
        assert httpx.get(f"{stack.url}/health", timeout=15).status_code == 200
    finally:
        stack.stop()


def restart_once_warned(s3: S3Server, folder: Path, timeout: float = 120) -> None:
    """Start S3 again once a worker of the stack being started in ``folder`` has logged that it is missing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any("object storage not ready at start-up" in log.read_text(errors="replace")
               for log in folder.glob("stack-*.log")):
            s3.start()
            return
        time.sleep(0.2)
