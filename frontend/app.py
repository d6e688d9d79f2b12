"""The FastAPI application: wiring only (settings, Triton, database, access control, routers)."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from frontend import errors
from frontend.api import detect, health, mask
from frontend.auth.access import AccessControl, AccessMiddleware
from frontend.auth.api_keys import ApiKeyStore, UsageCounter
from frontend.inference.triton import InferenceRejected, TritonClient, TritonUnavailable
from frontend.middleware import RequestContext
from frontend.persistence.database import create_database
from frontend.ratelimit import Rate, open_store
from frontend.settings import Settings, get_settings

log = logging.getLogger("face_api")


def check(settings: Settings) -> None:
    """Refuse combinations of settings that cannot work, before serving anything."""
    if settings.api_key_enabled and not settings.database_enabled:
        raise RuntimeError("API keys live in the database: set FACE_API_DATABASE_ENABLED=true "
                           "or FACE_API_API_KEY_ENABLED=false")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    check(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Everything here is per worker process, bound to that worker's event loop.
        async with AsyncExitStack() as stack:
            app.state.triton = TritonClient(settings.triton_url, settings.triton_timeout_s)
            stack.push_async_callback(app.state.triton.close)
            app.state.database = None
            keys = usage = limits = None
            if settings.database_enabled:
                app.state.database = create_database(settings.database_url)
                await app.state.database.connect()
                stack.push_async_callback(app.state.database.disconnect)
            if settings.api_key_enabled:
                keys = ApiKeyStore(app.state.database)
                usage = UsageCounter(app.state.database, settings.api_key_usage_flush_s)
                await usage.start()
                stack.push_async_callback(usage.stop)  # runs before disconnect: last counts are kept
            if settings.rate_limit_enabled:
                limits = open_store(settings.redis_url, settings.rate_limit_file)
                stack.push_async_callback(limits.close)
            rates = {"detect": Rate.parse(settings.rate_limit_detect),
                     "mask": Rate.parse(settings.rate_limit_mask)}
            app.state.access = AccessControl(rates, keys, usage, limits)
            yield

    app = FastAPI(
        title="Face API",
        version="0.1.0",
        summary="Face detection with landmarks and face masking, served by Triton Inference Server.",
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
    app.include_router(mask.router)
    # Outermost last: every response, refusals included, carries X-Request-Id.
    app.add_middleware(AccessMiddleware)
    app.add_middleware(RequestContext, max_body_bytes=settings.max_upload_bytes)
    return app
