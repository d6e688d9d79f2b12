"""The recognition contract (docs/api.md#recognition-api-v1): /v1/health, /v1/info/*, and the
face endpoints, each as JSON with base64 images and (under /v1/file/) as multipart.

Thin: parse, call frontend/services/recognition/, shape. The POST endpoints need the
x-api-key header (checked by frontend.auth.access before the body is read) and
share the "recognition" rate limit. Validation errors, bad base64 and
unusable images are FastAPI's 422 list shape (frontend.errors).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import JSONResponse

from frontend.api import dependencies as deps
from frontend.api.uploads import read_upload
from frontend.schemas import recognition as schema
from frontend.schemas.face_api import ErrorResponse
from frontend.services.recognition import info
from frontend.services.recognition.codec import embeddings_list, encode_feature
from frontend.services.recognition.faces import Face
from frontend.services.recognition.service import Recognition
from frontend.settings import Settings

router = APIRouter(prefix="/v1", tags=["recognition"])

ERRORS = {code: {"model": ErrorResponse} for code in (401, 403, 413, 429, 503)}
KEYED = {"dependencies": [Depends(deps.api_key)], "responses": ERRORS}
FILE = "the image file: JPEG, PNG, WebP, BMP, GIF or TIFF"
ALIGNED_FILE = ("an aligned face: exactly 112x112 pixels, RGB, the 5 points on the standard alignment "
                "template (InsightFace's)")
ALIGNED_NOTE = ("The image must be exactly 112x112 pixels (anything else is a 422); it is embedded as it is, "
                "without detection or alignment.")


def _feature(service: Recognition, face: Face) -> schema.FeatureResponse:
    feature = encode_feature(face.vector) if face.vector is not None else ""
    return schema.FeatureResponse(version=service.version, feature=feature, face_detect=face.detect)


def _embeddings(service: Recognition, face: Face) -> schema.EmbeddingsResponse:
    values = embeddings_list(face.vector) if face.vector is not None else []
    return schema.EmbeddingsResponse(version=service.version, embeddings=values, face_detect=face.detect)


def _multi_feature(service: Recognition, faces: list[Face]) -> schema.MultiFeatureResponse:
    return schema.MultiFeatureResponse(version=service.version, feature_info_list=[
        schema.FeatureInfoResult(feature=encode_feature(f.vector), face_detect=f.detect) for f in faces])


def _multi_embeddings(service: Recognition, faces: list[Face]) -> schema.MultiEmbeddingsResponse:
    return schema.MultiEmbeddingsResponse(version=service.version, embeddings_info_list=[
        schema.EmbeddingsInfoResult(embeddings=embeddings_list(f.vector), face_detect=f.detect)
        for f in faces])


async def _file(upload: UploadFile, settings: Settings) -> bytes:
    return await read_upload(upload, settings.max_upload_bytes)


# --- health and info (no key) ---

@router.get("/health", response_model=schema.RecognitionHealth,
            responses={503: {"model": schema.RecognitionHealth, "description": "not ready"}},
            summary="Is the service live and the recognition pipeline ready?")
async def health(service: Recognition = Depends(deps.recognition)):
    body = await info.health(service)
    return JSONResponse(body.model_dump(), status_code=200 if body.model_loaded else 503)


@router.get("/info/server", response_model=schema.ServerInfo, responses={503: {"model": ErrorResponse}},
            summary="Versions: the service, Triton, and the models /v1 uses")
async def info_server(service: Recognition = Depends(deps.recognition)) -> schema.ServerInfo:
    return await info.server_info(service)


@router.get("/info/model", response_model=schema.ModelInfo, responses={503: {"model": ErrorResponse}},
            summary="The models in service: the detector/recognizer pair and every ready model")
async def info_model(service: Recognition = Depends(deps.recognition)) -> schema.ModelInfo:
    return await info.model_info(service)


@router.get("/info/model/{model_name}", response_model=schema.ModelDescription,
            responses={404: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
            summary="One model's configuration in Triton")
async def info_model_config(model_name: str,
                            service: Recognition = Depends(deps.recognition)) -> schema.ModelDescription:
    return await info.describe(service, model_name)


# --- JSON bodies, images as base64 ---

@router.post("/detect", response_model=schema.DetectResponse, **KEYED,
             summary="Detect every face in one image (box, landmarks)")
async def detect(body: schema.DetectReqBody,
                 service: Recognition = Depends(deps.recognition)) -> schema.DetectResponse:
    return await service.detect(body.image, body.seq, body.maxResults, body.detectSortType)


@router.post("/feature", response_model=schema.FeatureResponse, **KEYED,
             summary="The feature of the largest face in one image")
async def feature(body: schema.FeatureReqBody,
                  service: Recognition = Depends(deps.recognition)) -> schema.FeatureResponse:
    return _feature(service, await service.single(body.image))


@router.post("/feature-only", response_model=schema.FeatureResponse, **KEYED,
             summary="The feature of an aligned 112x112 face", description=ALIGNED_NOTE)
async def feature_only(body: schema.FeatureReqBody,
                       service: Recognition = Depends(deps.recognition)) -> schema.FeatureResponse:
    return _feature(service, await service.aligned(body.image))


@router.post("/multi-feature", response_model=schema.MultiFeatureResponse, **KEYED,
             summary="The features of up to maxResults faces in one image, the most confident first")
async def multi_feature(body: schema.MultiFeatureReqBody,
                        service: Recognition = Depends(deps.recognition)) -> schema.MultiFeatureResponse:
    return _multi_feature(service, await service.multi(body.image, body.maxResults))


@router.post("/embeddings", response_model=schema.EmbeddingsResponse, **KEYED,
             summary="The embedding (as numbers) of the largest face in one image")
async def embeddings(body: schema.EmbeddingsReqBody,
                     service: Recognition = Depends(deps.recognition)) -> schema.EmbeddingsResponse:
    return _embeddings(service, await service.single(body.image))


@router.post("/embeddings-only", response_model=schema.EmbeddingsResponse, **KEYED,
             summary="The embedding of an aligned 112x112 face", description=ALIGNED_NOTE)
async def embeddings_only(body: schema.EmbeddingsReqBody,
                          service: Recognition = Depends(deps.recognition)) -> schema.EmbeddingsResponse:
    return _embeddings(service, await service.aligned(body.image))


@router.post("/multi-embeddings", response_model=schema.MultiEmbeddingsResponse, **KEYED,
             summary="The embeddings of up to maxResults faces in one image, the most confident first")
async def multi_embeddings(body: schema.MultiEmbeddingsReqBody,
                           service: Recognition = Depends(deps.recognition)
                           ) -> schema.MultiEmbeddingsResponse:
    return _multi_embeddings(service, await service.multi(body.image, body.maxResults))


@router.post("/score", response_model=schema.ScoreResponse, **KEYED,
             summary="Similarity of the largest faces of two images")
async def score(body: schema.ScoreReqBody,
                service: Recognition = Depends(deps.recognition)) -> schema.ScoreResponse:
    return await service.score(body.image1, body.image2)


@router.post("/feature-score", response_model=schema.FeatureScoreResponse, **KEYED,
             summary="Similarity of two features")
async def feature_score(body: schema.FeatureScoreReqBody,
                        service: Recognition = Depends(deps.recognition)) -> schema.FeatureScoreResponse:
    return await service.feature_score(body.feature1, body.feature2)


# --- multipart twins ---

@router.post("/file/detect", response_model=schema.DetectResponse, **KEYED,
             summary="Detect every face in one image file (box, landmarks)")
async def file_detect(
    image: UploadFile = File(description=FILE),
    seq: int = Form(0, description="reserved; echoed back unchanged"),
    maxResults: int = Form(750, ge=1, le=schema.MAX_RESULTS_LIMIT, description="at most this many faces"),
    detectSortType: schema.SortType = Form(schema.SortType.confidence, description=schema.SORT_DESCRIPTION),
    settings: Settings = Depends(deps.settings),
    service: Recognition = Depends(deps.recognition),
) -> schema.DetectResponse:
    return await service.detect(await _file(image, settings), seq, maxResults, detectSortType)


@router.post("/file/feature", response_model=schema.FeatureResponse, **KEYED,
             summary="The feature of the largest face in one image file")
async def file_feature(image: UploadFile = File(description=FILE),
                       settings: Settings = Depends(deps.settings),
                       service: Recognition = Depends(deps.recognition)) -> schema.FeatureResponse:
    return _feature(service, await service.single(await _file(image, settings)))


@router.post("/file/feature-only", response_model=schema.FeatureResponse, **KEYED,
             summary="The feature of an aligned 112x112 face file", description=ALIGNED_NOTE)
async def file_feature_only(image: UploadFile = File(description=ALIGNED_FILE),
                            settings: Settings = Depends(deps.settings),
                            service: Recognition = Depends(deps.recognition)) -> schema.FeatureResponse:
    return _feature(service, await service.aligned(await _file(image, settings)))


@router.post("/file/embeddings", response_model=schema.EmbeddingsResponse, **KEYED,
             summary="The embedding (as numbers) of the largest face in one image file")
async def file_embeddings(image: UploadFile = File(description=FILE),
                          settings: Settings = Depends(deps.settings),
                          service: Recognition = Depends(deps.recognition)) -> schema.EmbeddingsResponse:
    return _embeddings(service, await service.single(await _file(image, settings)))


@router.post("/file/embeddings-only", response_model=schema.EmbeddingsResponse, **KEYED,
             summary="The embedding of an aligned 112x112 face file", description=ALIGNED_NOTE)
async def file_embeddings_only(image: UploadFile = File(description=ALIGNED_FILE),
                               settings: Settings = Depends(deps.settings),
                               service: Recognition = Depends(deps.recognition)
                               ) -> schema.EmbeddingsResponse:
    return _embeddings(service, await service.aligned(await _file(image, settings)))


@router.post("/file/score", response_model=schema.ScoreResponse, **KEYED,
             summary="Similarity of the largest faces of two image files")
async def file_score(image1: UploadFile = File(description=FILE), image2: UploadFile = File(description=FILE),
                     settings: Settings = Depends(deps.settings),
                     service: Recognition = Depends(deps.recognition)) -> schema.ScoreResponse:
    return await service.score(await _file(image1, settings), await _file(image2, settings))
