"""Hostile slide files: resolutions no slide can have, files that are no
regular file, and the pixel formats of PNG, TIFF and JPEG files.

Every file is written here, with tifffile, PIL or imagecodecs, and read back
through :func:`open_slide` as a user's would be.
"""

import os
import pickle
import subprocess
import sys
import warnings

import imagecodecs
import numpy as np
import pytest
import tifffile
from PIL import Image

from sklearn_gastric.io import SlideError, open_slide, write_pyramidal_tiff
from sklearn_gastric.io._slide import MAX_MPP, MIN_MPP, Slide
from sklearn_gastric.preprocessing import OtsuFilter, Tiler
from sklearn_gastric.utils._sklearn_compat import InvalidParameterError

TISSUE = (200, 120, 180)
SIZE = 256


def _tissue(size=SIZE):
    rgb = np.full((size, size, 3), 240, np.uint8)
    rgb[: size // 2, : size // 2] = TISSUE
    return rgb


def write_aperio(path, mpp_text):
    """A tiled TIFF whose Aperio description states ``MPP = mpp_text``, from
    which OpenSlide reports ``openslide.mpp-x`` and ``-y`` as written."""
    description = (
        f"Aperio Image Library v10.0.51\r\n{SIZE}x{SIZE} [0,0 {SIZE}x{SIZE}] "
        f"(128x128) JPEG/RGB Q=30|AppMag = 20|MPP = {mpp_text}"
    )
    tifffile.imwrite(
        path, _tissue(), tile=(128, 128), photometric="rgb",
        description=description, metadata=None,
    )  # fmt: skip
    return path


def write_resolution_tags(path, x_resolution, y_resolution, unit="CENTIMETER"):
    """A tiled TIFF with XResolution, YResolution (rationals, pixels per
    ``unit``) and ResolutionUnit, from which OpenSlide derives the mpp."""
    tifffile.imwrite(
        path, _tissue(), tile=(128, 128), photometric="rgb",
        resolution=(x_resolution, y_resolution), resolutionunit=unit, metadata=None,
    )  # fmt: skip
    return path


def _open_warning(path, **kwargs):
    """The slide and the resolution warnings raised while opening it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        slide = Slide(path, **kwargs)
    return slide, [str(w.message) for w in caught if w.category is UserWarning]


# -- resolutions ----------------------------------------------------------------


@pytest.mark.parametrize(
    "stated", ["0", "1e-300", "-0.5", "inf", "-inf", "1e6", "0.01", "11"]
)
def test_a_resolution_no_slide_can_have_is_missing_with_a_warning(tmp_path, stated):
    path = write_aperio(tmp_path / "odd.svs", stated)
    slide, messages = _open_warning(path)
    assert slide.mpp is None
    (message,) = messages
    assert message.startswith("Slide 'odd.svs': the resolution its file states")
    assert f"openslide.mpp-x = '{float(stated):g}'" in message.replace(
        "'1000000'", "'1e+06'"
    )
    assert f"not one from {MIN_MPP:g} to {MAX_MPP:g} µm per pixel" in message
    # Nothing downstream sees it: a by-level grid of whole tiles, a tissue
    # filter that does not divide by it, and a refused Tiler(mpp=...).
    (bag,) = Tiler(tile_size=64).fit_transform([slide])
    assert len(bag) == 16 and bag.footprint == 64
    (kept,) = OtsuFilter(min_tissue=0.5).fit_transform([bag])
    assert len(kept) == 4
    with pytest.raises(ValueError, match="'odd.svs': cannot cut tiles at mpp=0.5"):
        Tiler(tile_size=64, mpp=0.5).fit_transform([slide])


@pytest.mark.parametrize("stated", ["nan", "abc"])
def test_a_resolution_that_is_no_number_is_missing(tmp_path, stated):
    # OpenSlide itself drops these: no mpp-x, no warning needed.
    slide, messages = _open_warning(write_aperio(tmp_path / "odd.svs", stated))
    assert slide.mpp is None and messages == []


@pytest.mark.parametrize(
    ("resolution", "unit", "expected"),
    [
        # pixels per cm: 2**32 - 1 is 2.3e-6 µm/px, 1 / (2**32 - 1) 4.3e13
        ((2**32 - 1, 2**32 - 1), "CENTIMETER", None),
        (((1, 2**32 - 1), (1, 2**32 - 1)), "CENTIMETER", None),
        ((0.01, 0.01), "CENTIMETER", None),  # 1e6 µm/px
        ((1, 1), "INCH", None),  # 25400 µm/px
        ((40000, 20000), "CENTIMETER", None),  # 0.25 x 0.5: not square
        ((40000, 38000), "CENTIMETER", (0.25, 1e4 / 38000)),  # 5%: kept
        ((101600, 101600), "INCH", (0.25, 0.25)),
    ],
)
def test_resolution_tags(tmp_path, resolution, unit, expected):
    path = write_resolution_tags(tmp_path / "tags.tiff", *resolution, unit=unit)
    slide, messages = _open_warning(path)
    if expected is None:
        assert slide.mpp is None
        (message,) = messages
        assert "Slide 'tags.tiff': the resolution its file states" in message
    else:
        assert slide.mpp == pytest.approx(expected) and messages == []


def test_x_and_y_far_apart_are_named(tmp_path):
    path = write_resolution_tags(tmp_path / "tags.tiff", 40000, 20000)
    _, (message,) = _open_warning(path)
    assert "(openslide.mpp-x = '0.25', openslide.mpp-y = '0.5')" in message
    assert "2 times as fine one way as the other" in message
    assert "may differ by 10% at most" in message


def test_the_warning_comes_once_per_opening_and_not_when_overridden(tmp_path):
    path = write_aperio(tmp_path / "zero.svs", "0")
    slide, messages = _open_warning(path)
    assert len(messages) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = pickle.loads(pickle.dumps(slide))
        again.read_region((0, 0), 0, (8, 8))  # reopens the file
        slide.with_transform(None).read_region((0, 0), 0, (8, 8))
        assert again.mpp is None
        stated = Slide(path, mpp=0.5)
    assert stated.mpp == (0.5, 0.5)
    assert len(_open_warning(path)[1]) == 1


@pytest.mark.parametrize(
    "mpp", [0, -0.5, 1e-300, float("inf"), float("nan"), 1e6, (0.25, 0.5), "abc"]
)
def test_a_resolution_given_by_the_user_is_checked(mpp):
    with pytest.raises(SlideError, match=r"Slide 'given': mpp must be positive, with"):
        Slide(_tissue(), name="given", mpp=mpp)


def test_write_pyramidal_tiff_writes_only_resolutions_a_slide_can_have(tmp_path):
    for mpp in (0, 1e-300, float("inf"), 1e6):
        with pytest.raises(InvalidParameterError, match="'mpp' parameter"):
            write_pyramidal_tiff(_tissue(), tmp_path / "x.tiff", mpp=mpp)
    path = write_pyramidal_tiff(_tissue(), tmp_path / "x.tiff", mpp=MAX_MPP)
    assert open_slide(path).mpp == pytest.approx((MAX_MPP, MAX_MPP))


# -- files that are no regular file -------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_named_and_never_opened(tmp_path):
    fifo = tmp_path / "pipe.svs"
    os.mkfifo(fifo)
    code = (
        "from sklearn_gastric.io import open_slide\n"
        f"try:\n    open_slide({str(fifo)!r})\n"
        "except Exception as exc:\n    print(type(exc).__name__, exc)\n"
    )
    # A process that opened the FIFO would wait for a writer for ever.
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == (
        f"SlideError Slide 'pipe.svs': {str(fifo)!r} is a FIFO (named pipe), not a "
        "slide file."
    ), result.stderr


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_device_is_named():
    with pytest.raises(
        SlideError, match=r"Slide 'zero': '/dev/zero' is a character device, not a"
    ):
        open_slide("/dev/zero")


def test_symlink_loops_and_dangling_links(tmp_path):
    loop = tmp_path / "loop.svs"
    loop.symlink_to(loop)
    with pytest.raises(
        SlideError, match=r"Slide 'loop.svs': file '.*loop.svs' is a symlink loop"
    ):
        open_slide(loop)
    dangling = tmp_path / "gone.svs"
    dangling.symlink_to(tmp_path / "nowhere.svs")
    with pytest.raises(FileNotFoundError, match="Slide 'gone.svs': no such file"):
        open_slide(dangling)


# -- pixel formats ------------------------------------------------------------------

RNG = np.random.default_rng(0)
GREY_8 = RNG.integers(0, 256, (48, 64), dtype=np.uint8)
ALPHA_8 = RNG.integers(0, 256, (48, 64), dtype=np.uint8)
RGB_8 = RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8)
GREY_16 = RNG.integers(0, 2**16, (48, 64), dtype=np.uint16)
ALPHA_16 = RNG.integers(0, 2**16, (48, 64), dtype=np.uint16)
RGB_16 = RNG.integers(0, 2**16, (48, 64, 3), dtype=np.uint16)


def _on_white(rgb, alpha):
    """RGB composited on white by ``alpha``, in the library's rounding."""
    rgb = np.broadcast_to(np.atleast_3d(rgb), (*rgb.shape[:2], 3)).astype(np.int64)
    a = alpha[..., None].astype(np.int64)
    return ((rgb * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def _grey(values):
    return np.repeat(values[..., None], 3, axis=2)


def _read(path):
    slide = open_slide(path)
    width, height = slide.dimensions
    return slide.read_region((0, 0), 0, (width, height))


def _high_byte(values):
    return (values >> 8).astype(np.uint8)


def _write_png(path, pixels):
    path.write_bytes(imagecodecs.png_encode(pixels))
    return path


# A 16-bit PNG value keeps its high byte: PIL reads 16-bit colour so, and a
# 16-bit grey PNG (which PIL's paste would clip to white) is read the same.
PNG_CASES = {
    "grey 16": (GREY_16, _grey(_high_byte(GREY_16))),
    "RGB 16": (RGB_16, _high_byte(RGB_16)),
    "grey+alpha 16": (
        np.dstack([GREY_16, ALPHA_16]),
        _on_white(_high_byte(GREY_16), _high_byte(ALPHA_16)),
    ),
    "RGBA 16": (
        np.dstack([RGB_16, ALPHA_16]),
        _on_white(_high_byte(RGB_16), _high_byte(ALPHA_16)),
    ),
    "grey 8": (GREY_8, _grey(GREY_8)),
    "grey+alpha 8": (np.dstack([GREY_8, ALPHA_8]), _on_white(GREY_8, ALPHA_8)),
    "RGBA 8": (np.dstack([RGB_8, ALPHA_8]), _on_white(RGB_8, ALPHA_8)),
}


@pytest.mark.parametrize("case", PNG_CASES)
def test_png_pixel_formats(tmp_path, case):
    pixels, expected = PNG_CASES[case]
    np.testing.assert_array_equal(
        _read(_write_png(tmp_path / "x.png", pixels)), expected
    )


def test_a_16_bit_grey_png_written_by_pil_is_not_white(tmp_path):
    path = tmp_path / "grey16.png"
    Image.fromarray(GREY_16).save(path)
    assert Image.open(path).mode == "I;16"
    np.testing.assert_array_equal(_read(path), _grey(_high_byte(GREY_16)))


def test_palette_and_one_bit_images(tmp_path):
    palette = Image.fromarray(RGB_8).quantize(64)
    palette.save(tmp_path / "palette.png")
    palette.save(tmp_path / "palette.gif")
    colours = np.asarray(palette.convert("RGB"))
    np.testing.assert_array_equal(_read(tmp_path / "palette.png"), colours)
    np.testing.assert_array_equal(_read(tmp_path / "palette.gif"), colours)
    bits = GREY_8 > 127
    Image.fromarray(bits).save(tmp_path / "bits.png")
    np.testing.assert_array_equal(_read(tmp_path / "bits.png"), _grey(bits * 255))


def test_jpeg_grey_and_cmyk(tmp_path):
    Image.fromarray(GREY_8).save(tmp_path / "grey.jpg")
    Image.fromarray(RGB_8).convert("CMYK").save(tmp_path / "cmyk.jpg")
    for name in ("grey.jpg", "cmyk.jpg"):
        with Image.open(tmp_path / name) as image:
            decoded = np.asarray(image.convert("RGB"))
        np.testing.assert_array_equal(_read(tmp_path / name), decoded)


def test_an_image_of_pixels_the_library_does_not_read_is_refused(tmp_path):
    # A stripped float TIFF named .png: OpenSlide refuses it, PIL opens it.
    path = tmp_path / "float.png"
    Image.fromarray(GREY_16.astype(np.float32)).save(path, format="TIFF")
    with pytest.raises(
        SlideError,
        match=r"Slide 'float.png': .* is a TIFF image of 32-bit floating-point "
        "pixels, which the library does not read",
    ):
        open_slide(path)


def _write_tiled(path, pixels, **kwargs):
    kwargs.setdefault(
        "photometric", "rgb" if pixels.ndim == 3 and pixels.shape[2] >= 3 else None
    )
    tifffile.imwrite(path, pixels, tile=(32, 32), metadata=None, **kwargs)
    return path


def test_tiled_tiff_pixel_formats(tmp_path):
    # Read by OpenSlide through libtiff: 16-bit grey keeps its high byte,
    # 16-bit colour is rounded from value / 257.
    grey = _write_tiled(tmp_path / "grey16.tiff", GREY_16, photometric="minisblack")
    np.testing.assert_array_equal(_read(grey), _grey(_high_byte(GREY_16)))
    rgb = _write_tiled(tmp_path / "rgb16.tiff", RGB_16)
    rounded = ((RGB_16.astype(np.int64) + 128) // 257).astype(np.uint8)
    np.testing.assert_array_equal(_read(rgb), rounded)
    colormap = RNG.integers(0, 2**16, (3, 256), dtype=np.uint16)
    palette = _write_tiled(
        tmp_path / "palette.tiff", GREY_8, photometric="palette", colormap=colormap
    )
    colours = np.moveaxis(colormap[:, GREY_8], 0, -1)
    np.testing.assert_array_equal(_read(palette), _high_byte(colours))
    opaque = np.dstack([RGB_8, np.full_like(GREY_8, 255)])
    rgba = _write_tiled(tmp_path / "rgba.tiff", opaque, extrasamples=["unassalpha"])
    np.testing.assert_array_equal(_read(rgba), RGB_8)


@pytest.mark.parametrize(
    ("pixels", "options", "message"),
    [
        (
            np.dstack([GREY_8, ALPHA_8]),
            {"photometric": "minisblack", "extrasamples": ["unassalpha"]},
            "grey pixels with 1 extra sample",
        ),
        (
            np.dstack([GREY_16, ALPHA_16]),
            {"photometric": "minisblack", "extrasamples": ["unassalpha"]},
            "grey pixels with 1 extra sample",
        ),
        (GREY_16.astype(np.float32), {}, "32-bit floating-point samples"),
        (RGB_16.astype(np.float32), {}, "32-bit floating-point samples"),
        (GREY_16.astype(np.int32), {}, "32-bit signed integer samples"),
        (GREY_16.astype(np.int16), {}, "16-bit signed integer samples"),
    ],
    ids=["grey+alpha 8", "grey+alpha 16", "float grey", "float RGB", "int32", "int16"],
)
def test_tiled_tiffs_openslide_would_misread_are_refused(
    tmp_path, pixels, options, message
):
    path = _write_tiled(tmp_path / "odd.tiff", pixels, **options)
    with pytest.raises(SlideError, match=rf"Slide 'odd.tiff': .* holds {message}"):
        open_slide(path)


def test_tiffs_openslide_cannot_open_are_named(tmp_path):
    bits = _write_tiled(tmp_path / "bits.tiff", GREY_8 > 127)
    with pytest.raises(SlideError, match="Slide 'bits.tiff': "):
        open_slide(bits)
    stripped = tmp_path / "stripped.tiff"
    tifffile.imwrite(stripped, GREY_16, metadata=None)
    with pytest.raises(SlideError, match="Slide 'stripped.tiff': .* not in a format"):
        open_slide(stripped)
