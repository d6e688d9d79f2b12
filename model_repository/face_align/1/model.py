"""Triton model: align every face of one photo onto the 112×112 ArcFace template.

IMAGE (uint8 H×W×3) + LANDMARKS (float32 N×5×2, photo px) -> FACES (uint8 N×112×112×3).
The maths are in triton_python/alignment.py.
"""

import time

import cv2
import numpy as np
import triton_python_backend_utils as pb_utils

from triton_python.alignment import align_faces


class TritonPythonModel:
    def initialize(self, args):
        cv2.setNumThreads(1)  # parallelism comes from instances, not OpenCV threads

    def execute(self, requests):
        return [self._align(request) for request in requests]

    def _align(self, request):
        image = pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy()
        landmarks = pb_utils.get_input_tensor_by_name(request, "LANDMARKS").as_numpy()
        if image.ndim != 3 or image.shape[2] != 3 or landmarks.ndim != 3 or landmarks.shape[1:] != (5, 2):
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(
                f"expected IMAGE H×W×3 and LANDMARKS N×5×2, got {image.shape} and {landmarks.shape}"))
        started = time.perf_counter()
        try:
            faces = align_faces(image, landmarks)
        except ValueError as error:
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(error)))
        align_ms = (time.perf_counter() - started) * 1000.0
        return pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor("FACES", faces),
            pb_utils.Tensor("ALIGN_MS", np.array([align_ms], np.float32)),
        ])
