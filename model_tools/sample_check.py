"""The last step of ./face-api models add: the sample photos through the new model.

The rewritten graph must answer what the file answers (largest difference per
output, on real photos, batched when the rewrite batches), and what it answers
must look like faces: a detector's faces per photo, decoded by the code the
pipelines run (triton_python/); a recogniser's embeddings of the faces its
detector finds, aligned as face_align aligns them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from PIL import Image, ImageOps

from model_tools import onnx_inspect
from model_tools.onnx_inspect import ANCHORS, DETECTOR_SIZE, STRIDES, Inspection
from runtime.cpu_repository import onnx_weight, read_config
from triton_python import scrfd_decode, yunet_decode
from triton_python.alignment import align_faces
from triton_python.detections import select_faces, to_photo_coordinates
from triton_python.letterbox import letterbox, to_blob

# The letterbox model each detector family's pipelines use, whose parameters say how photos are fed.
LETTERBOX = {"scrfd": "face_letterbox", "yunet": "yunet_letterbox"}
CONFIDENCE, NMS_THRESHOLD = 0.5, 0.4  # the API's defaults
MAX_DIFFERENCE = 1e-3  # float noise between the file and its rewrite; more is a broken rewrite
MIN_COSINE = 0.9999


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # the rewrite does not answer what the file does


@dataclass(frozen=True)
class Feed:
    """How a model's input is made from pixels: (x - mean) / std, channels in this order."""

    mean: float
    std: float
    channel_order: str

    def blob(self, rgb: np.ndarray) -> np.ndarray:
        return to_blob(rgb, self.mean, self.std, swap_rb=self.channel_order.upper() == "BGR")


def photos(samples: Path) -> dict[str, np.ndarray]:
    found = {}
    for path in sorted(samples.glob("*.jpg")):
        with Image.open(path) as image:
            found[path.name] = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    return found


def detector_feed(repository: Path, family: str) -> Feed:
    params = read_config(repository / LETTERBOX[family]).parameters
    return Feed(float(params["mean"].string_value), float(params["std"].string_value),
                params["channel_order"].string_value)


class Detector:
    """A detector leaf run in-process, decoded as its postprocess model decodes it."""

    def __init__(self, model, family: str, feed: Feed):
        self.session = onnx_inspect.session(model) if isinstance(model, onnx.ModelProto) else model
        self.input = self.session.get_inputs()[0].name
        self.family, self.feed = family, feed

    def blob(self, rgb: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
        canvas, scale = letterbox(rgb, DETECTOR_SIZE)
        return self.feed.blob(canvas), scale

    def faces(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(scores, boxes, landmarks) in photo pixels, best first."""
        blob, scale = self.blob(rgb)
        out = onnx_inspect.run(self.session, {self.input: blob[None]})
        if self.family == "scrfd":
            raw = {s: (out[f"score_{s}"][0], out[f"bbox_{s}"][0],
                       out[f"kps_{s}"][0] if f"kps_{s}" in out else None)  # SCRFD without keypoints
                   for s in STRIDES}
            scores, boxes, points = scrfd_decode.decode_candidates(raw, DETECTOR_SIZE, ANCHORS["scrfd"],
                                                                   CONFIDENCE)
        else:
            raw = {s: tuple(out[f"{k}_{s}"][0] for k in ("cls", "obj", "bbox", "kps")) for s in STRIDES}
            scores, boxes, points = yunet_decode.decode_candidates(raw, DETECTOR_SIZE, CONFIDENCE)
        boxes, points = to_photo_coordinates(boxes, points, *scale)
        scores, boxes, points, _ = select_faces(scores, boxes, points, NMS_THRESHOLD, 0)
        return scores, boxes, points


def _compare(original, normalised, inspection: Inspection, items: np.ndarray, report: Report) -> None:
    """Record the largest difference between the file and its rewrite (models or sessions) on ``items``."""
    worst = onnx_inspect.differences(original, normalised, inspection, items)
    largest = max(worst.values())
    where = max(worst, key=worst.get)
    line = (f"the rewritten graph answers what {len(items)} sample input(s) give the file: largest "
            f"difference {largest:.2g} ({where})")
    report.lines.append(line)
    if largest > MAX_DIFFERENCE:
        report.problems.append(f"the rewritten graph differs from the file by {largest:.3g} on {where}")


def check_detector(original: onnx.ModelProto, normalised: onnx.ModelProto, inspection: Inspection,
                   repository: Path, samples: Path) -> Report:
    report = Report()
    pictures = photos(samples)
    detector = Detector(normalised, inspection.family, detector_feed(repository, inspection.family))
    if not pictures:
        report.lines.append(f"no sample photos in {samples} (./face-api weights fetches them): "
                            "compared on noise only")
        noise = np.random.default_rng(0).standard_normal((2, 3, DETECTOR_SIZE, DETECTOR_SIZE))
        _compare(original, normalised, inspection, noise.astype(np.float32), report)
        return report
    _compare(original, normalised, inspection,
             np.stack([detector.blob(rgb)[0] for rgb in pictures.values()]), report)
    total = 0
    for name, rgb in pictures.items():
        scores, boxes, _ = detector.faces(rgb)
        total += len(scores)
        best = f" (scores {scores.max():.2f} … {scores.min():.2f})" if len(scores) else ""
        report.lines.append(f"{samples.name}/{name}: {_faces(len(scores))}{best}")
    if total == 0:
        report.lines.append("warning: no face found in any sample photo; check the model's input "
                            "normalisation against its source")
    return report


def check_recogniser(original: onnx.ModelProto, normalised: onnx.ModelProto, inspection: Inspection,
                     feed: Feed, detector_name: str, repository: Path, samples: Path) -> Report:
    report = Report()
    detector_dir = repository / detector_name
    config = read_config(detector_dir)
    weight = onnx_weight(detector_dir, config)
    pictures = photos(samples)
    crops = []
    if weight is not None and pictures:
        family = config.parameters["family"].string_value
        detector = Detector(onnx_inspect.session(onnx.load(str(weight[1]))), family,
                            detector_feed(repository, family))
        for name, rgb in pictures.items():
            _, _, points = detector.faces(rgb)
            crops.extend(align_faces(rgb, points))
            report.lines.append(f"{samples.name}/{name}: {_faces(len(points))} found by {detector_name}")
    if not crops:
        report.lines.append("no aligned face to embed (no sample photos, or the detector's weights are "
                            "absent): compared on noise only")
        noise = np.random.default_rng(0).standard_normal((2, 3, inspection.height, inspection.width))
        _compare(original, normalised, inspection, noise.astype(np.float32), report)
        return report
    items = np.stack([feed.blob(crop) for crop in crops])
    original, normalised = onnx_inspect.session(original), onnx_inspect.session(normalised)
    _compare(original, normalised, inspection, items, report)
    output = next(iter(inspection.outputs))
    mine = np.stack([onnx_inspect.run(normalised, {inspection.served_input: item[None]})[output][0]
                     for item in items])
    theirs = np.stack([onnx_inspect.served_outputs(original, inspection, item)[output] for item in items])
    cosine = float(np.min(np.sum(_unit(mine) * _unit(theirs), axis=1)))
    report.lines.append(f"{len(crops)} faces embedded ({mine.shape[1]}-d); lowest cosine between the "
                        f"file's and the rewrite's embeddings: {cosine:.6f}")
    if cosine < MIN_COSINE:
        report.problems.append(f"the rewrite's embeddings differ from the file's (cosine {cosine:.4f})")
    return report


def _faces(count: int) -> str:
    return f"{count} face" + ("" if count == 1 else "s")


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
