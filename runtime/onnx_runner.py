"""Triton Python-backend model that runs one ONNX file with onnxruntime on the CPU.

The embedded tritonserver (from nvidia-pytriton) has no ONNX Runtime backend,
so runtime.cpu_repository serves every `backend: "onnxruntime"` model through
this file instead, with the model's own inputs, outputs and batching.
Requests that Triton's dynamic batcher hands over together are stacked into
one onnxruntime call, so batching behaves as it does natively.
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        path = os.path.join(args["model_repository"], args["model_version"], params["onnx_file"])
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = int(params.get("intra_op_threads", "0"))
        # Spinning threads cut latency but steal the CPU from the other Triton
        # processes; the launcher decides (FACE_API_ONNX_SPINNING).
        options.add_session_config_entry("session.intra_op.allow_spinning",
                                         params.get("allow_spinning", "0"))
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.inputs = [tensor["name"] for tensor in config["input"]]
        self.outputs = [tensor["name"] for tensor in config["output"]]
        self.batched = config.get("max_batch_size", 0) > 0

    def execute(self, requests):
        feeds = [
            {name: pb_utils.get_input_tensor_by_name(r, name).as_numpy() for name in self.inputs}
            for r in requests
        ]
        if self.batched and len(requests) > 1:
            sizes = [len(feed[self.inputs[0]]) for feed in feeds]
            stacked = {name: np.concatenate([f[name] for f in feeds]) for name in self.inputs}
            results = self.session.run(self.outputs, stacked)
            bounds = np.cumsum(sizes)[:-1]
            per_request = zip(*(np.split(result, bounds) for result in results))
        else:
            per_request = (self.session.run(self.outputs, feed) for feed in feeds)
        return [
            pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor(n, np.ascontiguousarray(v))
                                for n, v in zip(self.outputs, values)]
            )
            for values in per_request
        ]
