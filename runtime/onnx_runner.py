"""Triton Python-backend model that runs one ONNX file with onnxruntime on the CPU.

The embedded tritonserver (from nvidia-pytriton) has no ONNX Runtime backend,
so runtime.cpu_repository serves every `backend: "onnxruntime"` model through
this file instead, with the model's own inputs, outputs and batching.
Requests that Triton's dynamic batcher hands over together are stacked into
one onnxruntime call, so batching behaves as it does natively.

onnxruntime's CPU arena keeps the largest working set a run ever needed: a
recognizer that once embedded 32 faces held ~300 MB for good, where one face
needs ~70 MB. So after a run of more than SHRINK_ABOVE items the arena gives
back what it does not use; runs of a few items (most photos) keep it warm.
Shrinking costs a few percent on those large runs (measured: docs/performance.md).

A lone request gets every core: with ``idle_threads`` above ``intra_op_threads`` the
model also has a session with that many threads, used for a run of one item while the
model is quiet: no other instance running and none just finished
(triton_python/busy_board.py). Under load the instances keep to their own threads, so
the cores are not oversubscribed.
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

from triton_python.busy_board import BusyBoard, board_path, instance_slot, remove_stale

SHRINK_ABOVE = 4  # items in one run


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        path = os.path.join(args["model_repository"], args["model_version"], params["onnx_file"])
        threads = int(params.get("intra_op_threads", "0"))
        idle_threads = int(params.get("idle_threads", "0"))
        spinning = params.get("allow_spinning", "0")
        self.session = _session(path, threads, spinning)
        self.idle_session, self.board = None, None
        if threads > 0 and idle_threads > threads:
            self.idle_session = _session(path, idle_threads, spinning)
            remove_stale()
            self.board = BusyBoard(board_path(config["name"], os.getppid()),
                                   instance_slot(args.get("model_instance_name", "")))
        self.inputs = [tensor["name"] for tensor in config["input"]]
        self.outputs = [tensor["name"] for tensor in config["output"]]
        self.batched = config.get("max_batch_size", 0) > 0
        self.shrink = ort.RunOptions()
        self.shrink.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    def execute(self, requests):
        feeds = [
            {name: pb_utils.get_input_tensor_by_name(r, name).as_numpy() for name in self.inputs}
            for r in requests
        ]
        if self.batched and len(requests) > 1:
            sizes = [len(feed[self.inputs[0]]) for feed in feeds]
            stacked = {name: np.concatenate([f[name] for f in feeds]) for name in self.inputs}
            results = self._run(stacked)
            bounds = np.cumsum(sizes)[:-1]
            per_request = zip(*(np.split(result, bounds) for result in results))
        else:
            per_request = [self._run(feed) for feed in feeds]
        return [
            pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor(n, np.ascontiguousarray(v))
                                for n, v in zip(self.outputs, values)]
            )
            for values in per_request
        ]

    def _run(self, feed):
        items = len(feed[self.inputs[0]]) if self.batched else 1
        run_options = self.shrink if items > SHRINK_ABOVE else None
        if self.board is None:
            return self.session.run(self.outputs, feed, run_options)
        try:
            alone = self.board.claim()
            session = self.idle_session if alone and items == 1 else self.session
            return session.run(self.outputs, feed, run_options)
        finally:
            self.board.release()

    def finalize(self):
        if self.board is not None:
            self.board.close(remove=True)


def _session(path: str, threads: int, spinning: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    # Spinning threads cut latency but steal the CPU from the other Triton
    # processes; the launcher decides (FACE_API_ONNX_SPINNING).
    options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
