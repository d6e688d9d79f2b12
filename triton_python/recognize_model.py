"""Triton glue of every recognize pipeline (a BLS model): faces on a photo -> one
unit-length embedding per face.

    IMAGE --detect_pipeline--> boxes, landmarks --align_model--> 112×112 crops
          --normalise (mean, std, channel order)--> recognizer --L2--> EMBEDDINGS

A BLS model rather than an ensemble because the face count varies per photo,
zero included, while an ensemble step's batch is the request's. Each call to the
recognizer carries all faces of the photo (in chunks of its max batch size),
and Triton's dynamic batcher merges those calls across concurrent requests.

Already aligned 112×112 crops (ALIGNED) skip detection and alignment. In CPU mode the
models it calls may run inside this model's process instead (triton_python/in_process.py):
the same models and results, without a copy of the photo into another process per call.
Everything pipeline-specific comes from the pipeline's config parameters, so one
code serves every detector + recognizer pair (each recognize_* folder's model.py
imports it from here).
"""

import json
import time

import numpy as np
import triton_python_backend_utils as pb_utils

from triton_python import in_process
from triton_python.alignment import ARCFACE_TEMPLATE

DETECT_OUTPUTS = ["NUM_FACES", "SCORES", "BOXES", "LANDMARKS"]
# The landmarks of an aligned crop, reported for ALIGNED input.
TEMPLATE = ARCFACE_TEMPLATE.astype(np.float32)


class Rejected(Exception):
    """The request's inputs are wrong: Triton answers it with this message."""


class TritonPythonModel:
    def initialize(self, args):
        params = {k: v["string_value"] for k, v in
                  json.loads(args["model_config"]).get("parameters", {}).items()}
        self.detect_pipeline = params["detect_pipeline"]
        self.align_model = params["align_model"]
        self.recognizer = params["recognizer"]
        self.recognizer_input = params["recognizer_input"]
        self.recognizer_output = params["recognizer_output"]
        self.chunk = max(1, int(params["recognizer_max_batch_size"]))
        self.mean = float(params["mean"])
        self.std = float(params["std"])
        self.bgr = params["channel_order"].upper() == "BGR"
        self.local = in_process.load_callees(args)  # name -> model run in this process (CPU mode)

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                responses.append(pb_utils.InferenceResponse(output_tensors=self._recognize(request)))
            except Rejected as error:
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(error))))
        return responses

    def _recognize(self, request):
        aligned = _input(request, "ALIGNED")
        detect_ms = align_ms = 0.0
        if aligned is not None:
            faces = aligned
            count = len(faces)
            scores = np.ones(count, np.float32)
            boxes = np.tile(np.array([0, 0, 112, 112], np.float32), (count, 1))
            landmarks = np.tile(TEMPLATE, (count, 1, 1))
        else:
            image = _input(request, "IMAGE")
            if image is None:
                raise Rejected("send IMAGE (a photo) or ALIGNED (112×112 face crops)")
            started = time.perf_counter()
            scores, boxes, landmarks = self._detect(request, image)
            largest_only = _input(request, "LARGEST_ONLY")
            if largest_only is not None and bool(largest_only[0]) and len(scores) > 1:
                largest = int(np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))
                scores, boxes, landmarks = scores[[largest]], boxes[[largest]], landmarks[[largest]]
            detect_ms = (time.perf_counter() - started) * 1000.0
            faces = np.empty((0, 112, 112, 3), np.uint8)
            if len(scores):
                started = time.perf_counter()
                faces = self._call(self.align_model, {"IMAGE": image, "LANDMARKS": landmarks},
                                   ["FACES"])["FACES"]
                align_ms = (time.perf_counter() - started) * 1000.0
        started = time.perf_counter()
        embeddings = self._embed(faces)
        embed_ms = (time.perf_counter() - started) * 1000.0
        return [
            pb_utils.Tensor("NUM_FACES", np.array([len(scores)], np.int32)),
            pb_utils.Tensor("SCORES", np.ascontiguousarray(scores, np.float32)),
            pb_utils.Tensor("BOXES", np.ascontiguousarray(boxes, np.float32).reshape(-1, 4)),
            pb_utils.Tensor("LANDMARKS", np.ascontiguousarray(landmarks, np.float32).reshape(-1, 5, 2)),
            pb_utils.Tensor("EMBEDDINGS", embeddings),
            pb_utils.Tensor("DETECT_MS", np.array([detect_ms], np.float32)),
            pb_utils.Tensor("ALIGN_MS", np.array([align_ms], np.float32)),
            pb_utils.Tensor("EMBED_MS", np.array([embed_ms], np.float32)),
        ]

    def _detect(self, request, image):
        """Best-first scores, boxes and landmarks from the detect pipeline (batch of one photo)."""
        inputs = {"IMAGE": image[None]}
        for name, dtype, default in (("CONFIDENCE", np.float32, 0.5), ("NMS_THRESHOLD", np.float32, 0.4),
                                     ("MAX_FACES", np.int32, 0)):
            value = _input(request, name)
            inputs[name] = np.array([[default if value is None else value[0]]], dtype)
        out = self._call(self.detect_pipeline, inputs, DETECT_OUTPUTS)
        count = int(out["NUM_FACES"][0, 0])
        return out["SCORES"][0, :count], out["BOXES"][0, :count], out["LANDMARKS"][0, :count]

    def _embed(self, faces):
        """(N, D) unit-length embeddings of (N, 112, 112, 3) uint8 RGB crops."""
        if len(faces) == 0:
            return np.zeros((0, 0), np.float32)
        if faces.ndim != 4 or faces.shape[1:] != (112, 112, 3):
            raise Rejected(f"aligned faces must be N×112×112×3, got {faces.shape}")
        blob = faces[..., ::-1] if self.bgr else faces
        blob = (blob.astype(np.float32) - self.mean) / self.std
        blob = np.ascontiguousarray(blob.transpose(0, 3, 1, 2))
        chunks = [self._call(self.recognizer, {self.recognizer_input: blob[i:i + self.chunk]},
                             [self.recognizer_output])[self.recognizer_output]
                  for i in range(0, len(blob), self.chunk)]
        features = np.concatenate(chunks).reshape(len(blob), -1).astype(np.float32)
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        return features / np.maximum(norms, 1e-12)

    def _call(self, model, inputs, outputs):
        """One call to ``model`` (here when CPU mode put it in this process, else a BLS
        call through Triton); its outputs as NumPy arrays by name."""
        inputs = {name: np.ascontiguousarray(value) for name, value in inputs.items()}
        if model in self.local:
            try:
                response = in_process.call(self.local[model], inputs)
            except Exception as error:  # Triton turns a model's exception into an error response
                raise Rejected(f"{model}: {error}") from error
        else:
            response = pb_utils.InferenceRequest(
                model_name=model, requested_output_names=outputs,
                inputs=[pb_utils.Tensor(name, value) for name, value in inputs.items()],
            ).exec()
        if response.has_error():
            raise Rejected(f"{model}: {response.error().message()}")
        return {name: pb_utils.get_output_tensor_by_name(response, name).as_numpy() for name in outputs}

    def finalize(self):
        in_process.finalize(self.local.values())


def _input(request, name):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return None if tensor is None else tensor.as_numpy()
