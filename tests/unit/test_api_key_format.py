"""API key format, hashing and previews: pure functions, no database."""

from __future__ import annotations

import hashlib
import re
import string

import pytest

from frontend.auth.api_keys import (
    generate_key,
    hash_key,
    key_prefix,
    key_preview,
    key_suffix,
    looks_like_key,
    validate_name,
)

URLSAFE = set(string.ascii_letters + string.digits + "-_")


def test_format_length_and_alphabet():
    for _ in range(200):
        key = generate_key()
        assert key.startswith("xyl_")
        assert len(key) == 47  # "xyl_" + 43 characters of base64url (32 bytes, no padding)
        assert set(key[4:]) <= URLSAFE
        assert key.isascii() and "=" not in key


def test_keys_are_unique_and_random():
    keys = {generate_key() for _ in range(20_000)}
    assert len(keys) == 20_000
    # 256 random bits: every URL-safe character turns up across the random parts
    assert set("".join(key[4:] for key in keys)) == URLSAFE


def test_hash_is_sha256_hex_and_deterministic():
    key = generate_key()
    digest = hash_key(key)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert digest == hash_key(key) == hashlib.sha256(key.encode()).hexdigest()
    assert hash_key(generate_key()) != digest
    assert hash_key(key[:-1] + ("A" if key[-1] != "A" else "B")) != digest


def test_prefix_suffix_preview():
    key = "xyl_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcdwxyz"
    assert key_prefix(key) == "xyl_AbCd"
    assert key_suffix(key) == "wxyz"
    assert key_preview(key) == "xyl_AbCd...wxyz"
    generated = generate_key()
    assert key_preview(generated) == f"{generated[:8]}...{generated[-4:]}"
    assert len(key_prefix(generated)) == 8 and len(key_suffix(generated)) == 4


def test_looks_like_key_accepts_generated_keys():
    assert all(looks_like_key(generate_key()) for _ in range(1000))
    assert looks_like_key("xyl_" + "A" * 43)
    assert looks_like_key("xyl_" + "-_" * 21 + "9")


@pytest.mark.parametrize("garbage", [
    "", "xyl_", "xyl", "xyl_" + "A" * 42, "xyl_" + "A" * 44, "xyl_" + "A" * 10_000,
    "abc_" + "A" * 43, "XYL_" + "A" * 43, "xyl-" + "A" * 43, "A" * 47,
    "xyl_" + "A" * 42 + "é", "xyl_" + "Ａ" * 43, "xyl_" + "A" * 42 + " ", " xyl_" + "A" * 42,
    "xyl_" + "A" * 20 + " " + "A" * 22, "xyl_" + "A" * 42 + "\n", "xyl_" + "A" * 43 + "\n",
    "xyl_" + "A" * 42 + "=", "xyl_" + "A" * 42 + "+", "xyl_" + "A" * 42 + "/", "xyl_" + "A" * 42 + "\x00",
    None, 42, b"xyl_" + b"A" * 43, ["xyl_" + "A" * 43],
])
def test_looks_like_key_rejects_garbage(garbage):
    assert looks_like_key(garbage) is False


def test_names():
    assert validate_name("  ci  ") == "ci"
    assert validate_name("x" * 100) == "x" * 100
    assert validate_name("빌드 서버") == "빌드 서버"
    for bad, message in [("", "empty"), ("   ", "empty"), ("x" * 101, "at most 100"),
                         ("a\nb", "control"), ("a\tb", "control"), (None, "string"), (5, "string")]:
        with pytest.raises(ValueError, match=message):
            validate_name(bad)
