"""Face masking (anonymisation) maths for the face_mask model (pure numpy + OpenCV, no Triton).

Padded region
    Each face box (x1, y1, x2, y2, photo pixels, as the detectors' postprocess models output them)
    grows by ``padding × box width`` on the left and on the right and by
    ``padding × box height`` at the top and at the bottom (padding 0 … 2: 0.2 turns
    a 100 × 120 box into 140 × 168), is clipped to the photo, and becomes the
    whole-pixel region floor(x1), floor(y1), ceil(x2), ceil(y2): columns x1 ≤ x < x2,
    rows y1 ≤ y < y2 (the padded coordinates are rounded to 1/1000 px before that,
    so float32 round-off never adds a pixel). A box whose padded, clipped extent has
    no area (a degenerate box, or one wholly outside the photo) masks nothing and is
    not counted.

Methods and strength (an integer 2 … 1001 for every method)
    Strength is measured on a face up to 200 px (REFERENCE_FACE_PX) on its longer
    side. A larger face gets it scaled by its size: strength × side / 200, rounded
    (a 600 px face at strength 199 gets 597). A fixed kernel would hide a big face
    less than a small one: at 199, ArcFace still matched an 850 px face to its
    blurred self at 0.72; scaled, every face looks masked alike whatever the photo's
    resolution. "Strength" below means this per-face value.
    gaussian    Gaussian blur of the region. Strength is the kernel size in pixels;
                an even value is rounded up to the next odd one (2 → 3, 100 → 101).
                Sigma is derived from the kernel size as OpenCV does,
                0.3 · ((k − 1) / 2 − 1) + 0.8 (k = 31 → 5.3, k = 199 → 30.2; for
                k ≤ 9 OpenCV uses its fixed, nearly identical small kernels).
                The region is blurred on its own, its borders reflected
                (OpenCV's BORDER_REFLECT_101), so only pixels inside it change.
                Kernels up to 37 px run through cv2.GaussianBlur itself, on a
                float32 copy rounded once (the true Gaussian). Larger ones, whose
                cost grows with k there (k = 199 on a 400 × 400 face: ~80 ms),
                blur a copy downscaled by floor(sigma / 3) and scale it back up:
                1–4 ms for that face, whatever k. That stays within 2 levels (of
                255) per pixel of the true Gaussian, mean difference under 0.7 (on
                photos: 1 level, mean under 0.35); tests/unit/test_masking.py
                holds the measurements.
    pixelate    Strength is the block edge in pixels. Blocks start at the region's
                top-left corner (the last row and column of blocks may be
                narrower); each block becomes the mean colour of its own pixels,
                rounded half up. A block larger than the region makes it one colour.
    solid       The region is filled with black. Strength is accepted and ignored.
    elliptical  The ellipse inscribed in the region is blurred as by gaussian (same
                kernel size) and blended in: alpha 1 well inside the ellipse,
                falling smoothly (smoothstep) to 0 at its boundary across a feather
                band of 15 % of the smaller semi-axis (at least 2 px), measured
                along the boundary's normal. Pixels on or outside the ellipse,
                the region's corners among them, stay unchanged.

Regions are masked one after another in the given order, so where two overlap the
later one works on pixels the earlier one already masked. Every pixel outside the
union of the padded regions is byte-identical to the input, which is never modified.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

METHODS = ("gaussian", "pixelate", "solid", "elliptical")
STRENGTH_RANGE = (2, 1001)  # inclusive, for every method
PADDING_RANGE = (0.0, 2.0)  # inclusive, fraction of the box's width / height per side

REFERENCE_FACE_PX = 200  # strength is as given up to this face size, scaled beyond
EXACT_MAX_KERNEL = 37  # larger kernels use the downscaled blur
COARSE_SIGMA = 3.0  # sigma (in downscaled pixels) the downscaled blur aims for
FEATHER_FRACTION = 0.15  # elliptical: feather band / smaller semi-axis
FEATHER_MIN_PX = 2.0


def validate(method: str, strength: int, padding: float) -> str | None:
    """A message saying what is wrong with the masking parameters, or None when they are fine."""
    if method not in METHODS:
        return f"METHOD must be one of {', '.join(METHODS)}; got {method!r}"
    low, high = STRENGTH_RANGE
    if isinstance(strength, bool | np.bool_) or not isinstance(strength, int | np.integer) \
            or not low <= strength <= high:
        return f"STRENGTH must be an integer from {low} to {high}; got {strength!r}"
    low, high = PADDING_RANGE
    if isinstance(padding, bool | np.bool_) or not isinstance(padding, int | float | np.number) \
            or not math.isfinite(padding) or not low <= padding <= high:
        return f"PADDING must be a number from {low:g} to {high:g}; got {padding!r}"
    return None


def padded_regions(boxes: np.ndarray, padding: float, width: int, height: int) -> np.ndarray:
    """(N, 4) int32 regions x1, y1, x2, y2 (x2, y2 exclusive) for (N, 4) boxes on a width×height photo.

    Row i belongs to box i; a box that masks nothing (its padded, clipped extent
    has no area, or it holds a non-finite coordinate) gets (0, 0, 0, 0).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x1, y1, x2, y2 = boxes.T
    with np.errstate(invalid="ignore"):  # inf - inf, 0 × inf: non-finite boxes, dropped below
        pad_x = padding * (x2 - x1)
        pad_y = padding * (y2 - y1)
        # Rounded to 1/1000 px first, so float32 round-off (0.2 is 0.200000003 as a
        # float32) never adds a whole pixel to a region.
        left = np.clip(np.round(x1 - pad_x, 3), 0, width)
        right = np.clip(np.round(x2 + pad_x, 3), 0, width)
        top = np.clip(np.round(y1 - pad_y, 3), 0, height)
        bottom = np.clip(np.round(y2 + pad_y, 3), 0, height)
        keep = np.isfinite(boxes).all(axis=1) & (right > left) & (bottom > top)
    regions = np.zeros((len(boxes), 4), dtype=np.int32)
    regions[keep] = np.stack([np.floor(left[keep]), np.floor(top[keep]),
                              np.ceil(right[keep]), np.ceil(bottom[keep])], axis=1)
    return regions


