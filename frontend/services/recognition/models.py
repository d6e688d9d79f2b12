"""Model configs (Triton's JSON, snake_case or camelCase keys) as /v1/info/model/{name} shows them."""

from __future__ import annotations

import json
from typing import Any

from frontend.inference.catalog import FUSED_CONFIGS
from frontend.schemas import recognition as schema
from frontend.services.recognition.faces import ALIGNED_SIZE


def _get(config: dict, name: str, default: Any = None) -> Any:
    if name in config:
        return config[name]
    head, *rest = name.split("_")
    return config.get(head + "".join(part.title() for part in rest), default)


def tensors(items: list[dict] | None) -> list[schema.TensorInfo]:
    described = []
    for item in items or ():
        datatype = str(_get(item, "data_type", "TYPE_INVALID"))
        described.append(schema.TensorInfo(
            name=str(item.get("name", "")),
            datatype=datatype.removeprefix("TYPE_"),
            dims=[int(d) for d in item.get("dims", ())]))
    return described


def embedding_size_of(config: dict) -> int | None:
    """The last dim of a recognition network's (only) output; None when unknown."""
    outputs = tensors(config.get("output"))
    if not outputs or not outputs[0].dims or outputs[0].dims[-1] <= 0:
        return None
    return outputs[0].dims[-1]


def is_recognizer(config: dict, recognizer: str | None) -> bool:
    """The served recognizer, or any network that takes one aligned 3×112×112 face."""
    if config.get("name") == recognizer:
        return True
    inputs, outputs = tensors(config.get("input")), tensors(config.get("output"))
    return (len(inputs) == 1 and len(outputs) == 1
            and inputs[0].dims[-3:] == [3, ALIGNED_SIZE, ALIGNED_SIZE])


def fused_config(pipeline_config: dict | None, model: str) -> dict | None:
    """The config of ``model`` as the pipeline runs it inside itself (CPU mode: the pipeline's
    FUSED_CONFIGS parameter); None when it has none."""
    value = ((pipeline_config or {}).get("parameters") or {}).get(FUSED_CONFIGS)
    text = _get(value, "string_value") if isinstance(value, dict) else None
    try:
        found = json.loads(text).get(model) if text else None
    except (ValueError, AttributeError):
        return None
    return found if isinstance(found, dict) else None


def describe_model(config: dict, recognizer: str | None) -> schema.ModelDescription:
    parameters = {}
    for key, value in (config.get("parameters") or {}).items():
        if key == FUSED_CONFIGS:  # the inside models' configs: described on their own
            continue
        parameters[key] = str(_get(value, "string_value", "")) if isinstance(value, dict) else str(value)
    return schema.ModelDescription(
        name=str(config.get("name", "")),
        platform=str(config.get("platform", "")),
        backend=str(config.get("backend", "")),
        max_batch_size=int(_get(config, "max_batch_size", 0)),
        inputs=tensors(config.get("input")),
        outputs=tensors(config.get("output")),
        dynamic_batching=_get(config, "dynamic_batching"),
        parameters=parameters,
        embedding_size=embedding_size_of(config) if is_recognizer(config, recognizer) else None,
    )
