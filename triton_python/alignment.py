"""5-point face alignment onto the ArcFace 112×112 template (pure NumPy + OpenCV).

The same maths as InsightFace's ``face_align.norm_crop`` and OpenCV's
``FaceRecognizerSF.alignCrop``: the least-squares similarity transform
(rotation, uniform scale, translation; never a reflection) that carries the
five detected landmarks onto the template, found in closed form (Umeyama,
1991), then one bilinear warp of the photo.
"""

from __future__ import annotations

import cv2
import numpy as np

CROP_SIZE = 112

# Where the 5 landmarks of an aligned crop sit: image-left eye, image-right eye,
# nose tip, left and right mouth corners (InsightFace's arcface_dst).
ARCFACE_TEMPLATE = np.array([
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
], dtype=np.float64)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2×3 matrix of the similarity transform that best maps ``src`` points onto ``dst``."""
    src = np.asarray(src, np.float64).reshape(-1, 2)
    dst = np.asarray(dst, np.float64).reshape(-1, 2)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    src_var = (src_c ** 2).sum() / len(src)
    if src_var < 1e-12:
        raise ValueError("the landmarks coincide: no transform maps them onto the template")
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    signs = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # the best fit would mirror: forbid it
        signs[-1] = -1
    rotation = u @ np.diag(signs) @ vt
    scale = (singular * signs).sum() / src_var
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])


def align_face(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The 112×112×3 uint8 crop of the face whose 5 landmarks (photo px) are given."""
    matrix = similarity_transform(landmarks, ARCFACE_TEMPLATE)
    return cv2.warpAffine(rgb, matrix, (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def align_faces(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(N, 112, 112, 3) uint8 crops for (N, 5, 2) landmarks on one photo."""
    faces = np.empty((len(landmarks), CROP_SIZE, CROP_SIZE, 3), np.uint8)
    for i, points in enumerate(landmarks):
        faces[i] = align_face(rgb, points)
    return faces
