"""The FastAPI application: wiring only (settings, Triton, database, access control, routers)."""

from __future__ import annotations

import asyncio
import logging
import os
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from frontend import __version__, api_docs, errors, openapi
from frontend.api import admin, detect, files, health, mask, metrics, recognition, video
from frontend.auth.access import AccessControl, AccessMiddleware
from frontend.auth.admin import admin_auth
from frontend.auth.api_keys import ApiKeyStore, UsageCounter
from frontend.console.router import router as console_router
from frontend.imaging import budget as pixel_budget
from frontend.inference.catalog import Unsupported
from frontend.inference.endpoints import EndpointPool
from frontend.inference.served import ServedPipelines
from frontend.inference.shared_memory import frontend_shm_prefix
from frontend.inference.triton import InferenceRejected, TritonClient, TritonUnavailable
from frontend.middleware import MULTIPART_OVERHEAD, RECOGNITION_BODY_FACTOR, BodyLimit, RequestContext
from frontend.observability.history import History, keep_recording
from frontend.observability.metrics import multiprocess_dir
from frontend.observability.requests import RequestObserver
from frontend.persistence.database import create_database
from frontend.ratelimit import Rate, open_store
from frontend.services.archive import Archive
from frontend.services.recognition.service import Recognition
from frontend.settings import Settings, get_settings
from frontend.storage import open_object_store

log = logging.getLogger("face_api")


def check(settings: Settings) -> None:
    """Refuse combinations of settings that cannot work, before serving anything."""
    if settings.api_key_enabled and not settings.database_enabled:
        raise RuntimeError("API keys live in the database: set FACE_API_DATABASE_ENABLED=true "
                           "or FACE_API_API_KEY_ENABLED=false")
    if settings.storage_enabled and not settings.database_enabled:
        raise RuntimeError("storage-backed mode keeps images and jobs in the database: set "
                           "FACE_API_DATABASE_ENABLED=true or FACE_API_STORAGE_ENABLED=false")
    if settings.environment == "production" and not settings.admin_password:
        raise RuntimeError("production needs admin credentials: set FACE_API_ADMIN_PASSWORD "
                           "(at least 12 characters; FACE_API_ADMIN_USERNAME defaults to admin)")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    check(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Everything here is per worker process, bound to that worker's event loop.
        async with AsyncExitStack() as stack:
            # Shared-memory regions are named after the gunicorn master (this worker's
            # parent), so that ./face-api serve can remove what a killed worker left.
            shm_prefix = frontend_shm_prefix(os.getppid()) if settings.triton_shared_memory else None
            app.state.triton = TritonClient(settings.triton_url, settings.triton_timeout_s, shm_prefix,
                                            endpoints=EndpointPool(settings.triton_url,
                                                                   settings.triton_check_interval_s,
                                                                   settings.triton_dns_refresh_s),
                                            shared_memory_bytes=settings.triton_shared_memory_bytes,
                                            reclaim_s=settings.shared_memory_reclaim_s)
            await app.state.triton.start()
            stack.push_async_callback(app.state.triton.close)
            # --- which pipelines Triton serves, and which the settings select (inference/served.py) ---
            app.state.catalog = ServedPipelines(app.state.triton, settings.detector, settings.recognizer,
                                                settings.catalog_refresh_s)
            await app.state.catalog.start()
            stack.push_async_callback(app.state.catalog.close)
            app.state.recognition = Recognition(app.state.triton, app.state.catalog, settings)
            pixel_budget.configure(settings.pixel_budget, settings.pixel_budget_wait_s)
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
                     "mask": Rate.parse(settings.rate_limit_mask),
                     "recognition": Rate.parse(settings.rate_limit_recognition),
                     "admin_login": Rate.parse(settings.rate_limit_admin_login)}
            app.state.access = AccessControl(rates, keys, usage, limits)
            # --- object storage (frontend/storage): None when storage is disabled ---
            app.state.objects = None
            if settings.storage_enabled:
                app.state.objects = open_object_store(settings)
                await app.state.objects.start()
                stack.push_async_callback(app.state.objects.close)
            # --- storage-backed mode: images and jobs (frontend/services/archive/) ---
            app.state.archive = (Archive(app.state.database, app.state.objects)
                                 if app.state.objects is not None else None)
            # --- admin sessions and credentials (frontend/auth/admin.py) ---
            app.state.admin = admin_auth(settings, app.state.database)  # None: no admin password
            # --- the last hour of this node's metrics, for the console ---
            app.state.metrics_history = History(multiprocess_dir())
            recorder = asyncio.create_task(keep_recording(app.state.metrics_history))
            stack.callback(recorder.cancel)
            yield

    app = FastAPI(
        title="Face API",
        version=__version__,
        summary="Face detection with landmarks, face masking and face recognition, "
                "served by Triton Inference Server.",
        lifespan=lifespan,
        # Served from this service instead of a CDN (frontend/api_docs.py).
        docs_url=None, redoc_url=None,
    )
    app.state.settings = settings
    errors.install(app)
    openapi.install(app)

    @app.exception_handler(TritonUnavailable)
    async def _unavailable(request: Request, error: TritonUnavailable) -> JSONResponse:
        log.warning("inference unavailable: %s", error)
        catalog = getattr(request.app.state, "catalog", None)
        if catalog is not None:
            catalog.refresh_soon()  # a model may have been unloaded or replaced: look again now
        return JSONResponse({"detail": "the inference server is unavailable; try again shortly"},
                            503, headers={"Retry-After": "5"})

    @app.exception_handler(Unsupported)
    async def _unsupported(_: Request, error: Unsupported) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, 501)

    @app.exception_handler(InferenceRejected)
    async def _rejected(_: Request, error: InferenceRejected) -> JSONResponse:
        # Triton's own words may name files of the model repository: they go to the log only.
        log.warning("the inference server rejected the request: %s", error)
        return JSONResponse({"detail": "the inference server could not process this photo with these "
                                       "parameters"}, 400)

    app.include_router(health.router)
    app.include_router(detect.router)
    app.include_router(mask.router)
    # Videos have a size limit of their own (RequestContext below knows it too).
    app.include_router(video.router, max_body_size=settings.video_max_bytes + MULTIPART_OVERHEAD)
    app.include_router(admin.router)
    app.include_router(files.router)
    app.include_router(console_router)
    app.include_router(metrics.router)
    app.include_router(api_docs.router())
    # RequestContext refuses a too-long Content-Length up front; this also stops a
    # chunked /v1 body (no Content-Length) at the same size while it is read.
    app.include_router(recognition.router, max_body_size=RECOGNITION_BODY_FACTOR * settings.max_upload_bytes
                       + MULTIPART_OVERHEAD)
    # Outermost last: every request, refusals included, is counted, logged and has an id.
    app.add_middleware(AccessMiddleware)
    app.add_middleware(RequestContext, max_body_bytes=settings.max_upload_bytes,
                       body_timeout_s=settings.body_timeout_s,
                       max_uploads_in_progress=settings.max_uploads_in_progress,
                       large_bodies={"/api/v1/mask/video": BodyLimit(
                           settings.video_max_bytes, settings.video_body_timeout_s,
                           "FACE_API_VIDEO_MAX_BYTES", "FACE_API_VIDEO_BODY_TIMEOUT_S")})
    app.add_middleware(RequestObserver)
    return app
