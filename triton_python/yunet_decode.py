"""YuNet (2023mar) output decoding (pure numpy, no Triton).

YuNet is anchor-free: for every cell of three feature maps (strides 8, 16
and 32; cell (row r, column c) at index r * cols + c) it predicts a class
score, an objectness score, a box and five landmarks. Decoding follows
OpenCV's ``FaceDetectorYN`` (``modules/objdetect/src/face_detect.cpp``,
``postProcess``), in detector-input pixels:

* score = sqrt(clip(cls, 0, 1) * clip(obj, 0, 1));
* box centre = ((c + bbox0) * s, (r + bbox1) * s), size = (exp(bbox2) * s,
  exp(bbox3) * s);
* landmark k = ((kps[2k] + c) * s, (kps[2k + 1] + r) * s).

The landmarks come in SCRFD's order: the eye on the image's left (the
subject's right eye, OpenCV's "re"), the eye on the image's right, the nose
tip, the mouth corner on the image's left, the one on the image's right.
The path from candidates to faces (unscale, NMS, cap, clip) is the one every
detector shares, in detections.py.
"""

from __future__ import annotations

import numpy as np

from triton_python.detections import Candidates, anchor_centers, no_candidates, offsets_to_points


def face_scores(cls: np.ndarray, obj: np.ndarray) -> np.ndarray:
    """Geometric mean of the class and objectness scores, each clipped to [0, 1]."""
    return np.sqrt(np.clip(cls, 0.0, 1.0) * np.clip(obj, 0.0, 1.0))


def deltas_to_boxes(cells: np.ndarray, deltas: np.ndarray, stride: int) -> np.ndarray:
    """Cell origins (c * s, r * s) and (dx, dy, log w, log h) in stride units -> (x1, y1, x2, y2)."""
    centres = cells + deltas[:, 0:2] * stride
    half = np.exp(deltas[:, 2:4]) * stride / 2
    return np.concatenate([centres - half, centres + half], axis=1)


def decode_candidates(
    outputs: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    input_size: int,
    threshold: float,
) -> Candidates:
    """Cells scoring >= threshold -> (scores (N,), boxes (N, 4), landmarks (N, 5, 2)).

    ``outputs`` maps stride -> (cls (A, 1), obj (A, 1), bbox (A, 4), kps (A, 10))
    for one image; the results are in detector-input pixels, strides ascending.
    """
    all_scores, all_boxes, all_points = [], [], []
    for stride, (cls, obj, deltas, offsets) in sorted(outputs.items()):
        scores = face_scores(cls.reshape(-1), obj.reshape(-1))
        hits = np.nonzero(scores >= threshold)[0]
        if hits.size == 0:
            continue
        cells = anchor_centers(input_size, stride, 1)[hits]
        all_scores.append(scores[hits])
        all_boxes.append(deltas_to_boxes(cells, deltas.reshape(-1, 4)[hits], stride))
        all_points.append(offsets_to_points(cells, offsets.reshape(-1, 10)[hits] * stride))
    if not all_scores:
        return no_candidates()
    return np.concatenate(all_scores), np.concatenate(all_boxes), np.concatenate(all_points)
