"""OtsuFilter: keep the tiles that hold enough tissue (step 4 of the method)."""

import warnings
from functools import partial
from numbers import Real

import numpy as np

from ..utils import map_slides
from ..utils._sklearn_compat import Interval, StrOptions
from ..utils._stateless import StatelessTransformer
from ..utils._validation import N_JOBS, check_tile_bags
from ._tile_bag import UnreadableTileWarning
from ._tissue import tissue_fraction, tissue_mask

__all__ = ["OtsuFilter"]

# mode="slide": the mask has about this many pixels along a tile's side, or
# fewer when the view's longest side would exceed _MAX_VIEW_SIDE.
_MASK_PIXELS_PER_TILE = 32
_MAX_VIEW_SIDE = 2048
_TILE_BATCH = 16
# Slides that do not say their resolution are taken as 20x scans.
_DEFAULT_MPP = 0.5


class OtsuFilter(StatelessTransformer):
    """Keep the tiles whose tissue area, by Otsu's threshold, is large enough.

    The patent keeps the tiles whose tissue covers at least 70% of the tile.
    Tissue is found by a guarded Otsu threshold on luminance (see
    :func:`tissue_mask`); green marker ink and black pixels never count.

    Parameters
    ----------
    min_tissue : float, default=0.7
        Smallest tissue fraction of a kept tile, in [0, 1].
    mode : {"slide", "tile"}, default="slide"
        ``"slide"``: one threshold per slide, from a low-resolution view of
        the whole slide (about 32 mask pixels along a tile's side, fewer if
        the view would otherwise exceed 2048 pixels); each tile's fraction
        is the mask's area over the tile's footprint. The view comes from a
        pyramid level or the file's stored thumbnail (Aperio), so no
        full-resolution pixel is read (a single-level file without a
        thumbnail is read once, chunk by chunk); memory stays bounded
        whatever the slide's size. ``"tile"``: the patent's literal reading,
        Otsu inside each
        full-resolution tile (every tile is read, at the tiles' resolution:
        resized, for a :class:`Tiler` with ``mpp``). Its known failure, a tile
        that is all tissue split in two by its own threshold, is guarded.
    remove_pen : bool, default=True
        Reject green and blue-green marker ink
        (:func:`~sklearn_gastric.preprocessing.ink_mask`, which tells ink
        from stained tissue of any lab's colours); set False to count every
        dark pixel.
    max_hole_area : float, default=10000
        Holes inside the tissue of at most this area in µm² (gland lumens,
        which are part of the tissue: 10,000 µm² is a circle of 113 µm) count
        as tissue, so that a tile of crowded glands is not dropped for its
        lumens. Areas use the slide's ``mpp`` (0.5 µm/px when it has none).
        0 counts only stained pixels, the patent's literal reading.
    on_error : {"raise", "skip"}, default="raise"
        A tile that cannot be read (a corrupt tile in the file): ``"raise"``
        the :class:`~sklearn_gastric.io.SlideError` naming the slide and the
        tile, or ``"skip"`` it, with an :class:`UnreadableTileWarning`
        naming the slide and the tile's coordinates. With ``mode="tile"`` a
        skipped tile is left out of the output bag. With ``mode="slide"``,
        only a view read from level 0 (a single-level file without a stored
        thumbnail) reads the file's full-resolution tiles; a skipped file
        tile counts as glass in the view, so the grid tiles over it lose
        its area from their tissue fraction.
    n_jobs : int, default=None
        Slides processed in parallel (joblib); ``None`` means 1.
    verbose : int, default=0
        Show a progress bar over slides when positive.

    See Also
    --------
    Tiler : Make the tile grid this filter selects from.
    tissue_mask : The mask used here.

    Notes
    -----
    Each kept tile's fraction is stored in the bag's ``tissue_fraction``
    column. A slide with no tile left gives an empty bag: the error comes
    from the first step that cannot work without tiles.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gastric.preprocessing import OtsuFilter, Tiler
    >>> slide = np.full((256, 512, 3), 240, dtype=np.uint8)
    >>> slide[:, :200] = (170, 80, 160)
    >>> bags = Tiler(tile_size=128).fit_transform([slide])
    >>> (kept,) = OtsuFilter(min_tissue=0.7).fit_transform(bags)
    >>> kept.coords.tolist(), kept.tissue_fraction.round(2).tolist()
    ([[0, 0], [0, 128]], [1.0, 1.0])
    """

    _parameter_constraints = {
        "min_tissue": [Interval(Real, 0, 1, closed="both")],
        "mode": [StrOptions({"slide", "tile"})],
        "remove_pen": ["boolean"],
        "max_hole_area": [Interval(Real, 0, None, closed="left")],
        "on_error": [StrOptions({"raise", "skip"})],
        "n_jobs": N_JOBS,
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        min_tissue=0.7,
        mode="slide",
        *,
        remove_pen=True,
        max_hole_area=10_000,
        on_error="raise",
        n_jobs=None,
        verbose=0,
    ):
        self.min_tissue = min_tissue
        self.mode = mode
        self.remove_pen = remove_pen
        self.max_hole_area = max_hole_area
        self.on_error = on_error
        self.n_jobs = n_jobs
        self.verbose = verbose

    def transform(self, X):
        """Keep, in each bag, the tiles with enough tissue.

        Parameters
        ----------
        X : list of TileBag
            The bags (from :class:`Tiler`).

        Returns
        -------
        bags : list of TileBag
            One bag per input bag, in order, holding the kept tiles in their
            original order and their ``tissue_fraction``.
        """
        bags = check_tile_bags(X, type(self).__name__)
        measure = partial(
            _slide_fractions if self.mode == "slide" else _tile_fractions,
            remove_pen=bool(self.remove_pen),
            max_hole_area=float(self.max_hole_area),
            on_error=self.on_error,
        )
        results = map_slides(
            measure, bags, n_jobs=self.n_jobs, verbose=self.verbose, desc="tissue"
        )
        outputs = []
        for bag, (fraction, failures) in zip(bags, results):
            # Warned here, not in the workers, so that the warnings reach the
            # caller whatever the joblib backend.
            for message in failures:
                warnings.warn(message, UnreadableTileWarning, stacklevel=2)
            # An unreadable tile has a NaN fraction: never kept.
            keep = fraction >= self.min_tissue
            outputs.append(bag.replace(tissue_fraction=fraction).subset(keep))
        return outputs


