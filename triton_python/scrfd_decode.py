"""SCRFD output decoding (pure numpy, no Triton).

SCRFD predicts, for every anchor point of three feature maps (strides 8, 16
and 32, two anchors per cell), a face score, four distances from the anchor
to the box edges and five landmark offsets, all in units of the stride.
Decoding turns those into boxes and landmarks in detector-input pixels;
dividing by the letterbox scale maps them back onto the photo. The maths
every detector shares (cell grid, NMS, unscale, clip) live in detections.py
and are re-exported here.
"""

from __future__ import annotations

import numpy as np

from triton_python.detections import (
    anchor_centers,
    clip_boxes,
    nms,
    no_candidates,
    offsets_to_points,
    select_faces,
    to_photo_coordinates,
)

__all__ = [
    "anchor_centers", "clip_boxes", "decode_candidates", "distances_to_boxes", "nms",
    "offsets_to_points", "select_faces", "to_photo_coordinates",
]


def distances_to_boxes(centers: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """(left, top, right, bottom) distances from centers -> (x1, y1, x2, y2)."""
    return np.concatenate([centers - distances[:, 0:2], centers + distances[:, 2:4]], axis=1)


def decode_candidates(
    outputs: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]],
    input_size: int,
    num_anchors: int,
    threshold: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Anchors scoring >= threshold -> (scores (N,), boxes (N, 4), landmarks (N, 5, 2)).

    ``outputs`` maps stride -> (scores (A, 1), box distances (A, 4), landmark
    offsets (A, 10)) for one image, in detector-input pixels once decoded. A model
    without keypoints has None for the offsets; its landmarks come out as zeros.
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
        if offsets is None:
            all_points.append(np.zeros((hits.size, 5, 2), np.float32))
        else:
            all_points.append(offsets_to_points(centers, offsets.reshape(-1, 10)[hits] * stride))
    if not all_scores:
        return no_candidates()
    return np.concatenate(all_scores), np.concatenate(all_boxes), np.concatenate(all_points)
