"""Faces as the recognition contract shows them: their order, their shape, the aligned crop."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from frontend.schemas import recognition as schema

# An aligned face, as the *-only endpoints take it and the recognize pipelines make it:
# 112×112 RGB with the 5 points on InsightFace's alignment template.
ALIGNED_SIZE = 112
ALIGNED_TEMPLATE = ((38.2946, 51.6963), (73.5318, 51.5014), (56.0252, 71.7366),
                    (41.5493, 92.3655), (70.7299, 92.2041))


@dataclass(frozen=True)
class Face:
    vector: np.ndarray | None  # L2-normalised embedding; None when no face was found
    detect: schema.DetectResult


def areas(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def sort_order(scores: np.ndarray, boxes: np.ndarray, sort_type: int) -> list[int]:
    """Indices of the faces in the order detectSortType asks for (ties keep Triton's order,
    which is by confidence): 0 confidence high→low, 1 box area large→small,
    2 left→right (box left edge), 3 top→bottom (box top edge)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if sort_type == 0:
        key = -np.asarray(scores, dtype=np.float64).reshape(-1)
    elif sort_type == 1:
        key = -areas(boxes)
    elif sort_type == 2:
        key = boxes[:, 0]
    elif sort_type == 3:
        key = boxes[:, 1]
    else:
        raise ValueError(f"unknown detectSortType {sort_type}")
    return [int(i) for i in np.argsort(key, kind="stable")]


def face_detect(score: float, box: Sequence[float], points: Sequence[Sequence[float]]) -> schema.DetectResult:
    """A found face: coordinates rounded half to even to whole pixels, confidence to 4 digits."""
    left, top, right, bottom = (round(float(v)) for v in box)
    return schema.DetectResult(
        processed=True, confidence=round(float(score), 4),
        boundingBox=schema.BoundingBox(left=left, top=top, right=right, bottom=bottom),
        landmarks=[schema.Landmark(x=round(float(x)), y=round(float(y))) for x, y in points])


def no_face() -> schema.DetectResult:
    """What single-face endpoints report for an image without a face."""
    return schema.DetectResult(processed=False, confidence=0.0, boundingBox=schema.BoundingBox(),
                               landmarks=[schema.Landmark() for _ in range(5)])


def aligned_face() -> schema.DetectResult:
    """The face of an aligned crop (*-only): the whole 112×112 image, the template's points."""
    return face_detect(1.0, (0, 0, ALIGNED_SIZE, ALIGNED_SIZE), ALIGNED_TEMPLATE)
