"""Triton model: SCRFD raw outputs -> faces in photo coordinates.

Anchor decode at each stride, confidence threshold, division by the letterbox
scale, NMS in photo pixels (as InsightFace), the max_faces cap, clipping.
Faces come out best first, padded to the longest list in the batch;
NUM_FACES says how many rows are real.
"""

import json
import time

import numpy as np
import triton_python_backend_utils as pb_utils
from scrfd_decode import clip_boxes, decode_candidates, select_faces, to_photo_coordinates


def _input(request, name):
    return pb_utils.get_input_tensor_by_name(request, name).as_numpy()


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
                     _input(request, f"kps_{stride}"))
            for stride in self.strides
        }
        scales = _input(request, "SCALE")
        sizes = _input(request, "ORIGINAL_SIZE")
        confidence = _input(request, "CONFIDENCE")[:, 0]
        nms_threshold = _input(request, "NMS_THRESHOLD")[:, 0]
        max_faces = _input(request, "MAX_FACES")[:, 0]
        batch = len(scales)
        if not (np.all((0 <= confidence) & (confidence <= 1))
                and np.all((0 <= nms_threshold) & (nms_threshold <= 1)) and np.all(max_faces >= 0)):
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(
                "CONFIDENCE and NMS_THRESHOLD must lie in [0, 1] and MAX_FACES must be >= 0"))

        faces, counts = [], np.zeros((batch, 2), np.int32)
        decode_ms = np.zeros((batch, 1), np.float32)
        nms_ms = np.zeros((batch, 1), np.float32)
        for i in range(batch):
            t0 = time.perf_counter()
            scores, boxes, points = decode_candidates(
                {s: tuple(t[i] for t in outs) for s, outs in raw.items()},
                self.input_size, self.num_anchors, float(confidence[i]))
            boxes, points = to_photo_coordinates(boxes, points, *scales[i])
            t1 = time.perf_counter()
            before_nms = len(scores)
            scores, boxes, points, after_nms = select_faces(
                scores, boxes, points, float(nms_threshold[i]), int(max_faces[i]))
            t2 = time.perf_counter()
            faces.append((scores, clip_boxes(boxes, *sizes[i]), points))
            counts[i] = (before_nms, after_nms)
            decode_ms[i, 0] = (t1 - t0) * 1000.0
            nms_ms[i, 0] = (t2 - t1) * 1000.0

        longest = max(len(f[0]) for f in faces)
        out_scores = np.zeros((batch, longest), np.float32)
        out_boxes = np.zeros((batch, longest, 4), np.float32)
        out_points = np.zeros((batch, longest, 5, 2), np.float32)
        num_faces = np.zeros((batch, 1), np.int32)
        for i, (scores, boxes, points) in enumerate(faces):
            n = len(scores)
            out_scores[i, :n], out_boxes[i, :n], out_points[i, :n] = scores, boxes, points
            num_faces[i, 0] = n
        return pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor("NUM_FACES", num_faces),
            pb_utils.Tensor("SCORES", out_scores),
            pb_utils.Tensor("BOXES", out_boxes),
            pb_utils.Tensor("LANDMARKS", out_points),
            pb_utils.Tensor("CANDIDATES", counts),
            pb_utils.Tensor("DECODE_MS", decode_ms),
            pb_utils.Tensor("NMS_MS", nms_ms),
        ])

