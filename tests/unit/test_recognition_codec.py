"""The recognition contract's pure maths: base64, the feature codec, cosine similarity."""

from __future__ import annotations

import base64
import struct

import numpy as np
import pytest
from fastapi.exceptions import RequestValidationError

from frontend.services.recognition.codec import (
    decode_base64,
    decode_feature,
    embeddings_list,
    encode_feature,
    version,
)
from frontend.services.recognition.scoring import cosine, unit

PAYLOAD = bytes(range(256)) * 3


def problem(error: pytest.ExceptionInfo) -> dict:
    (only,) = error.value.errors()
    return only


@pytest.mark.parametrize("text", [
    base64.b64encode(PAYLOAD).decode(),
    "data:image/jpeg;base64," + base64.b64encode(PAYLOAD).decode(),
    "DATA:image/png;BASE64," + base64.b64encode(PAYLOAD).decode(),
    base64.urlsafe_b64encode(PAYLOAD).decode(),  # URL-safe alphabet
    base64.b64encode(PAYLOAD).decode().rstrip("="),  # padding left off
    base64.encodebytes(PAYLOAD).decode(),  # MIME line breaks
    "  " + base64.b64encode(PAYLOAD).decode() + "\n",
])
def test_base64_is_accepted_in_its_common_spellings(text):
    assert decode_base64(text, "image") == PAYLOAD


@pytest.mark.parametrize("payload", [b"x", b"xy", b"xyz", bytes(range(256)) * 3 + b"\xfb\xff"])
def test_strict_and_lenient_spellings_decode_alike(payload):
    """The strict one-pass decode and the lenient path agree whatever the padding."""
    padded = base64.b64encode(payload).decode()
    spellings = [padded, padded.rstrip("="), base64.urlsafe_b64encode(payload).decode().rstrip("="),
                 "\n".join(padded[i:i + 4] for i in range(0, len(padded), 4))]
    assert {decode_base64(text, "image") for text in spellings} == {payload}


@pytest.mark.parametrize("text, why", [
    ("QUJD$", "it has characters outside the base64 alphabet"),
    ("QU=JD", "it has '=' padding before its end"),
    ("QUJDR", "its length is not possible for base64"),
])
def test_bad_base64_says_what_is_wrong(text, why):
    with pytest.raises(RequestValidationError) as error:
        decode_base64(text, "image")
    assert problem(error)["msg"] == f"image is not valid base64 ({why})"


@pytest.mark.parametrize("text", ["not base64!", "QUJD$", "A", "data:image/png,QUJD", "é" * 8])
def test_bad_base64_is_a_422_naming_the_field(text):
    with pytest.raises(RequestValidationError) as error:
        decode_base64(text, "image2")
    found = problem(error)
    assert found["loc"] == ("body", "image2")
    assert found["type"] == "base64_decode"
    assert found["msg"].startswith("image2 is")


def test_base64_of_nothing_is_refused():
    with pytest.raises(RequestValidationError) as error:
        decode_base64("data:image/png;base64,", "image")
    assert problem(error)["msg"] == "image is empty"


def test_feature_is_base64_of_little_endian_float32():
    vector = np.array([1.0, -0.5, 0.25, 3.0e-8], np.float32)
    feature = encode_feature(vector)
    raw = base64.b64decode(feature, validate=True)
    assert raw == struct.pack("<4f", *vector.tolist())
    assert feature == base64.b64encode(raw).decode()  # standard alphabet, padded
    assert len(feature) % 4 == 0


def test_feature_round_trips_bit_for_bit():
    rng = np.random.default_rng(7)
    vector = unit(rng.normal(size=512))
    decoded = decode_feature(encode_feature(vector), "feature1")
    assert decoded.dtype == np.float32 and decoded.shape == (512,)
    assert decoded.tobytes() == vector.tobytes()
    assert len(base64.b64decode(encode_feature(vector))) == 4 * 512


def test_feature_of_a_partial_float_is_refused():
    with pytest.raises(RequestValidationError) as error:
        decode_feature(base64.b64encode(b"\x00" * 10).decode(), "feature2")
    found = problem(error)
    assert found["loc"] == ("body", "feature2")
    assert "10 bytes" in found["msg"]


def test_unit_makes_length_one_and_keeps_zero():
    vector = unit(np.array([3.0, 4.0]))
    assert vector.dtype == np.float32
    assert np.allclose(vector, [0.6, 0.8])
    assert not unit(np.zeros(4)).any()


def test_cosine_maths():
    a = unit(np.array([1.0, 0.0, 0.0]))
    assert cosine(a, a) == 1.0
    assert cosine(a, -a) == -1.0
    assert cosine(a, np.array([0.0, 2.0, 0.0])) == 0.0
    assert cosine(np.array([1.0, 1.0]), np.array([1.0, 0.0])) == round(1 / np.sqrt(2), 6)
    assert cosine(np.zeros(3), a) == 0.0


def test_cosine_is_rounded_to_six_digits_and_bounded():
    rng = np.random.default_rng(1)
    for _ in range(100):
        a, b = unit(rng.normal(size=128)), unit(rng.normal(size=128))
        value = cosine(a, b)
        assert -1.0 <= value <= 1.0
        assert value == round(value, 6)
        assert value == pytest.approx(float(a.astype(np.float64) @ b.astype(np.float64)), abs=1e-6)


def test_feature_score_equals_score_of_the_same_vectors():
    rng = np.random.default_rng(3)
    a, b = unit(rng.normal(size=512)), unit(rng.normal(size=512))
    through_features = cosine(decode_feature(encode_feature(a), "f1"),
                              decode_feature(encode_feature(b), "f2"))
    assert through_features == cosine(a, b)


def test_embeddings_keep_full_float32_precision():
    vector = unit(np.random.default_rng(5).normal(size=512))
    values = embeddings_list(vector)
    assert all(type(v) is float for v in values)
    assert np.array(values, np.float32).tobytes() == vector.tobytes()


def test_version_names_the_recognizer():
    from frontend import __version__

    assert version("arcface_w600k_mbf") == f"{__version__}+arcface_w600k_mbf"
    assert __version__ == "0.2.0"
