"""Unit tests of triton_python/masking.py: padded regions, the four methods, validation."""

import time

import cv2
import numpy as np
import pytest

from tests.unit.conftest import REPO_ROOT
from triton_python.masking import (
    METHODS,
    PADDING_RANGE,
    REFERENCE_FACE_PX,
    STRENGTH_RANGE,
    ellipse_alpha,
    face_strength,
    gaussian_blur,
    kernel_sigma,
    kernel_size,
    mask_faces,
    padded_regions,
    pixelate,
    validate,
)

# Kernels up to 37 px: cv2.GaussianBlur on float32, rounded (the true Gaussian), exactly.
# The downscaled Gaussian (kernels > 37 px) against OpenCV, per pixel and channel, in 8-bit
# levels, over the images and sizes of test_large_kernels_stay_close_to_cv2_gaussian_blur:
# * against the true Gaussian (cv2.GaussianBlur on float32, rounded): measured max 2, mean <= 0.67;
# * against cv2.GaussianBlur on the uint8 region itself, whose fixed-point kernel adds its own
#   error of up to ~3 levels with the largest kernels: measured max 4, mean <= 0.91.
TRUE_MAX_DIFF, TRUE_MEAN_DIFF = 2, 0.75
UINT8_MAX_DIFF, UINT8_MEAN_DIFF = 4, 1.0


