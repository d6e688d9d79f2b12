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
