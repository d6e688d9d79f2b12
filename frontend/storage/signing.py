"""Signed download URLs of the local backend: ``/api/v1/files/{key}?expires=&signature=``.

The signature is HMAC-SHA256 over ``f"{key}\\n{expires}"``: it binds the URL to
one object and one expiry, so it can be neither pointed at another object nor
made to live longer. The URL is relative, so it works behind any proxy.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from frontend.persistence.database import make_private_folder
from frontend.settings import Settings
from frontend.storage.base import check_key

log = logging.getLogger("face_api.storage")

FILES_PATH = "/api/v1/files/"
KEY_FILE = ".url-signing-key"
# Epoch seconds in canonical decimal, at most 12 digits.
CANONICAL_EXPIRY = re.compile(r"[1-9][0-9]{0,11}")


class InvalidLink(Exception):
    """Missing, malformed or forged signature (or one made for another object)."""


class ExpiredLink(Exception):
    """A genuine link whose time is up."""


class UrlSigner:
    def __init__(self, secret: bytes, ttl_s: int, clock: Callable[[], float] = time.time):
        if len(secret) < 32:
            raise ValueError("the URL-signing key needs at least 32 bytes")
        self._secret = secret
        self.ttl_s = ttl_s
        self.clock = clock

    def signature(self, key: str, expires: int) -> str:
        message = f"{key}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def url(self, key: str) -> str:
        """A link to ``key`` that works for ttl_s seconds from now."""
        check_key(key)
        expires = int(self.clock()) + self.ttl_s
        signature = self.signature(key, expires)
        return f"{FILES_PATH}{quote(key, safe='/')}?expires={expires}&signature={signature}"

    def verify(self, key: str, expires: str | None, signature: str | None) -> int:
        """The seconds the link has left; InvalidLink or ExpiredLink otherwise.

        The signature is checked first (in constant time), so a tampered expiry
        reads as invalid, not as expired.
        """
        # Only the form url() writes: one link, one spelling (no leading zeros, sign or spaces).
        if not (expires and signature and CANONICAL_EXPIRY.fullmatch(expires)):
            raise InvalidLink("invalid download link")
        expected = self.signature(key, int(expires))
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise InvalidLink("invalid download link")
        left = int(expires) - int(self.clock())
        if left <= 0:
            raise ExpiredLink("download link expired")
        return left


def signing_key(settings: Settings) -> bytes:
    """FACE_API_URL_SIGNING_KEY, else (outside production) a random key kept beside the objects.

    The key file is published complete with one atomic link(), so every worker and
    every restart reads the same key, and no worker can read a half-written one.
    """
    if settings.url_signing_key:
        return settings.url_signing_key.encode()
    if settings.environment == "production":
        raise RuntimeError("FACE_API_URL_SIGNING_KEY is required in production with the local storage "
                           "backend (download links must survive restarts and be the same on every node)")
    folder = Path(settings.storage_dir)
    path = folder / KEY_FILE
    make_private_folder(folder)
    if not path.exists():
        descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=".key-")  # O_EXCL, mode 0600
        try:
            with os.fdopen(descriptor, "w") as file:
                file.write(secrets.token_hex(32))
                file.flush()
                os.fsync(file.fileno())
            os.link(temporary, path)
            log.info("generated a URL-signing key in %s", path)
        except FileExistsError:
            pass  # another worker was first: use its key
        finally:
            os.unlink(temporary)
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise RuntimeError(f"{path} holds no usable URL-signing key: delete it to have a new one made")
    return secret.encode()
