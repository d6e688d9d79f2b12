"""Independent in-process SCRFD reference, following InsightFace's published decoding.

Written from ``insightface/python-package/insightface/model_zoo/scrfd.py``
(``SCRFD.detect``, ``SCRFD.forward``, ``distance2bbox``, ``distance2kps``,
``SCRFD.nms``) and deliberately sharing no code with the service's
``letterbox.py`` / ``scrfd_decode.py``, so that agreement between the two is
evidence rather than tautology.

Differences from InsightFace, all intended:

* the input is an RGB uint8 image (the service works in RGB), so the blob is
  built without InsightFace's ``swapRB=True``: its channels are R, G, B;
* ``max_faces`` keeps the most confident faces (InsightFace ranks by area and
  centring), because that is the service's documented contract;
* boxes are finally clipped to the photo (landmarks are not), again the
  service's contract;
* boxes and landmarks are mapped back to the photo with each axis's own
  resize factor (new_width / width, new_height / height). InsightFace divides
  both axes by the vertical factor; as the short side is truncated to whole
  pixels the two differ, which shifts InsightFace's x coordinates by up to
  0.25 % (about 3 px at the right edge of players.jpg).

onnxruntime is imported only when a ``ReferenceSCRFD`` is built, so the pure
decoding functions (``postprocess``) can be used without it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

INPUT_SIZE = 640
STRIDES = (8, 16, 32)
NUM_ANCHORS = 2
INPUT_MEAN = 127.5
INPUT_STD = 128.0
OUTPUT_NAMES = tuple(f"{kind}_{stride}" for kind in ("score", "bbox", "kps") for stride in STRIDES)


@dataclass
class ReferenceResult:
    scores: np.ndarray  # (N,)
    boxes: np.ndarray  # (N, 4) x1, y1, x2, y2 in photo pixels, clipped to the photo
    landmarks: np.ndarray  # (N, 5, 2) in photo pixels, not clipped
    candidates_before_nms: int
    det_scale: float
    candidates_after_nms: int = 0  # count after NMS, before the max_faces cap


def decode_image(path) -> np.ndarray:
    """Decode a photo file to an RGB uint8 H×W×3 array, EXIF orientation applied."""
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image)
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def resized_size(height: int, width: int, input_size: int = INPUT_SIZE) -> tuple[int, int]:
    """(new_height, new_width) as InsightFace's ``SCRFD.detect`` writes it, plus a one-pixel floor."""
    im_ratio = float(height) / width
    model_ratio = float(input_size) / input_size
    if im_ratio > model_ratio:
        new_height = input_size
        new_width = int(new_height / im_ratio)
    else:
        new_width = input_size
        new_height = int(new_width * im_ratio)
    return max(1, new_height), max(1, new_width)


def letterbox(img: np.ndarray, input_size: int = INPUT_SIZE) -> tuple[np.ndarray, tuple[float, float]]:
    """InsightFace ``SCRFD.detect`` resize: returns (det_img size×size×3 uint8, (scale_x, scale_y))."""
    new_height, new_width = resized_size(img.shape[0], img.shape[1], input_size)
    scales = (float(new_width) / img.shape[1], float(new_height) / img.shape[0])
    resized_img = cv2.resize(img, (new_width, new_height))
    det_img = np.zeros((input_size, input_size, 3), dtype=np.uint8)
    det_img[:new_height, :new_width, :] = resized_img
    return det_img, scales


def make_blob(det_img: np.ndarray) -> np.ndarray:
    """HWC uint8 -> 1×3×H×W float32 of (x - 127.5) / 128, channel order unchanged."""
    blob = (det_img.astype(np.float32) - INPUT_MEAN) / INPUT_STD
    return np.ascontiguousarray(blob.transpose(2, 0, 1)[None], dtype=np.float32)


def anchor_centers(height: int, width: int, stride: int, num_anchors: int = NUM_ANCHORS) -> np.ndarray:
    """InsightFace 'solution-3' anchor centres: (x, y) * stride, row-major, repeated per anchor."""
    centers = np.stack(np.mgrid[:height, :width][::-1], axis=-1).astype(np.float32)
    centers = (centers * stride).reshape((-1, 2))
    if num_anchors > 1:
        centers = np.stack([centers] * num_anchors, axis=1).reshape((-1, 2))
    return centers


def distance2bbox(points: np.ndarray, distance: np.ndarray) -> np.ndarray:
    x1 = points[:, 0] - distance[:, 0]
    y1 = points[:, 1] - distance[:, 1]
    x2 = points[:, 0] + distance[:, 2]
    y2 = points[:, 1] + distance[:, 3]
    return np.stack([x1, y1, x2, y2], axis=-1)


def distance2kps(points: np.ndarray, distance: np.ndarray) -> np.ndarray:
    preds = []
    for i in range(0, distance.shape[1], 2):
        px = points[:, i % 2] + distance[:, i]
        py = points[:, i % 2 + 1] + distance[:, i + 1]
        preds.append(px)
        preds.append(py)
    return np.stack(preds, axis=-1)


