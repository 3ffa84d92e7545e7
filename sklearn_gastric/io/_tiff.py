"""Writing tiled, JPEG-compressed pyramidal TIFFs that OpenSlide opens."""

import os
import tempfile
from numbers import Integral, Real
from pathlib import Path

import numpy as np

from ..utils._sklearn_compat import Interval, validate_params
from ._pixels import block_mean
from ._slide import MAX_MPP, MIN_MPP, Slide

__all__ = ["write_pyramidal_tiff"]

_LEVEL_FACTOR = 4


# ``image`` is checked by _as_pixel_source; tile_size, levels and compression
# keep their own messages.
@validate_params(
    {
        "image": "no_validation",
        "path": [str, os.PathLike],
        "tile_size": [Interval(Integral, 1, None, closed="left")],
        "levels": [Integral, None],
        "mpp": [Interval(Real, MIN_MPP, MAX_MPP, closed="both"), None],
        "compression": [str],
        "quality": [Interval(Integral, 0, 100, closed="both")],
    },
    prefer_skip_nested_validation=True,
)
def write_pyramidal_tiff(
    image,
    path,
    *,
    tile_size=256,
    levels=None,
    mpp=None,
    compression="jpeg",
    quality=90,
):
    """Write an RGB image as a tiled pyramidal TIFF (OpenSlide "generic-tiff").

    The image is written tile by tile and each lower level is built from the
    level above it through a temporary file (in :func:`tempfile.gettempdir`,
    about 1/16 of the raw image's size), so a source larger than memory (a
    :class:`Slide`, a ``numpy.memmap``, a zarr or dask array) is written
    with memory bounded by a few rows of tiles.

    Parameters
    ----------
    image : ndarray of shape (H, W, 3) uint8, array-like or Slide
        The level-0 pixels: an array, anything with ``shape`` and 2-D
        slicing that yields uint8 RGB, or a slide (read at level 0,
        transform included).
    path : str or os.PathLike
        The file to write. Existing files are overwritten.
    tile_size : int, default=256
        Tile width and height, a multiple of 16 (a TIFF requirement).
    levels : int, default=None
        Number of pyramid levels, each 4 times smaller than the one above.
        By default, levels are added until the smallest fits in one tile.
    mpp : float, default=None
        Microns per pixel at level 0, stored as the TIFF resolution so that
        OpenSlide reports ``openslide.mpp-x``: from 0.05 to 10, the
        resolutions a slide opened by this library can have.
    compression : {"jpeg", "deflate", "none"}, default="jpeg"
        Tile compression.
    quality : int, default=90
        JPEG quality.

    Returns
    -------
    path : pathlib.Path
        The written file.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from sklearn_gastric.io import write_pyramidal_tiff, open_slide
    >>> rgb = np.full((1000, 1500, 3), 200, dtype=np.uint8)
    >>> path = write_pyramidal_tiff(rgb, os.path.join(tempfile.mkdtemp(), "s.tiff"))
    >>> open_slide(path).level_dimensions
    ((1500, 1000), (375, 250), (93, 62))
    """
    import tifffile

    if tile_size % 16:
        raise ValueError(
            f"tile_size must be a positive multiple of 16; got {tile_size}."
        )
    if compression not in ("jpeg", "deflate", "none"):
        raise ValueError(
            f"compression must be 'jpeg', 'deflate' or 'none'; got {compression!r}."
        )
    source = _as_pixel_source(image)
    height, width = source.shape[:2]
    if levels is None:
        levels = 1
        side = max(height, width)
        while side > tile_size:
            side //= _LEVEL_FACTOR
            levels += 1
    if int(levels) < 1:
        raise ValueError(f"levels must be >= 1; got {levels}.")
    codec = {"jpeg": "jpeg", "deflate": "zlib", "none": None}[compression]
    codec_args = {"level": int(quality)} if compression == "jpeg" else None
    resolution = None
    if mpp is not None:
        # pixels per centimetre; OpenSlide converts it back to mpp.
        resolution = (1e4 / float(mpp), 1e4 / float(mpp))

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    bigtiff = height * width * 3 > 2**31
    with (
        tempfile.TemporaryDirectory() as scratch,
        tifffile.TiffWriter(path, bigtiff=bigtiff) as tif,
    ):
        current = source
        for level in range(int(levels)):
            level_h, level_w = current.shape[:2]
            is_last = level == int(levels) - 1 or min(level_h, level_w) < _LEVEL_FACTOR
            smaller = None
            if not is_last:
                smaller = _LevelFile(
                    os.path.join(scratch, f"level{level + 1}.raw"),
                    (level_h // _LEVEL_FACTOR, level_w // _LEVEL_FACTOR, 3),
                )
            try:
                tif.write(
                    _tiles(current, tile_size, smaller),
                    shape=(level_h, level_w, 3),
                    dtype=np.uint8,
                    tile=(tile_size, tile_size),
                    photometric="rgb",
                    compression=codec,
                    compressionargs=codec_args,
                    subfiletype=0 if level == 0 else 1,
                    resolution=resolution if level == 0 else None,
                    resolutionunit="CENTIMETER" if resolution and level == 0 else None,
                    metadata=None,
                )
            except BaseException:
                if smaller is not None:
                    smaller.close()
                raise
            finally:
                if isinstance(current, _LevelFile):
                    current.close()
            if smaller is None:
                break
            current = smaller
    return path


def _tiles(source, tile_size, smaller):
    """Yield the tiles of ``source`` row by row; fill ``smaller`` on the way."""
    height, width = source.shape[:2]
    for y in range(0, height, tile_size):
        row = source.read(y, 0, min(tile_size, height - y), width)
        if smaller is not None:
            _downsample_into(row, y, smaller)
        for x in range(0, width, tile_size):
            tile = np.full((tile_size, tile_size, 3), 255, dtype=np.uint8)
            block = row[:, x : x + tile_size]
            tile[: block.shape[0], : block.shape[1]] = block
            yield tile


def _downsample_into(row, y, smaller):
    f = _LEVEL_FACTOR
    y0 = -(-y // f)  # first output row whose source rows start in this band
    start = y0 * f - y
    usable = (row.shape[0] - start) // f
    usable = min(usable, smaller.shape[0] - y0)
    if usable <= 0:
        return
    band = row[start : start + usable * f, : smaller.shape[1] * f]
    smaller.write_rows(y0, block_mean(band, f))


class _LevelFile:
    """A uint8 image in a raw temporary file, written and read by whole rows.

    Plain file reads and writes, not a memory map: the pages of a map that
    the writer touches count in its resident memory until the process ends,
    up to a whole level (1.9 GB for level 1 of a 100,000-pixel slide); the
    pages of a file read and written stay in the system's page cache.
    """

    def __init__(self, path, shape):
        self.shape = tuple(shape)
        self._row_bytes = self.shape[1] * 3
        self._file = open(path, "w+b")
        self._file.truncate(self.shape[0] * self._row_bytes)

    def write_rows(self, y, rows):
        rows = np.ascontiguousarray(rows, dtype=np.uint8)
        self._file.seek(y * self._row_bytes)
        self._file.write(memoryview(rows).cast("B"))

    def read(self, y, x, h, w):
        h = min(h, self.shape[0] - y)
        rows = np.empty((h, self.shape[1], 3), dtype=np.uint8)
        self._file.seek(y * self._row_bytes)
        view = memoryview(rows).cast("B")
        done = 0
        while done < len(view):
            n = self._file.readinto(view[done:])
            if not n:
                raise OSError("the temporary pyramid level ended early")
            done += n
        return rows[:, x : x + w]

    def close(self):
        self._file.close()


class _ArraySource:
    def __init__(self, array):
        self.array = array
        self.shape = tuple(array.shape)

    def read(self, y, x, h, w):
        return np.asarray(self.array[y : y + h, x : x + w], dtype=np.uint8)


class _SlideSource:
    def __init__(self, slide):
        self.slide = slide
        width, height = slide.dimensions
        self.shape = (height, width, 3)

    def read(self, y, x, h, w):
        return self.slide.read_region((x, y), 0, (w, h))


def _as_pixel_source(image):
    if isinstance(image, Slide):
        return _SlideSource(image)
    shape = getattr(image, "shape", None)
    dtype = getattr(image, "dtype", None)
    if shape is None or len(shape) != 3 or shape[2] != 3:
        raise ValueError(
            f"write_pyramidal_tiff needs an RGB image of shape (H, W, 3) or a "
            f"Slide; got {type(image).__name__} with shape {shape}."
        )
    if np.dtype(dtype) != np.uint8:
        raise ValueError(f"write_pyramidal_tiff needs uint8 pixels; got dtype {dtype}.")
    return _ArraySource(image)
