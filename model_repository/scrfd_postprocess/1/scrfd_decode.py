"""SCRFD output decoding (pure numpy, no Triton).

SCRFD predicts, for every anchor point of three feature maps (strides 8, 16
and 32, two anchors per cell), a face score, four distances from the anchor
to the box edges and five landmark offsets, all in units of the stride.
Decoding turns those into boxes and landmarks in detector-input pixels;
dividing by the letterbox scale maps them back onto the photo.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=32)
def anchor_centers(input_size: int, stride: int, num_anchors: int) -> np.ndarray:
    """(x, y) of every anchor of a stride's feature map, row-major, anchors repeated."""
    cells = input_size // stride
    ys, xs = np.mgrid[:cells, :cells]
    centers = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
    centers = np.repeat(centers, num_anchors, axis=0)
    centers.setflags(write=False)
    return centers


def distances_to_boxes(centers: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """(left, top, right, bottom) distances from centers -> (x1, y1, x2, y2)."""
    return np.concatenate([centers - distances[:, 0:2], centers + distances[:, 2:4]], axis=1)


def offsets_to_points(centers: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(dx, dy) pairs from centers -> points, shape (N, K, 2)."""
    return centers[:, None, :] + offsets.reshape(len(offsets), offsets.shape[1] // 2, 2)


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


def decode_candidates(
    outputs: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]],
    input_size: int,
    num_anchors: int,
    threshold: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Anchors scoring >= threshold -> (scores (N,), boxes (N, 4), landmarks (N, 5, 2)).

    ``outputs`` maps stride -> (scores (A, 1), box distances (A, 4), landmark
    offsets (A, 10)) for one image, in detector-input pixels once decoded.
    """
    all_scores, all_boxes, all_points = [], [], []
    for stride, (scores, distances, offsets) in sorted(outputs.items()):
        scores = scores.reshape(-1)
        hits = np.nonzero(scores >= threshold)[0]
        if hits.size == 0:
            continue
        centers = anchor_centers(input_size, stride, num_anchors)[hits]
        all_scores.append(scores[hits])
        all_boxes.append(distances_to_boxes(centers, distances.reshape(-1, 4)[hits] * stride))
        all_points.append(offsets_to_points(centers, offsets.reshape(-1, 10)[hits] * stride))
    if not all_scores:
        return (
            np.zeros((0,), np.float32),
            np.zeros((0, 4), np.float32),
            np.zeros((0, 5, 2), np.float32),
        )
    return np.concatenate(all_scores), np.concatenate(all_boxes), np.concatenate(all_points)


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
