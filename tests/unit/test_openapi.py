"""The OpenAPI description (/docs) documents the public contract: parameters, headers, statuses, auth."""

from __future__ import annotations

import pytest

from frontend.app import create_app
from frontend.settings import Settings

MASK_PARAMETERS = {"confidence", "nms_threshold", "max_faces", "method", "strength", "padding", "format",
                   "quality"}
MASK_HEADERS = {"X-Request-Id", "X-Face-Count", "X-Inference-Ms", "X-Mask-Ms", "X-Encode-Ms", "X-Total-Ms",
                "X-Model"}


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    database = tmp_path_factory.mktemp("db") / "face-api.sqlite3"
    return create_app(Settings(database_url=f"sqlite:///{database}")).openapi()


def parameters(operation: dict) -> dict[str, dict]:
    return {p["name"]: p for p in operation["parameters"]}


def test_mask_documents_every_parameter_with_its_default(spec):
    mask = spec["paths"]["/api/v1/mask"]["post"]
    documented = parameters(mask)
    assert set(documented) == MASK_PARAMETERS
    defaults = {name: p["schema"].get("default") for name, p in documented.items()}
    assert defaults == {"confidence": 0.5, "nms_threshold": 0.4, "max_faces": 0, "method": "gaussian",
                        "strength": 199, "padding": 0.15, "format": "jpeg", "quality": 95}
    assert "kernel size" in documented["strength"]["description"]


def test_mask_documents_its_image_response_and_headers(spec):
    ok = spec["paths"]["/api/v1/mask"]["post"]["responses"]["200"]
    assert set(ok["content"]) == {"image/jpeg", "image/png", "image/webp"}
    assert MASK_HEADERS <= set(ok["headers"])


@pytest.mark.parametrize("path", ["/api/v1/detect", "/api/v1/mask"])
def test_public_endpoints_declare_the_api_key_and_their_errors(spec, path):
    operation = spec["paths"][path]["post"]
    assert operation["security"] == [{"APIKeyHeader": []}]
    assert {"401", "403", "422", "429", "503"} <= set(operation["responses"])
    assert spec["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"


def test_detect_and_mask_share_the_detection_parameters(spec):
    detect = parameters(spec["paths"]["/api/v1/detect"]["post"])
    mask = parameters(spec["paths"]["/api/v1/mask"]["post"])
    for name in ("confidence", "nms_threshold", "max_faces"):
        assert detect[name]["schema"] == mask[name]["schema"]


def test_keys_without_a_database_are_refused_at_start():
    with pytest.raises(RuntimeError, match="API keys live in the database"):
        create_app(Settings(database_enabled=False, api_key_enabled=True))


def test_storage_without_a_database_is_refused_at_start():
    with pytest.raises(RuntimeError, match="keeps images and jobs in the database"):
        create_app(Settings(database_enabled=False, api_key_enabled=False, storage_enabled=True))


RECOGNITION_POSTS = ["/v1/detect", "/v1/feature", "/v1/feature-only", "/v1/multi-feature", "/v1/embeddings",
                     "/v1/embeddings-only", "/v1/multi-embeddings", "/v1/score", "/v1/feature-score",
                     "/v1/file/detect", "/v1/file/feature", "/v1/file/feature-only", "/v1/file/embeddings",
                     "/v1/file/embeddings-only", "/v1/file/score"]
# The recognition contract's schema names; DetectResponse and BoundingBox are
# taken by the face-api contract and appear as V1DetectResponse and V1BoundingBox.
RECOGNITION_SCHEMAS = {
    "DetectReqBody", "DetectResult", "Landmark", "FeatureReqBody", "FeatureResponse", "FeatureInfoResult",
    "MultiFeatureReqBody", "MultiFeatureResponse", "EmbeddingsReqBody", "EmbeddingsResponse",
    "EmbeddingsInfoResult", "MultiEmbeddingsReqBody", "MultiEmbeddingsResponse", "ScoreReqBody",
    "ScoreResponse", "FeatureScoreReqBody", "FeatureScoreResponse", "HTTPValidationError", "ValidationError",
    "V1DetectResponse", "V1BoundingBox"}


@pytest.mark.parametrize("path", RECOGNITION_POSTS)
def test_recognition_posts_declare_the_key_and_the_validation_list(spec, path):
    operation = spec["paths"][path]["post"]
    assert operation["security"] == [{"APIKeyHeader": []}]
    assert {"401", "403", "413", "429", "503"} <= set(operation["responses"])
    assert operation["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/HTTPValidationError"}


@pytest.mark.parametrize("path", ["/v1/health", "/v1/info/server", "/v1/info/model",
                                  "/v1/info/model/{model_name}"])
def test_recognition_gets_need_no_key(spec, path):
    assert "security" not in spec["paths"][path]["get"]


def test_component_names_are_the_contracts(spec):
    names = set(spec["components"]["schemas"])
    assert RECOGNITION_SCHEMAS <= names
    assert {"DetectResponse", "BoundingBox", "Detection", "HealthResponse"} <= names  # face-api, unchanged
    assert not [name for name in names if "__" in name]
    detect = spec["paths"]["/v1/detect"]["post"]
    assert detect["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/DetectReqBody"}
    assert detect["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/V1DetectResponse"}
    assert spec["components"]["schemas"]["V1BoundingBox"]["properties"].keys() == {"left", "top", "right",
                                                                                   "bottom"}


def test_detect_request_defaults_are_the_contracts(spec):
    fields = spec["components"]["schemas"]["DetectReqBody"]["properties"]
    assert {name: fields[name].get("default") for name in ("seq", "maxResults", "detectSortType")} == {
        "seq": 0, "maxResults": 750, "detectSortType": 0}
    assert spec["components"]["schemas"]["DetectReqBody"]["required"] == ["image"]
    multi = spec["components"]["schemas"]["MultiFeatureReqBody"]["properties"]
    assert multi["maxResults"]["default"] == 128


def test_face_api_errors_are_documented_as_served(spec):
    """Outside /v1 every error body is {"detail": "..."}, 422 included (frontend/errors.py); the
    description said FastAPI's HTTPValidationError list for 422 and no body for the admin API's
    other errors (found by tests/integration/test_api_properties.py)."""
    error = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if int(status) < 400 or (path, status) == ("/health", "503"):
                    continue
                schema = response["content"]["application/json"]["schema"]
                assert schema == error or path.startswith("/v1/"), (method, path, status, schema)
    assert spec["paths"]["/api/v1/admin/api-keys"]["post"]["responses"]["422"]["content"] == {
        "application/json": {"schema": error}}
    assert spec["components"]["schemas"]["ErrorResponse"]["required"] == ["detail"]
