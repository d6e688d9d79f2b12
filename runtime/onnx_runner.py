"""Triton Python-backend model that runs one ONNX file with onnxruntime on the CPU.

The embedded tritonserver (from nvidia-pytriton) has no ONNX Runtime backend,
so runtime.cpu_repository serves every `backend: "onnxruntime"` model through
this file instead, with the model's own inputs, outputs and batching.
Requests that Triton's dynamic batcher hands over together are stacked into
one onnxruntime call, so batching behaves as it does natively.

onnxruntime's CPU arena keeps the largest working set a run ever needed, so
after runs of more than SHRINK_ABOVE items it gives back what it does not use:
at the end of the next small run, or after SHRINK_WHEN_IDLE_S seconds without a run
(triton_python/arena_policy.py). Runs of a few items (most photos) keep it warm.

A lone request gets every core: with ``idle_threads`` above ``intra_op_threads`` the
model also has a session with that many threads, used for a run of one item while the
model is quiet: no other instance running and none just finished
(triton_python/busy_board.py). Under load the instances keep to their own threads, so
the cores are not oversubscribed.
"""

import json
import os
import threading

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

from runtime.allocator import give_back_free_memory
from triton_python.arena_policy import SHRINK_ABOVE, SHRINK_WHEN_IDLE_S, ArenaPolicy
from triton_python.busy_board import BusyBoard, board_path, instance_slot, remove_stale


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
        self.stopping = threading.Event()
        # An item of zeros to shrink on when the model goes quiet; a model with a free
        # dimension has none, and shrinks right after each large run instead.
        self.one_item = _one_item(config["input"]) if self.batched else None
        self.arena = ArenaPolicy(SHRINK_ABOVE, SHRINK_WHEN_IDLE_S, deferred=self.one_item is not None)
        if self.one_item is not None:
            threading.Thread(target=self._shrink_when_quiet, name="arena", daemon=True).start()

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
        shrink = self.arena.start(items)
        alone = self.board is not None and self.board.claim()
        try:
            # (a run that shrinks the arena must be on the session whose arena grew)
            session = self.idle_session if alone and items == 1 and not shrink else self.session
            return session.run(self.outputs, feed, self.shrink if shrink else None)
        finally:
            if self.board is not None:
                self.board.release()
            self.arena.end()

    def _shrink_when_quiet(self):
        while not self.stopping.wait(SHRINK_WHEN_IDLE_S / 4):
            if self.arena.quiet_shrink_due():
                self.session.run(self.outputs, self.one_item, self.shrink)
                give_back_free_memory()  # and the heap the large run left below the trim threshold

    def finalize(self):
        self.stopping.set()
        if self.board is not None:
            self.board.close(remove=True)


def _one_item(inputs: list[dict]) -> dict[str, np.ndarray] | None:
    """A batch of one item of zeros for every input, or None where a dimension is free."""
    feed = {}
    for tensor in inputs:
        dims = [int(d) for d in tensor["dims"]]
        if any(d < 0 for d in dims):
            return None
        feed[tensor["name"]] = np.zeros([1, *dims], pb_utils.triton_string_to_numpy(tensor["data_type"]))
    return feed


def _session(path: str, threads: int, spinning: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    # Spinning threads cut latency but steal the CPU from the other Triton
    # processes; the launcher decides (FACE_API_ONNX_SPINNING).
    options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
