"""Low-resolution views of whole slides, read chunk by chunk in bounded work."""

import math
import warnings

import numpy as np

from ._slide import SlideError, UnreadableTileWarning, _block_mean, open_slide

__all__ = ["low_resolution_view"]

# Bound on the longest side of a chunk read while building a view.
_CHUNK_SIDE = 2048
# The most pixels a view may read from the slide: a single-level file of
# about 46,000 x 46,000 pixels, a minute or two of decoding. A slide whose
# usable pyramid level is larger gets a SlideError saying so, in no time,
# instead of hours of reading (a TIFF may declare 10^6 x 10^6 pixels).
MAX_VIEW_READ_PIXELS = 2**31


def low_resolution_view(
    slide, downsample, *, reduce="mean", use_thumbnail=True, on_error="raise"
):
    """A downsampled view of a whole slide, read chunk by chunk.

    The coarsest pyramid level whose downsample does not exceed
    ``downsample`` is read in chunks of at most 2048x2048 pixels, and each
    chunk is block-averaged by the integer factor that brings it closest to
    ``downsample`` from above, so memory stays bounded by the size of the
    view whatever the size of the slide. When the file stores its own
    downsampled copy of the whole image (the "thumbnail" of Aperio files)
    and that copy is coarser than the level that would be read but no
    coarser than ``downsample``, it is used instead, which spares reading
    full-resolution pixels of single-level files.

    Parameters
    ----------
    slide : Slide, path or ndarray
        The slide (its pixel transform, if any, is applied).
    downsample : float
        The wanted downsample relative to level 0 (at least 1).
    reduce : {"mean", "sample"}, default="mean"
        How a block of the level read becomes one view pixel: its mean, or
        its top-left pixel (no mixing of neighbouring colours, which is what
        stain estimation wants).
    use_thumbnail : bool, default=True
        Allow the file's stored thumbnail.
    on_error : {"raise", "skip"}, default="raise"
        A tile of the file that cannot be read (a corrupt tile of a
        single-level file read at full resolution): ``"raise"`` a
        :class:`SlideError` naming the slide and the tile, or ``"skip"`` it:
        its part of the view is white (glass), with an
        :class:`UnreadableTileWarning` naming the slide and the tile.

    Returns
    -------
    view : ndarray of shape (h, w, 3), dtype uint8
        Pixel ``(i, j)`` averages level-0 pixels
        ``[j * d, (j + 1) * d) x [i * d, (i + 1) * d)``; the last row and
        column may extend past the slide's edge (read as white).
    actual_downsample : float
        ``d``, the view's downsample relative to level 0: at least
        ``downsample`` when read from the pyramid, between half of it and
        itself when taken from a stored thumbnail.

    Raises
    ------
    SlideError
        The level to read holds more than 2**31 pixels (a file without a
        pyramid level small enough: refused at once rather than read for
        hours), or a tile cannot be read and ``on_error="raise"``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gastric.io import low_resolution_view
    >>> view, d = low_resolution_view(np.zeros((100, 300, 3), np.uint8), 10)
    >>> view.shape, d
    ((10, 30, 3), 10.0)
    """
    view, actual, failures = read_view(
        slide,
        downsample,
        reduce=reduce,
        use_thumbnail=use_thumbnail,
        on_error=on_error,
    )
    for message in failures:
        warnings.warn(message, UnreadableTileWarning, stacklevel=2)
    return view, actual


