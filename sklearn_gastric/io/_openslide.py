"""What the library reads of an OpenSlide handle: opening, geometry, the
file's tiles and its stored thumbnail. Only :class:`~sklearn_gastric.io.Slide`
holds handles; nothing outside ``io`` touches one."""

import numpy as np

from ._errors import SlideError
from ._pixels import rgba_to_rgb_on_white

__all__ = [
    "open_handle",
    "read_geometry",
    "read_stored_thumbnail",
    "stored_thumbnail_dimensions",
    "tile_size",
]

# Extensions that OpenSlide does not read but PIL does: opened through
# ``openslide.ImageSlide`` so that a PNG target or a JPEG crop works as a slide.
_PLAIN_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
# PIL modes of 8-bit images (1-bit, palette, grey, with or without alpha,
# RGB, CMYK), which ImageSlide's paste onto RGBA converts exactly.
_EIGHT_BIT_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK"}
# 16-bit greyscale, which that paste would clip to white above 255. A PNG of
# 16-bit colour PIL already reads as 8 bits, keeping each value's high byte.
_GREY_16_MODES = {"I;16", "I;16B", "I;16L", "I;16N"}
_MODE_NAMES = {"I": "32-bit integer", "F": "32-bit floating-point"}
# TIFF SampleFormat values.
_SAMPLE_FORMATS = {2: "signed integer", 3: "floating-point", 4: "untyped"}


def open_handle(path, name):
    """An OpenSlide handle on ``path`` (an ImageSlide for plain images).

    Raises a :class:`SlideError` naming the slide ``name`` when the file is
    not in a format OpenSlide (or PIL) reads, or holds pixels it would
    misread.
    """
    import openslide

    try:
        handle = openslide.OpenSlide(str(path))
    except openslide.OpenSlideUnsupportedFormatError as exc:
        if path.suffix.lower() in _PLAIN_IMAGE_SUFFIXES:
            return _open_image(path, name)
        raise SlideError(
            f"Slide {name!r}: {str(path)!r} is not in a format OpenSlide "
            f"reads, or is corrupt or truncated ({exc or 'unsupported file'})."
        ) from exc
    except openslide.OpenSlideError as exc:
        raise SlideError(
            f"Slide {name!r}: OpenSlide failed to open {str(path)!r}: {exc}"
        ) from exc
    if handle.properties.get(openslide.PROPERTY_NAME_VENDOR) == "generic-tiff":
        problem = _tiff_sample_problem(path)
        if problem is not None:
            handle.close()
            raise SlideError(
                f"Slide {name!r}: {str(path)!r} holds {problem}; save it as 8- "
                "or 16-bit RGB or greyscale."
            )
    return handle


def _open_image(path, name):
    """An ImageSlide on a plain image, its 16-bit greyscale brought to 8 bits."""
    import openslide
    from PIL import Image

    try:
        with Image.open(path) as image:
            mode, kind = image.mode, image.format
            if mode not in _EIGHT_BIT_MODES:
                # Older PIL opens 16-bit grey PNGs as "I" (PNG has no 32-bit
                # pixels).
                if mode in _GREY_16_MODES or (mode == "I" and kind == "PNG"):
                    # The high byte, as PIL reads 16-bit colour PNGs.
                    grey = np.asarray(image).astype(np.uint32) >> 8
                    grey = Image.fromarray(np.minimum(grey, 255).astype(np.uint8))
                    return openslide.ImageSlide(grey)
                what = _MODE_NAMES.get(mode, f"PIL mode {mode!r}")
                raise SlideError(
                    f"Slide {name!r}: {str(path)!r} is a {kind} image of {what} "
                    "pixels, which the library does not read; save it as 8-bit "
                    "RGB."
                )
        return openslide.ImageSlide(str(path))
    except SlideError:
        raise
    except Exception as exc:  # PIL raises several types
        raise SlideError(
            f"Slide {name!r}: cannot read {str(path)!r} as an image ({exc})."
        ) from exc


def _tiff_sample_problem(path):
    """What OpenSlide would misread in the pixels of a generic TIFF's level 0
    (libtiff's RGBA interface garbles grey with alpha, and refuses samples of
    more than 16 bits or not unsigned integers only when reading), or None."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            photometric, samples = page.photometric, page.samplesperpixel
            bits, sample_format = page.bitspersample, page.sampleformat
    except Exception:  # tifffile reads less than OpenSlide: leave it to OpenSlide
        return None
    grey = {tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.MINISWHITE}
    if photometric in grey | {tifffile.PHOTOMETRIC.PALETTE} and samples > 1:
        return (
            f"{'grey' if photometric in grey else 'palette'} pixels with "
            f"{samples - 1} extra sample(s) (e.g. alpha), which OpenSlide misreads"
        )
    if sample_format != tifffile.SAMPLEFORMAT.UINT or bits > 16:
        kind = _SAMPLE_FORMATS.get(sample_format, "unsigned integer")
        return f"{bits}-bit {kind} samples, which OpenSlide cannot read"
    return None


def read_geometry(handle):
    """``(vendor, level_dimensions, level_downsamples, mpp_text)`` of a handle;
    ``vendor`` is ``"image"`` for plain images. ``mpp_text`` is the pair of
    ``openslide.mpp-x`` and ``openslide.mpp-y`` as the file states them (OpenSlide
    derives them from the vendor's metadata or the TIFF resolution tags), or
    None when the file does not say: the slide checks them
    (``_file_resolution`` in ``_slide``)."""
    import openslide

    if isinstance(handle, openslide.ImageSlide):
        vendor = "image"
    else:
        vendor = handle.properties.get(openslide.PROPERTY_NAME_VENDOR)
    dimensions = tuple(tuple(int(v) for v in d) for d in handle.level_dimensions)
    downsamples = tuple(float(d) for d in handle.level_downsamples)
    mpp_text = (
        handle.properties.get(openslide.PROPERTY_NAME_MPP_X),
        handle.properties.get(openslide.PROPERTY_NAME_MPP_Y),
    )
    if mpp_text == (None, None):
        mpp_text = None
    return vendor, dimensions, downsamples, mpp_text


def _integer_pair(properties, width_key, height_key):
    try:
        return int(properties[width_key]), int(properties[height_key])
    except (KeyError, ValueError):
        return None


def tile_size(handle, level):
    """``(width, height)`` of the file's tiles at ``level``, or None."""
    prefix = f"openslide.level[{level}].tile-"
    return _integer_pair(handle.properties, f"{prefix}width", f"{prefix}height")


def stored_thumbnail_dimensions(handle):
    """``(width, height)`` of the thumbnail the file stores, or None."""
    prefix = "openslide.associated.thumbnail."
    return _integer_pair(handle.properties, f"{prefix}width", f"{prefix}height")


def read_stored_thumbnail(handle):
    """The thumbnail the file stores as RGB uint8, or None if unreadable."""
    import openslide

    try:
        rgba = np.asarray(handle.associated_images["thumbnail"])
    except (KeyError, openslide.OpenSlideError):
        return None
    return rgba_to_rgb_on_white(rgba)
