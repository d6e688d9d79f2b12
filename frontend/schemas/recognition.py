"""Shapes of the recognition contract (docs/api.md#recognition-api-v1), field by field.

The class names are the contract's schema names; field names (camelCase ones
included) are exactly the contract's. What each value means is in docs/api.md,
"Recognition API (/v1)".
"""

from __future__ import annotations

from enum import IntEnum

from pydantic import BaseModel, Field

# The contract's images and features travel as base64 strings.
BASE64 = "base64 encoded data"
IMAGE = ("base64 encoded data: a JPEG, PNG, WebP, BMP, GIF or TIFF file (a data:image/...;base64, "
         "prefix is accepted); /v1/feature-only and /v1/embeddings-only want an aligned 112x112 face")
MAX_RESULTS_LIMIT = 10_000



class SortType(IntEnum):
    """detectSortType: 0 = confidence, high to low; 1 = box area, large to small;
    2 = left to right (box left edge); 3 = top to bottom (box top edge)."""

    confidence = 0
    area = 1
    left_to_right = 2
    top_to_bottom = 3


SORT_DESCRIPTION = "0 = confidence, 1 = box area, 2 = left to right, 3 = top to bottom"


# --- faces ---

class BoundingBox(BaseModel):
    left: int = 0
    top: int = 0
    right: int = 0
    bottom: int = 0


class Landmark(BaseModel):
    x: int = 0
    y: int = 0


class DetectResult(BaseModel):
    """One face; ``processed`` is false (and everything 0) when the image had none."""

    processed: bool = True
    confidence: float = 0
    boundingBox: BoundingBox = Field(default_factory=BoundingBox)
    landmarks: list[Landmark] = Field(
        default_factory=list,
        description="5 points in image pixels: the eye on the left of the image, the other eye, "
                    "the nose tip, the mouth corner on the left of the image, the other mouth corner")


# --- requests (JSON bodies) ---

class DetectReqBody(BaseModel):
    seq: int = Field(0, description="reserved; echoed back unchanged")
    maxResults: int = Field(750, ge=1, le=MAX_RESULTS_LIMIT, description="at most this many faces")
    detectSortType: SortType = Field(SortType.confidence, description=SORT_DESCRIPTION)
    image: str = Field(min_length=1, description=IMAGE)


class FeatureReqBody(BaseModel):
    image: str = Field(min_length=1, description=IMAGE)


class EmbeddingsReqBody(BaseModel):
    image: str = Field(min_length=1, description=IMAGE)


class MultiFeatureReqBody(BaseModel):
    image: str = Field(min_length=1, description=IMAGE)
    maxResults: int = Field(128, ge=1, le=MAX_RESULTS_LIMIT,
                            description="at most this many faces, the most confident first")


class MultiEmbeddingsReqBody(BaseModel):
    image: str = Field(min_length=1, description=IMAGE)
    maxResults: int = Field(128, ge=1, le=MAX_RESULTS_LIMIT,
                            description="at most this many faces, the most confident first")


class ScoreReqBody(BaseModel):
    image1: str = Field(min_length=1, description=IMAGE)
    image2: str = Field(min_length=1, description=IMAGE)


class FeatureScoreReqBody(BaseModel):
    feature1: str = Field(min_length=1, description="a feature as /v1/feature returns it (" + BASE64 + ")")
    feature2: str = Field(min_length=1, description="a feature as /v1/feature returns it (" + BASE64 + ")")


# --- responses ---

VERSION = ("the service version + the recognizer's name (<version>+<recognizer>): features compare only "
           "within one recognizer")
FEATURE = ("base64 (standard alphabet, padded) of the L2-normalised embedding as little-endian float32; "
           "empty when no face was found")
EMBEDDINGS = "the L2-normalised embedding as numbers; empty when no face was found"


class DetectResponse(BaseModel):
    seq: int = 0
    faces: list[DetectResult] = Field(default_factory=list)


class FeatureResponse(BaseModel):
    version: str = Field(description=VERSION)
    feature: str = Field("", description=FEATURE)
    face_detect: DetectResult


class FeatureInfoResult(BaseModel):
    feature: str = Field("", description=FEATURE)
    face_detect: DetectResult


class MultiFeatureResponse(BaseModel):
    version: str = Field(description=VERSION)
    feature_info_list: list[FeatureInfoResult] = Field(default_factory=list)


class EmbeddingsResponse(BaseModel):
    version: str = Field(description=VERSION)
    embeddings: list[float] = Field(default_factory=list, description=EMBEDDINGS)
    face_detect: DetectResult


class EmbeddingsInfoResult(BaseModel):
    embeddings: list[float] = Field(default_factory=list, description=EMBEDDINGS)
    face_detect: DetectResult


class MultiEmbeddingsResponse(BaseModel):
    version: str = Field(description=VERSION)
    embeddings_info_list: list[EmbeddingsInfoResult] = Field(default_factory=list)


class ScoreResponse(BaseModel):
    score: float = Field(0.0, description="cosine similarity of the two faces, -1..1 (6 decimals); "
                                          "0 when either image has no face")
    face_detects: list[DetectResult] = Field(default_factory=list,
                                             description="the face used from image1, then image2")


class FeatureScoreResponse(BaseModel):
    score: float = Field(0.0, description="cosine similarity of the two features, -1..1 (6 decimals)")


# --- health and info (the contract leaves them "Inline") ---

class RecognitionHealth(BaseModel):
    status: str = Field(description='"ok" when the recognize pipeline is ready, else "unavailable"')
    recognizer: str = Field(description="the recognition network (FACE_API_RECOGNIZER)")
    detector: str | None = Field(description="the detector paired with it; null while Triton cannot say")
    model_loaded: bool


class TritonInfo(BaseModel):
    name: str
    version: str


class ServedModel(BaseModel):
    name: str
    role: str = Field(description="detect_pipeline, detector, recognize_pipeline or recognizer")
    ready: bool = Field(description="Triton has the model loaded and ready")
    version: str | None = Field(None, description="the model version Triton serves; null when not loaded")
    platform: str | None = Field(None, description="Triton backend or platform; null when not loaded")


class ServerInfo(BaseModel):
    service: str
    version: str = Field(description="the face API's version")
    triton: TritonInfo
    models: list[ServedModel]


class ModelInfo(BaseModel):
    detector: str
    recognizer: str
    pipeline: str = Field(description="the Triton pipeline /v1 calls: the recognizer's recognize pipeline")
    detect_pipeline: str = Field(description="the pipeline /v1/detect calls: the detect pipeline the "
                                             "recognize pipeline pairs with")
    embedding_size: int | None = Field(description="values in a feature / embeddings")
    feature_version: str = Field(description='the "version" that feature and embeddings responses carry')
    models: list[str] = Field(description="every model Triton has ready")


class TensorInfo(BaseModel):
    name: str
    datatype: str = Field(description="FP32, UINT8, INT32, BYTES, ...")
    dims: list[int] = Field(description="without the batch dimension when max_batch_size > 0; -1 = any")


class ModelDescription(BaseModel):
    name: str
    platform: str = Field(description='e.g. "ensemble", "onnxruntime_onnx"; empty when the backend says it')
    backend: str = Field(description='e.g. "onnxruntime", "python"; empty for ensembles')
    max_batch_size: int = Field(description="0 = the model does not batch")
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    dynamic_batching: dict | None = Field(description="Triton's dynamic batching settings; null = off")
    parameters: dict[str, str] = Field(default_factory=dict, description="the config's parameters")
    embedding_size: int | None = Field(
        None, description="for a recognition network: values in its embedding (the last dim of its output)")
