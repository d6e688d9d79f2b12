"""Independent ArcFace reference: align a face by its 5 landmarks and embed it.

Follows InsightFace's ``face_align.norm_crop`` (a similarity transform fitted
by Umeyama's method onto the standard 112×112 ArcFace template) and
``ArcFaceONNX.get_feat`` ((x − 127.5) / 127.5, RGB, L2-normalised output).
Tests use it as the oracle for "is this still the same face?".
"""

from __future__ import annotations

import cv2
import numpy as np

# Where the 5 landmarks of a 112×112 ArcFace crop sit (InsightFace's arcface_dst).
ARCFACE_TEMPLATE = np.array([
    [38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
    [41.5493, 92.3655], [70.7299, 92.2041],
], dtype=np.float64)


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2×3 similarity transform (rotation, uniform scale, translation) mapping src onto dst."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(covariance)
    d = np.ones(2)
    if np.linalg.det(covariance) < 0:
        d[-1] = -1
    rotation = u @ np.diag(d) @ vt
    scale = (s * d).sum() / src_c.var(axis=0).sum()
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])


def align(rgb: np.ndarray, landmarks: np.ndarray, size: int = 112) -> np.ndarray:
    matrix = umeyama(np.asarray(landmarks, np.float64).reshape(5, 2), ARCFACE_TEMPLATE * size / 112)
    return cv2.warpAffine(rgb, matrix, (size, size), borderValue=0)


class ReferenceArcFace:
    def __init__(self, onnx_path):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3  # the graph declares batch 1; batches run fine but warn
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def embed(self, faces: list[np.ndarray]) -> np.ndarray:
        """(N, D) L2-normalised embeddings of aligned 112×112 RGB crops."""
        blob = (np.stack(faces).astype(np.float32) - 127.5) / 127.5
        features = self.session.run(None, {self.input_name: blob.transpose(0, 3, 1, 2)})[0]
        return features / np.linalg.norm(features, axis=1, keepdims=True)

    def similarity(self, rgb_a: np.ndarray, rgb_b: np.ndarray, landmarks: np.ndarray) -> float:
        """Cosine similarity of the face at ``landmarks`` in two versions of one photo."""
        a, b = self.embed([align(rgb_a, landmarks), align(rgb_b, landmarks)])
        return float(a @ b)
