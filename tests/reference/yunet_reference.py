"""Independent YuNet reference: OpenCV's own ``cv2.FaceDetectorYN``.

OpenCV decodes YuNet in C++ (``modules/objdetect/src/face_detect.cpp``) and
shares no code with the service's ``yunet_decode.py`` / ``detections.py``, so
agreement between the two is evidence rather than tautology.

To make the comparison fair, OpenCV gets exactly the pixels the detector sees
in the service: the photo letterboxed to 640×640 (aspect kept, top-left, zero
padding; built with InsightFace's resize arithmetic from ``scrfd_reference``,
not the service's ``letterbox.py``) in BGR order. At that size
``FaceDetectorYN`` pads nothing, so its coordinates are canvas pixels;
dividing each axis by its own resize factor maps them to the photo.

NMS comes in two flavours (``nms=``):

* ``"contract"`` (default): OpenCV with its NMS switched off (IoU threshold 1
  keeps every candidate), then InsightFace's published NMS
  (``scrfd_reference.nms``: inclusive +1 areas, on photo pixels), which is what
  the service promises for every detector pipeline, so one ``nms_threshold``
  means the same thing whichever detector serves it;
* ``"opencv"``: OpenCV's own ``cv::dnn::NMSBoxes``, which runs on the boxes
  truncated to whole canvas pixels (``Rect2i(int(x), int(y), int(w), int(h))``)
  with IoU without the +1. The truncation moves the IoU of small boxes by a
  few hundredths, so the two flavours disagree on some crowd faces a few
  canvas pixels wide whose overlap lies near the threshold.

Then, as the service's contract says: best first, ``max_faces`` keeps the most
confident (OpenCV's ``top_k`` caps candidates *before* NMS, so it is set high
enough never to bite), boxes clipped to the photo, landmarks not.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from tests.reference.scrfd_reference import decode_image, letterbox, nms

__all__ = ["INPUT_SIZE", "ReferenceResult", "ReferenceYuNet", "decode_image"]

INPUT_SIZE = 640
TOP_K = 100_000  # candidates OpenCV keeps before NMS: all of them (6,400 + 1,600 + 400 cells)


@dataclass
class ReferenceResult:
    scores: np.ndarray  # (N,)
    boxes: np.ndarray  # (N, 4) x1, y1, x2, y2 in photo pixels, clipped to the photo
    landmarks: np.ndarray  # (N, 5, 2) in photo pixels, not clipped; OpenCV's order
    canvas_boxes: np.ndarray  # (N, 4) x1, y1, x2, y2 on the 640×640 canvas, before clipping
    candidates_before_nms: int
    candidates_after_nms: int  # before the max_faces cap


class ReferenceYuNet:
    """YuNet through ``cv2.FaceDetectorYN`` on the letterboxed canvas."""

    def __init__(self, onnx_path, input_size: int = INPUT_SIZE):
        self.onnx_path = str(onnx_path)
        self.input_size = input_size

    def detect_canvas(self, bgr_canvas: np.ndarray, confidence: float, nms_threshold: float) -> np.ndarray:
        """OpenCV's rows (x, y, w, h, 5 × (x, y), score) for a size×size BGR canvas, best first."""
        detector = cv2.FaceDetectorYN.create(
            self.onnx_path, "", (self.input_size, self.input_size), confidence, nms_threshold, TOP_K
        )
        _, faces = detector.detect(bgr_canvas)
        if faces is None:
            return np.zeros((0, 15), np.float32)
        return faces[np.argsort(-faces[:, 14], kind="stable")]

    def detect(
        self,
        rgb: np.ndarray,
        confidence: float = 0.5,
        nms_threshold: float = 0.4,
        max_faces: int = 0,
        nms_flavour: str = "contract",
    ) -> ReferenceResult:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected RGB uint8 H×W×3, got {rgb.dtype} {rgb.shape}")
        if nms_flavour not in ("contract", "opencv"):
            raise ValueError(f"nms_flavour must be 'contract' or 'opencv', got {nms_flavour!r}")
        canvas, (scale_x, scale_y) = letterbox(rgb, self.input_size)
        bgr = np.ascontiguousarray(canvas[:, :, ::-1])
        candidates = self.detect_canvas(bgr, confidence, 1.0)  # IoU <= 1 always: NMS keeps everything

        if nms_flavour == "opencv":
            faces = self.detect_canvas(bgr, confidence, nms_threshold)
        else:
            boxes = _corners(candidates) / np.array([scale_x, scale_y, scale_x, scale_y])
            keep = nms(np.hstack([boxes, candidates[:, 14:15]]), nms_threshold)
            faces = candidates[keep]
        after_nms = len(faces)
        if max_faces > 0:
            faces = faces[:max_faces]

        canvas_boxes = _corners(faces)
        boxes = canvas_boxes / np.array([scale_x, scale_y, scale_x, scale_y])
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, rgb.shape[1])
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, rgb.shape[0])
        landmarks = faces[:, 4:14].reshape(-1, 5, 2) / np.array([scale_x, scale_y])
        return ReferenceResult(faces[:, 14].copy(), boxes, landmarks, canvas_boxes,
                               len(candidates), after_nms)


def _corners(faces: np.ndarray) -> np.ndarray:
    """OpenCV's (x, y, w, h) -> (x1, y1, x2, y2)."""
    x, y, w, h = faces[:, 0], faces[:, 1], faces[:, 2], faces[:, 3]
    return np.stack([x, y, x + w, y + h], axis=1)
