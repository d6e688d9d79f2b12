"""Triton glue of the letterbox models (face_letterbox, yunet_letterbox): a decoded photo in,
a detector's input blob out.

IMAGE (uint8 N×H×W×3, RGB, any size) -> BLOB (float32 N×3×S×S), SCALE (x, y), ORIGINAL_SIZE.
S, mean, std and channel order come from the model's config parameters, so one code
serves any square-input detector.
"""

import json
import time

import cv2
import numpy as np
import triton_python_backend_utils as pb_utils

from triton_python.letterbox import letterbox, to_blob


class TritonPythonModel:
    def initialize(self, args):
        # Parallelism comes from model instances (processes); OpenCV's own thread
        # pool inside each would only fight them for the same cores.
        cv2.setNumThreads(1)
        params = json.loads(args["model_config"]).get("parameters", {})
        self.size = int(params["input_size"]["string_value"])
        self.mean = float(params["mean"]["string_value"])
        self.std = float(params["std"]["string_value"])
        self.swap_rb = params["channel_order"]["string_value"].upper() == "BGR"

    def execute(self, requests):
        return [self._letterbox(request) for request in requests]

    def _letterbox(self, request):
        images = pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy()
        if images.shape[-1] != 3 or images.shape[1] < 1 or images.shape[2] < 1:
            return pb_utils.InferenceResponse(
                error=pb_utils.TritonError(f"IMAGE must be N×H×W×3 uint8, got {images.shape}")
            )
        batch = len(images)
        blobs = np.empty((batch, 3, self.size, self.size), dtype=np.float32)
        scales = np.empty((batch, 2), dtype=np.float32)
        sizes = np.empty((batch, 2), dtype=np.int32)
        resize_ms = blob_ms = 0.0
        for i, image in enumerate(images):
            t0 = time.perf_counter()
            canvas, scales[i] = letterbox(image, self.size)
            t1 = time.perf_counter()
            to_blob(canvas, self.mean, self.std, self.swap_rb, out=blobs[i])
            t2 = time.perf_counter()
            sizes[i] = image.shape[:2]
            resize_ms += (t1 - t0) * 1000.0
            blob_ms += (t2 - t1) * 1000.0
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor("BLOB", blobs),
                pb_utils.Tensor("SCALE", scales),
                pb_utils.Tensor("ORIGINAL_SIZE", sizes),
                pb_utils.Tensor("PREPROCESS_MS", np.full((batch, 1), resize_ms, np.float32)),
                pb_utils.Tensor("BLOB_MS", np.full((batch, 1), blob_ms, np.float32)),
            ]
        )