def face_strength(strength: int, box: np.ndarray) -> int:
    """The strength one face (x1, y1, x2, y2) is masked with: as given up to
    REFERENCE_FACE_PX on the face's longer side, in proportion to that side beyond."""
    side = float(max(box[2] - box[0], box[3] - box[1]))
    if not side > REFERENCE_FACE_PX:  # also for a non-finite box, which masks nothing anyway
        return int(strength)
    return int(round(strength * side / REFERENCE_FACE_PX))


def kernel_size(strength: int) -> int:
    """The odd Gaussian kernel size a strength stands for."""
    return int(strength) | 1


def kernel_sigma(size: int) -> float:
    """Sigma OpenCV derives from an odd kernel size (cv2.getGaussianKernel with sigma <= 0)."""
    return 0.3 * ((size - 1) * 0.5 - 1) + 0.8


def gaussian_blur(region: np.ndarray, strength: int) -> np.ndarray:
    """``region`` (h×w×C uint8) blurred on its own with reflected borders: the Gaussian
    ``cv2.GaussianBlur(region, (k, k), 0, borderType=cv2.BORDER_REFLECT_101)``, k = kernel_size(strength).

    Up to EXACT_MAX_KERNEL exactly that runs, on a float32 copy rounded once: the true
    Gaussian, and 4-7× faster than OpenCV's fixed-point uint8 path (which itself
    strays up to 2 levels from the true result). Beyond, the direct blur
    costs O(k) per pixel (k = 199 on a 400×400 face: ~80 ms), so instead the reflected
    region is box-averaged down by f = floor(sigma / 3), blurred there (in float32)
    with sigma' ≈ 3 and scaled back up linearly, then rounded once. The downscale
    and the linear upscale blur a little themselves (variance (f² − 1) / 12 and
    (f² − 1) / 6), which sigma' leaves out so the three together add up to sigma.
    """
    size = kernel_size(strength)
    if size <= EXACT_MAX_KERNEL:
        exact = cv2.GaussianBlur(region.astype(np.float32), (size, size), 0,
                                 borderType=cv2.BORDER_REFLECT_101)
        return _rounded(exact, region.shape)
    sigma = kernel_sigma(size)
    factor = int(sigma // COARSE_SIGMA)
    coarse_sigma = math.sqrt(sigma * sigma - (factor * factor - 1) / 4.0) / factor
    coarse_half = round((size - 1) / 2 / factor)  # the same reach as the full-size kernel
    height, width = region.shape[:2]
    # Reflect far enough that the coarse kernel (plus a block for the interpolation and
    # one to spare) never reaches the padded copy's own border, in whole blocks so the
    # blocks line up with the region's corner and its size becomes a multiple of factor.
    pad = (coarse_half + 2) * factor
    padded = cv2.copyMakeBorder(region, pad, pad + (-height) % factor, pad, pad + (-width) % factor,
                                cv2.BORDER_REFLECT_101)
    rows, cols = padded.shape[0] // factor, padded.shape[1] // factor
    small = cv2.resize(padded, (cols, rows), interpolation=cv2.INTER_AREA).astype(np.float32)
    small = cv2.GaussianBlur(small, (2 * coarse_half + 1, 2 * coarse_half + 1), coarse_sigma,
                             borderType=cv2.BORDER_REFLECT_101)
    # Scale back up only the blocks covering the region, plus one block each side for
    # the interpolation: the same pixels as upscaling everything and cropping.
    top, left = pad // factor - 1, pad // factor - 1
    bottom = (pad + height + factor - 1) // factor + 1
    right = (pad + width + factor - 1) // factor + 1
    part = small[top:bottom, left:right]
    up = cv2.resize(part, (part.shape[1] * factor, part.shape[0] * factor), interpolation=cv2.INTER_LINEAR)
    return _rounded(up[factor:factor + height, factor:factor + width], region.shape)


def _rounded(blurred: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    # (OpenCV drops a single channel's axis; the reshape puts it back.)
    return np.clip(np.rint(blurred), 0, 255).astype(np.uint8).reshape(shape)


def pixelate(region: np.ndarray, block: int) -> np.ndarray:
    """``region`` (h×w×C uint8) in block×block tiles from its top-left corner, each its mean colour."""
    height, width = region.shape[:2]
    rows = np.arange(0, height, block)
    cols = np.arange(0, width, block)
    sums = np.add.reduceat(np.add.reduceat(region, rows, axis=0, dtype=np.int64), cols, axis=1)
    tile_heights = np.diff(np.append(rows, height))
    tile_widths = np.diff(np.append(cols, width))
    counts = (tile_heights[:, None] * tile_widths[None, :])[..., None]
    means = ((2 * sums + counts) // (2 * counts)).astype(np.uint8)  # rounded half up
    return np.repeat(np.repeat(means, tile_heights, axis=0), tile_widths, axis=1)


def ellipse_alpha(height: int, width: int) -> np.ndarray:
    """(height, width) float32 blend weights of the ellipse inscribed in a height×width region.

    With u, v a pixel centre's offsets from the region centre divided by the
    semi-axes a = width / 2 and b = height / 2, rho = sqrt(u² + v²) is 1 on the
    ellipse. The distance inside it, along the boundary's normal, is about
    (1 − rho) / |grad rho| = (1 − rho) · rho / sqrt((u / a)² + (v / b)²) (exact on the
    boundary, linear along every ray from the centre). Alpha is smoothstep of that
    distance over the feather band: 0 on and outside the ellipse, 1 deeper than the band.
    """
    a, b = width / 2.0, height / 2.0
    feather = max(FEATHER_MIN_PX, FEATHER_FRACTION * min(a, b))
    u = ((np.arange(width, dtype=np.float32) + 0.5 - a) / a)[None, :]
    v = ((np.arange(height, dtype=np.float32) + 0.5 - b) / b)[:, None]
    rho = np.sqrt(u * u + v * v)
    slope = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    # rho / slope lies between min(a, b) and max(a, b); at the very centre both are 0.
    reach = np.divide(rho, slope, out=np.full_like(rho, min(a, b)), where=slope > 0)
    t = np.clip((1.0 - rho) * reach / feather, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _blend(region: np.ndarray, blurred: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    base = region.astype(np.float32)
    mixed = base + alpha[..., None] * (blurred.astype(np.float32) - base)
    return np.rint(mixed).astype(np.uint8)  # alpha 0 gives back the input exactly


def mask_region(region: np.ndarray, method: str, strength: int) -> np.ndarray:
    """One region (h×w×C uint8) masked by ``method`` (a new array; the input is left alone)."""
    if method == "gaussian":
        return gaussian_blur(region, strength)
    if method == "pixelate":
        return pixelate(region, strength)
    if method == "solid":
        return np.zeros_like(region)
    if method == "elliptical":
        height, width = region.shape[:2]
        return _blend(region, gaussian_blur(region, strength), ellipse_alpha(height, width))
    raise ValueError(f"unknown masking method {method!r}")


def mask_faces(image: np.ndarray, boxes: np.ndarray, method: str, strength: int,
               padding: float, out: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """A copy of ``image`` (H×W×3 uint8) with every box's padded region masked, and how many were.

    Each face is masked with face_strength(strength, its box). The copy is written
    into ``out`` (same shape and dtype) when given, saving the caller a copy of the
    photo. Raises ValueError for parameters validate() refuses.
    """
    problem = validate(method, strength, padding)
    if problem:
        raise ValueError(problem)
    if image.ndim != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be H×W×C uint8, got {image.shape} {image.dtype}")
    if out is None:
        masked = image.copy()
    elif out.shape != image.shape or out.dtype != image.dtype:
        raise ValueError(f"out must be {image.shape} {image.dtype}, got {out.shape} {out.dtype}")
    else:
        masked = out
        np.copyto(masked, image)
    height, width = image.shape[:2]
    count = 0
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    for box, (x1, y1, x2, y2) in zip(boxes, padded_regions(boxes, float(padding), width, height)):
        if x2 <= x1 or y2 <= y1:
            continue
        # A contiguous copy: OpenCV then sees the region alone, never its neighbours.
        region = np.ascontiguousarray(masked[y1:y2, x1:x2])
        masked[y1:y2, x1:x2] = mask_region(region, method, face_strength(strength, box))
        count += 1
    return masked, count
