"""The FastAPI application: wiring only (settings, Triton client, routers, errors)."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from frontend import errors
from frontend.api import detect, health
from frontend.inference.triton import InferenceRejected, TritonClient, TritonUnavailable
from frontend.middleware import RequestContext
from frontend.settings import Settings, get_settings

log = logging.getLogger("face_api")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # One gRPC channel per worker process, bound to that worker's event loop.
        app.state.triton = TritonClient(settings.triton_url, settings.triton_timeout_s)
        try:
            yield
        finally:
            await app.state.triton.close()

    app = FastAPI(
        title="Face API",
        version="0.1.0",
        summary="Face detection with landmarks, served by Triton Inference Server.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    errors.install(app)

    @app.exception_handler(TritonUnavailable)
    async def _unavailable(_: Request, error: TritonUnavailable) -> JSONResponse:
        log.warning("inference unavailable: %s", error)
        return JSONResponse({"detail": "the inference server is unavailable; try again shortly"},
                            503, headers={"Retry-After": "5"})

    @app.exception_handler(InferenceRejected)
    async def _rejected(_: Request, error: InferenceRejected) -> JSONResponse:
        return JSONResponse({"detail": f"the inference server rejected the request: {error}"}, 400)

    app.include_router(health.router)
    app.include_router(detect.router)
    app.add_middleware(RequestContext, max_body_bytes=settings.max_upload_bytes)
    return app