def _hole_pixels(slide, downsample, area):
    """``area`` µm² in pixels of a view at ``downsample``."""
    mpp = slide.mpp or (_DEFAULT_MPP, _DEFAULT_MPP)
    return int(area / (mpp[0] * mpp[1] * downsample**2))


def slide_tissue_mask(
    slide, footprint, *, remove_pen=True, max_hole_area=10_000, on_error="raise"
):
    """The tissue mask ``OtsuFilter(mode="slide")`` decides on, and its view.

    Parameters
    ----------
    slide : Slide
    footprint : float
        The tiles' side in level-0 pixels; the mask has about 32 pixels
        along it (fewer when the view's longest side would exceed 2048).
    remove_pen, max_hole_area, on_error
        As in :class:`OtsuFilter`.

    Returns
    -------
    mask : ndarray of shape (h, w), dtype bool
    downsample : float
        Level-0 pixels per mask pixel.
    failures : list of str
        The unreadable file tiles skipped (``on_error="skip"``).
    """
    downsample = max(
        1.0,
        footprint / _MASK_PIXELS_PER_TILE,
        max(slide.dimensions) / _MAX_VIEW_SIDE,
    )
    view = slide.read_view(downsample, on_error=on_error)
    holes = _hole_pixels(slide, view.downsample, max_hole_area)
    mask = tissue_mask(view.pixels, remove_pen=remove_pen, max_hole_size=holes)
    return mask, view.downsample, list(view.failures)


def _slide_fractions(bag, *, remove_pen, max_hole_area, on_error):
    if len(bag) == 0:
        return np.zeros(0), []
    mask, downsample, failures = slide_tissue_mask(
        bag.slide,
        bag.footprint,
        remove_pen=remove_pen,
        max_hole_area=max_hole_area,
        on_error=on_error,
    )
    return tissue_fraction(mask, downsample, bag.coords, bag.footprint), failures


def _tile_fractions(bag, *, remove_pen, max_hole_area, on_error):
    holes = _hole_pixels(bag.slide, bag.pixel_downsample, max_hole_area)
    fractions = np.full(len(bag), np.nan)
    skipped = []
    for indices, batch, failures in bag.read_batches(_TILE_BATCH, on_error=on_error):
        skipped.extend(failures)
        for index, tile in zip(indices, batch):
            mask = tissue_mask(tile, remove_pen=remove_pen, max_hole_size=holes)
            fractions[index] = mask.mean()
    return fractions, skipped
