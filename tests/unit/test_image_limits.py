"""The output formats' size limits, thumbnails of hostile images, and the wording of
validation errors: pure logic, no server."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.exceptions import RequestValidationError
from PIL import Image

from frontend.errors import ApiError, describe_validation
from frontend.imaging import codecs, encode
from frontend.imaging.encode import MAX_SIDE, check_output_size, encode_image
from frontend.imaging.thumbnail import make_thumbnail
from frontend.services import masking
from tests.support import hostile_images

LIMIT = 20_000_000  # the integration stack's FACE_API_MAX_IMAGE_PIXELS
LEAKS = ("/work", "site-packages", ".py", "Traceback")


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (90, 120, 150)).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_each_format_encodes_up_to_its_limit_and_refuses_beyond(fmt):
    # Regression: past the limit, TurboJPEG raised OSError and Pillow's WebP encoder
    # "ValueError: encoding error 5": a 500 on /api/v1/mask.
    side = MAX_SIDE[fmt]
    assert encode_image(np.zeros((1, side, 3), np.uint8), fmt, 90)
    assert encode_image(np.zeros((side, 1, 3), np.uint8), fmt, 90)
    for shape in ((1, side + 1, 3), (side + 1, 1, 3)):
        with pytest.raises(ApiError) as error:
            encode_image(np.zeros(shape, np.uint8), fmt, 90)
        assert error.value.status_code == 422 and f"limited to {side} pixels on a side" in error.value.detail


def test_png_has_no_side_limit():
    assert encode_image(np.zeros((1, 70_000, 3), np.uint8), "png", 90).startswith(b"\x89PNG")


@pytest.mark.parametrize("size, fmt, detail", [
    ((70_000, 1), "jpeg", "the image is 70000x1 pixels; JPEG output is limited to 65500 pixels on a side: "
                          "ask for format=png, or send a smaller image"),
    ((1, 70_000), "webp", "the image is 1x70000 pixels; WebP output is limited to 16383 pixels on a side: "
                          "ask for format=png, or send a smaller image"),
    ((17_000, 64), "webp", "the image is 17000x64 pixels; WebP output is limited to 16383 pixels on a side: "
                           "ask for format=jpeg or format=png, or send a smaller image"),
])
def test_the_refusal_names_the_limit_and_what_works(size, fmt, detail):
    with pytest.raises(ApiError) as error:
        check_output_size(*size, fmt)
    assert (error.value.status_code, error.value.detail) == (422, detail)


@pytest.mark.parametrize("size, fmt", [((70_000, 1), "jpeg"), ((1, 70_000), "jpeg"), ((17_000, 64), "webp")])
def test_an_impossible_output_is_refused_from_the_header_before_decoding(monkeypatch, size, fmt):
    def no_decoding(*_):
        raise AssertionError("decoded although the header said the output cannot be made")

    monkeypatch.setattr(masking, "decode_image", no_decoding)
    with pytest.raises(ApiError) as error:
        masking.decode_for_output(png(*size), fmt, LIMIT)
    assert error.value.status_code == 422


@pytest.mark.parametrize("size, fmt", [((70_000, 1), "png"), ((1, 70_000), "png"), ((17_000, 64), "jpeg"),
                                       ((16_383, 2), "webp"), ((65_500, 1), "jpeg")])
def test_a_possible_output_is_decoded(size, fmt):
    decoded = masking.decode_for_output(png(*size), fmt, LIMIT)
    assert (decoded.width, decoded.height) == size
    assert encode_image(decoded.pixels, fmt, 90)


def test_a_jpeg_header_is_read_without_decoding():
    header_only = hostile_images.jpeg_declaring(65_500, 300)  # its body is a 16x16 picture
    with pytest.raises(ApiError) as error:
        masking.decode_for_output(header_only, "webp", LIMIT)
    assert error.value.status_code == 422 and "65500x300" in error.value.detail


def test_the_pixel_limit_comes_before_the_format_limit():
    with pytest.raises(ApiError) as error:
        masking.decode_for_output(hostile_images.jpeg_declaring(65_500, 65_500), "webp", LIMIT)
    assert error.value.status_code == 413


@pytest.mark.parametrize("fmt", sorted(encode.MAX_SIDE))
@pytest.mark.parametrize("item", hostile_images.corpus(), ids=lambda item: item.name)
def test_every_hostile_image_masks_or_gets_a_clean_4xx(item, fmt):
    """What /api/v1/mask does around Triton: decode for ``fmt``, then encode the pixels."""
    try:
        decoded = masking.decode_for_output(item.data, fmt, LIMIT)
        assert encode_image(decoded.pixels, fmt, 90, decoded.alpha)
    except ApiError as error:
        assert 400 <= error.status_code < 500
        assert not any(leak in error.detail for leak in LEAKS), error.detail
        if item.accepted:  # a usable image is refused only when the format cannot hold it
            assert error.status_code == 422 and max(item.size) > MAX_SIDE[fmt], error.detail


@pytest.mark.parametrize("item", hostile_images.corpus(), ids=lambda item: item.name)
def test_every_hostile_image_has_a_thumbnail_or_a_clean_4xx(item):
    """The admin console's thumbnails of stored originals: extreme shapes included."""
    try:
        thumb = Image.open(io.BytesIO(make_thumbnail(item.data, 320, LIMIT)))
    except ApiError as error:
        assert item.accepted is not True and 400 <= error.status_code < 500
        assert not any(leak in error.detail for leak in LEAKS), error.detail
        return
    assert thumb.format == "JPEG" and max(thumb.size) <= 320 and min(thumb.size) >= 1
    if item.size is not None:
        assert (thumb.width >= thumb.height) == (item.size[0] >= item.size[1])


@pytest.mark.parametrize("size", [(65_500, 1), (1, 65_500), (65_500, 8)])
def test_thumbnails_of_extreme_jpegs(size):
    out = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(out, "JPEG")
    thumb = Image.open(io.BytesIO(make_thumbnail(out.getvalue(), 320, LIMIT)))
    assert max(thumb.size) == 320 and min(thumb.size) == 1


# --- validation errors' wording ---

def validation(*problems: dict) -> RequestValidationError:
    return RequestValidationError(list(problems))


@pytest.mark.parametrize("field", ["image", "image1", "image2"])
def test_a_missing_photo_field_says_how_to_send_it(field):
    error = validation({"loc": ("body", field), "msg": "Field required", "type": "missing"})
    assert describe_validation(error) == (f"{field}: is required (send the photo as multipart/form-data "
                                          f"field '{field}')")


@pytest.mark.parametrize("loc, expected", [
    (("body", "password"), "password: is required"),  # the admin login's JSON
    (("body", "name"), "name: is required"),  # an admin JSON body
    (("body",), "request: is required"),  # no body at all
    (("query", "image"), "image: is required"),  # not the multipart field
])
def test_other_missing_fields_get_no_photo_hint(loc, expected):
    # Regression: every missing body field was told to send "the photo as multipart/form-data".
    error = validation({"loc": loc, "msg": "Field required", "type": "missing"})
    assert describe_validation(error) == expected


def test_every_documented_format_decodes_in_this_build():
    # What ./face-api checks after installing: pillow-simd once came without libtiff.
    assert codecs.problems() == []