def _noise(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _texture(height, width, seed=0):
    """Photo-like: noise smoothed at several scales, plus hard-edged shapes."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width, 3), np.float32)
    for scale in (2, 8, 32):
        small = rng.normal(0, 40, (height // scale + 2, width // scale + 2, 3)).astype(np.float32)
        image += cv2.resize(small, (width + 2 * scale, height + 2 * scale))[scale:scale + height,
                                                                            scale:scale + width]
    image += 128
    image[height // 3: height // 2, width // 4: width // 2] = (250, 20, 40)
    cv2.circle(image, (2 * width // 3, height // 2), min(height, width) // 5, (10, 240, 30), -1)
    return np.clip(image, 0, 255).astype(np.uint8)


def _edge(height, width):
    image = np.zeros((height, width, 3), np.uint8)
    image[:, width // 2:] = 255
    image[height // 3:, :, 1] = 200
    return image


def _checker(height, width, cell=9):
    ys, xs = np.indices((height, width))
    return (((ys // cell + xs // cell) % 2) * 255).astype(np.uint8)[..., None].repeat(3, axis=2)


def _photo(height, width):
    """A crop of a real sample photo (fetched by ./face-api weights), resized."""
    path = REPO_ROOT / "samples" / "players.jpg"
    image = cv2.imread(str(path))
    assert image is not None, f"{path} is missing: run ./face-api weights"
    return cv2.resize(image[100:500, 300:700, ::-1], (width, height), interpolation=cv2.INTER_AREA)


def _reference_blur(region, strength):
    k = kernel_size(strength)
    return cv2.GaussianBlur(region, (k, k), 0, borderType=cv2.BORDER_REFLECT_101)


def _true_blur(region, strength):
    k = kernel_size(strength)
    exact = cv2.GaussianBlur(region.astype(np.float32), (k, k), 0, borderType=cv2.BORDER_REFLECT_101)
    return np.rint(exact).reshape(region.shape)


def _union(regions, height, width):
    inside = np.zeros((height, width), bool)
    for x1, y1, x2, y2 in regions:
        inside[y1:y2, x1:x2] = True
    return inside


# --- constants and validate ---------------------------------------------------------------


def test_constants():
    assert METHODS == ("gaussian", "pixelate", "solid", "elliptical")
    assert STRENGTH_RANGE == (2, 1001)
    assert PADDING_RANGE == (0.0, 2.0)
    assert REFERENCE_FACE_PX == 200


# --- strength per face ----------------------------------------------------------------------


@pytest.mark.parametrize("box, strength, expected", [
    ((0, 0, 100, 120), 199, 199),        # small faces: strength as given
    ((10, 10, 210, 150), 199, 199),      # exactly the reference size
    ((0, 0, 300, 600), 199, 597),        # the longer side (600 px) scales it: 199 × 3
    ((0, 0, 450, 401), 31, 70),          # 31 × 2.25 = 69.75, rounded
    ((0, 0, 4000, 3000), 1001, 20020),   # beyond the accepted range: it is a per-face value
    ((0, 0, float("nan"), 400), 50, 50),  # a non-finite box masks nothing; no error on the way
])
def test_face_strength_scales_with_faces_above_the_reference_size(box, strength, expected):
    assert face_strength(strength, np.array(box, np.float64)) == expected


def test_mask_faces_can_write_into_a_given_array():
    image = _noise(80, 90, seed=23)
    boxes = np.array([[10, 12, 40, 50], [50, 20, 85, 70]], np.float32)
    expected, count = mask_faces(image, boxes, "gaussian", 31, 0.1)
    out = np.full_like(image, 7)
    written, written_count = mask_faces(image, boxes, "gaussian", 31, 0.1, out=out)
    assert written is out and written_count == count == 2
    np.testing.assert_array_equal(out, expected)
    with pytest.raises(ValueError, match="out must be"):
        mask_faces(image, boxes, "gaussian", 31, 0.1, out=np.zeros((80, 90, 4), np.uint8))


def test_a_large_face_is_masked_with_its_scaled_strength():
    image = _noise(700, 700, seed=21)
    box = np.array([[50, 60, 450, 660]], np.float32)  # 400 × 600: strength 40 becomes 120
    masked, count = mask_faces(image, box, "pixelate", 40, 0.0)
    assert count == 1
    np.testing.assert_array_equal(masked[60:660, 50:450], pixelate(image[60:660, 50:450], 120))
    assert (masked[60:180, 50:170] == masked[60, 50]).all()  # one 120 px block from the corner
    np.testing.assert_array_equal(masked[:60], image[:60])


def test_blur_looks_the_same_on_a_face_at_any_resolution():
    """A face shot at 3× the resolution, masked, then shrunk back, matches the small one
    masked: scaling the strength keeps what is left of the face independent of pixel count."""
    small = _texture(300, 300, seed=22)
    large = cv2.resize(small, (900, 900), interpolation=cv2.INTER_CUBIC)
    masked_small, _ = mask_faces(small, np.array([[0, 0, 300, 300]], np.float32), "gaussian", 199, 0.0)
    masked_large, _ = mask_faces(large, np.array([[0, 0, 900, 900]], np.float32), "gaussian", 199, 0.0)
    shrunk = cv2.resize(masked_large, (300, 300), interpolation=cv2.INTER_AREA)
    assert np.abs(shrunk.astype(int) - masked_small.astype(int)).mean() < 1.0  # measured 0.18
    # A 200 px box padded by 2 covers the whole photo too, but keeps strength 199 as given.
    fixed, _ = mask_faces(large, np.array([[350, 350, 550, 550]], np.float32), "gaussian", 199, 2.0)
    unscaled = cv2.resize(fixed, (300, 300), interpolation=cv2.INTER_AREA)  # the old fixed kernel
    assert np.abs(unscaled.astype(int) - masked_small.astype(int)).mean() > 10  # measured 22


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("strength", [2, 3, 31, 1000, 1001, np.int32(15), np.int64(2)])
@pytest.mark.parametrize("padding", [0, 0.0, 0.25, 2, 2.0, np.float32(1.5)])
def test_validate_accepts_the_documented_ranges(method, strength, padding):
    assert validate(method, strength, padding) is None


@pytest.mark.parametrize(
    ("method", "strength", "padding", "message"),
    [
        ("blur", 31, 0.1,
         "METHOD must be one of gaussian, pixelate, solid, elliptical; got 'blur'"),
        ("Gaussian", 31, 0.1,
         "METHOD must be one of gaussian, pixelate, solid, elliptical; got 'Gaussian'"),
        ("", 31, 0.1, "METHOD must be one of gaussian, pixelate, solid, elliptical; got ''"),
        ("gaussian", 1, 0.1, "STRENGTH must be an integer from 2 to 1001; got 1"),
        ("gaussian", 0, 0.1, "STRENGTH must be an integer from 2 to 1001; got 0"),
        ("pixelate", -5, 0.1, "STRENGTH must be an integer from 2 to 1001; got -5"),
        ("gaussian", 1002, 0.1, "STRENGTH must be an integer from 2 to 1001; got 1002"),
        ("gaussian", 3.0, 0.1, "STRENGTH must be an integer from 2 to 1001; got 3.0"),
        ("gaussian", True, 0.1, "STRENGTH must be an integer from 2 to 1001; got True"),
        ("gaussian", "31", 0.1, "STRENGTH must be an integer from 2 to 1001; got '31'"),
        ("solid", 31, -0.01, "PADDING must be a number from 0 to 2; got -0.01"),
        ("solid", 31, 2.01, "PADDING must be a number from 0 to 2; got 2.01"),
        ("solid", 31, float("nan"), "PADDING must be a number from 0 to 2; got nan"),
        ("solid", 31, float("inf"), "PADDING must be a number from 0 to 2; got inf"),
        ("solid", 31, "0.1", "PADDING must be a number from 0 to 2; got '0.1'"),
        ("solid", 31, None, "PADDING must be a number from 0 to 2; got None"),
    ],
)
def test_validate_names_the_bad_parameter_and_its_range(method, strength, padding, message):
    assert validate(method, strength, padding) == message


def test_mask_faces_refuses_what_validate_refuses():
    image = _noise(20, 20)
    with pytest.raises(ValueError, match="METHOD must be one of"):
        mask_faces(image, np.array([[2, 2, 10, 10]], np.float32), "mosaic", 5, 0.0)
    with pytest.raises(ValueError, match="STRENGTH must be an integer from 2 to 1001; got 1"):
        mask_faces(image, np.array([[2, 2, 10, 10]], np.float32), "gaussian", 1, 0.0)
    with pytest.raises(ValueError, match="PADDING must be a number from 0 to 2; got 3"):
        mask_faces(image, np.array([[2, 2, 10, 10]], np.float32), "solid", 5, 3)


# --- padded_regions -----------------------------------------------------------------------


def test_padded_regions_without_padding_rounds_outwards_to_whole_pixels():
    boxes = np.array([[10, 20, 30, 60], [10.2, 20.7, 30.1, 40.0], [5.999, 0.001, 6.001, 1.5]], np.float32)
    regions = padded_regions(boxes, 0.0, 100, 80)
    assert regions.dtype == np.int32 and regions.shape == (3, 4)
    np.testing.assert_array_equal(regions, [[10, 20, 30, 60], [10, 20, 31, 40], [5, 0, 7, 2]])


def test_padded_regions_grow_by_padding_times_width_and_height_on_each_side():
    box = np.array([[40, 30, 60, 70]], np.float32)  # 20 wide, 40 high
    assert padded_regions(box, 0.25, 200, 200).tolist() == [[35, 20, 65, 80]]
    assert padded_regions(box, 0.5, 200, 200).tolist() == [[30, 10, 70, 90]]
    assert padded_regions(box, 1.0, 200, 200).tolist() == [[20, 0, 80, 110]]  # top clipped
    assert padded_regions(box, 0.1, 200, 200).tolist() == [[38, 26, 62, 74]]
    # Fractional growth: 0.15 × 20 = 3, 0.15 × 40 = 6 (floats: floor/ceil keep it whole)
    assert padded_regions(box, 0.15, 200, 200).tolist() == [[37, 24, 63, 76]]
    # 0.13 × 20 = 2.6 → 37.4 .. 62.6 → 37 .. 63; 0.13 × 40 = 5.2 → 24.8 .. 75.2 → 24 .. 76
    assert padded_regions(box, 0.13, 200, 200).tolist() == [[37, 24, 63, 76]]


def test_float32_round_off_never_adds_a_pixel():
    box = np.array([[20, 20, 80, 90]], np.float32)  # 60 × 70: 0.2 grows it by 12 and 14
    expected = [[8, 6, 92, 104]]
    assert float(np.float32(0.2)) != 0.2
    assert padded_regions(box, 0.2, 200, 200).tolist() == expected
    assert padded_regions(box, float(np.float32(0.2)), 200, 200).tolist() == expected
    assert padded_regions(box, np.float32(0.2), 200, 200).tolist() == expected


def test_padded_regions_of_the_largest_padding():
    box = np.array([[40, 40, 50, 60]], np.float32)
    assert padded_regions(box, 2.0, 1000, 1000).tolist() == [[20, 0, 70, 100]]


def test_padded_regions_are_clipped_to_the_photo():
    width, height = 100, 80
    boxes = np.array([
        [-5, -8, 20, 30],     # crosses the top-left corner
        [90, 70, 130, 95],    # crosses the bottom-right corner
        [0, 0, 10, 10],       # touches the top-left border from inside
        [90, 70, 100, 80],    # touches the bottom-right border from inside
        [-50, 10, 150, 20],   # wider than the photo
    ], np.float32)
    np.testing.assert_array_equal(padded_regions(boxes, 0.0, width, height), [
        [0, 0, 20, 30], [90, 70, 100, 80], [0, 0, 10, 10], [90, 70, 100, 80], [0, 10, 100, 20]])
    np.testing.assert_array_equal(padded_regions(boxes, 0.5, width, height), [
        [0, 0, 33, 49], [70, 57, 100, 80], [0, 0, 15, 15], [85, 65, 100, 80], [0, 5, 100, 25]])


def test_zero_area_regions_become_zero_rows():
    width, height = 100, 80
    boxes = np.array([
        [5, 5, 5, 20],              # no width
        [5, 5, 20, 5],              # no height
        [10.5, 10.5, 10.5, 10.5],   # a point, even between pixel edges
        [-30, -30, -10, -10],       # wholly outside, top-left
        [120, 10, 140, 20],         # wholly outside, right
        [-10, 5, 0, 15],            # touches the left border from outside
        [10, 80, 20, 95],           # touches the bottom border from outside
        [20, 20, 10, 10],           # inverted
        [np.nan, 5, 20, 20],        # not finite
        [5, 5, np.inf, 20],
        [10, 10, 20, 20],           # a real one among them
    ], np.float32)
    regions = padded_regions(boxes, 0.0, width, height)
    expected = np.zeros((len(boxes), 4), np.int32)
    expected[-1] = [10, 10, 20, 20]
    np.testing.assert_array_equal(regions, expected)
    # Padding cannot give a degenerate, inverted or non-finite box any area, ...
    padded = padded_regions(boxes, 2.0, width, height)
    assert (padded[[0, 1, 2, 7, 8, 9]] == 0).all()
    # ... but it does grow boxes just outside the photo into it.
    np.testing.assert_array_equal(padded[[5, 6]], [[0, 0, 20, 35], [0, 50, 40, 80]])


def test_padded_regions_of_no_boxes():
    regions = padded_regions(np.zeros((0, 4), np.float32), 0.3, 100, 80)
    assert regions.shape == (0, 4) and regions.dtype == np.int32


def test_padded_regions_always_lie_inside_the_photo_and_contain_the_clipped_box():
    rng = np.random.default_rng(3)
    width, height = 317, 211
    corners = rng.uniform(-80, 400, (500, 2))
    sizes = rng.uniform(0, 120, (500, 2))
    boxes = np.concatenate([corners, corners + sizes], axis=1).astype(np.float32)
    for padding in (0.0, 0.1, 0.77, 2.0):
        regions = padded_regions(boxes, padding, width, height)
        real = (regions[:, 2] > regions[:, 0]) & (regions[:, 3] > regions[:, 1])
        empty = ~real
        assert (regions[empty] == 0).all()
        x1, y1, x2, y2 = regions[real].T
        assert (0 <= x1).all() and (x2 <= width).all() and (0 <= y1).all() and (y2 <= height).all()
        b = boxes[real].astype(np.float64)
        assert (x1 <= np.clip(b[:, 0], 0, width)).all() and (x2 >= np.clip(b[:, 2], 0, width)).all()
        assert (y1 <= np.clip(b[:, 1], 0, height)).all() and (y2 >= np.clip(b[:, 3], 0, height)).all()
        # A box counts exactly when its padded, clipped extent has area.
        b = boxes.astype(np.float64)
        grow_x, grow_y = padding * (b[:, 2] - b[:, 0]), padding * (b[:, 3] - b[:, 1])
        extent_x = np.clip(b[:, 2] + grow_x, 0, width) - np.clip(b[:, 0] - grow_x, 0, width)
        extent_y = np.clip(b[:, 3] + grow_y, 0, height) - np.clip(b[:, 1] - grow_y, 0, height)
        np.testing.assert_array_equal(real, (extent_x > 0) & (extent_y > 0))
        assert 0 < real.sum() < len(boxes)


# --- every method: inside changes, outside stays, input untouched --------------------------


BOXES = np.array([[20, 15, 60, 65], [100, 40, 150, 110], [140, 100, 175, 150]], np.float32)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("strength", "padding"), [(9, 0.0), (31, 0.2), (199, 0.5)])
def test_each_method_changes_the_regions_and_nothing_else(method, strength, padding):
    image = _noise(160, 180, seed=1)
    original, boxes = image.copy(), BOXES.copy()
    masked, count = mask_faces(image, boxes, method, strength, padding)
    regions = padded_regions(BOXES, padding, 180, 160)
    inside = _union(regions, 160, 180)

    assert count == 3
    assert masked.shape == image.shape and masked.dtype == np.uint8
    np.testing.assert_array_equal(masked[~inside], image[~inside])
    changed = (masked != image).any(axis=2)
    if method == "elliptical":  # only the ellipses change: well over half of each region
        assert changed.sum() > 0.6 * inside.sum()
    else:  # noise: almost every pixel of the regions changes
        assert changed.sum() > 0.95 * inside.sum()
    # The input is never modified, nor is the result a view of it.
    np.testing.assert_array_equal(image, original)
    np.testing.assert_array_equal(boxes, BOXES)
    assert not np.shares_memory(masked, image)


@pytest.mark.parametrize("method", METHODS)
def test_random_boxes_leave_every_pixel_outside_their_union_byte_identical(method):
    rng = np.random.default_rng(7)
    image = _texture(240, 320, seed=2)
    corners = rng.uniform(-60, 330, (25, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(0, 90, (25, 2))], axis=1).astype(np.float32)
    for strength, padding in ((2, 0.0), (17, 0.3), (101, 1.0), (1001, 2.0)):
        masked, count = mask_faces(image, boxes, method, strength, padding)
        regions = padded_regions(boxes, padding, 320, 240)
        real = (regions[:, 2] > regions[:, 0]) & (regions[:, 3] > regions[:, 1])
        assert count == int(real.sum()) and 0 < count < len(boxes)
        outside = ~_union(regions, 240, 320)
        np.testing.assert_array_equal(masked[outside], image[outside])


@pytest.mark.parametrize("method", METHODS)
def test_no_faces_gives_an_identical_copy(method):
    image = _texture(50, 70)
    for boxes in (np.zeros((0, 4), np.float32), np.array([[-20, -20, -5, -5]], np.float32)):
        masked, count = mask_faces(image, boxes, method, 31, 0.2)
        assert count == 0
        np.testing.assert_array_equal(masked, image)
        assert not np.shares_memory(masked, image)


def test_overlapping_regions_are_masked_in_order():
    image = _noise(100, 100, seed=4)
    first, second = np.array([10, 10, 60, 60], np.float32), np.array([40, 40, 90, 90], np.float32)
    masked, count = mask_faces(image, np.stack([first, second]), "pixelate", 7, 0.0)
    assert count == 2
    step, _ = mask_faces(image, first[None], "pixelate", 7, 0.0)
    expected, _ = mask_faces(step, second[None], "pixelate", 7, 0.0)
    np.testing.assert_array_equal(masked, expected)
    # The order matters where they overlap: the later region wins there.
    reverse, _ = mask_faces(image, np.stack([second, first]), "pixelate", 7, 0.0)
    assert not np.array_equal(masked[40:60, 40:60], reverse[40:60, 40:60])
    # Blocks from (61, 61) on (40 + 3 × 7) lie wholly outside the first region: the same either way.
    np.testing.assert_array_equal(masked[61:90, 61:90], reverse[61:90, 61:90])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("strength", [2, 3, 38, 200, 1001])
@pytest.mark.parametrize(("height", "width"), [(1, 1), (1, 9), (9, 1), (2, 3), (5, 4)])
def test_tiny_regions_work_with_every_strength(method, strength, height, width):
    image = _noise(12, 12, seed=5)
    boxes = np.array([[3, 2, 3 + width, 2 + height]], np.float32)
    masked, count = mask_faces(image, boxes, method, strength, 0.0)
    assert count == 1 and masked.shape == image.shape
    inside = _union([[3, 2, 3 + width, 2 + height]], 12, 12)
    np.testing.assert_array_equal(masked[~inside], image[~inside])


# --- gaussian -------------------------------------------------------------------------------


def test_kernel_size_and_sigma_follow_opencv():
    assert [kernel_size(s) for s in (2, 3, 4, 30, 31, 100, 1000, 1001)] == [3, 3, 5, 31, 31, 101, 1001, 1001]
    for size in (11, 31, 199, 1001):  # (k = 3 … 9: OpenCV uses fixed small kernels instead)
        expected = cv2.getGaussianKernel(size, 0, cv2.CV_64F)[:, 0]
        x = np.arange(size) - size // 2
        ours = np.exp(-x * x / (2 * kernel_sigma(size) ** 2))
        np.testing.assert_allclose(ours / ours.sum(), expected, rtol=1e-6, atol=1e-12)
    assert kernel_sigma(199) == pytest.approx(30.2)


@pytest.mark.parametrize("strength", [2, 3, 14, 15, 31, 37])
def test_small_kernels_are_exactly_cv2_gaussian_blur(strength):
    for region in (_texture(90, 70), _noise(40, 33), _noise(3, 8), _photo(64, 52)):
        ours = gaussian_blur(region, strength)
        np.testing.assert_array_equal(ours, _true_blur(region, strength))
        # OpenCV's own uint8 path (fixed-point) strays a little from it: measured up to 2 levels.
        assert np.abs(ours.astype(int) - _reference_blur(region, strength)).max() <= 2


def test_an_even_strength_is_the_next_odd_kernel():
    region = _texture(120, 100)
    for even in (2, 30, 38, 198, 1000):
        np.testing.assert_array_equal(gaussian_blur(region, even), gaussian_blur(region, even + 1))


IMAGES = {"texture": _texture, "noise": _noise, "edge": _edge, "checker": _checker, "photo": _photo}


@pytest.mark.parametrize("image", list(IMAGES))
@pytest.mark.parametrize(
    ("strength", "height", "width"),
    [(38, 150, 120), (39, 150, 120), (75, 160, 200), (199, 400, 400), (199, 57, 45),
     (501, 180, 150), (1001, 120, 100), (1001, 30, 41)],
)
def test_large_kernels_stay_close_to_cv2_gaussian_blur(image, strength, height, width):
    region = IMAGES[image](height, width)
    ours = gaussian_blur(region, strength).astype(int)
    diff = np.abs(ours - _true_blur(region, strength))
    assert diff.max() <= TRUE_MAX_DIFF and diff.mean() <= TRUE_MEAN_DIFF, (diff.max(), diff.mean())
    diff = np.abs(ours - _reference_blur(region, strength))
    assert diff.max() <= UINT8_MAX_DIFF and diff.mean() <= UINT8_MEAN_DIFF, (diff.max(), diff.mean())


@pytest.mark.parametrize("strength", [75, 199])
def test_large_kernels_spread_a_spot_as_far_as_the_true_gaussian(strength):
    # The downscale and upscale blur a little themselves; the coarse sigma leaves that
    # out. Without it the spread would come out ~2.7 % too wide at k = 199.
    region = np.zeros((341, 341), np.uint8)
    region[150:191, 150:191] = 255

    def spread(image):
        weights = image.astype(np.float64)
        ys, xs = np.indices(image.shape)
        cy, cx = (weights * ys).sum() / weights.sum(), (weights * xs).sum() / weights.sum()
        return (weights * ((ys - cy) ** 2 + (xs - cx) ** 2)).sum() / weights.sum()

    assert spread(gaussian_blur(region, strength)) == pytest.approx(spread(_true_blur(region, strength)),
                                                                    rel=0.01)


def test_large_kernels_cost_a_few_milliseconds():
    region = _photo(400, 400)
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        gaussian_blur(region, 199)
        timings.append(time.perf_counter() - started)
    # cv2.GaussianBlur takes ~80 ms here; the downscaled blur ~1 ms (generous bound for slow CI).
    assert min(timings) < 0.015, timings


def test_gaussian_blurs_each_region_on_its_own_with_reflected_borders():
    # The neighbours just outside a region never leak in: blurring a region inside a
    # photo equals blurring the cropped region alone.
    image = _texture(100, 120)
    image[:, :30] = 255  # a bright band just left of the region
    box = np.array([[30, 20, 90, 80]], np.float32)
    region = image[20:80, 30:90].copy()
    for strength in (15, 99):
        masked, _ = mask_faces(image, box, "gaussian", strength, 0.0)
        np.testing.assert_array_equal(masked[20:80, 30:90], gaussian_blur(region, strength))
    masked, _ = mask_faces(image, box, "gaussian", 15, 0.0)
    np.testing.assert_array_equal(masked[20:80, 30:90], _true_blur(region, 15))


def test_a_stronger_blur_flattens_more():
    region = _noise(120, 120)
    spreads = [gaussian_blur(region, s).astype(float).std() for s in (3, 15, 51, 199)]
    assert spreads == sorted(spreads, reverse=True)
    assert spreads[-1] < 0.1 * region.std()


# --- pixelate -------------------------------------------------------------------------------


@pytest.mark.parametrize(("height", "width", "block"), [(23, 17, 5), (20, 20, 4), (40, 31, 2), (9, 14, 9)])
def test_pixelate_blocks_are_flat_and_equal_to_their_means(height, width, block):
    region = _noise(height, width, seed=block)
    out = pixelate(region, block)
    assert out.shape == region.shape and out.dtype == np.uint8
    blocks = 0
    for top in range(0, height, block):  # blocks start at the region's top-left corner
        for left in range(0, width, block):
            tile = out[top:top + block, left:left + block]
            source = region[top:top + block, left:left + block].reshape(-1, 3).astype(np.float64)
            expected = np.floor(source.mean(axis=0) + 0.5)  # rounded half up
            np.testing.assert_array_equal(tile, np.broadcast_to(expected, tile.shape))
            blocks += 1
    assert blocks == -(-height // block) * -(-width // block)


def test_pixelate_block_larger_than_the_region_makes_one_colour():
    region = _noise(30, 20, seed=8)
    expected = np.floor(region.reshape(-1, 3).mean(axis=0) + 0.5)
    for block in (30, 31, 1001):
        out = pixelate(region, block)
        np.testing.assert_array_equal(out, np.broadcast_to(expected, region.shape))


def test_pixelate_rounds_half_up():
    region = np.array([[[0, 1, 254]], [[1, 2, 255]]], np.uint8)  # means 0.5, 1.5, 254.5
    np.testing.assert_array_equal(pixelate(region, 2), [[[1, 2, 255]], [[1, 2, 255]]])


def test_pixelate_in_a_photo_starts_blocks_at_the_padded_region_corner():
    image = _noise(60, 60, seed=9)
    masked, _ = mask_faces(image, np.array([[13.4, 7.8, 40, 33]], np.float32), "pixelate", 6, 0.0)
    np.testing.assert_array_equal(masked[7:33, 13:40], pixelate(image[7:33, 13:40], 6))
    assert (masked[7:13, 13:19] == masked[7, 13]).all()  # the first block, from the corner


# --- solid ----------------------------------------------------------------------------------


def test_solid_blacks_out_the_regions_whatever_the_strength():
    image = _noise(50, 60, seed=10)
    boxes = np.array([[10, 10, 30, 25], [25.5, 20.5, 50.2, 44.9]], np.float32)
    results = [mask_faces(image, boxes, "solid", strength, 0.1)[0] for strength in (2, 500, 1001)]
    inside = _union(padded_regions(boxes, 0.1, 60, 50), 50, 60)
    for masked in results:
        assert (masked[inside] == 0).all()
        np.testing.assert_array_equal(masked[~inside], image[~inside])
        np.testing.assert_array_equal(masked, results[0])


# --- elliptical -----------------------------------------------------------------------------


def _rho(height, width):
    a, b = width / 2, height / 2
    ys, xs = np.indices((height, width)) + 0.5
    return np.sqrt(((xs - a) / a) ** 2 + ((ys - b) / b) ** 2)


@pytest.mark.parametrize(("height", "width"), [(200, 160), (64, 64), (31, 57), (7, 5), (1, 1)])
def test_ellipse_alpha_is_zero_outside_one_inside_and_in_range(height, width):
    alpha = ellipse_alpha(height, width)
    assert alpha.shape == (height, width) and alpha.dtype == np.float32
    assert ((0 <= alpha) & (alpha <= 1)).all()
    rho = _rho(height, width)
    assert (alpha[rho >= 1] == 0).all()  # on and outside the ellipse: untouched
    assert (alpha[rho < 0.999] > 0).all()  # strictly inside: some blur
    # Symmetric about both axes.
    np.testing.assert_allclose(alpha, alpha[::-1], atol=1e-6)
    np.testing.assert_allclose(alpha, alpha[:, ::-1], atol=1e-6)


def test_ellipse_alpha_is_one_in_the_core_and_feathers_over_fifteen_percent():
    height, width = 200, 160  # semi-axes 80 (x) and 100 (y): feather 12 px
    alpha = ellipse_alpha(height, width)
    rho = _rho(height, width)
    assert alpha[100, 80] == 1.0
    assert (alpha[rho < 0.8] == 1).all()  # deeper than 12 px along any normal
    row, column = alpha[100], alpha[:, 80]
    # Through the centre: 0 at the edges, rising over ~12 px to 1.
    for line in (row, column):
        half = line[: len(line) // 2]
        assert half[0] < 0.02 and half[-1] == 1.0
        assert (np.diff(half) >= 0).all()  # monotone from the edge to the centre
        assert np.diff(half).max() < 0.15  # no hard step (smoothstep over 12 px: max 0.125)
        band = ((half > 0) & (half < 1)).sum()
        assert 11 <= band <= 13, band


def test_ellipse_alpha_feather_is_at_least_two_pixels():
    alpha = ellipse_alpha(10, 10)  # 15 % of 5 px is 0.75: the band is 2 px
    row = alpha[5, :5]
    assert row[-1] == 1.0 and 0 < row[0] < row[1] < 1.0  # two graded pixels, then full


@pytest.mark.parametrize("strength", [15, 199])
def test_elliptical_blurs_the_centre_keeps_the_corners_and_blends_the_edge(strength):
    image = _noise(140, 120, seed=11)
    box = np.array([[20, 10, 100, 130]], np.float32)  # region 80 × 120
    masked, count = mask_faces(image, box, "elliptical", strength, 0.0)
    assert count == 1
    region, out = image[10:130, 20:100], masked[10:130, 20:100]
    blurred = gaussian_blur(region.copy(), strength)
    alpha = ellipse_alpha(120, 80)
    # Corners of the region (outside the ellipse) are unchanged.
    rho = _rho(120, 80)
    np.testing.assert_array_equal(out[rho >= 1], region[rho >= 1])
    for y, x in ((0, 0), (0, 79), (119, 0), (119, 79), (5, 5)):
        np.testing.assert_array_equal(out[y, x], region[y, x])
    # The core is the gaussian blur itself.
    core = alpha == 1
    assert core.sum() > 0.4 * core.size
    np.testing.assert_array_equal(out[core], blurred[core])
    # The band is the alpha blend, between the original and the blur.
    band = (alpha > 0) & (alpha < 1)
    expected = np.rint(region.astype(np.float32)
                       + alpha[..., None] * (blurred.astype(np.float32) - region.astype(np.float32)))
    np.testing.assert_allclose(out[band], expected[band], atol=1)
    low, high = np.minimum(region, blurred), np.maximum(region, blurred)
    assert ((low[band] <= out[band]) & (out[band] <= high[band])).all()
    # Outside the region nothing moved.
    outside = ~_union([[20, 10, 100, 130]], 140, 120)
    np.testing.assert_array_equal(masked[outside], image[outside])
