"""Unit tests of triton_python/letterbox.py: fit_size, letterbox, to_blob."""

import cv2
import numpy as np
import pytest

from tests.reference import scrfd_reference as ref
from triton_python.letterbox import fit_size, letterbox, to_blob

SIZE = 640


# --- fit_size -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("height", "width", "expected"),
    [
        (1080, 1920, (360, 640)),  # landscape: width fills, height follows
        (3000, 4000, (480, 640)),
        (480, 640, (480, 640)),  # already fits the width: unchanged
        (1000, 1500, (426, 640)),  # 426.67 truncated
        (29, 40, (464, 640)),  # 640 * 0.725 is 464.0 in floating point
    ],
)
def test_fit_size_landscape(height, width, expected):
    assert fit_size(height, width, SIZE) == expected


@pytest.mark.parametrize(
    ("height", "width", "expected"),
    [
        (1920, 1080, (640, 360)),  # portrait: height fills
        (4032, 3024, (640, 480)),
        (1500, 1000, (640, 426)),
        (287, 233, (640, 519)),  # smaller than the input: upscaled
    ],
)
def test_fit_size_portrait(height, width, expected):
    assert fit_size(height, width, SIZE) == expected


def test_fit_size_truncates_like_insightface_not_like_exact_arithmetic():
    # 640 * 29 / 40 is exactly 464, but InsightFace computes 640 / (40 / 29) in floating
    # point, 463.99999999999994, and truncates it to 463: the service must do the same.
    assert SIZE * 29 // 40 == 464
    assert fit_size(40, 29, SIZE) == (640, 463)
    # The transposed photo goes through size * ratio, which lands on 464.0 exactly.
    assert fit_size(29, 40, SIZE) == (464, 640)


def test_fit_size_returns_plain_ints():
    for height, width in [(1080, 1920), (1920, 1080), (40, 29), (1, 5000)]:
        result = fit_size(height, width, SIZE)
        assert len(result) == 2
        assert all(type(value) is int for value in result), result


@pytest.mark.parametrize("side", [640, 100, 1280, 1])
def test_fit_size_square_fills_the_input(side):
    assert fit_size(side, side, SIZE) == (SIZE, SIZE)


@pytest.mark.parametrize(
    ("height", "width", "expected"),
    [
        (1, 1, (640, 640)),
        (1, 2, (320, 640)),
        (2, 1, (640, 320)),
        (2, 3, (426, 640)),
    ],
)
def test_fit_size_tiny_images_are_upscaled(height, width, expected):
    assert fit_size(height, width, SIZE) == expected


@pytest.mark.parametrize(("height", "width"), [(1, 5000), (5000, 1), (1, 641), (3, 100_000)])
def test_fit_size_thin_images_never_reach_zero(height, width):
    new_height, new_width = fit_size(height, width, SIZE)
    assert max(new_height, new_width) == SIZE
    assert min(new_height, new_width) == 1


def test_fit_size_thin_values():
    # 1 x 5000: the long side is squeezed to 640, the short side cannot go below 1.
    assert fit_size(1, 5000, SIZE) == (1, 640)
    assert fit_size(5000, 1, SIZE) == (640, 1)


