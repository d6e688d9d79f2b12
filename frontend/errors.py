"""The error contracts.

* face-api (``/health``, ``/api/v1/*``, everything outside ``/v1``): every error is
  ``{"detail": "a readable message"}``, validation errors included.
* recognition (``/v1/*``): validation errors keep FastAPI's ``HTTPValidationError``
  shape ``{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}``, as that
  contract documents; its other errors (401, 403, 413, 429, 503) are ``{"detail": "..."}``.

A body that cannot be parsed at all (JSON that is not UTF-8, a broken multipart envelope)
is a validation error too, 422 in the path's shape: FastAPI and Starlette would answer
400, which neither contract lists for it (400 is a corrupt image).
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

# Paths of the recognition contract: they answer validation errors as a list.
RECOGNITION_PREFIX = "/v1/"
# The multipart file fields that carry photos: a missing one gets a hint on how to send it.
IMAGE_FIELDS = ("image", "image1", "image2")


# FastAPI's answer to a body it could not parse (as JSON: not UTF-8, say); Starlette's
# multipart parser says why in its own words (also a 400 HTTPException).
FASTAPI_BODY_ERROR = "There was an error parsing the body"
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
NOT_UTF8 = "the JSON body cannot be read (JSON must be UTF-8 text)"


def is_recognition(path: str) -> bool:
    return path.startswith(RECOGNITION_PREFIX)


class ApiError(Exception):
    """An error the client should see, with its HTTP status."""

    def __init__(self, status_code: int, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.headers = headers


def invalid(loc: Sequence[str | int], msg: str, type: str = "value_error") -> RequestValidationError:
    """A validation error found after FastAPI's own checks (bad base64, an undecodable image...),
    answered like FastAPI's: 422 with the problem in ``detail[]`` (or as a sentence off /v1)."""
    return RequestValidationError([{"loc": tuple(loc), "msg": msg, "type": type}])


def describe_validation(error: RequestValidationError) -> str:
    """FastAPI's list of validation problems as one sentence a person can act on."""
    parts = []
    for problem in error.errors():
        location = [str(p) for p in problem.get("loc", ()) if p not in ("query", "body", "path")]
        field = ".".join(location) or "request"
        message = problem.get("msg", "is invalid")
        if problem.get("type") == "missing":
            message = "is required"
            loc = tuple(problem.get("loc", ()))
            # Only a photo field: JSON bodies (the admin API, the login) have other fields.
            if len(loc) == 2 and loc[0] == "body" and loc[1] in IMAGE_FIELDS:
                message = f"is required (send the photo as multipart/form-data field '{loc[1]}')"
        parts.append(f"{field}: {message}")
    return "; ".join(parts)


def validation_list(error: RequestValidationError) -> list[dict]:
    """FastAPI's ValidationError items, reduced to the documented loc, msg and type.

    ``input`` is left out on purpose: on /v1 it would echo megabytes of base64 back.
    """
    return [{"loc": list(problem.get("loc", ())), "msg": str(problem.get("msg", "")),
             "type": str(problem.get("type", "value_error"))} for problem in error.errors()]


def unparsable_body(request: Request, error: HTTPException) -> RequestValidationError | None:
    """The 400 that FastAPI or Starlette raise over a body they cannot parse, as a validation
    error; None for any other HTTPException."""
    if error.status_code != 400:
        return None
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in FORM_TYPES:
        detail = str(error.detail).rstrip(".")
        return invalid(("body",), f"the {content_type} body cannot be read ({detail})")
    if error.detail == FASTAPI_BODY_ERROR:
        if content_type == "application/json" or content_type.endswith("+json"):
            return invalid(("body",), NOT_UTF8, "json_invalid")
        return invalid(("body",), "the body cannot be read")
    return None


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, error: ApiError) -> JSONResponse:
        return JSONResponse({"detail": error.detail}, error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, error: RequestValidationError) -> JSONResponse:
        if is_recognition(request.scope.get("path", "")):
            return JSONResponse({"detail": validation_list(error)}, 422)
        return JSONResponse({"detail": describe_validation(error)}, 422)

    @app.exception_handler(Exception)
    async def _unforeseen(request: Request, _: Exception) -> JSONResponse:
        # A bug, never an answer by design: the client gets JSON like every other error,
        # never the exception's text; the server still logs the traceback under the
        # request's id (Starlette re-raises after this answer).
        request_id = request.scope.get("state", {}).get("request_id")
        where = f" (request {request_id}: the server's log has the details)" if request_id else ""
        return JSONResponse({"detail": f"internal error{where}"}, 500)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, error: HTTPException):
        problem = unparsable_body(request, error)
        if problem is not None:
            return await _validation(request, problem)
        return await http_exception_handler(request, error)
