"""What the recognition contract's endpoints (/v1/*) do, between the routers and Triton.

The first half is pure and unit-tested without Triton: base64 and the feature
codec, face ordering and selection, cosine similarity, the contract's face
shapes, model-config descriptions. The second half, ``Recognition``, holds one
worker's view of the served pair (its detect pipeline, its recognizer) and
makes the Triton calls: ``recognize_<recognizer>`` finds faces and embeds them
in one call, ``detect_<pair's detector>`` serves /v1/detect, and the
recognize pipeline's ``embed_aligned`` serves the *-only endpoints.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from anyio import to_thread
from fastapi.exceptions import RequestValidationError

from frontend import __version__
from frontend.errors import ApiError, invalid
from frontend.imaging import budget
from frontend.imaging.decode import decode_image
from frontend.inference.triton import Faces, TritonClient, TritonUnavailable
from frontend.observability.context import note_upload
from frontend.schemas import recognition as schema
from frontend.settings import Settings

log = logging.getLogger("face_api.recognition")

# An aligned face, as the *-only endpoints take it and the recognize pipeline makes it:
# 112×112 RGB with the 5 points on InsightFace's ArcFace template (SFace uses the same).
ALIGNED_SIZE = 112
ARCFACE_TEMPLATE = ((38.2946, 51.6963), (73.5318, 51.5014), (56.0252, 71.7366),
                    (41.5493, 92.3655), (70.7299, 92.2041))
# base64 strings longer than this are decoded off the event loop.
INLINE_BASE64 = 64 * 1024
WHITESPACE = re.compile(r"\s+")
NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/=]")  # after the URL-safe characters are mapped


# --- base64 and the feature codec ---

def decode_base64(text: str, field: str) -> bytes:
    """The bytes of a base64 string, as leniently as is unambiguous.

    Accepted: the standard and the URL-safe alphabet, with or without padding,
    line breaks and other whitespace, and a ``data:<type>;base64,`` prefix.
    Anything else is a 422 naming ``field``.
    """
    text = text.strip()
    if text[:5].lower() == "data:":
        comma = text.find(",")
        if comma < 0 or not text[:comma].lower().endswith(";base64"):
            raise invalid(("body", field), f"{field} is a data: URL without ';base64,'", "base64_decode")
        text = text[comma + 1:]
    if WHITESPACE.search(text):
        text = WHITESPACE.sub("", text)
    if "-" in text or "_" in text:
        text = text.replace("-", "+").replace("_", "/")
    # Said in the contract's words, not binascii's.
    body = text.rstrip("=")
    problem = ("it has characters outside the base64 alphabet" if NOT_BASE64.search(body)
               else "it has '=' padding before its end" if "=" in body
               else "its length is not possible for base64")
    text += "=" * (-len(text) % 4)
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(("body", field), f"{field} is not valid base64 ({problem})", "base64_decode") from None
    if not data:
        raise invalid(("body", field), f"{field} is empty")
    return data


def encode_feature(vector: np.ndarray) -> str:
    """A feature: base64 (standard alphabet, padded) of the vector as little-endian float32."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def decode_feature(text: str, field: str) -> np.ndarray:
    """The float32 vector of a feature; 422 when it is not base64 of whole float32 values."""
    raw = decode_base64(text, field)
    if len(raw) % 4:
        raise invalid(("body", field), f"{field} is {len(raw)} bytes, not a whole number of float32 "
                                       "values (4 bytes each)")
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


