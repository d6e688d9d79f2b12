"""Triton model: YuNet raw outputs -> faces in photo coordinates.

Decode every stride's cells (triton_python/yunet_decode.py, as OpenCV's FaceDetectorYN),
then what every detector shares (triton_python/detections.py): confidence threshold,
division by the letterbox scale, NMS in photo pixels, the max_faces cap,
clipping. Faces come out best first; NUM_FACES says how many rows are real.
"""

import json

import triton_python_backend_utils as pb_utils

from triton_python.detections import postprocess_request
from triton_python.yunet_decode import decode_candidates

KINDS = ("cls", "obj", "bbox", "kps")


def _input(request, name):
    return pb_utils.get_input_tensor_by_name(request, name).as_numpy()


class TritonPythonModel:
    def initialize(self, args):
        params = json.loads(args["model_config"]).get("parameters", {})
        self.input_size = int(params["input_size"]["string_value"])
        self.strides = [int(s) for s in params["strides"]["string_value"].split(",")]

    def execute(self, requests):
        return [self._postprocess(request) for request in requests]

    def _postprocess(self, request):
        raw = {stride: tuple(_input(request, f"{kind}_{stride}") for kind in KINDS)
               for stride in self.strides}

        def decode(i, threshold):
            return decode_candidates({s: tuple(t[i] for t in outs) for s, outs in raw.items()},
                                     self.input_size, threshold)

        outputs, problem = postprocess_request(lambda name: _input(request, name), decode)
        if problem:
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(problem))
        return pb_utils.InferenceResponse(
            output_tensors=[pb_utils.Tensor(name, value) for name, value in outputs.items()])
