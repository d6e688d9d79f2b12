"""Integration fixtures: one real stack (Triton with real weights + frontend) per session."""

from __future__ import annotations

import io
import secrets
from pathlib import Path

import httpx
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.stack import ADMIN_PASSWORD, ROOT, STARTED, start_stack
from tests.support.postgres import PostgresServer, PostgresUnavailable

SAMPLES = ROOT / "samples"
PHOTO_FACES = {"yaoming.jpg": 1, "gdp.jpg": 5, "players.jpg": 22}

# Small size limits so the 413 paths are cheap to reach; rate limits out of the way
# (they have stacks of their own in test_rate_limits.py).
LIMITS = {"FACE_API_MAX_UPLOAD_BYTES": str(4 * 1024 * 1024), "FACE_API_MAX_IMAGE_PIXELS": "20000000",
          "FACE_API_RATE_LIMIT_DETECT": "1000000/minute", "FACE_API_RATE_LIMIT_MASK": "1000000/minute",
          "FACE_API_RATE_LIMIT_RECOGNITION": "1000000/minute",
          "FACE_API_RATE_LIMIT_ADMIN_LOGIN": "1000000/minute"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A test that failed while a stack died under it gets that stack's logs.

    (CI keeps only the test output, so this is how a crash there can be read.)
    """
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for dead in (s for s in STARTED if s.in_trouble()):
            report.sections.append((f"stack {dead.url} died", dead.diagnosis()))


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    running = start_stack(tmp_path_factory.mktemp("stack"), env=LIMITS)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def api_key(stack) -> str:
    assert stack.first_key, f"serve did not print a first API key:\n{stack.log()[-2000:]}"
    return stack.first_key


@pytest.fixture(scope="session")
def client(stack, api_key):
    """An HTTP client that sends the first API key with every request."""
    with httpx.Client(base_url=stack.url, timeout=60, headers={"X-API-Key": api_key}) as http:
        yield http


@pytest.fixture(scope="module")
def admin(stack):
    """The admin API (/api/v1/admin) over HTTP Basic, on the stack of the module asking
    (module scope, so that a module's own ``stack`` fixture is followed)."""
    with httpx.Client(base_url=f"{stack.url}/api/v1/admin", timeout=60,
                      auth=("admin", ADMIN_PASSWORD)) as http:
        yield http


@pytest.fixture(scope="module")
def objects(stack) -> Path:
    """The local object store's folder of that stack (start_stack's FACE_API_STORAGE_DIR)."""
    return stack.log_path.parent / "objects"


@pytest.fixture(scope="session")
def photos() -> dict[str, bytes]:
    return {name: (SAMPLES / name).read_bytes() for name in PHOTO_FACES}


def detect(client: httpx.Client, data: bytes, filename: str = "photo.jpg", **params) -> httpx.Response:
    return client.post("/api/v1/detect", params=params, files={"image": (filename, data)})


def mask(client: httpx.Client, data: bytes, filename: str = "photo.jpg", **params) -> httpx.Response:
    return client.post("/api/v1/mask", params=params, files={"image": (filename, data)})


def batch_counts(triton, model: str) -> dict[int, int]:
    """Triton's batch_stats for ``model``: batch size -> executions of that size so far
    (``triton`` is a tritonclient.grpc.InferenceServerClient)."""
    stats = triton.get_inference_statistics(model, as_json=True)["model_stats"][0]
    return {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in stats.get("batch_stats", [])}


def sample(name: str) -> Path:
    return SAMPLES / name


def unique_photo(name: str = "yaoming.jpg") -> bytes:
    """The sample with one pixel changed at random, as PNG: bytes never uploaded before
    (storage-backed mode deduplicates uploads by content)."""
    image = Image.open(SAMPLES / name).convert("RGB")
    image.putpixel((0, 0), tuple(secrets.token_bytes(3)))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="session")
def postgres_server():
    """The PostgreSQL on this machine, or a throw-away cluster when none answers."""
    try:
        server = PostgresServer.find_or_start()
    except PostgresUnavailable as error:
        pytest.fail(str(error))
    yield server
    server.close()


def metric(url: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples on ``url``'s /metrics whose labels include ``labels``
    (``name`` as exposed, e.g. face_api_http_requests_total); 0 when there is none."""
    text = httpx.get(f"{url}/metrics", timeout=30).raise_for_status().text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and labels.items() <= sample.labels.items())
