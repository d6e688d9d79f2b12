"""Unit tests of triton_python/alignment.py: the similarity transform and the warp."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from triton_python.alignment import ARCFACE_TEMPLATE, CROP_SIZE, align_face, align_faces, similarity_transform

SFACE = Path(__file__).resolve().parents[2] / "model_repository/sface_2021dec/1/model.onnx"


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def similarity(angle: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    return np.array([[c, -s, shift[0]], [s, c, shift[1]]])


@pytest.mark.parametrize(("angle", "scale", "shift"), [
    (0.0, 1.0, (0, 0)), (0.3, 2.5, (120, 40)), (-1.2, 0.4, (-30, 900)), (np.pi, 7.0, (5, 5)),
])
def test_recovers_an_exact_similarity(angle, scale, shift):
    photo_points = apply(similarity(angle, scale, shift), ARCFACE_TEMPLATE)
    matrix = similarity_transform(photo_points, ARCFACE_TEMPLATE)
    np.testing.assert_allclose(apply(matrix, photo_points), ARCFACE_TEMPLATE, atol=1e-9)


def test_is_the_least_squares_fit():
    rng = np.random.default_rng(7)
    noisy = apply(similarity(0.2, 3.0, (50, 60)), ARCFACE_TEMPLATE) + rng.normal(0, 2.0, (5, 2))
    best = similarity_transform(noisy, ARCFACE_TEMPLATE)
    best_error = ((apply(best, noisy) - ARCFACE_TEMPLATE) ** 2).sum()
    # Any nudge of angle, scale or shift fits worse.
    for angle, scale, dx, dy in [(0.01, 1, 0, 0), (-0.01, 1, 0, 0), (0, 1.01, 0, 0), (0, 0.99, 0, 0),
                                 (0, 1, 0.5, 0), (0, 1, 0, -0.5)]:
        nudge = np.vstack([similarity(angle, scale, (dx, dy)), [0, 0, 1]])
        worse = (nudge @ np.vstack([best, [0, 0, 1]]))[:2]
        assert ((apply(worse, noisy) - ARCFACE_TEMPLATE) ** 2).sum() > best_error


def test_never_mirrors():
    mirrored = ARCFACE_TEMPLATE * [-1, 1]  # the face seen in a mirror, landmark order unchanged
    matrix = similarity_transform(mirrored, ARCFACE_TEMPLATE)
    assert np.linalg.det(matrix[:, :2]) > 0


def test_coincident_landmarks_are_refused():
    with pytest.raises(ValueError, match="coincide"):
        similarity_transform(np.full((5, 2), 10.0), ARCFACE_TEMPLATE)


def test_warp_puts_the_landmarks_on_the_template():
    """A dot drawn at each landmark of a rotated, scaled face lands on the template's spot."""
    landmarks = apply(similarity(0.4, 3.0, (300, 120)), ARCFACE_TEMPLATE)
    for (px, py), (x, y) in zip(landmarks, ARCFACE_TEMPLATE):
        photo = np.zeros((600, 800, 3), np.uint8)
        cv2.circle(photo, (int(round(px * 16)), int(round(py * 16))), 6 * 16, (255, 255, 255), -1,
                   cv2.LINE_AA, shift=4)
        crop = align_face(photo, landmarks)
        assert crop.shape == (CROP_SIZE, CROP_SIZE, 3) and crop.dtype == np.uint8
        weight = crop[..., 0].astype(np.float64)
        ys, xs = np.indices(weight.shape)
        centre = (xs * weight).sum() / weight.sum(), (ys * weight).sum() / weight.sum()
        assert abs(centre[0] - x) < 0.3 and abs(centre[1] - y) < 0.3


def test_outside_the_photo_is_black_and_faces_are_independent():
    photo = np.full((100, 100, 3), 200, np.uint8)
    near_edge = apply(similarity(0.0, 1.0, (-60, -60)), ARCFACE_TEMPLATE)
    inside = apply(similarity(0.0, 0.5, (20, 20)), ARCFACE_TEMPLATE)
    faces = align_faces(photo, np.stack([near_edge, inside]))
    assert faces.shape == (2, CROP_SIZE, CROP_SIZE, 3)
    assert (faces[0, :5, :5] == 0).all()  # mapped from outside the photo
    assert (faces[1, 40:70, 40:70] == 200).all()
    assert align_faces(photo, np.zeros((0, 5, 2))).shape == (0, CROP_SIZE, CROP_SIZE, 3)


@pytest.mark.skipif(not SFACE.is_file(), reason="needs the SFace weight (./face-api weights)")
def test_matches_opencv_face_recognizer_align_crop():
    """OpenCV's own FaceRecognizerSF.alignCrop, an independent implementation, agrees."""
    rng = np.random.default_rng(3)
    photo = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    photo = cv2.GaussianBlur(photo, (0, 0), 3)  # smooth, so sub-pixel differences stay small
    landmarks = apply(similarity(-0.25, 1.6, (200, 90)), ARCFACE_TEMPLATE) + rng.normal(0, 1.5, (5, 2))
    face_row = np.concatenate([[0, 0, 10, 10], landmarks.ravel(), [0.9]]).astype(np.float32)[None]
    recognizer = cv2.FaceRecognizerSF.create(str(SFACE), "")
    theirs = recognizer.alignCrop(photo, face_row)
    ours = align_face(photo, landmarks.astype(np.float32))
    assert np.abs(theirs.astype(int) - ours.astype(int)).max() <= 2
