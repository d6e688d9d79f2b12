"""The local backend's signed download links, and object-key validation."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import pytest

from frontend.settings import Settings
from frontend.storage import check_key
from frontend.storage.signing import KEY_FILE, ExpiredLink, InvalidLink, UrlSigner, signing_key

SECRET = b"k" * 32
KEY = "processed/0b9d4c1e-6d0f-4a43-9a8e-1c2d3e4f5a6b.webp"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def parts(url: str) -> tuple[str, str, str]:
    """(key, expires, signature) of a link."""
    split = urlsplit(url)
    query = parse_qs(split.query)
    assert split.path.startswith("/api/v1/files/")
    return split.path.removeprefix("/api/v1/files/"), query["expires"][0], query["signature"][0]


def test_a_link_verifies_and_says_how_long_it_has_left():
    clock = Clock()
    signer = UrlSigner(SECRET, 900, clock)
    url = signer.url(KEY)
    assert not urlsplit(url).netloc, "links are relative: they work behind any proxy"
    key, expires, signature = parts(url)
    assert key == KEY and int(expires) == int(clock.now) + 900 and len(signature) == 64
    assert signer.verify(key, expires, signature) == 900
    clock.now += 899
    assert signer.verify(key, expires, signature) == 1


def test_a_link_expires():
    clock = Clock()
    signer = UrlSigner(SECRET, 60, clock)
    key, expires, signature = parts(signer.url(KEY))
    clock.now += 60
    with pytest.raises(ExpiredLink, match="download link expired"):
        signer.verify(key, expires, signature)


def test_a_link_cannot_be_moved_to_another_object():
    signer = UrlSigner(SECRET, 60, Clock())
    _, expires, signature = parts(signer.url(KEY))
    for other in ("processed/other.webp", KEY.replace(".webp", ".jpg"), KEY + "x", KEY[:-1]):
        with pytest.raises(InvalidLink, match="invalid download link"):
            signer.verify(other, expires, signature)


def test_a_link_cannot_be_made_to_live_longer():
    clock = Clock()
    signer = UrlSigner(SECRET, 60, clock)
    key, expires, signature = parts(signer.url(KEY))
    for later in (int(expires) + 1, int(expires) + 3600, 10**11):
        with pytest.raises(InvalidLink):
            signer.verify(key, str(later), signature)
    clock.now += 120  # expired and tampered: reads as invalid, not as expired
    with pytest.raises(InvalidLink):
        signer.verify(key, str(int(expires) + 3600), signature)


@pytest.mark.parametrize("expires, signature", [
    (None, None), ("", ""), ("1800000060", None), (None, "ab" * 32), ("1800000060", "ab" * 32),
    ("-1", "ab" * 32), ("1e9", "ab" * 32), ("９９", "ab" * 32), ("9" * 5000, "ab" * 32),
    ("1800000060", "é" * 64), ("1800000060", ""),
])
def test_malformed_links_are_invalid(expires, signature):
    with pytest.raises(InvalidLink):
        UrlSigner(SECRET, 60, Clock()).verify(KEY, expires, signature)


def test_a_changed_signature_or_secret_is_refused():
    signer = UrlSigner(SECRET, 60, Clock())
    key, expires, signature = parts(signer.url(KEY))
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    for bad in (flipped, signature[:-1], signature + "0", signature.upper()):
        with pytest.raises(InvalidLink):
            signer.verify(key, expires, bad)
    with pytest.raises(InvalidLink):
        UrlSigner(b"x" * 32, 60, Clock()).verify(key, expires, signature)


def test_short_secrets_are_refused():
    with pytest.raises(ValueError, match="32 bytes"):
        UrlSigner(b"short", 60)


@pytest.mark.parametrize("key", ["a", "originals/ab/ab12cd.jpg", "processed/0b9d-4c1e.webp", "a_b/c-d/e.f.g",
                                 "x" * 255])
def test_valid_keys(key):
    assert check_key(key) == key


@pytest.mark.parametrize("key", [
    "", "/abs.jpg", "../up.jpg", "a/../b.jpg", "a/./b", "..", ".", ".url-signing-key", "a/.hidden",
    "a//b", "a/", "a\\b.jpg", "a b.jpg", "a%2Fb", "ä.jpg", "a\n", "a\x00b", "a?b", "x" * 256,
])
def test_invalid_keys(key):
    with pytest.raises(ValueError, match="invalid object key"):
        check_key(key)
    with pytest.raises(ValueError):
        UrlSigner(SECRET, 60).url(key)


def test_the_configured_key_is_used(tmp_path):
    settings = Settings(url_signing_key="s" * 40, storage_dir=str(tmp_path / "objects"))
    assert signing_key(settings) == b"s" * 40
    assert not (tmp_path / "objects" / KEY_FILE).exists()


def test_production_refuses_to_invent_a_key(tmp_path):
    settings = Settings(environment="production", url_signing_key=None, storage_dir=str(tmp_path))
    with pytest.raises(RuntimeError, match="FACE_API_URL_SIGNING_KEY is required in production"):
        signing_key(settings)
    assert not (tmp_path / KEY_FILE).exists()


def test_without_a_key_one_is_made_once_and_shared(tmp_path):
    settings = Settings(url_signing_key=None, storage_dir=str(tmp_path / "objects"))
    with ThreadPoolExecutor(8) as pool:  # workers starting together all get the same key
        keys = set(pool.map(lambda _: signing_key(settings), range(32)))
    assert len(keys) == 1 and len(keys.pop()) == 64
    path = tmp_path / "objects" / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(path.parent) == [KEY_FILE], "no temporary files are left behind"
    assert signing_key(settings) == path.read_text().encode()  # a restart reads the same key