def unit(vector: np.ndarray) -> np.ndarray:
    """``vector`` scaled to length 1 (float32); a zero vector stays zero."""
    vector = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector.astype(np.float64)))
    return vector if norm == 0.0 else (vector / norm).astype(np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity in [-1, 1], rounded to 6 digits; 0.0 when either vector is zero."""
    a64 = np.asarray(a, dtype=np.float64).reshape(-1)
    b64 = np.asarray(b, dtype=np.float64).reshape(-1)
    norms = float(np.linalg.norm(a64)) * float(np.linalg.norm(b64))
    if norms == 0.0 or not math.isfinite(norms):
        return 0.0
    return round(min(1.0, max(-1.0, float(a64 @ b64) / norms)), 6)


def version(recognizer: str) -> str:
    """The ``version`` of feature and embeddings responses: features compare only within one."""
    return f"{__version__}+{recognizer}"


# --- faces ---

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
    return face_detect(1.0, (0, 0, ALIGNED_SIZE, ALIGNED_SIZE), ARCFACE_TEMPLATE)


def embeddings_list(vector: np.ndarray) -> list[float]:
    """The float32 values as JSON numbers, unrounded (each parses back to the same float32)."""
    return np.asarray(vector, dtype=np.float32).astype(np.float64).tolist()


# --- images ---

def decode_upload_base64(text: str, field: str) -> bytes:
    """The bytes of an image sent as base64, counted as uploaded (files are counted as they are read)."""
    data = decode_base64(text, field)
    note_upload(len(data))
    return data


def load_image(source: str | bytes, field: str, max_bytes: int, max_pixels: int) -> np.ndarray:
    """RGB pixels of an image sent as base64 (str) or as a file (bytes).

    Too many bytes or pixels stay 413 ({"detail": "..."}); everything else that
    keeps the image from being used is a 422 at ``("body", field)``.
    """
    data = decode_upload_base64(source, field) if isinstance(source, str) else source
    if len(data) > max_bytes:
        raise ApiError(413, f"{field} is larger than {max_bytes} bytes (FACE_API_MAX_UPLOAD_BYTES)")
    try:
        return decode_image(data, max_pixels).pixels
    except ApiError as error:
        if error.status_code == 413:
            raise
        raise invalid(("body", field), f"{field}: {error.detail}") from None


def check_aligned(pixels: np.ndarray, field: str) -> None:
    height, width = pixels.shape[:2]
    if (width, height) != (ALIGNED_SIZE, ALIGNED_SIZE):
        raise invalid(("body", field),
                      f"{field} is {width}x{height} pixels; this endpoint takes an aligned face of exactly "
                      f"{ALIGNED_SIZE}x{ALIGNED_SIZE} pixels (use /v1/feature or /v1/embeddings for photos)")


def merge(errors: Sequence[BaseException]) -> BaseException | None:
    """One exception for several failed inputs: the first 413 if any, else every 422 together."""
    for error in errors:
        if not isinstance(error, RequestValidationError):
            return error
    problems = [p for error in errors for p in error.errors()]
    return RequestValidationError(problems) if problems else None


# --- model configs (Triton's JSON, snake_case or camelCase keys) ---

def _get(config: dict, name: str, default: Any = None) -> Any:
    if name in config:
        return config[name]
    head, *rest = name.split("_")
    return config.get(head + "".join(part.title() for part in rest), default)


def tensors(items: list[dict] | None) -> list[schema.TensorInfo]:
    described = []
    for item in items or ():
        datatype = str(_get(item, "data_type", "TYPE_INVALID"))
        described.append(schema.TensorInfo(
            name=str(item.get("name", "")),
            datatype=datatype.removeprefix("TYPE_"),
            dims=[int(d) for d in item.get("dims", ())]))
    return described


def embedding_size_of(config: dict) -> int | None:
    """The last dim of a recognition network's (only) output; None when unknown."""
    outputs = tensors(config.get("output"))
    if not outputs or not outputs[0].dims or outputs[0].dims[-1] <= 0:
        return None
    return outputs[0].dims[-1]


def is_recognizer(config: dict, recognizer: str | None) -> bool:
    """The served recognizer, or any network that takes one aligned 3×112×112 face."""
    if config.get("name") == recognizer:
        return True
    inputs, outputs = tensors(config.get("input")), tensors(config.get("output"))
    return (len(inputs) == 1 and len(outputs) == 1
            and inputs[0].dims[-3:] == [3, ALIGNED_SIZE, ALIGNED_SIZE])


def describe_model(config: dict, recognizer: str | None) -> schema.ModelDescription:
    parameters = {}
    for key, value in (config.get("parameters") or {}).items():
        parameters[key] = str(_get(value, "string_value", "")) if isinstance(value, dict) else str(value)
    return schema.ModelDescription(
        name=str(config.get("name", "")),
        platform=str(config.get("platform", "")),
        backend=str(config.get("backend", "")),
        max_batch_size=int(_get(config, "max_batch_size", 0)),
        inputs=tensors(config.get("input")),
        outputs=tensors(config.get("output")),
        dynamic_batching=_get(config, "dynamic_batching"),
        parameters=parameters,
        embedding_size=embedding_size_of(config) if is_recognizer(config, recognizer) else None,
    )


def detector_of(detect_pipeline: str) -> str:
    """The detector network of a detect_<detector> pipeline."""
    return detect_pipeline.removeprefix("detect_")


# --- the Triton side ---

@dataclass(frozen=True)
class Pair:
    """The detector and recognizer that recognize_<recognizer> serves (its config parameters)."""

    detect_pipeline: str
    detector: str
    recognizer: str


@dataclass(frozen=True)
class Face:
    vector: np.ndarray | None  # L2-normalised embedding; None when no face was found
    detect: schema.DetectResult


class Recognition:
    """One worker's recognition service: the served pair (asked once), and the calls."""

    def __init__(self, triton: TritonClient, settings: Settings):
        self.triton = triton
        self.settings = settings
        self.pipeline = settings.recognize_pipeline
        self._pair: Pair | None = None
        self._embedding_size: int | None = None

    @property
    def version(self) -> str:
        return version(self.settings.recognizer)

    async def pair(self) -> Pair:
        if self._pair is None:
            params = await self.triton.pipeline_parameters(self.pipeline)
            detect_pipeline = params.get("detect_pipeline")
            if not detect_pipeline:
                raise TritonUnavailable(f"{self.pipeline} names no detect_pipeline in its parameters")
            self._pair = Pair(detect_pipeline, detector_of(detect_pipeline),
                              params.get("recognizer") or self.settings.recognizer)
        return self._pair

    async def embedding_size(self) -> int | None:
        """Values in a feature of the served recognizer (from its Triton config, asked once)."""
        if self._embedding_size is None:
            config = await self.triton.model_config((await self.pair()).recognizer)
            self._embedding_size = embedding_size_of(config) if config else None
        return self._embedding_size

    # --- inputs ---

    async def load(self, source: str | bytes, field: str) -> np.ndarray:
        """Decode base64 (if it is), take the photo's pixels from the worker's budget, and decode
        the image, both off the event loop."""
        if isinstance(source, str):
            source = await to_thread.run_sync(decode_upload_base64, source, field)
        await budget.admit_upload(source, self.settings.max_image_pixels)
        return await to_thread.run_sync(load_image, source, field, self.settings.max_upload_bytes,
                                        self.settings.max_image_pixels)

    async def load_both(self, first: str | bytes, second: str | bytes,
                        fields: tuple[str, str] = ("image1", "image2")) -> tuple[np.ndarray, np.ndarray]:
        results = await asyncio.gather(self.load(first, fields[0]), self.load(second, fields[1]),
                                       return_exceptions=True)
        error = merge([r for r in results if isinstance(r, BaseException)])
        if error is not None:
            raise error
        return results[0], results[1]

    # --- inference ---

    async def detect(self, source: str | bytes, seq: int, max_results: int,
                     sort_type: int) -> schema.DetectResponse:
        rgb = await self.load(source, "image")
        pair = await self.pair()
        faces: Faces = await self.triton.detect(
            pair.detect_pipeline, rgb, self.settings.recognition_confidence,
            self.settings.recognition_nms_threshold, 0)
        order = sort_order(faces.scores, faces.boxes, sort_type)[:max_results]
        return schema.DetectResponse(seq=seq, faces=[
            face_detect(faces.scores[i], faces.boxes[i], faces.landmarks[i]) for i in order])

    async def _faces(self, rgb: np.ndarray, max_faces: int, largest_only: bool) -> list[Face]:
        """The faces the pipeline chose (it keeps the largest, or caps at ``max_faces``)."""
        found = await self.triton.recognize(
            self.pipeline, rgb, self.settings.recognition_confidence,
            self.settings.recognition_nms_threshold, max_faces, largest_only)
        return [Face(unit(vector), face_detect(score, box, points))
                for score, box, points, vector in zip(found.scores, found.boxes, found.landmarks,
                                                      found.embeddings)]

    async def _largest(self, rgb: np.ndarray) -> Face:
        faces = await self._faces(rgb, 0, largest_only=True)
        return faces[0] if faces else Face(None, no_face())

    async def single(self, source: str | bytes) -> Face:
        """The largest face of the image (or no face)."""
        return await self._largest(await self.load(source, "image"))

    async def multi(self, source: str | bytes, max_results: int) -> list[Face]:
        """Up to ``max_results`` faces, the most confident first."""
        return await self._faces(await self.load(source, "image"), max_results, largest_only=False)

    async def aligned(self, source: str | bytes) -> Face:
        """An aligned 112×112 crop, embedded as it is."""
        rgb = await self.load(source, "image")
        check_aligned(rgb, "image")
        embeddings = await self.triton.embed_aligned(self.pipeline, np.ascontiguousarray(rgb)[None])
        return Face(unit(embeddings[0]), aligned_face())

    async def score(self, first: str | bytes, second: str | bytes) -> schema.ScoreResponse:
        rgb1, rgb2 = await self.load_both(first, second)
        face1, face2 = await asyncio.gather(self._largest(rgb1), self._largest(rgb2))
        score = 0.0
        if face1.vector is not None and face2.vector is not None:
            score = cosine(face1.vector, face2.vector)
        return schema.ScoreResponse(score=score, face_detects=[face1.detect, face2.detect])

    async def feature_score(self, feature1: str, feature2: str) -> schema.FeatureScoreResponse:
        vectors, errors = {}, []
        for field, text in (("feature1", feature1), ("feature2", feature2)):
            try:
                if len(text) > INLINE_BASE64:
                    vectors[field] = await to_thread.run_sync(decode_feature, text, field)
                else:
                    vectors[field] = decode_feature(text, field)
            except RequestValidationError as error:
                errors.append(error)
        if errors:
            raise merge(errors)
        first, second = vectors["feature1"], vectors["feature2"]
        if len(first) != len(second):
            raise invalid(("body",), f"feature1 and feature2 differ in length ({4 * len(first)} and "
                                     f"{4 * len(second)} bytes): they come from different recognizers")
        size = await self.embedding_size()
        if size is not None and len(first) != size:
            recognizer = (await self.pair()).recognizer
            raise RequestValidationError([
                {"loc": ("body", field), "type": "value_error",
                 "msg": f"{field} is {4 * len(first)} bytes; a feature of {recognizer} is {4 * size} "
                        f"bytes ({size} float32 values)"} for field in ("feature1", "feature2")])
        for field, vector in vectors.items():
            if not np.all(np.isfinite(vector)) or not np.any(vector):
                raise invalid(("body", field), f"{field} is not a feature: its values are all 0, "
                                               "infinite or NaN")
        return schema.FeatureScoreResponse(score=cosine(first, second))

    # --- health and info ---

    async def health(self) -> schema.RecognitionHealth:
        ready = await self.triton.is_ready(self.pipeline)
        detector = self._pair.detector if self._pair else None
        if ready:
            try:
                pair = await self.pair()
                detector = pair.detector
                ready = await self.triton.is_ready(pair.detect_pipeline)
            except TritonUnavailable:
                ready = False
        return schema.RecognitionHealth(status="ok" if ready else "unavailable",
                                        recognizer=self.settings.recognizer, detector=detector,
                                        model_loaded=ready)

    async def server_info(self) -> schema.ServerInfo:
        metadata = await self.triton.server_metadata()
        pair = await self.pair()
        ready = await self.triton.ready_models()
        models = []
        for name, role in ((pair.detect_pipeline, "detect_pipeline"), (pair.detector, "detector"),
                           (self.pipeline, "recognize_pipeline"), (pair.recognizer, "recognizer")):
            config = await self.triton.model_config(name) if name in ready else None
            platform = (config.get("platform") or config.get("backend")) if config else None
            models.append(schema.ServedModel(name=name, role=role, ready=name in ready,
                                             version=ready.get(name) or None, platform=platform or None))
        return schema.ServerInfo(
            service="face-api", version=__version__,
            triton=schema.TritonInfo(name=str(metadata.get("name", "")),
                                     version=str(metadata.get("version", ""))),
            models=models)

    async def model_info(self) -> schema.ModelInfo:
        pair = await self.pair()
        return schema.ModelInfo(
            detector=pair.detector, recognizer=pair.recognizer, pipeline=self.pipeline,
            detect_pipeline=pair.detect_pipeline, embedding_size=await self.embedding_size(),
            feature_version=self.version, models=sorted(await self.triton.ready_models()))

    async def describe(self, model_name: str) -> schema.ModelDescription:
        config = await self.triton.model_config(model_name)
        if config is None:
            raise ApiError(404, f"unknown model {model_name!r}: Triton has no model of that name")
        try:
            recognizer = (await self.pair()).recognizer
        except TritonUnavailable:
            recognizer = self.settings.recognizer
        return describe_model(config, recognizer)
