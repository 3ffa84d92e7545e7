"""Tiler: the grid of tile coordinates of each slide (step 3 of the method)."""

from numbers import Integral, Real

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
# With ``mpp``, a level up to 2% coarser than asked still counts as fine
# enough: scanners' nominal 20x and 40x resolutions (0.5021, 0.2527 µm/px...)
# miss 0.5 and 0.25 by about 1%, and refusing their 2x or 4x levels for that
# would read 4 or 16 times more pixels to gain nothing visible.
MPP_SLACK = 0.02


class Tiler(StatelessTransformer):
    """Cut each slide into a grid of equal square tiles (coordinates only).

    The patent cuts a slide into 512x512 tiles. The transform reads no
    pixel: it returns, per slide, a :class:`TileBag` of the tiles'
    level-0 top-left corners, from which later steps read pixels lazily.

    Parameters
    ----------
    tile_size : int, default=512
        Tile width and height in pixels: of ``level`` when ``mpp`` is None,
        at ``mpp`` µm per pixel otherwise.
    stride : int, default=None
        Step between tiles in the same pixels as ``tile_size``; ``None``
        means ``tile_size`` (adjacent tiles). Smaller overlaps, larger leaves
        gaps.
    level : int, default=0
        The pyramid level tiles are cut from when ``mpp`` is None. With
        ``mpp`` the level is chosen per slide, and ``level`` must stay 0.
    mpp : float, default=None
        The resolution of the tiles in microns per pixel (0.5 is a 20x
        scan, 0.25 a 40x one), whatever the resolution of each slide: each
        tile is a region of the coarsest pyramid level whose resolution is
        at least as fine as ``mpp``, area-resized (box filter) to
        ``tile_size``, so tiles are only ever shrunk, and a 40x slide tiled
        at ``mpp=0.5`` reads its 2x level when it has one (4 times fewer
        pixels than level 0). None (the default) cuts tiles of ``level``
        without resizing.

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

    With ``mpp``, the slide's resolution is its ``mpp`` (the mean of x and
    y), from the file or given with ``Slide(source, mpp=...)``; a slide
    without one, such as an array, raises a ``ValueError`` naming it.
    Each tile reads a square of ``read_size = round(tile_size * mpp /
    level_mpp)`` pixels of the chosen level, and the stride is scaled and
    rounded the same way, so corners and footprints are whole pixels of
    that level and the tiles' resolution is ``mpp`` to within half a
    pixel over ``read_size``. A level at most 2% coarser than ``mpp``
    counts as fine enough (scanners' nominal 20x and 40x differ from 0.5
    and 0.25 µm/px by about 1%); a slide whose level 0 is coarser still
    raises a ``ValueError``, as its tiles would have to be enlarged.
    Giving both ``mpp`` and a ``level`` other than 0 raises a
    ``ValueError``: use one or the other.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gastric.io import Slide
    >>> from sklearn_gastric.preprocessing import Tiler
    >>> slide = np.full((1100, 1600, 3), 230, dtype=np.uint8)
    >>> (bag,) = Tiler(tile_size=512).fit_transform([slide])
    >>> len(bag), bag.coords[:4].tolist()
    (6, [[0, 0], [512, 0], [1024, 0], [0, 512]])

    A 0.25 µm/px slide tiled at 0.5 µm/px: each 256 px tile covers 512
    level-0 pixels.

    >>> scan = Slide(slide, mpp=0.25)
    >>> (bag,) = Tiler(tile_size=256, mpp=0.5).fit_transform([scan])
    >>> bag.level, bag.read_size, bag.footprint, bag.coords[:2].tolist()
    (0, 512, 512, [[0, 0], [512, 0]])
    >>> bag.read_tile(0).shape
    (256, 256, 3)
    """

    _parameter_constraints = {
        "tile_size": [Interval(Integral, 1, None, closed="left")],
        "stride": [Interval(Integral, 1, None, closed="left"), None],
        "level": [Interval(Integral, 0, None, closed="left")],
        "mpp": [Interval(Real, 0, None, closed="neither"), None],
    }

    def __init__(self, tile_size=512, stride=None, level=0, mpp=None):
        self.tile_size = tile_size
        self.stride = stride
        self.level = level
        self.mpp = mpp

    def __setstate__(self, state):
        # Tilers pickled before mpp existed cut tiles of their level.
        state.setdefault("mpp", None)
        super().__setstate__(state)

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

        Raises
        ------
        ValueError
            ``mpp`` with a ``level`` other than 0, or, naming the slide: a
            slide smaller than one tile or without ``level``; with ``mpp``, a
            slide without a resolution or coarser than ``mpp``.
        """
        if self.mpp is not None and self.level != 0:
            raise ValueError(
                f"Tiler: give mpp or level, not both (mpp={self.mpp!r}, "
                f"level={self.level!r}); with mpp the level is chosen per slide "
                "(the coarsest one at least as fine as mpp)."
            )
        slides = check_slide_list(X, type(self).__name__)
        return [self._tile(open_slide(slide)) for slide in slides]

    def _tile(self, slide):
        tile_size = int(self.tile_size)
        if self.mpp is None:
            level = self._check_level(slide)
            read_size = tile_size
            stride = tile_size if self.stride is None else int(self.stride)
        else:
            level, scale = level_for_mpp(slide, float(self.mpp))
            read_size = max(1, round(tile_size * scale))
            stride = read_size
            if self.stride is not None:
                stride = max(1, round(int(self.stride) * scale))
        width, height = slide.level_dimensions[level]
        if width < read_size or height < read_size:
            raise ValueError(
                f"Slide {slide.name!r} is smaller than one tile: {width}x{height} "
                f"pixels at level {level}, tile_size={tile_size}"
                f"{self._read_as(read_size)}."
            )
        coords = _grid(slide, level, read_size, stride)
        return TileBag(slide, coords, tile_size, level=level, read_size=read_size)

    def _check_level(self, slide):
        level = int(self.level)
        if level >= slide.level_count:
            raise ValueError(
                f"Slide {slide.name!r}: level {level} does not exist (the slide "
                f"has {slide.level_count} level(s))."
            )
        return level

    def _read_as(self, read_size):
        if self.mpp is None:
            return ""
        return f" at mpp={self.mpp:g} ({read_size} pixels of the level)"


def level_for_mpp(slide, mpp):
    """The level tiles at ``mpp`` µm/px are read from, and the scale.

    Parameters
    ----------
    slide : Slide
    mpp : float
        The wanted microns per pixel.

    Returns
    -------
    level : int
        The coarsest level whose microns per pixel are at most ``mpp``
        (2% slack, :data:`MPP_SLACK`).
    scale : float
        Pixels of ``level`` per pixel at ``mpp``: 1 or more (down to
        ``1 / 1.02`` within the slack).

    Raises
    ------
    ValueError
        Naming the slide: it has no resolution, or even its level 0 is
        coarser than ``mpp``.
    """
    slide_mpp = _slide_mpp(slide, mpp)
    level_mpp = [slide_mpp * d for d in slide.level_downsamples]
    fine_enough = [i for i, m in enumerate(level_mpp) if m <= mpp * (1 + MPP_SLACK)]
    if not fine_enough:
        raise ValueError(
            f"Slide {slide.name!r}: its finest level is {level_mpp[0]:.4g} µm/px, "
            f"coarser than mpp={mpp:g}; its tiles would have to be enlarged. "
            f"Use mpp >= {level_mpp[0]:.4g}, or mpp=None to tile it by level."
        )
    level = max(fine_enough, key=lambda i: slide.level_downsamples[i])
    return level, mpp / level_mpp[level]


def _slide_mpp(slide, mpp):
    if slide.mpp is None:
        cause = (
            "an array has no resolution"
            if slide.path is None
            else "its file does not state a usable resolution (microns per pixel)"
        )
        raise ValueError(
            f"Slide {slide.name!r}: cannot cut tiles at mpp={mpp:g}: {cause}. "
            "Give its resolution with open_slide(path_or_array, mpp=...), or "
            "tile it by pyramid level with Tiler(mpp=None, level=...)."
        )
    return (slide.mpp[0] + slide.mpp[1]) / 2


def _grid(slide, level, read_size, stride):
    """Level-0 corners of the whole tiles of ``read_size`` level pixels,
    ``stride`` level pixels apart, row by row."""
    width, height = slide.level_dimensions[level]
    n_x = (width - read_size) // stride + 1
    n_y = (height - read_size) // stride + 1
    if n_x * n_y > MAX_TILES:
        raise ValueError(
            f"Slide {slide.name!r}: a grid of {n_x}x{n_y} tiles of {read_size} "
            f"px (stride {stride}) at level {level} ({width}x{height} pixels) "
            f"is more than the {MAX_TILES} tiles a bag may hold; use a larger "
            "tile_size or stride, or a coarser level."
        )
    xs = np.arange(0, width - read_size + 1, stride)
    ys = np.arange(0, height - read_size + 1, stride)
    grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
    level_coords = np.stack([grid_x.ravel(), grid_y.ravel()], axis=1)
    downsample = slide.level_downsamples[level]
    return np.floor(level_coords * downsample).astype(np.int64)
