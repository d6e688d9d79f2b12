"""Triton Python-backend model that runs an ensemble's steps in one process (CPU mode).

On a CPU every step of a detect or mask pipeline (letterbox, the ONNX detector,
post-processing, masking) is a Python-backend model in the embedded server, so an
ensemble moves each photo through three or four stub processes: the photo, the
4.9 MB float blob and the detector's outputs are copied through shared memory at
every hop, and each hop wakes another process. runtime.cpu_repository serves such an
ensemble through this file instead (unless FACE_API_CPU_FUSED_PIPELINES=false): the
same step models (their own model.py files, configs and parameters) are loaded
here and called in the ensemble's order, with its input and output maps, so the
tensors stay in this process. The committed ensemble stays the single description
of the pipeline; NVIDIA's container serves it as an ensemble on the GPU.

steps.json, written beside this file by runtime.cpu_repository, lists the steps:
the folder of each step's model, its version, its config (as Triton passes it) and
the ensemble's maps.
"""

import json
import os

import triton_python_backend_utils as pb_utils

from triton_python.in_process import LocalRequest, finalize, instance_of, load_model

STEPS_FILE = "steps.json"


class _Step:
    def __init__(self, spec: dict, index: int, instance: int):
        self.name = spec["model"]
        self.input_map = spec["input_map"]  # step input -> pipeline tensor
        self.output_map = spec["output_map"]  # step output -> pipeline tensor
        self.model = load_model(spec, f"step_{index}", instance)

    def run(self, stores: list[dict]) -> list[str | None]:
        """Run the step on every request's tensors; add its outputs to each store.
        Returns each request's error message (None where it succeeded)."""
        requests = [LocalRequest([pb_utils.Tensor(name, store[tensor])
                                  for name, tensor in self.input_map.items() if tensor in store])
                    for store in stores]
        responses = self.model.execute(requests)
        errors = []
        for store, response in zip(stores, responses):
            if response.has_error():
                errors.append(f"{self.name}: {response.error().message()}")
                continue
            for tensor in response.output_tensors():
                if tensor.name() in self.output_map:
                    store[self.output_map[tensor.name()]] = tensor.as_numpy()
            errors.append(None)
        return errors


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        with open(os.path.join(args["model_repository"], STEPS_FILE)) as f:
            specs = json.load(f)
        instance = instance_of(args, config)
        self.steps = [_Step(spec, i, instance) for i, spec in enumerate(specs)]
        self.inputs = [tensor["name"] for tensor in config["input"]]
        self.outputs = [tensor["name"] for tensor in config["output"]]

    def execute(self, requests):
        stores = []
        for request in requests:
            store = {}
            for name in self.inputs:
                tensor = pb_utils.get_input_tensor_by_name(request, name)
                if tensor is not None:  # an optional input left out stays out
                    store[name] = tensor.as_numpy()
            stores.append(store)
        errors: list[str | None] = [None] * len(requests)
        for step in self.steps:
            live = [i for i, error in enumerate(errors) if error is None]
            if not live:
                break
            for i, error in zip(live, step.run([stores[i] for i in live])):
                errors[i] = error
        return [
            pb_utils.InferenceResponse(error=pb_utils.TritonError(error)) if error is not None
            else pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor(name, store[name]) for name in self.outputs if name in store])
            for store, error in zip(stores, errors)
        ]

    def finalize(self):
        finalize([step.model for step in self.steps])
