"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

from fastapi import Query, Request, Security
from fastapi.security import APIKeyHeader

from frontend.inference.triton import TritonClient
from frontend.services.detection import DetectParams
from frontend.settings import Settings

# The key itself is checked by frontend.auth.access before the upload is read;
# declaring the header here puts it into the OpenAPI description.
_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False,
    description="required when FACE_API_API_KEY_ENABLED=true (the default); keys look like xyl_…",
)


def api_key(key: str | None = Security(_api_key_header)) -> str | None:
    return key


def detect_params(
    confidence: float = Query(0.5, ge=0.0, le=1.0, description="minimum confidence threshold"),
    nms_threshold: float = Query(0.4, ge=0.0, le=1.0, description="NMS IoU threshold"),
    max_faces: int = Query(0, ge=0, le=10_000, description="0 means no limit"),
) -> DetectParams:
    """The detection query parameters that /detect and /mask share."""
    return DetectParams(confidence, nms_threshold, max_faces)


def settings(request: Request) -> Settings:
    return request.app.state.settings


def triton(request: Request) -> TritonClient:
    return request.app.state.triton


def request_id(request: Request) -> str:
    return request.state.request_id
