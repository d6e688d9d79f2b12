"""/v1/health and /v1/info/*: what the recognition service runs, from the catalog and Triton."""

from __future__ import annotations

from frontend import __version__
from frontend.errors import ApiError
from frontend.schemas import recognition as schema
from frontend.services.recognition.models import describe_model, fused_config
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


async def _ready_models(service: Recognition) -> tuple[dict[str, str], dict[str, str]]:
    """The models Triton has ready (name -> version), and the models that run inside a ready
    pipeline of the selection rather than on their own (name -> that pipeline: CPU mode)."""
    ready = await service.triton.ready_models()
    selection = service.catalog.selection
    inside = {model: pipeline.name
              for pipeline in (selection.detect, selection.mask, selection.recognize,
                               selection.recognize_detect)
              if pipeline is not None and pipeline.name in ready
              for model in pipeline.fused_models if model not in ready}
    return ready, inside


async def server_info(service: Recognition) -> schema.ServerInfo:
    pipeline = service.catalog.recognize()
    metadata = await service.triton.server_metadata()
    ready, inside = await _ready_models(service)
    models = []
    for name, role in ((pipeline.detect_pipeline, "detect_pipeline"), (pipeline.detector, "detector"),
                       (pipeline.name, "recognize_pipeline"), (pipeline.recognizer, "recognizer")):
        # A model run inside its pipeline is as ready as that pipeline, and runs as it does.
        served_as = inside.get(name, name)
        config = await service.triton.model_config(served_as) if served_as in ready else None
        platform = (config.get("platform") or config.get("backend")) if config else None
        models.append(schema.ServedModel(name=name, role=role, ready=served_as in ready,
                                         version=ready.get(served_as) or None, platform=platform or None))
    return schema.ServerInfo(
        service="face-api", version=__version__,
        triton=schema.TritonInfo(name=str(metadata.get("name", "")),
                                 version=str(metadata.get("version", ""))),
        models=models)


async def model_info(service: Recognition) -> schema.ModelInfo:
    pipeline = service.catalog.recognize()
    ready, inside = await _ready_models(service)
    return schema.ModelInfo(
        detector=pipeline.detector, recognizer=pipeline.recognizer, pipeline=pipeline.name,
        detect_pipeline=pipeline.detect_pipeline, embedding_size=pipeline.embedding_size,
        feature_version=service.version, models=sorted({*ready, *inside}))


async def describe(service: Recognition, model_name: str) -> schema.ModelDescription:
    config = await service.triton.model_config(model_name)
    if config is None:
        _, inside = await _ready_models(service)
        if model_name not in inside:
            raise ApiError(404, f"unknown model {model_name!r}: Triton has no model of that name")
        config = fused_config(await service.triton.model_config(inside[model_name]), model_name)
        if config is None:
            raise ApiError(404, f"model {model_name!r} runs inside the pipeline {inside[model_name]!r} "
                                "(CPU mode), so Triton holds no config of its own for it; "
                                f"describe {inside[model_name]!r} instead")
    pipeline = service.catalog.selection.recognize
    return describe_model(config, pipeline.recognizer if pipeline else service.settings.recognizer)
