"""Integration fixtures: one real stack (Triton with real weights + frontend) per session."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.integration.stack import ROOT, start_stack

SAMPLES = ROOT / "samples"
PHOTO_FACES = {"yaoming.jpg": 1, "gdp.jpg": 5, "players.jpg": 22}

# Small size limits so the 413 paths are cheap to reach; rate limits out of the way
# (they have stacks of their own in test_rate_limits.py).
LIMITS = {"FACE_API_MAX_UPLOAD_BYTES": str(4 * 1024 * 1024), "FACE_API_MAX_IMAGE_PIXELS": "20000000",
          "FACE_API_RATE_LIMIT_DETECT": "1000000/minute", "FACE_API_RATE_LIMIT_MASK": "1000000/minute"}


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


@pytest.fixture(scope="session")
def photos() -> dict[str, bytes]:
    return {name: (SAMPLES / name).read_bytes() for name in PHOTO_FACES}


def detect(client: httpx.Client, data: bytes, filename: str = "photo.jpg", **params) -> httpx.Response:
    return client.post("/api/v1/detect", params=params, files={"image": (filename, data)})


def mask(client: httpx.Client, data: bytes, filename: str = "photo.jpg", **params) -> httpx.Response:
    return client.post("/api/v1/mask", params=params, files={"image": (filename, data)})


def sample(name: str) -> Path:
    return SAMPLES / name
