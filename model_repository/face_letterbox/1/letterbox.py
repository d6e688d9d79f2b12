"""Letterbox maths for square-input face detectors (pure numpy + OpenCV, no Triton).

The image is scaled to fit the detector's square input without distortion,
placed in the top-left corner of a zero canvas, then normalised into a CHW
float blob. Top-left placement keeps the mapping back to the original image a
single division by ``scale`` (no offset), as in InsightFace's SCRFD code.
"""

from __future__ import annotations

import cv2
import numpy as np


def fit_size(height: int, width: int, size: int) -> tuple[int, int, float]:
    """Return (new_height, new_width, scale) for fitting height×width into size×size."""
    if height <= 0 or width <= 0:
        raise ValueError(f"image must have positive dimensions, got {height}x{width}")
    if height > width:
        new_height = size
        new_width = max(1, int(new_height * width / height))
    else:
        new_width = size
        new_height = max(1, int(new_width * height / width))
    return new_height, new_width, new_height / height


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """Scale ``image`` (H×W×3 uint8) onto a size×size zero canvas; return (canvas, scale)."""
    new_height, new_width, scale = fit_size(image.shape[0], image.shape[1], size)
    canvas = np.zeros((size, size, image.shape[2]), dtype=np.uint8)
    canvas[:new_height, :new_width] = cv2.resize(
        image, (new_width, new_height), interpolation=cv2.INTER_LINEAR
    )
    return canvas, scale


def to_blob(canvas: np.ndarray, mean: float, std: float, swap_rb: bool) -> np.ndarray:
    """HWC uint8 canvas -> CHW float32 blob of (pixel - mean) / std."""
    if swap_rb:
        canvas = canvas[:, :, ::-1]
    blob = canvas.transpose(2, 0, 1).astype(np.float32)
    blob -= mean
    blob /= std
    return blob
