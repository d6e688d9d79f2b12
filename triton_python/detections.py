"""Detector-agnostic post-processing maths (pure numpy, no Triton).

Shared by every detector's decoder (scrfd_decode.py, yunet_decode.py): the
grid of cell centres, offsets to points, the path from decoded candidates to
the faces a pipeline returns (division by the letterbox scale, NMS in photo
pixels, the max_faces cap, clipping) and the padding of a batch's faces into
fixed-shape output tensors.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import lru_cache

import numpy as np

Candidates = tuple[np.ndarray, np.ndarray, np.ndarray]  # scores (N,), boxes (N, 4), landmarks (N, 5, 2)


@lru_cache(maxsize=32)
def anchor_centers(input_size: int, stride: int, num_anchors: int) -> np.ndarray:
    """(x, y) of every anchor of a stride's feature map, row-major, anchors repeated.

    The cell in row r, column c sits at (c * stride, r * stride), index r * cells + c
    (times num_anchors, plus the anchor).
    """
    cells = input_size // stride
    ys, xs = np.mgrid[:cells, :cells]
    centers = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
    centers = np.repeat(centers, num_anchors, axis=0)
    centers.setflags(write=False)
    return centers


def offsets_to_points(centers: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(dx, dy) pairs from centers -> points, shape (N, K, 2)."""
    return centers[:, None, :] + offsets.reshape(len(offsets), offsets.shape[1] // 2, 2)


def no_candidates() -> Candidates:
    return np.zeros((0,), np.float32), np.zeros((0, 4), np.float32), np.zeros((0, 5, 2), np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression; returns kept indices, best score first.

    Areas use the inclusive-pixel convention (+1), as InsightFace's SCRFD code
    does; like it, run this on photo pixels (the +1 makes IoU scale-dependent).
    """
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size > 0:
        best = order[0]
        keep.append(best)
        rest = order[1:]
        width = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        height = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1)
        overlap = width * height
        iou = overlap / (areas[best] + areas[rest] - overlap)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def select_faces(
    scores: np.ndarray,
    boxes: np.ndarray,
    landmarks: np.ndarray,
    nms_threshold: float,
    max_faces: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """NMS, then keep the ``max_faces`` most confident (0 = all).

    Returns (scores, boxes, landmarks, count after NMS before the cap), best first.
    """
    keep = nms(boxes, scores, nms_threshold) if len(scores) else np.zeros(0, np.int64)
    after_nms = len(keep)
    if max_faces > 0:
        keep = keep[:max_faces]
    return scores[keep], boxes[keep], landmarks[keep], after_nms


def to_photo_coordinates(
    boxes: np.ndarray, landmarks: np.ndarray, scale_x: float, scale_y: float
) -> tuple[np.ndarray, np.ndarray]:
    """Detector-input pixels -> photo pixels, each axis by its own letterbox scale."""
    per_axis = np.float32([scale_x, scale_y])
    return boxes / np.tile(per_axis, 2), landmarks / per_axis


def clip_boxes(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Boxes clipped to the photo (landmarks are left as predicted)."""
    clipped = boxes.copy()
    np.clip(clipped[:, 0::2], 0, width, out=clipped[:, 0::2])
    np.clip(clipped[:, 1::2], 0, height, out=clipped[:, 1::2])
    return clipped


def invalid_parameters(
    confidence: np.ndarray, nms_threshold: np.ndarray, max_faces: np.ndarray
) -> str | None:
    """Why the request parameters are unusable, or None when they are fine."""
    if (np.all((0 <= confidence) & (confidence <= 1)) and np.all((0 <= nms_threshold) & (nms_threshold <= 1))
            and np.all(max_faces >= 0)):
        return None
    return "CONFIDENCE and NMS_THRESHOLD must lie in [0, 1] and MAX_FACES must be >= 0"


def postprocess_request(
    read: Callable[[str], np.ndarray], decode: Callable[[int, float], Candidates]
) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """One request of a detector's postprocess model: (output tensors, None), or (None, why
    its parameters are unusable). ``read(name)`` gives a request input; the detectors' models
    differ only in ``decode`` (see faces_for_batch)."""
    confidence = read("CONFIDENCE")[:, 0]
    nms_threshold = read("NMS_THRESHOLD")[:, 0]
    max_faces = read("MAX_FACES")[:, 0]
    problem = invalid_parameters(confidence, nms_threshold, max_faces)
    if problem:
        return None, problem
    return faces_for_batch(decode, read("SCALE"), read("ORIGINAL_SIZE"), confidence, nms_threshold,
                           max_faces), None


def faces_for_batch(
    decode: Callable[[int, float], Candidates],
    scales: np.ndarray,
    sizes: np.ndarray,
    confidence: np.ndarray,
    nms_threshold: np.ndarray,
    max_faces: np.ndarray,
) -> dict[str, np.ndarray]:
    """Every image of a batch from decoded candidates to the pipeline's output tensors.

    ``decode(i, threshold)`` returns image i's candidates scoring >= threshold in
    detector-input pixels. Per image: that, division by ``scales[i]`` (x, y), NMS
    in photo pixels and the ``max_faces[i]`` cap, boxes clipped to ``sizes[i]``
    (height, width). Faces come out best first, padded to the longest list in
    the batch; NUM_FACES says how many rows are real. Keys are the output names.
    """
    batch = len(scales)
    faces, counts = [], np.zeros((batch, 2), np.int32)
    decode_ms = np.zeros((batch, 1), np.float32)
    nms_ms = np.zeros((batch, 1), np.float32)
    for i in range(batch):
        t0 = time.perf_counter()
        scores, boxes, points = decode(i, float(confidence[i]))
        boxes, points = to_photo_coordinates(boxes, points, *scales[i])
        t1 = time.perf_counter()
        before_nms = len(scores)
        scores, boxes, points, after_nms = select_faces(
            scores, boxes, points, float(nms_threshold[i]), int(max_faces[i]))
        t2 = time.perf_counter()
        faces.append((scores, clip_boxes(boxes, *sizes[i]), points))
        counts[i] = (before_nms, after_nms)
        decode_ms[i, 0] = (t1 - t0) * 1000.0
        nms_ms[i, 0] = (t2 - t1) * 1000.0

    longest = max((len(f[0]) for f in faces), default=0)
    out_scores = np.zeros((batch, longest), np.float32)
    out_boxes = np.zeros((batch, longest, 4), np.float32)
    out_points = np.zeros((batch, longest, 5, 2), np.float32)
    num_faces = np.zeros((batch, 1), np.int32)
    for i, (scores, boxes, points) in enumerate(faces):
        n = len(scores)
        out_scores[i, :n], out_boxes[i, :n], out_points[i, :n] = scores, boxes, points
        num_faces[i, 0] = n
    return {
        "NUM_FACES": num_faces,
        "SCORES": out_scores,
        "BOXES": out_boxes,
        "LANDMARKS": out_points,
        "CANDIDATES": counts,
        "DECODE_MS": decode_ms,
        "NMS_MS": nms_ms,
    }
