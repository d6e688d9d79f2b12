"""The face-api error contract: every error is {"detail": "a readable message"}."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


class ApiError(Exception):
    """An error the client should see, with its HTTP status."""

    def __init__(self, status_code: int, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.headers = headers


def describe_validation(error: RequestValidationError) -> str:
    """FastAPI's list of validation problems as one sentence a person can act on."""
    parts = []
    for problem in error.errors():
        location = [str(p) for p in problem.get("loc", ()) if p not in ("query", "body", "path")]
        field = ".".join(location) or "request"
        message = problem.get("msg", "is invalid")
        if problem.get("type") == "missing":
            message = "is required"
            if problem.get("loc", ("",))[0] == "body":
                message = "is required (send the photo as multipart/form-data field 'image')"
        parts.append(f"{field}: {message}")
    return "; ".join(parts)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, error: ApiError) -> JSONResponse:
        return JSONResponse({"detail": error.detail}, error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": describe_validation(error)}, 422)
