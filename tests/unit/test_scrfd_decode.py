"""Unit tests of triton_python/scrfd_decode.py, and agreement with the reference."""

import numpy as np
import pytest

from tests.reference import scrfd_reference as ref
from triton_python.scrfd_decode import (
    anchor_centers,
    clip_boxes,
    decode_candidates,
    distances_to_boxes,
    nms,
    offsets_to_points,
    select_faces,
    to_photo_coordinates,
)

SIZE = 640
STRIDES = (8, 16, 32)
NUM_ANCHORS = 2


def _num_anchors(stride):
    return (SIZE // stride) ** 2 * NUM_ANCHORS


def _zero_outputs():
    return {
        stride: (
            np.zeros((_num_anchors(stride), 1), np.float32),
            np.zeros((_num_anchors(stride), 4), np.float32),
            np.zeros((_num_anchors(stride), 10), np.float32),
        )
        for stride in STRIDES
    }


def _anchor_index(stride, row, col, anchor):
    return ((row * (SIZE // stride)) + col) * NUM_ANCHORS + anchor


# --- anchor_centers -------------------------------------------------------------


@pytest.mark.parametrize("stride", STRIDES)
def test_anchor_centers_shape_and_dtype(stride):
    centers = anchor_centers(SIZE, stride, NUM_ANCHORS)
    assert centers.shape == (_num_anchors(stride), 2)
    assert centers.dtype == np.float32


def test_anchor_centers_layout():
    centers = anchor_centers(SIZE, 8, 2)
    # Each cell's centre is repeated once per anchor, x runs fastest (row-major).
    np.testing.assert_array_equal(centers[:6], [[0, 0], [0, 0], [8, 0], [8, 0], [16, 0], [16, 0]])
    np.testing.assert_array_equal(centers[2 * 79], [632, 0])  # end of the first row
    np.testing.assert_array_equal(centers[2 * 80], [0, 8])  # start of the second row
    np.testing.assert_array_equal(centers[2 * 80 + 1], [0, 8])
    np.testing.assert_array_equal(centers[-1], [632, 632])
    np.testing.assert_array_equal(centers[_anchor_index(8, 3, 5, 1)], [40, 24])


@pytest.mark.parametrize("stride", STRIDES)
def test_anchor_centers_stride_spacing(stride):
    centers = anchor_centers(SIZE, stride, NUM_ANCHORS)
    cells = SIZE // stride
    grid = centers[::NUM_ANCHORS].reshape(cells, cells, 2)
    np.testing.assert_array_equal(np.diff(grid[:, :, 0], axis=1), stride)  # x along a row
    np.testing.assert_array_equal(np.diff(grid[:, :, 1], axis=0), stride)  # y down a column
    assert (np.diff(grid[:, :, 1], axis=1) == 0).all()
    np.testing.assert_array_equal(centers[0::2], centers[1::2])


def test_anchor_centers_other_anchor_counts():
    one = anchor_centers(SIZE, 32, 1)
    three = anchor_centers(SIZE, 32, 3)
    assert one.shape == (400, 2) and three.shape == (1200, 2)
    np.testing.assert_array_equal(three[0::3], one)
    np.testing.assert_array_equal(three[2::3], one)


def test_anchor_centers_cached_array_is_read_only():
    centers = anchor_centers(SIZE, 16, NUM_ANCHORS)
    with pytest.raises(ValueError):
        centers[0, 0] = 1.0


# --- distances_to_boxes / offsets_to_points ------------------------------------------


def test_distances_to_boxes_hand_computed():
    centers = np.array([[10.0, 20.0], [0.0, 0.0]], np.float32)
    distances = np.array([[1, 2, 3, 4], [5, 6, 7, 8]], np.float32)
    boxes = distances_to_boxes(centers, distances)
    np.testing.assert_array_equal(boxes, [[9, 18, 13, 24], [-5, -6, 7, 8]])


def test_offsets_to_points_hand_computed():
    centers = np.array([[10.0, 20.0], [100.0, 200.0]], np.float32)
    offsets = np.array([[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [-1, -2, 0, 0, 0.5, 0.5, 0, 1, 1, 0]], np.float32)
    points = offsets_to_points(centers, offsets)
    assert points.shape == (2, 5, 2)
    np.testing.assert_array_equal(points[0], [[11, 22], [13, 24], [15, 26], [17, 28], [19, 30]])
    np.testing.assert_array_equal(points[1], [[99, 198], [100, 200], [100.5, 200.5], [100, 201], [101, 200]])


def test_offsets_to_points_empty_input():
    points = offsets_to_points(np.zeros((0, 2), np.float32), np.zeros((0, 10), np.float32))
    assert points.shape == (0, 5, 2)
    assert points.dtype == np.float32


# --- nms -----------------------------------------------------------------------


def _iou_plus_one(a, b):
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    inter = width * height
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return inter / (area_a + area_b - inter)


def _brute_force_nms(boxes, scores, threshold):
    """O(n²) greedy NMS: a box survives if it overlaps no better surviving box by > threshold."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    kept = []
    for i in order:
        if all(_iou_plus_one(boxes[i], boxes[j]) <= threshold for j in kept):
            kept.append(i)
    return kept


def test_nms_suppresses_above_threshold_keeps_at_or_below():
    # Two 10x10 boxes (11x11 inclusive), shifted by d: IoU = (11 - d) / (11 + d).
    base = [0.0, 0.0, 10.0, 10.0]
    scores = np.array([0.9, 0.8])
    shifted = np.array([base, [1.0, 0.0, 11.0, 10.0]])  # IoU 10/12 = 0.833
    assert nms(shifted, scores, 0.8).tolist() == [0]
    assert nms(shifted, scores, 0.84).tolist() == [0, 1]
    exact = np.array([base, [3.0, 0.0, 13.0, 10.0]])  # IoU 8/14 = 4/7 exactly at the threshold
    assert nms(exact, scores, 8 / 14).tolist() == [0, 1]
    assert nms(exact, scores, 8 / 14 - 1e-9).tolist() == [0]


def test_nms_returns_best_first_and_suppresses_by_the_better_box():
    boxes = np.array(
        [
            [0, 0, 10, 10],  # 0: overlaps 2 heavily
            [100, 100, 120, 120],  # 1: alone
            [1, 1, 11, 11],  # 2: best of the pair
            [50, 50, 60, 60],  # 3: alone
        ],
        np.float32,
    )
    scores = np.array([0.6, 0.7, 0.95, 0.5], np.float32)
    keep = nms(boxes, scores, 0.4)
    assert keep.dtype == np.int64
    assert keep.tolist() == [2, 1, 3]


def test_nms_chain_is_greedy_not_transitive():
    # A suppresses B, B would have suppressed C, but C does not overlap A: C survives.
    boxes = np.array([[0, 0, 10, 10], [6, 0, 16, 10], [12, 0, 22, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    assert nms(boxes, scores, 0.2).tolist() == [0, 2]


def test_nms_empty_input():
    keep = nms(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), 0.4)
    assert keep.shape == (0,)
    assert keep.dtype == np.int64


def test_nms_identical_boxes_keep_one():
    boxes = np.tile(np.array([[5, 5, 25, 45]], np.float32), (4, 1))
    scores = np.array([0.3, 0.9, 0.5, 0.7], np.float32)
    assert nms(boxes, scores, 0.4).tolist() == [1]
    assert nms(boxes, scores, 0.99).tolist() == [1]
    # Identical boxes have IoU exactly 1, which "<= 1" keeps.
    assert nms(boxes, scores, 1.0).tolist() == [1, 3, 2, 0]


def test_nms_threshold_zero_and_one():
    boxes = np.array(
        [[0, 0, 10, 10], [9, 9, 20, 20], [10, 0, 20, 10], [11, 11, 30, 30], [40, 40, 50, 50]], np.float32
    )
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5], np.float32)
    # Threshold 0: any overlap suppresses; with the inclusive-pixel (+1) convention,
    # boxes sharing an edge coordinate (x2 == x1) overlap by one pixel.
    assert nms(boxes, scores, 0.0).tolist() == [0, 3, 4]
    # Threshold 1: nothing is suppressed.
    assert nms(boxes, scores, 1.0).tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("threshold", [0.0, 0.2, 0.4, 0.7, 1.0])
def test_nms_matches_brute_force_on_random_boxes(seed, threshold):
    rng = np.random.default_rng(seed)
    n = 200
    xy = rng.uniform(0, 100, (n, 2))
    wh = rng.uniform(3, 40, (n, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1)  # float64 on both sides
    scores = rng.permutation(np.linspace(0.01, 1.0, n))
    expected = _brute_force_nms(boxes.tolist(), scores.tolist(), threshold)
    assert nms(boxes, scores, threshold).tolist() == expected
    assert 0 < len(expected) <= n


# --- decode_candidates ------------------------------------------------------------


def _planted_outputs():
    """One confident anchor per stride, everything else at score 0."""
    outputs = _zero_outputs()
    plants = {
        # stride: (row, col, anchor, score, distances (stride units), offsets (stride units))
        8: (3, 5, 1, 0.9, [1, 2, 3, 4], [0.5, -0.5, 1, 0, 0, 1, -1, 2, 2, 2]),
        16: (10, 2, 0, 0.7, [0.5, 0.25, 2, 3], [0, 0, 1, 1, -1, -1, 2, 0, 0, 2]),
        32: (19, 19, 1, 0.8, [4, 4, 0, 0], [-1, -1, -0.5, -0.5, 0, 0, 0.25, 0.25, 1, 1]),
    }
    for stride, (row, col, anchor, score, distances, offsets) in plants.items():
        index = _anchor_index(stride, row, col, anchor)
        scores, boxes, kps = outputs[stride]
        scores[index, 0] = score
        boxes[index] = distances
        kps[index] = offsets
    return outputs


def test_decode_candidates_planted_anchors():
    scores, boxes, points = decode_candidates(_planted_outputs(), SIZE, NUM_ANCHORS, 0.5)
    # Ordered by stride: 8, 16, 32.
    np.testing.assert_allclose(scores, [0.9, 0.7, 0.8], rtol=1e-6)
    # stride 8, cell (row 3, col 5): centre (40, 24); distances * 8 = (8, 16, 24, 32)
    # stride 16, cell (row 10, col 2): centre (32, 160); distances * 16 = (8, 4, 32, 48)
    # stride 32, cell (row 19, col 19): centre (608, 608); distances * 32 = (128, 128, 0, 0)
    np.testing.assert_array_equal(boxes, [[32, 8, 64, 56], [24, 156, 64, 208], [480, 480, 608, 608]])
    np.testing.assert_array_equal(points[0], [[44, 20], [48, 24], [40, 32], [32, 40], [56, 40]])
    np.testing.assert_array_equal(points[1], [[32, 160], [48, 176], [16, 144], [64, 160], [32, 192]])
    np.testing.assert_array_equal(points[2], [[576, 576], [592, 592], [608, 608], [616, 616], [640, 640]])
    assert points.shape == (3, 5, 2)


def test_decode_candidates_threshold_is_inclusive():
    outputs = _zero_outputs()
    at = np.float32(0.5)
    below = np.nextafter(at, np.float32(0))
    outputs[8][0][10, 0] = at
    outputs[8][0][11, 0] = below
    outputs[32][0][0, 0] = 1.0
    scores, boxes, points = decode_candidates(outputs, SIZE, NUM_ANCHORS, 0.5)
    np.testing.assert_array_equal(scores, [0.5, 1.0])
    assert boxes.shape == (2, 4) and points.shape == (2, 5, 2)
    scores, _, _ = decode_candidates(outputs, SIZE, NUM_ANCHORS, float(below))
    np.testing.assert_array_equal(scores, [0.5, below, 1.0])


def test_decode_candidates_nothing_above_threshold():
    scores, boxes, points = decode_candidates(_planted_outputs(), SIZE, NUM_ANCHORS, 0.95)
    assert scores.shape == (0,) and boxes.shape == (0, 4) and points.shape == (0, 5, 2)


def test_decode_candidates_accepts_flat_scores_and_any_stride_order():
    planted = _planted_outputs()
    reordered = {s: (planted[s][0].reshape(-1), planted[s][1], planted[s][2]) for s in (32, 8, 16)}
    expected = decode_candidates(planted, SIZE, NUM_ANCHORS, 0.5)
    got = decode_candidates(reordered, SIZE, NUM_ANCHORS, 0.5)
    for a, b in zip(expected, got):
        np.testing.assert_array_equal(a, b)


# --- select_faces ----------------------------------------------------------------


def _faces():
    boxes = np.array(
        [
            [0, 0, 10, 10],  # 0: suppressed by 1
            [1, 1, 11, 11],  # 1
            [100, 100, 130, 130],  # 2
            [50, 50, 70, 70],  # 3
            [51, 50, 71, 70],  # 4: suppressed by 3
        ],
        np.float32,
    )
    scores = np.array([0.6, 0.8, 0.55, 0.9, 0.7], np.float32)
    landmarks = np.arange(5 * 10, dtype=np.float32).reshape(5, 5, 2)
    return scores, boxes, landmarks


def test_select_faces_nms_and_order():
    scores, boxes, landmarks = _faces()
    got_scores, got_boxes, got_landmarks, after_nms = select_faces(scores, boxes, landmarks, 0.4, 0)
    assert after_nms == 3
    np.testing.assert_array_equal(got_scores, scores[[3, 1, 2]])
    np.testing.assert_array_equal(got_boxes, boxes[[3, 1, 2]])
    np.testing.assert_array_equal(got_landmarks, landmarks[[3, 1, 2]])


@pytest.mark.parametrize(("max_faces", "expected"), [(1, [3]), (2, [3, 1]), (3, [3, 1, 2]), (10, [3, 1, 2])])
def test_select_faces_cap_keeps_most_confident_and_reports_count_before_cap(max_faces, expected):
    scores, boxes, landmarks = _faces()
    got_scores, got_boxes, got_landmarks, after_nms = select_faces(scores, boxes, landmarks, 0.4, max_faces)
    assert after_nms == 3
    np.testing.assert_array_equal(got_scores, scores[expected])
    np.testing.assert_array_equal(got_boxes, boxes[expected])
    np.testing.assert_array_equal(got_landmarks, landmarks[expected])


def test_select_faces_empty():
    scores, boxes, landmarks, after_nms = select_faces(
        np.zeros(0, np.float32), np.zeros((0, 4), np.float32), np.zeros((0, 5, 2), np.float32), 0.4, 3
    )
    assert after_nms == 0
    assert scores.shape == (0,) and boxes.shape == (0, 4) and landmarks.shape == (0, 5, 2)


# --- to_photo_coordinates / clip_boxes ---------------------------------------------------


def test_to_photo_coordinates_divides_by_scale():
    boxes = np.array([[10, 20, 30, 40]], np.float32)
    landmarks = np.array([[[10, 20], [12, 22], [14, 24], [16, 26], [18, 28]]], np.float32)
    got_boxes, got_landmarks = to_photo_coordinates(boxes, landmarks, 0.5, 0.5)
    np.testing.assert_array_equal(got_boxes, [[20, 40, 60, 80]])
    np.testing.assert_array_equal(got_landmarks, landmarks * 2)
    np.testing.assert_array_equal(boxes, [[10, 20, 30, 40]])  # input untouched
    np.testing.assert_array_equal(landmarks[0, 0], [10, 20])


def test_to_photo_coordinates_divides_each_axis_by_its_own_scale():
    boxes = np.array([[10, 20, 30, 40], [-8, -4, 2, 6]], np.float32)
    landmarks = np.array([[[10, 20], [12, 22], [14, 24], [16, 26], [18, 28]]] * 2, np.float32)
    got_boxes, got_landmarks = to_photo_coordinates(boxes, landmarks, 0.5, 4.0)  # x * 2, y / 4
    np.testing.assert_array_equal(got_boxes, [[20, 5, 60, 10], [-16, -1, 4, 1.5]])
    np.testing.assert_array_equal(got_landmarks[..., 0], landmarks[..., 0] * 2)
    np.testing.assert_array_equal(got_landmarks[..., 1], landmarks[..., 1] / 4)
    assert got_boxes.dtype == np.float32 and got_landmarks.dtype == np.float32


def test_to_photo_coordinates_thin_image_scales():
    # A 1 x 5000 photo letterboxed to 1 x 640: x scale 640/5000, y scale 1.
    boxes = np.array([[0, 0, 640, 1]], np.float32)
    landmarks = np.array([[[320, 0.5]] * 5], np.float32)
    got_boxes, got_landmarks = to_photo_coordinates(boxes, landmarks, 640 / 5000, 1.0)
    np.testing.assert_allclose(got_boxes, [[0, 0, 5000, 1]], rtol=1e-6)
    np.testing.assert_allclose(got_landmarks, [[[2500, 0.5]] * 5], rtol=1e-6)


def test_to_photo_coordinates_does_not_clip():
    boxes = np.array([[-5, -6, 700, 800]], np.float32)
    landmarks = np.array([[[-5, 900]] * 5], np.float32)
    got_boxes, got_landmarks = to_photo_coordinates(boxes, landmarks, 0.5, 0.25)
    np.testing.assert_array_equal(got_boxes, [[-10, -24, 1400, 3200]])
    np.testing.assert_array_equal(got_landmarks, [[[-10, 3600]] * 5])


def test_to_photo_coordinates_empty():
    boxes, landmarks = to_photo_coordinates(
        np.zeros((0, 4), np.float32), np.zeros((0, 5, 2), np.float32), 0.5, 0.25
    )
    assert boxes.shape == (0, 4) and landmarks.shape == (0, 5, 2)


def test_clip_boxes_clips_to_the_photo():
    boxes = np.array([[-5, -6, 700, 800], [150, 90, 250, 120], [10, 20, 30, 40]], np.float32)
    original = boxes.copy()
    clipped = clip_boxes(boxes, 100, 200)  # height 100, width 200
    np.testing.assert_array_equal(clipped, [[0, 0, 200, 100], [150, 90, 200, 100], [10, 20, 30, 40]])
    assert clipped.dtype == np.float32
    # A copy: the input is left as it was.
    np.testing.assert_array_equal(boxes, original)
    assert not np.shares_memory(clipped, boxes)


def test_clip_boxes_x_to_width_and_y_to_height():
    # A non-square photo: x columns clip at the width, y columns at the height, not the other way.
    boxes = np.array([[250, 250, 350, 350]], np.float32)
    np.testing.assert_array_equal(clip_boxes(boxes, 300, 1000), [[250, 250, 350, 300]])
    np.testing.assert_array_equal(clip_boxes(boxes, 1000, 300), [[250, 250, 300, 350]])


def test_clip_boxes_empty():
    clipped = clip_boxes(np.zeros((0, 4), np.float32), 100, 200)
    assert clipped.shape == (0, 4)


def test_landmarks_are_left_unclipped_by_the_service_order():
    boxes = np.array([[-4, -4, 1000, 1000]], np.float32)
    landmarks = np.array([[[-4, 1000]] * 5], np.float32)
    photo_boxes, photo_landmarks = to_photo_coordinates(boxes, landmarks, 2.0, 2.0)
    clipped = clip_boxes(photo_boxes, 100, 200)
    np.testing.assert_array_equal(clipped, [[0, 0, 200, 100]])
    np.testing.assert_array_equal(photo_landmarks, [[[-2, 500]] * 5])


# --- agreement with the independent InsightFace-style reference ----------------------


def _random_outputs(rng, positive_fraction=0.02):
    """SCRFD-shaped outputs for one image: many overlapping candidates, distinct scores."""
    total = sum(_num_anchors(s) for s in STRIDES)
    all_scores = rng.permutation(np.linspace(0.0, 1.0, total)).astype(np.float32)
    # Push most scores low so only a realistic fraction passes typical thresholds.
    low = rng.random(total) > positive_fraction * 10
    all_scores[low] *= 0.2
    outputs, start = {}, 0
    for stride in STRIDES:
        count = _num_anchors(stride)
        scores = all_scores[start : start + count].reshape(-1, 1)
        start += count
        distances = rng.uniform(0.2, 4.0, (count, 4)).astype(np.float32)
        offsets = rng.uniform(-3.0, 3.0, (count, 10)).astype(np.float32)
        outputs[stride] = (scores, distances, offsets)
    return outputs


def _by_name(outputs):
    named = {}
    for stride, (scores, distances, offsets) in outputs.items():
        named[f"score_{stride}"] = scores[None]  # batch of one, as the model emits
        named[f"bbox_{stride}"] = distances[None]
        named[f"kps_{stride}"] = offsets[None]
    return named


def _service(outputs, scales, height, width, confidence, nms_threshold, max_faces):
    """The scrfd_postprocess model's order: decode, to photo pixels, NMS + cap there, clip."""
    scores, boxes, points = decode_candidates(outputs, SIZE, NUM_ANCHORS, confidence)
    before = len(scores)
    boxes, points = to_photo_coordinates(boxes, points, *scales)
    scores, boxes, points, after = select_faces(scores, boxes, points, nms_threshold, max_faces)
    return scores, clip_boxes(boxes, height, width), points, before, after


@pytest.mark.parametrize("stride", STRIDES)
def test_building_blocks_match_reference(stride):
    cells = SIZE // stride
    np.testing.assert_array_equal(
        anchor_centers(SIZE, stride, NUM_ANCHORS), ref.anchor_centers(cells, cells, stride, NUM_ANCHORS)
    )
    rng = np.random.default_rng(stride)
    centers = anchor_centers(SIZE, stride, NUM_ANCHORS)
    distances = rng.uniform(0, 100, (len(centers), 4)).astype(np.float32)
    offsets = rng.uniform(-100, 100, (len(centers), 10)).astype(np.float32)
    np.testing.assert_array_equal(
        distances_to_boxes(centers, distances), ref.distance2bbox(centers, distances)
    )
    np.testing.assert_array_equal(
        offsets_to_points(centers, offsets), ref.distance2kps(centers, offsets).reshape(-1, 5, 2)
    )


# Photo (height, width) with the letterbox's per-axis scales (new_width / width, new_height / height).
PHOTOS = {
    "600x500": (600, 500, (533 / 500, 640 / 600)),  # 640 x 533: scale_x 1.066, scale_y 1.0667
    "1000x1500": (1000, 1500, (640 / 1500, 426 / 1000)),  # 426 x 640
    "40x29": (40, 29, (463 / 29, 640 / 40)),  # 640 x 463: upscaled, InsightFace truncation
    "480x640": (480, 640, (1.0, 1.0)),  # scale 1: detector-input and photo pixels coincide
}


@pytest.mark.parametrize("photo", PHOTOS)
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    ("confidence", "nms_threshold", "max_faces"), [(0.5, 0.4, 0), (0.3, 0.3, 0), (0.8, 0.6, 5), (0.5, 0.0, 0)]
)
def test_service_matches_reference_on_synthetic_outputs(photo, seed, confidence, nms_threshold, max_faces):
    height, width, scales = PHOTOS[photo]
    rng = np.random.default_rng(seed)
    outputs = _random_outputs(rng)
    expected = ref.postprocess(_by_name(outputs), scales, height, width, confidence, nms_threshold, max_faces)
    scores, boxes, points, before, after = _service(
        outputs, scales, height, width, confidence, nms_threshold, max_faces
    )
    assert before == expected.candidates_before_nms > 0
    assert after == expected.candidates_after_nms > 1
    assert len(scores) == len(expected.scores) == (min(after, max_faces) if max_faces else after)
    np.testing.assert_array_equal(scores, expected.scores)
    np.testing.assert_array_equal(boxes, expected.boxes)
    np.testing.assert_array_equal(points, expected.landmarks)
    if not max_faces:
        # Candidates spread over the whole canvas, padding included, so clipping is exercised.
        assert (boxes[:, 2] == width).any() and (boxes[:, 3] == height).any()


def test_nms_runs_in_photo_pixels_like_insightface():
    # Two 10x10 input-pixel boxes shifted by 4.5: IoU(+1) = 6.5/15.5 = 0.42 in input pixels,
    # but at scale 0.25 (40x40 photo boxes) IoU(+1) = 23/59 = 0.39 in photo pixels, so at
    # threshold 0.4 InsightFace keeps both; NMS on input pixels would have dropped one.
    outputs = _zero_outputs()
    scores, boxes, kps = outputs[8]
    index = _anchor_index(8, 10, 10, 0)  # centre (80, 80)
    scores[index, 0], scores[index + 1, 0] = 0.9, 0.8
    boxes[index] = [0.625, 0.625, 0.625, 0.625]  # (75, 75, 85, 85)
    boxes[index + 1] = [0.0625, 0.625, 1.1875, 0.625]  # (79.5, 75, 89.5, 85)

    input_scores, input_boxes, _ = decode_candidates(outputs, SIZE, NUM_ANCHORS, 0.5)
    np.testing.assert_array_equal(input_boxes, [[75, 75, 85, 85], [79.5, 75, 89.5, 85]])
    assert nms(input_boxes, input_scores, 0.4).tolist() == [0]  # what the old order did

    expected = ref.postprocess(_by_name(outputs), (0.25, 0.25), 2560, 2560, 0.5, 0.4, 0)
    got_scores, got_boxes, _, before, after = _service(outputs, (0.25, 0.25), 2560, 2560, 0.5, 0.4, 0)
    assert len(expected.scores) == 2
    assert before == 2 and after == 2
    np.testing.assert_array_equal(got_scores, expected.scores)
    np.testing.assert_array_equal(got_boxes, expected.boxes)
    np.testing.assert_array_equal(got_boxes, [[300, 300, 340, 340], [318, 300, 358, 340]])
