"""Unit vectors, cosine similarity, and the checks two features must pass to be compared."""

from __future__ import annotations

import math

import numpy as np
from fastapi.exceptions import RequestValidationError

from frontend.errors import invalid


def unit(vector: np.ndarray) -> np.ndarray:
    """``vector`` scaled to length 1 (float32); a zero vector stays zero."""
    vector = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector.astype(np.float64)))
    return vector if norm == 0.0 else (vector / norm).astype(np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity in [-1, 1], rounded to 6 digits; 0.0 when either vector is zero."""
    a64 = np.asarray(a, dtype=np.float64).reshape(-1)
    b64 = np.asarray(b, dtype=np.float64).reshape(-1)
    norms = float(np.linalg.norm(a64)) * float(np.linalg.norm(b64))
    if norms == 0.0 or not math.isfinite(norms):
        return 0.0
    return round(min(1.0, max(-1.0, float(a64 @ b64) / norms)), 6)


def check_same_length(vectors: dict[str, np.ndarray]) -> None:
    """422 unless the two features (by field name) have as many values: one recognizer made both."""
    first, second = vectors.values()
    if len(first) != len(second):
        raise invalid(("body",), f"feature1 and feature2 differ in length ({4 * len(first)} and "
                                 f"{4 * len(second)} bytes): they come from different recognizers")


def check_features(vectors: dict[str, np.ndarray], size: int, recognizer: str) -> None:
    """422 unless each feature (by field name) has the served recognizer's ``size`` values,
    some of them finite and not 0."""
    if any(len(vector) != size for vector in vectors.values()):
        raise RequestValidationError([
            {"loc": ("body", name), "type": "value_error",
             "msg": f"{name} is {4 * len(vector)} bytes; a feature of {recognizer} is {4 * size} "
                    f"bytes ({size} float32 values)"} for name, vector in vectors.items()])
    for field, vector in vectors.items():
        if not np.all(np.isfinite(vector)) or not np.any(vector):
            raise invalid(("body", field), f"{field} is not a feature: its values are all 0, "
                                           "infinite or NaN")
