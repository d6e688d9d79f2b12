"""Run another Python-backend model inside this stub process (CPU mode only).

The embedded CPU server runs every model as a Python-backend stub, so each call from one
model to another (an ensemble step, a BLS call) copies its tensors through shared memory
into another process and wakes it. runtime/cpu_repository.py therefore lets a pipeline
load the models it calls into its own process: each keeps its own model.py, config and
parameters, and is called through its own ``execute``, as Triton would call it. In
NVIDIA's container (a GPU) nothing here is used: the pipelines call their models
through Triton as the committed configs say.

A spec (from steps.json or callees.json beside the pipeline) names a model's folder, its
version and the config Triton would have given it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re

import triton_python_backend_utils as pb_utils

from triton_python.busy_board import instance_slot

CALLEES_FILE = "callees.json"  # the models a BLS pipeline runs in its own process


class LocalRequest:
    """What a model reads of a request: its input tensors
    (pb_utils.get_input_tensor_by_name looks them up through inputs())."""

    def __init__(self, tensors):
        self._tensors = tensors

    def inputs(self):
        return self._tensors


def load_model(spec: dict, tag: str, instance: int):
    """The initialised TritonPythonModel of ``spec``, as instance ``instance`` of its model
    (the number keeps its slot on a shared busy board apart from other instances)."""
    name = spec["model"]
    module_name = f"_in_process_{tag}_{re.sub(r'[^A-Za-z0-9_]', '_', name)}"
    source = os.path.join(spec["folder"], spec["version"], "model.py")
    loader = importlib.util.spec_from_file_location(module_name, source)
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    model = module.TritonPythonModel()
    model.initialize({
        "model_config": json.dumps(spec["config"]),
        "model_name": name,
        "model_instance_name": f"{name}_0_{instance}",
        "model_instance_kind": "CPU",
        "model_instance_device_id": "0",
        "model_repository": spec["folder"],
        "model_version": spec["version"],
    })
    return model


def instance_of(args: dict, config: dict) -> int:
    """This instance's number for the models it loads: its own slot after the pipeline's
    ``step_instance_offset`` (cpu_repository keeps each pipeline's range apart)."""
    params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
    return int(params.get("step_instance_offset", "0")) + instance_slot(args.get("model_instance_name", ""))


def load_callees(args: dict) -> dict:
    """The models that CPU mode put in this BLS model's process (name -> model); none
    where callees.json is absent (NVIDIA's container, or FACE_API_CPU_FUSED_PIPELINES=false)."""
    path = os.path.join(args.get("model_repository", ""), CALLEES_FILE)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        specs = json.load(f)
    instance = instance_of(args, json.loads(args["model_config"]))
    return {spec["model"]: load_model(spec, f"callee_{i}", instance) for i, spec in enumerate(specs)}


def call(model, inputs: dict) -> object:
    """One request to a model loaded here: its response (check has_error())."""
    return model.execute([LocalRequest([pb_utils.Tensor(name, value) for name, value in inputs.items()])])[0]


def finalize(models) -> None:
    """Let each model loaded here release what it holds, as Triton would when unloading it."""
    for model in models:
        if hasattr(model, "finalize"):
            model.finalize()
