"""Tiler: the grid of tile coordinates of each slide (step 3 of the method)."""

from numbers import Integral

import numpy as np

from ..io import open_slide
from ..utils._sklearn_compat import Interval
from ..utils._stateless import StatelessTransformer
from ..utils._validation import check_slide_list
from ._tile_bag import TileBag

__all__ = ["Tiler"]


# The most tiles one bag may hold: 2**25 tiles take 512 MiB of coordinates
# (a 186,000 x 186,000 slide at 32 px), already more than any real grid; a
# file declaring absurd dimensions is refused rather than exhausting memory.
MAX_TILES = 2**25


class Tiler(StatelessTransformer):
    """Cut each slide into a grid of equal square tiles (coordinates only).

    The patent cuts a slide into 512x512 tiles. The transform reads no
    pixel: it returns, per slide, a :class:`TileBag` of the tiles'
    level-0 top-left corners, from which later steps read pixels lazily.

    Parameters
    ----------
    tile_size : int, default=512
        Tile width and height, in pixels of ``level``.
    stride : int, default=None
        Step between tiles in pixels of ``level``; ``None`` means
        ``tile_size`` (adjacent tiles). Smaller overlaps, larger leaves gaps.
    level : int, default=0
        The pyramid level tiles are cut from.

    See Also
    --------
    OtsuFilter : Keep the tiles that hold enough tissue.
    TileBag : The per-slide output.

    Notes
    -----
    Only whole tiles are kept: a tile that would run past the right or
    bottom edge of the slide is dropped, so up to ``tile_size - 1`` pixels
    along those edges belong to no tile (tiles are never padded with
    invented background). A slide smaller than one tile, or without the
    requested level, raises a ``ValueError`` naming it.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gastric.preprocessing import Tiler
    >>> slide = np.full((1100, 1600, 3), 230, dtype=np.uint8)
    >>> (bag,) = Tiler(tile_size=512).fit_transform([slide])
    >>> len(bag), bag.coords[:4].tolist()
    (6, [[0, 0], [512, 0], [1024, 0], [0, 512]])
    """

    _parameter_constraints = {
        "tile_size": [Interval(Integral, 1, None, closed="left")],
        "stride": [Interval(Integral, 1, None, closed="left"), None],
        "level": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(self, tile_size=512, stride=None, level=0):
        self.tile_size = tile_size
        self.stride = stride
        self.level = level

    def transform(self, X):
        """The tile grid of each slide.

        Parameters
        ----------
        X : list of (str, os.PathLike, ndarray of shape (H, W, 3) or Slide)
            The slides.

        Returns
        -------
        bags : list of TileBag
            One bag per slide, in order, tiles in row-major order.
        """
        slides = check_slide_list(X, type(self).__name__)
        return [self._tile(open_slide(slide)) for slide in slides]

    def _tile(self, slide):
        tile_size = int(self.tile_size)
        stride = tile_size if self.stride is None else int(self.stride)
        level = int(self.level)
        if level >= slide.level_count:
            raise ValueError(
                f"Slide {slide.name!r}: level {level} does not exist (the slide "
                f"has {slide.level_count} level(s))."
            )
        width, height = slide.level_dimensions[level]
        if width < tile_size or height < tile_size:
            raise ValueError(
                f"Slide {slide.name!r} is smaller than one tile: {width}x{height} "
                f"pixels at level {level}, tile_size={tile_size}."
            )
        n_x = (width - tile_size) // stride + 1
        n_y = (height - tile_size) // stride + 1
        if n_x * n_y > MAX_TILES:
            raise ValueError(
                f"Slide {slide.name!r}: a grid of {n_x}x{n_y} tiles of {tile_size} "
                f"px (stride {stride}) at level {level} ({width}x{height} pixels) "
                f"is more than the {MAX_TILES} tiles a bag may hold; use a larger "
                "tile_size or stride, or a coarser level."
            )
        xs = np.arange(0, width - tile_size + 1, stride)
        ys = np.arange(0, height - tile_size + 1, stride)
        grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
        level_coords = np.stack([grid_x.ravel(), grid_y.ravel()], axis=1)
        downsample = slide.level_downsamples[level]
        coords = np.floor(level_coords * downsample).astype(np.int64)
        return TileBag(slide, coords, tile_size, level=level)
