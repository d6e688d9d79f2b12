"""Letterbox maths for square-input face detectors (pure numpy + OpenCV, no Triton).

The image is scaled to fit the detector's square input without distortion,
placed in the top-left corner of a zero canvas, then normalised into a CHW
float blob. Sizes are computed exactly as InsightFace's SCRFD code does, so the
detector sees the same pixels. Top-left placement means no offset: mapping
back to the photo is a division by the per-axis scale. (The two axes' scales
differ slightly because the short side is truncated to whole pixels;
InsightFace divides both by the vertical one, which shifts x by up to 0.25 %.)
"""

from __future__ import annotations

import cv2
import numpy as np


def fit_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(new_height, new_width) fitting height×width into size×size, as InsightFace computes
    them (float aspect ratio, truncated); the short side never drops below one pixel."""
    if height <= 0 or width <= 0:
        raise ValueError(f"image must have positive dimensions, got {height}x{width}")
    ratio = float(height) / width
    if ratio > 1.0:
        return size, max(1, int(size / ratio))
    return max(1, int(size * ratio)), size


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, tuple[float, float]]:
    """Scale ``image`` (H×W×3 uint8) onto a size×size zero canvas.

    Returns (canvas, (scale_x, scale_y)): detector pixels per photo pixel on each axis.
    """
    height, width = image.shape[:2]
    new_height, new_width = fit_size(height, width, size)
    canvas = np.zeros((size, size, image.shape[2]), dtype=np.uint8)
    canvas[:new_height, :new_width] = cv2.resize(
        image, (new_width, new_height), interpolation=cv2.INTER_LINEAR
    )
    return canvas, (new_width / width, new_height / height)


def to_blob(canvas: np.ndarray, mean: float, std: float, swap_rb: bool,
            out: np.ndarray | None = None) -> np.ndarray:
    """HWC uint8 canvas -> CHW float32 blob of (pixel - mean) / std, written into ``out``
    (3×H×W float32, e.g. one row of the batch being answered) when given.

    Channel by channel: each uint8 plane is widened straight into its place, which
    is several times cheaper than transposing the whole float image.
    """
    height, width = canvas.shape[:2]
    if out is None:
        out = np.empty((3, height, width), dtype=np.float32)
    mean32, std32 = np.float32(mean), np.float32(std)
    for channel in range(3):
        source = 2 - channel if swap_rb else channel
        np.subtract(canvas[:, :, source], mean32, out=out[channel], dtype=np.float32)
    np.divide(out, std32, out=out)
    return out
