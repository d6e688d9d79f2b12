"""Triton model: SCRFD raw outputs -> faces in photo coordinates.

Anchor decode at each stride, confidence threshold, division by the letterbox
scale, NMS in photo pixels (as InsightFace), the max_faces cap, clipping.
Faces come out best first, padded to the longest list in the batch;
NUM_FACES says how many rows are real. The kps_* inputs are optional: a SCRFD
model without keypoints leaves them out and its faces get zero landmarks.
The maths are in triton_python/scrfd_decode.py and triton_python/detections.py.
"""

import json

import triton_python_backend_utils as pb_utils

from triton_python.detections import postprocess_request
from triton_python.scrfd_decode import decode_candidates


def _input(request, name):
    return pb_utils.get_input_tensor_by_name(request, name).as_numpy()


def _optional(request, name):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return None if tensor is None else tensor.as_numpy()


class TritonPythonModel:
    def initialize(self, args):
        params = json.loads(args["model_config"]).get("parameters", {})
        self.input_size = int(params["input_size"]["string_value"])
        self.num_anchors = int(params["num_anchors"]["string_value"])
        self.strides = [int(s) for s in params["strides"]["string_value"].split(",")]

    def execute(self, requests):
        return [self._postprocess(request) for request in requests]

    def _postprocess(self, request):
        raw = {
            stride: (_input(request, f"score_{stride}"), _input(request, f"bbox_{stride}"),
                     _optional(request, f"kps_{stride}"))
            for stride in self.strides
        }

        def decode(i, threshold):
            return decode_candidates({s: tuple(None if t is None else t[i] for t in outs)
                                      for s, outs in raw.items()},
                                     self.input_size, self.num_anchors, threshold)

        outputs, problem = postprocess_request(lambda name: _input(request, name), decode)
        if problem:
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(problem))
        return pb_utils.InferenceResponse(
            output_tensors=[pb_utils.Tensor(name, value) for name, value in outputs.items()])
