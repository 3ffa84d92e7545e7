"""Whole-slide views at a lower resolution, read chunk by chunk in bounded
work: the engine behind :meth:`Slide.read_view`."""

import math
from dataclasses import dataclass

import numpy as np

from ._errors import SlideError
from ._pixels import block_mean, resize_area

__all__ = ["MAX_VIEW_READ_PIXELS", "SlideView", "read_view"]

# Bound on the longest side of a chunk read while building a view.
_CHUNK_SIDE = 2048
# The most pixels a view may read from the slide: a single-level file of
# about 46,000 x 46,000 pixels, a minute or two of decoding. A slide whose
# usable pyramid level is larger gets a SlideError saying so, in no time,
# instead of hours of reading (a TIFF may declare 10^6 x 10^6 pixels).
MAX_VIEW_READ_PIXELS = 2**31


@dataclass(frozen=True, eq=False)
class SlideView:
    """A whole slide at a lower resolution, as :meth:`Slide.read_view` reads it.

    Parameters
    ----------
    pixels : ndarray of shape (h, w, 3), dtype uint8
        Pixel ``(i, j)`` averages level-0 pixels
        ``[j * d, (j + 1) * d) x [i * d, (i + 1) * d)`` with ``d`` the
        ``downsample``; the last row and column may extend past the slide's
        edge (read as white).
    downsample : float
        ``d``: level-0 pixels per view pixel, along x and y.
    failures : tuple of str, default=()
        The messages of the file tiles that could not be read and were
        skipped (``on_error="skip"``); their part of the view is white.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gastric.io import Slide
    >>> view = Slide(np.zeros((100, 300, 3), np.uint8)).read_view(40)
    >>> view.pixels.shape, view.downsample, view.extent
    ((3, 8, 3), 40.0, (0.0, 320.0, 120.0, 0.0))
    >>> view.shrink_to(4).shape
    (2, 4, 3)
    """

    pixels: np.ndarray
    downsample: float
    failures: tuple = ()

    @property
    def extent(self):
        """``(left, right, bottom, top)`` of the view in level-0 pixels, as
        :func:`matplotlib.pyplot.imshow` takes it."""
        height, width = self.pixels.shape[:2]
        return (0.0, width * self.downsample, height * self.downsample, 0.0)

    def shrink_to(self, max_size):
        """The pixels area-resized (box filter) to fit in ``max_size``.

        Parameters
        ----------
        max_size : int or (int, int)
            The largest ``(width, height)``; a view that already fits is
            returned as it is, never enlarged.

        Returns
        -------
        pixels : ndarray of shape (h', w', 3), dtype uint8
            Aspect ratio kept; they still cover :attr:`extent`.
        """
        max_w, max_h = _size_pair(max_size)
        height, width = self.pixels.shape[:2]
        scale = min(max_w / width, max_h / height)
        if scale >= 1:
            return self.pixels
        out_w, out_h = max(1, round(width * scale)), max(1, round(height * scale))
        return resize_area(self.pixels, out_h, out_w)


def _size_pair(size):
    if np.isscalar(size):
        return int(size), int(size)
    width, height = (int(v) for v in size)
    return width, height


def read_view(slide, downsample, *, reduce, use_thumbnail, on_error):
    """The :class:`SlideView` of a :class:`Slide` (see :meth:`Slide.read_view`)."""
    if reduce not in ("mean", "sample"):
        raise ValueError(f"reduce must be 'mean' or 'sample'; got {reduce!r}.")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip'; got {on_error!r}.")
    downsample = max(float(downsample), 1.0)
    level = slide.get_best_level_for_downsample(downsample)
    level_ds = slide.level_downsamples[level]
    if use_thumbnail:
        thumbnail = _stored_thumbnail(slide, level_ds, downsample)
        if thumbnail is not None:
            return thumbnail
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
    view = np.empty((-(-level_h // factor), -(-level_w // factor), 3), np.uint8)
    chunk = max(1, _CHUNK_SIDE // factor) * factor
    failures = []
    for y in range(0, level_h, chunk):
        height = -(-min(chunk, level_h - y) // factor) * factor
        for x in range(0, level_w, chunk):
            width = -(-min(chunk, level_w - x) // factor) * factor
            region = _read_chunk(slide, level, (x, y), (width, height), on_error)
            failures.extend(region.failures)
            if reduce == "mean":
                pixels = block_mean(region.pixels, factor)
            else:
                pixels = region.pixels[::factor, ::factor]
            oy, ox = y // factor, x // factor
            view[oy : oy + pixels.shape[0], ox : ox + pixels.shape[1]] = pixels
    return SlideView(view, float(level_ds * factor), tuple(failures))


@dataclass(frozen=True)
class _Chunk:
    pixels: np.ndarray
    failures: tuple


def _read_chunk(slide, level, origin, size, on_error):
    """One chunk of ``level`` (level coordinates), white where unreadable."""
    x, y = origin
    width, height = size
    level_ds = slide.level_downsamples[level]
    try:
        pixels = slide.read_region(
            (int(x * level_ds), int(y * level_ds)), level, (width, height)
        )
        return _Chunk(pixels, ())
    except SlideError as exc:
        if slide.tile_size(level) is not None:
            return _read_tile_by_tile(slide, level, origin, size, on_error)
        # No tiles to tell apart (a plain image is decoded whole).
        if on_error == "raise":
            raise
        glass = np.full((height, width, 3), 255, dtype=np.uint8)
        return _Chunk(glass, (f"{exc}; the region counts as glass in the view.",))


def _read_tile_by_tile(slide, level, origin, size, on_error):
    """Read a chunk that failed as a whole one file tile at a time, to name
    (or skip, as white) the tiles that cannot be read."""
    x0, y0 = origin
    width, height = size
    tile_w, tile_h = slide.tile_size(level)
    level_ds = slide.level_downsamples[level]
    region = np.full((height, width, 3), 255, dtype=np.uint8)
    failures = []
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
    return _Chunk(region, tuple(failures))


def _stored_thumbnail(slide, level_ds, downsample):
    """The file's stored thumbnail as a :class:`SlideView` when it is worth
    it: a copy of the whole image, coarser than the level that would be read
    but no coarser than ``downsample``."""
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
    return SlideView(block_mean(view, factor), float(thumb_ds * factor))