def nms(dets: np.ndarray, thresh: float) -> list[int]:
    """InsightFace ``SCRFD.nms``: dets is (N, 5) x1, y1, x2, y2, score."""
    x1 = dets[:, 0]
    y1 = dets[:, 1]
    x2 = dets[:, 2]
    y2 = dets[:, 3]
    scores = dets[:, 4]

    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]

    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        xx1 = np.maximum(x1[i], x1[order[1:]])
        yy1 = np.maximum(y1[i], y1[order[1:]])
        xx2 = np.minimum(x2[i], x2[order[1:]])
        yy2 = np.minimum(y2[i], y2[order[1:]])

        w = np.maximum(0.0, xx2 - xx1 + 1)
        h = np.maximum(0.0, yy2 - yy1 + 1)
        inter = w * h
        ovr = inter / (areas[i] + areas[order[1:]] - inter)

        inds = np.where(ovr <= thresh)[0]
        order = order[inds + 1]

    return keep


def forward_decode(
    net_outs: dict[str, np.ndarray], threshold: float, input_size: int = INPUT_SIZE
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """InsightFace ``SCRFD.forward`` after the session run, for one image.

    ``net_outs`` maps output name (score_8, bbox_8, kps_8, ...) to that
    output for one image: (A, 1), (A, 4), (A, 10); a leading batch axis of 1
    is accepted and dropped.
    """
    scores_list, bboxes_list, kpss_list = [], [], []
    for stride in STRIDES:
        scores = _one_image(net_outs[f"score_{stride}"]).reshape(-1, 1)
        bbox_preds = _one_image(net_outs[f"bbox_{stride}"]).reshape(-1, 4) * stride
        kps_preds = _one_image(net_outs[f"kps_{stride}"]).reshape(-1, 10) * stride
        height = input_size // stride
        width = input_size // stride
        centers = anchor_centers(height, width, stride, NUM_ANCHORS)

        pos_inds = np.where(scores >= threshold)[0]
        bboxes = distance2bbox(centers, bbox_preds)
        scores_list.append(scores[pos_inds])
        bboxes_list.append(bboxes[pos_inds])
        kpss = distance2kps(centers, kps_preds)
        kpss = kpss.reshape((kpss.shape[0], -1, 2))
        kpss_list.append(kpss[pos_inds])
    return scores_list, bboxes_list, kpss_list


def _one_image(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 3:
        if array.shape[0] != 1:
            raise ValueError(f"expected one image's outputs, got batch of {array.shape[0]}")
        array = array[0]
    return array


def postprocess(
    net_outs: dict[str, np.ndarray],
    scales: tuple[float, float],
    height: int,
    width: int,
    confidence: float = 0.5,
    nms_threshold: float = 0.4,
    max_faces: int = 0,
    input_size: int = INPUT_SIZE,
) -> ReferenceResult:
    """InsightFace ``SCRFD.detect`` from raw outputs onwards, then the service's contract.

    Threshold, decode, divide by the per-axis ``scales``, NMS in photo pixels, best
    first, keep the ``max_faces`` most confident (0 = all), clip boxes to the
    height×width photo.
    """
    scores_list, bboxes_list, kpss_list = forward_decode(net_outs, confidence, input_size)

    scores = np.vstack(scores_list)
    scores_ravel = scores.ravel()
    order = scores_ravel.argsort()[::-1]
    scale_x, scale_y = scales
    bboxes = np.vstack(bboxes_list) / np.array([scale_x, scale_y, scale_x, scale_y], np.float32)
    kpss = np.vstack(kpss_list) / np.array([scale_x, scale_y], np.float32)
    pre_det = np.hstack((bboxes, scores)).astype(np.float32, copy=False)
    pre_det = pre_det[order, :]
    keep = nms(pre_det, nms_threshold)
    det = pre_det[keep, :]
    kpss = kpss[order, :, :]
    kpss = kpss[keep, :, :]
    after_nms = det.shape[0]

    # The service's contract from here on.
    by_score = np.argsort(-det[:, 4], kind="stable")
    det = det[by_score]
    kpss = kpss[by_score]
    if max_faces > 0:
        det = det[:max_faces]
        kpss = kpss[:max_faces]
    boxes = det[:, :4].copy()
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, width)
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, height)
    return ReferenceResult(
        scores=det[:, 4].copy(),
        boxes=boxes,
        landmarks=kpss.reshape(-1, 5, 2),
        candidates_before_nms=int(len(scores_ravel)),
        det_scale=float(scale_x if width >= height else scale_y),  # the long side's
        candidates_after_nms=int(after_nms),
    )


class ReferenceSCRFD:
    """SCRFD on onnxruntime (CPU), decoded the way InsightFace publishes it."""

    def __init__(self, onnx_path, threads: int = 0):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name
        available = {o.name for o in self.session.get_outputs()}
        missing = [name for name in OUTPUT_NAMES if name not in available]
        if missing:
            raise ValueError(f"{onnx_path}: missing SCRFD outputs {missing}")
        self.output_names = list(OUTPUT_NAMES)
        self.input_size = INPUT_SIZE

    def run(self, blob: np.ndarray) -> dict[str, np.ndarray]:
        """Raw outputs by name for a 1×3×640×640 blob."""
        outs = self.session.run(self.output_names, {self.input_name: blob})
        return dict(zip(self.output_names, outs))

    def detect(
        self, rgb: np.ndarray, confidence: float = 0.5, nms_threshold: float = 0.4, max_faces: int = 0
    ) -> ReferenceResult:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected RGB uint8 H×W×3, got {rgb.dtype} {rgb.shape}")
        det_img, scales = letterbox(rgb, self.input_size)
        net_outs = self.run(make_blob(det_img))
        return postprocess(
            net_outs,
            scales,
            rgb.shape[0],
            rgb.shape[1],
            confidence,
            nms_threshold,
            max_faces,
            self.input_size,
        )
