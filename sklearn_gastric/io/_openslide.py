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


def open_handle(path, name):
    """An OpenSlide handle on ``path`` (an ImageSlide for plain images).

    Raises a :class:`SlideError` naming the slide ``name`` when the file is
    not in a format OpenSlide (or PIL) reads.
    """
    import openslide

    try:
        return openslide.OpenSlide(str(path))
    except openslide.OpenSlideUnsupportedFormatError as exc:
        if path.suffix.lower() in _PLAIN_IMAGE_SUFFIXES:
            try:
                return openslide.ImageSlide(str(path))
            except Exception as image_exc:  # PIL raises several types
                raise SlideError(
                    f"Slide {name!r}: cannot read {str(path)!r} as an "
                    f"image ({image_exc})."
                ) from image_exc
        raise SlideError(
            f"Slide {name!r}: {str(path)!r} is not in a format OpenSlide "
            f"reads, or is corrupt or truncated ({exc or 'unsupported file'})."
        ) from exc
    except openslide.OpenSlideError as exc:
        raise SlideError(
            f"Slide {name!r}: OpenSlide failed to open {str(path)!r}: {exc}"
        ) from exc


def read_geometry(handle):
    """``(vendor, level_dimensions, level_downsamples, mpp)`` of a handle;
    ``vendor`` is ``"image"`` for plain images, ``mpp`` None when unknown."""
    import openslide

    if isinstance(handle, openslide.ImageSlide):
        vendor = "image"
    else:
        vendor = handle.properties.get(openslide.PROPERTY_NAME_VENDOR)
    dimensions = tuple(tuple(int(v) for v in d) for d in handle.level_dimensions)
    downsamples = tuple(float(d) for d in handle.level_downsamples)
    try:
        mpp = (
            float(handle.properties[openslide.PROPERTY_NAME_MPP_X]),
            float(handle.properties[openslide.PROPERTY_NAME_MPP_Y]),
        )
    except (KeyError, ValueError):
        mpp = None
    return vendor, dimensions, downsamples, mpp


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