def read_view(
    slide, downsample, *, reduce="mean", use_thumbnail=True, on_error="raise"
):
    """:func:`low_resolution_view` that returns the skipped tiles' messages
    instead of warning, for steps whose workers must hand warnings back to
    the caller's process."""
    if reduce not in ("mean", "sample"):
        raise ValueError(f"reduce must be 'mean' or 'sample'; got {reduce!r}.")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip'; got {on_error!r}.")
    slide = open_slide(slide)
    downsample = max(float(downsample), 1.0)
    level = slide.get_best_level_for_downsample(downsample)
    level_ds = slide.level_downsamples[level]
    if use_thumbnail:
        thumbnail = _stored_thumbnail(slide, level_ds, downsample)
        if thumbnail is not None:
            return (*thumbnail, [])
    level_w, level_h = slide.level_dimensions[level]
    if level_w * level_h > MAX_VIEW_READ_PIXELS:
        raise SlideError(
            f"Slide {slide.name!r}: a view at downsample {downsample:g} would read "
            f"level {level} ({level_w}x{level_h} pixels, the smallest level fine "
            f"enough of {slide.level_count}), more than the {MAX_VIEW_READ_PIXELS} "
            "pixels a view may read. Give the file a pyramid of smaller levels "
            "(e.g. `vips tiffsave in.tif out.tif --tile --pyramid`)."
        )
    factor = max(1, math.ceil(downsample / level_ds - 1e-6))
    out_w, out_h = -(-level_w // factor), -(-level_h // factor)
    view = np.empty((out_h, out_w, 3), dtype=np.uint8)
    chunk = max(1, _CHUNK_SIDE // factor) * factor
    failures = []
    for y in range(0, level_h, chunk):
        height = -(-min(chunk, level_h - y) // factor) * factor
        for x in range(0, level_w, chunk):
            width = -(-min(chunk, level_w - x) // factor) * factor
            try:
                region = slide.read_region(
                    (int(x * level_ds), int(y * level_ds)), level, (width, height)
                )
            except SlideError as exc:
                if slide.tile_size(level) is None:
                    # No tiles to tell apart (a plain image is decoded whole).
                    if on_error == "raise":
                        raise
                    failures.append(f"{exc}; the region counts as glass in the view.")
                    region = np.full((height, width, 3), 255, dtype=np.uint8)
                else:
                    region = _read_tile_by_tile(
                        slide, level, (x, y), (width, height), on_error, failures
                    )
            if reduce == "mean":
                region = _block_mean(region, factor)
            else:
                region = region[::factor, ::factor]
            oy, ox = y // factor, x // factor
            view[oy : oy + region.shape[0], ox : ox + region.shape[1]] = region
    return view, float(level_ds * factor), failures


def _read_tile_by_tile(slide, level, origin, size, on_error, failures):
    """Read a chunk that failed as a whole one file tile at a time, to name
    (or skip, as white) the tiles that cannot be read."""
    x0, y0 = origin
    width, height = size
    tile_w, tile_h = slide.tile_size(level)
    level_ds = slide.level_downsamples[level]
    region = np.full((height, width, 3), 255, dtype=np.uint8)
    # Aligned on the file's tile grid, so that each read touches one tile.
    for ty in range(y0 - y0 % tile_h, y0 + height, tile_h):
        for tx in range(x0 - x0 % tile_w, x0 + width, tile_w):
            left, top = max(tx, x0), max(ty, y0)
            right = min(tx + tile_w, x0 + width)
            bottom = min(ty + tile_h, y0 + height)
            try:
                pixels = slide.read_region(
                    (int(left * level_ds), int(top * level_ds)),
                    level,
                    (right - left, bottom - top),
                )
            except SlideError as exc:
                message = (
                    f"Slide {slide.name!r}: the file's tile at level-{level} "
                    f"(x, y) = ({tx}, {ty}), {tile_w}x{tile_h} px, cannot be read "
                    f"({exc.__cause__ or exc})"
                )
                if on_error == "raise":
                    raise SlideError(f"{message}.") from exc
                failures.append(f"{message}; it counts as glass in the view.")
                continue
            region[top - y0 : bottom - y0, left - x0 : right - x0] = pixels
    return region


def _stored_thumbnail(slide, level_ds, downsample):
    """The Aperio thumbnail as ``(view, downsample)`` when it is worth it."""
    dimensions = slide.stored_thumbnail_dimensions
    if dimensions is None:
        return None
    width, height = slide.dimensions
    thumb_w, thumb_h = dimensions
    ds_x, ds_y = width / max(thumb_w, 1), height / max(thumb_h, 1)
    # Only a copy of the whole image (same aspect ratio) maps onto level 0.
    if abs(ds_x / ds_y - 1) > 0.01:
        return None
    thumb_ds = (ds_x + ds_y) / 2
    if not level_ds < thumb_ds <= downsample:
        return None
    view = slide.read_stored_thumbnail()
    if view is None:
        return None
    factor = max(1, int(downsample / thumb_ds + 1e-6))
    return _block_mean(view, factor), float(thumb_ds * factor)