def test_fit_size_matches_insightface_and_stays_within_one_pixel_of_exact_floor():
    sides = list(range(1, 120)) + [233, 287, 500, 665, 800, 1237, 1919, 4031, 4032, 10_007]
    truncated_below_exact = set()
    for height in sides:
        for width in sides:
            new_height, new_width = fit_size(height, width, SIZE)
            assert (new_height, new_width) == ref.resized_size(height, width, SIZE), (height, width)
            assert 1 <= new_height <= SIZE and 1 <= new_width <= SIZE
            # Exact arithmetic: long side -> size, short side -> floor(size * short / long).
            if height > width:
                exact = (SIZE, max(1, SIZE * width // height))
            else:
                exact = (max(1, SIZE * height // width), SIZE)
            if (new_height, new_width) != exact:
                # Only floating-point truncation of an exact integer, one pixel short.
                assert height > width and new_height == exact[0], (height, width)
                assert new_width == exact[1] - 1 and SIZE * width % height == 0, (height, width)
                truncated_below_exact.add((height, width))
    # The cases on this grid where InsightFace's float ratio loses a pixel.
    assert truncated_below_exact == {(40, 29), (80, 29), (80, 53), (80, 58)}


def test_fit_size_other_input_sizes():
    assert fit_size(1080, 1920, 320) == (180, 320)
    assert fit_size(200, 100, 160) == (160, 80)


@pytest.mark.parametrize(("height", "width"), [(0, 10), (10, 0), (-1, 10), (10, -5)])
def test_fit_size_rejects_empty_images(height, width):
    with pytest.raises(ValueError):
        fit_size(height, width, SIZE)


# --- letterbox ----------------------------------------------------------------


def _gradient(height, width):
    ys, xs = np.mgrid[:height, :width]
    return np.stack([xs % 256, ys % 256, (xs + ys) % 256], axis=-1).astype(np.uint8)


@pytest.mark.parametrize(
    ("height", "width"),
    [(1080, 1920), (1920, 1080), (287, 233), (640, 640), (3, 7), (40, 29), (29, 40), (1, 5000), (5000, 1)],
)
def test_letterbox_canvas_placement_padding_and_scales(height, width):
    image = _gradient(height, width)
    original = image.copy()
    canvas, (scale_x, scale_y) = letterbox(image, SIZE)
    new_height, new_width = fit_size(height, width, SIZE)

    assert canvas.shape == (SIZE, SIZE, 3)
    assert canvas.dtype == np.uint8
    # Per-axis scales: detector pixels per photo pixel, each exact for its own axis.
    assert scale_x == new_width / width
    assert scale_y == new_height / height
    assert width * scale_x == pytest.approx(new_width, rel=1e-12)
    assert height * scale_y == pytest.approx(new_height, rel=1e-12)
    # The resized photo sits in the top-left corner ...
    resized = cv2.resize(image, (new_width, new_height), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(canvas[:new_height, :new_width], resized)
    # ... and everything right of and below it is zero.
    assert not canvas[new_height:, :].any()
    assert not canvas[:, new_width:].any()
    np.testing.assert_array_equal(image, original)


@pytest.mark.parametrize(
    ("height", "width"),
    [
        (1080, 1920),
        (1920, 1080),
        (287, 233),
        (640, 640),
        (3, 7),
        (40, 29),
        (29, 40),
        (80, 53),
        (1, 5000),
        (5000, 1),
        (1000, 1500),
    ],
)
def test_letterbox_matches_reference(height, width):
    image = _gradient(height, width)
    canvas, scales = letterbox(image, SIZE)
    ref_canvas, ref_scales = ref.letterbox(image, SIZE)
    np.testing.assert_array_equal(canvas, ref_canvas)
    assert scales == ref_scales


def test_letterbox_scales_differ_per_axis_when_the_short_side_is_truncated():
    # 1000 x 1500 -> 426 x 640: x scale 640/1500 = 0.42667, y scale 426/1000 = 0.426.
    _, (scale_x, scale_y) = letterbox(np.zeros((1000, 1500, 3), np.uint8), SIZE)
    assert scale_x == 640 / 1500
    assert scale_y == 0.426
    assert scale_x != scale_y
    # 40 x 29 -> 640 x 463 (not 464): x scale 463/29, y scale 16.
    _, (scale_x, scale_y) = letterbox(np.zeros((40, 29, 3), np.uint8), SIZE)
    assert (scale_x, scale_y) == (463 / 29, 16.0)


def test_letterbox_constant_image_fills_exactly_the_top_left_region():
    image = np.full((300, 400, 3), 200, np.uint8)
    canvas, scales = letterbox(image, SIZE)
    assert scales == (1.6, 1.6)
    assert (canvas[:480, :640] == 200).all()
    assert (canvas[480:] == 0).all()

    image = np.full((400, 100, 3), (10, 20, 30), np.uint8)
    canvas, scales = letterbox(image, SIZE)
    assert scales == (1.6, 1.6)
    assert (canvas[:, :160] == (10, 20, 30)).all()
    assert (canvas[:, 160:] == 0).all()


def test_letterbox_of_an_input_sized_image_is_the_identity():
    image = _gradient(SIZE, SIZE)
    canvas, scales = letterbox(image, SIZE)
    assert scales == (1.0, 1.0)
    np.testing.assert_array_equal(canvas, image)


def test_letterbox_thin_image_keeps_a_one_pixel_row_with_per_axis_scales():
    image = np.full((1, 5000, 3), 77, np.uint8)
    canvas, (scale_x, scale_y) = letterbox(image, SIZE)
    assert canvas.shape == (SIZE, SIZE, 3)
    assert (canvas[0, :640] == 77).all()
    assert not canvas[1:].any()
    # 5000 photo columns -> 640 canvas columns; the single row stays one row.
    assert scale_x == 640 / 5000
    assert scale_y == 1.0
    assert 640 / scale_x == pytest.approx(5000, rel=1e-12)


def test_letterbox_thin_image_keeps_a_one_pixel_column_with_per_axis_scales():
    image = np.full((5000, 1, 3), 77, np.uint8)
    canvas, (scale_x, scale_y) = letterbox(image, SIZE)
    assert canvas.shape == (SIZE, SIZE, 3)
    assert (canvas[:640, 0] == 77).all()
    assert not canvas[:, 1:].any()
    assert scale_x == 1.0
    assert scale_y == 640 / 5000
    assert 640 / scale_y == pytest.approx(5000, rel=1e-12)


# --- to_blob ------------------------------------------------------------------


def test_to_blob_normalisation_values():
    canvas = np.zeros((2, 2, 3), np.uint8)
    canvas[0, 0] = 0
    canvas[0, 1] = 255
    canvas[1, 0] = 127
    canvas[1, 1] = 128
    blob = to_blob(canvas, 127.5, 128.0, swap_rb=False)
    assert blob.dtype == np.float32
    assert blob.shape == (3, 2, 2)
    expected = np.array([[-0.99609375, 0.99609375], [-0.00390625, 0.00390625]], np.float32)
    for channel in range(3):
        np.testing.assert_array_equal(blob[channel], expected)


def test_to_blob_chw_layout():
    canvas = np.zeros((4, 5, 3), np.uint8)
    canvas[1, 3] = (10, 20, 30)  # row 1, column 3, channels R, G, B
    blob = to_blob(canvas, 0.0, 1.0, swap_rb=False)
    assert blob.shape == (3, 4, 5)
    np.testing.assert_array_equal(blob[:, 1, 3], [10, 20, 30])
    assert np.count_nonzero(blob) == 3


def test_to_blob_channel_swap():
    canvas = np.zeros((3, 3, 3), np.uint8)
    canvas[..., 0], canvas[..., 1], canvas[..., 2] = 10, 20, 30
    kept = to_blob(canvas, 0.0, 1.0, swap_rb=False)
    swapped = to_blob(canvas, 0.0, 1.0, swap_rb=True)
    assert (kept[0] == 10).all() and (kept[1] == 20).all() and (kept[2] == 30).all()
    assert (swapped[0] == 30).all() and (swapped[1] == 20).all() and (swapped[2] == 10).all()


def test_to_blob_mean_std_and_no_mutation():
    rng = np.random.default_rng(0)
    canvas = rng.integers(0, 256, (8, 6, 3), dtype=np.uint8)
    original = canvas.copy()
    blob = to_blob(canvas, 104.0, 58.0, swap_rb=True)
    expected = (canvas[:, :, ::-1].astype(np.float64).transpose(2, 0, 1) - 104.0) / 58.0
    np.testing.assert_allclose(blob, expected, rtol=1e-6)
    np.testing.assert_array_equal(canvas, original)


@pytest.mark.parametrize(("mean", "std", "swap_rb"),
                         [(127.5, 128.0, False), (0.0, 1.0, True), (104.0, 58.0, True)])
def test_to_blob_into_a_batch_row_is_bit_identical_to_the_float_transpose(mean, std, swap_rb):
    # The channel-by-channel path must give the detector exactly the pixels the
    # plain "transpose, cast, subtract, divide" formula (InsightFace's) gives.
    rng = np.random.default_rng(1)
    canvas = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    batch = np.full((2, 3, 37, 53), np.nan, np.float32)
    returned = to_blob(canvas, mean, std, swap_rb, out=batch[1])
    source = canvas[:, :, ::-1] if swap_rb else canvas
    expected = source.transpose(2, 0, 1).astype(np.float32)
    expected -= mean
    expected /= std
    assert returned is batch[1] or np.shares_memory(returned, batch[1])
    np.testing.assert_array_equal(batch[1], expected)
    assert np.isnan(batch[0]).all()  # the other row is untouched
