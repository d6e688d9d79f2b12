"""Triton model: mask the faces on a photo.

IMAGE (uint8 H×W×3), BOXES (N×4, photo px), NUM_FACES, METHOD, STRENGTH, PADDING
-> MASKED (the photo, faces masked), REGIONS (how many), MASK_MS.
What each method and parameter means is documented in triton_python/masking.py. Parameters
it refuses come back as a request error naming the parameter, never a crash.
"""

import time

import cv2
import numpy as np
import triton_python_backend_utils as pb_utils

from triton_python.masking import mask_faces, validate


def _input(request, name):
    return pb_utils.get_input_tensor_by_name(request, name).as_numpy()


def _error(message):
    # INVALID_ARG: the caller's inputs are at fault (gRPC INVALID_ARGUMENT, HTTP 400).
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, pb_utils.TritonError.INVALID_ARG))


def _text(value) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


class TritonPythonModel:
    def initialize(self, args):
        # Parallelism comes from model instances (processes); OpenCV's own thread
        # pool inside each would only fight them for the same cores.
        cv2.setNumThreads(1)

    def execute(self, requests):
        return [self._mask(request) for request in requests]

    def _mask(self, request):
        images = _input(request, "IMAGE")
        boxes = _input(request, "BOXES")
        num_faces = _input(request, "NUM_FACES")[:, 0]
        methods = [_text(m) for m in _input(request, "METHOD")[:, 0]]
        strengths = [int(s) for s in _input(request, "STRENGTH")[:, 0]]
        paddings = [float(p) for p in _input(request, "PADDING")[:, 0]]
        if images.shape[-1] != 3 or images.shape[1] < 1 or images.shape[2] < 1:
            return _error(f"IMAGE must be N×H×W×3 uint8, got {images.shape}")
        if np.any(num_faces < 0) or np.any(num_faces > boxes.shape[1]):
            return _error(f"NUM_FACES must lie between 0 and the {boxes.shape[1]} rows of BOXES, "
                          f"got {num_faces.tolist()}")
        for method, strength, padding in zip(methods, strengths, paddings):
            problem = validate(method, strength, padding)
            if problem:
                return _error(problem)

        masked = np.empty_like(images)
        regions = np.zeros((len(images), 1), np.int32)
        mask_ms = np.zeros((len(images), 1), np.float32)
        for i, image in enumerate(images):
            started = time.perf_counter()
            _, regions[i, 0] = mask_faces(image, boxes[i, :num_faces[i]], methods[i],
                                          strengths[i], paddings[i], out=masked[i])
            mask_ms[i, 0] = (time.perf_counter() - started) * 1000.0
        return pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor("MASKED", masked),
            pb_utils.Tensor("REGIONS", regions),
            pb_utils.Tensor("MASK_MS", mask_ms),
        ])
