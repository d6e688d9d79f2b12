"""base64 as clients send it, and the feature codec (base64 of little-endian float32)."""

from __future__ import annotations

import base64
import binascii
import re

import numpy as np

from frontend import __version__
from frontend.errors import invalid

WHITESPACE = re.compile(r"\s+")
NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/=]")  # after the URL-safe characters are mapped


def decode_base64(text: str, field: str) -> bytes:
    """The bytes of a base64 string, as leniently as is unambiguous.

    Accepted: the standard and the URL-safe alphabet, with or without padding,
    line breaks and other whitespace, and a ``data:<type>;base64,`` prefix.
    Anything else is a 422 naming ``field``.
    """
    text = text.strip()
    if text[:5].lower() == "data:":
        comma = text.find(",")
        if comma < 0 or not text[:comma].lower().endswith(";base64"):
            raise invalid(("body", field), f"{field} is a data: URL without ';base64,'", "base64_decode")
        text = text[comma + 1:]
    try:  # the usual spelling (standard alphabet, padded, nothing else) in one pass
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        data = _decode_leniently(text, field)
    if not data:
        raise invalid(("body", field), f"{field} is empty")
    return data


def _decode_leniently(text: str, field: str) -> bytes:
    """base64 in the other accepted spellings. Scanning for whitespace and foreign characters
    costs ~25 ms per MB of text, so only text that failed the strict decode pays for it."""
    if WHITESPACE.search(text):
        text = WHITESPACE.sub("", text)
    if "-" in text or "_" in text:
        text = text.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        pass
    # Said in the contract's words, not binascii's.
    body = text.rstrip("=")
    problem = ("it has characters outside the base64 alphabet" if NOT_BASE64.search(body)
               else "it has '=' padding before its end" if "=" in body
               else "its length is not possible for base64")
    raise invalid(("body", field), f"{field} is not valid base64 ({problem})", "base64_decode")


def encode_feature(vector: np.ndarray) -> str:
    """A feature: base64 (standard alphabet, padded) of the vector as little-endian float32."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def decode_feature(text: str, field: str) -> np.ndarray:
    """The float32 vector of a feature; 422 when it is not base64 of whole float32 values."""
    raw = decode_base64(text, field)
    if len(raw) % 4:
        raise invalid(("body", field), f"{field} is {len(raw)} bytes, not a whole number of float32 "
                                       "values (4 bytes each)")
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


def embeddings_list(vector: np.ndarray) -> list[float]:
    """The float32 values as JSON numbers, unrounded (each parses back to the same float32)."""
    return np.asarray(vector, dtype=np.float32).astype(np.float64).tolist()


def version(recognizer: str) -> str:
    """The ``version`` of feature and embeddings responses: features compare only within one."""
    return f"{__version__}+{recognizer}"
