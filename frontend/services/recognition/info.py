"""/v1/health and /v1/info/*: what the recognition service runs, from the catalog and Triton."""

from __future__ import annotations

from frontend import __version__
from frontend.errors import ApiError
from frontend.schemas import recognition as schema
from frontend.services.recognition.models import describe_model
from frontend.services.recognition.service import Recognition


async def health(service: Recognition) -> schema.RecognitionHealth:
    """Ready when one Triton server has the recognize pipeline and its detect pipeline ready."""
    pipeline = service.catalog.selection.recognize
    ready = False
    if pipeline is None:  # not among the served pipelines at the last look: look again now
        service.catalog.refresh_soon()
    else:
        servers = await service.triton.readiness([pipeline.name, pipeline.detect_pipeline])
        ready = any(servers.values())
    return schema.RecognitionHealth(status="ok" if ready else "unavailable",
                                    recognizer=service.settings.recognizer,
                                    detector=pipeline.detector if pipeline else None, model_loaded=ready)


async def server_info(service: Recognition) -> schema.ServerInfo:
    pipeline = service.catalog.recognize()
    metadata = await service.triton.server_metadata()
    ready = await service.triton.ready_models()
    models = []
    for name, role in ((pipeline.detect_pipeline, "detect_pipeline"), (pipeline.detector, "detector"),
                       (pipeline.name, "recognize_pipeline"), (pipeline.recognizer, "recognizer")):
        config = await service.triton.model_config(name) if name in ready else None
        platform = (config.get("platform") or config.get("backend")) if config else None
        models.append(schema.ServedModel(name=name, role=role, ready=name in ready,
                                         version=ready.get(name) or None, platform=platform or None))
    return schema.ServerInfo(
        service="face-api", version=__version__,
        triton=schema.TritonInfo(name=str(metadata.get("name", "")),
                                 version=str(metadata.get("version", ""))),
        models=models)


async def model_info(service: Recognition) -> schema.ModelInfo:
    pipeline = service.catalog.recognize()
    return schema.ModelInfo(
        detector=pipeline.detector, recognizer=pipeline.recognizer, pipeline=pipeline.name,
        detect_pipeline=pipeline.detect_pipeline, embedding_size=pipeline.embedding_size,
        feature_version=service.version, models=sorted(await service.triton.ready_models()))


async def describe(service: Recognition, model_name: str) -> schema.ModelDescription:
    config = await service.triton.model_config(model_name)
    if config is None:
        raise ApiError(404, f"unknown model {model_name!r}: Triton has no model of that name")
    pipeline = service.catalog.selection.recognize
    return describe_model(config, pipeline.recognizer if pipeline else service.settings.recognizer)
