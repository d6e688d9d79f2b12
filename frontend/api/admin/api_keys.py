"""API keys: POST/GET /api-keys, GET/PATCH/DELETE /api-keys/{key_id} (behind the admin guard).

The same store as ``./face-api keys``; a change applies to the next request at once
(the public endpoints look each key up, nothing is cached).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from frontend.auth.api_keys import ApiKeyStore
from frontend.errors import ApiError
from frontend.schemas.admin import ApiKeyCreate, ApiKeyCreatedResponse, ApiKeyResponse, ApiKeyUpdate
from frontend.schemas.pagination import PageParams, PaginatedResponse, page_params

router = APIRouter(prefix="/api-keys", responses={
    404: {"description": "no key has this id"},
    501: {"description": "the database tier is disabled (FACE_API_DATABASE_ENABLED=false)"},
})

NOT_FOUND = "API key not found"


def store(request: Request) -> ApiKeyStore:
    if request.app.state.database is None:
        raise ApiError(501, "API keys need the database: FACE_API_DATABASE_ENABLED=false")
    return ApiKeyStore(request.app.state.database)


@router.post("", status_code=201, response_model=ApiKeyCreatedResponse)
async def create_key(body: ApiKeyCreate, keys: ApiKeyStore = Depends(store)) -> ApiKeyCreatedResponse:
    """Create an active key. The full key is in this response only: keep it."""
    try:
        record, key = await keys.create(body.name)
    except ValueError as error:
        raise ApiError(422, str(error)) from error
    return ApiKeyCreatedResponse.created(record, key)


@router.get("", response_model=PaginatedResponse[ApiKeyResponse])
async def list_keys(page: PageParams = Depends(page_params),
                    keys: ApiKeyStore = Depends(store)) -> PaginatedResponse[ApiKeyResponse]:
    """Key metadata, newest first."""
    records = await keys.list(limit=page.per_page, offset=page.offset)
    items = [ApiKeyResponse.of(record) for record in records]
    return PaginatedResponse[ApiKeyResponse].of(items, await keys.count(), page)


@router.get("/{key_id}", response_model=ApiKeyResponse)
async def get_key(key_id: str, keys: ApiKeyStore = Depends(store)) -> ApiKeyResponse:
    record = await keys.get(key_id)
    if record is None:
        raise ApiError(404, NOT_FOUND)
    return ApiKeyResponse.of(record)


@router.patch("/{key_id}", response_model=ApiKeyResponse)
async def update_key(key_id: str, body: ApiKeyUpdate, keys: ApiKeyStore = Depends(store)) -> ApiKeyResponse:
    """Rename and/or activate or deactivate a key (a deactivated key gets 403 on every request)."""
    if body.name is None and body.is_active is None:
        raise ApiError(422, "send name and/or is_active")
    try:
        record = await keys.update(key_id, name=body.name, is_active=body.is_active)
    except ValueError as error:
        raise ApiError(422, str(error)) from error
    if record is None:
        raise ApiError(404, NOT_FOUND)
    return ApiKeyResponse.of(record)


@router.delete("/{key_id}", status_code=204, response_class=Response)
async def delete_key(key_id: str, keys: ApiKeyStore = Depends(store)) -> Response:
    """Delete a key for good: requests with it get 401."""
    if not await keys.delete(key_id):
        raise ApiError(404, NOT_FOUND)
    return Response(status_code=204)
