"""StainNormalizer: map every slide to a standard stain appearance (step 2)."""

import math
import os
import warnings
from functools import partial

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ..io import Slide, open_slide
from ..utils import map_slides
from ..utils._sklearn_compat import StrOptions, _fit_context
from ..utils._validation import N_JOBS, check_slide_list
from ._stain_methods import (
    _MAX_PIXELS,
    StainEstimationError,
    StainTransform,
    _tissue_pixels,
    estimate_stains,
)
from ._tile_bag import TileBag
from ._tissue import low_resolution_view, tissue_fraction, tissue_mask

__all__ = ["StainNormalizer"]

# Stains are estimated on a view whose longest side is at most this...
_ESTIMATION_VIEW_SIDE = 2048
# ...read whole when that reads at most this many pixels of the slide, else
# from blocks of the level the view would read, spread over the tissue of a
# coarse locating view, at most this many pixels in all. A block is one tile
# of the file (one decode each) when its sides are 64 to 512 pixels, else a
# square of this side.
_ESTIMATION_READ_PIXELS = 4 * 2**20
_ESTIMATION_BLOCK = 256
# The locating view's longest side (Aperio's stored thumbnail serves), and the
# tissue a block must hold to be read.
_LOCATOR_SIDE = 512
_BLOCK_MIN_TISSUE = 0.1


class StainNormalizer(TransformerMixin, BaseEstimator):
    """Normalise the stain appearance of whole slides, lazily.

    ``fit`` learns the target appearance; ``transform`` estimates each
    slide's own stains once, and returns the slide with a pixel transform
    attached: every later read of any region, at any level, is normalised on
    the fly, and no full-resolution level is ever held in memory.

    The stains (of the target and of each slide) come from the tissue
    pixels of a view of longest side at most 2048 pixels, one pixel sampled
    per block rather than a block's average, so that neighbouring colours do
    not mix. The estimate reads at most 4 Mpixel (``4 * 2**20``) of the
    pyramid level that view needs: when the level is larger, the view is
    made of the level's blocks (the file's own tiles, else 256x256 squares)
    that hold tissue in a coarse view, evenly spread over them, at most 4
    Mpixel of them, with the coarse view's tissue threshold. The coarse view
    (longest side 512) comes from a coarser pyramid level or the thumbnail
    an Aperio file stores, as :class:`OtsuFilter`'s does; a file with
    neither has its level read whole instead. On CMU-1-Small-Region (one
    level of 6.6 Mpixel, 3.2 Mpixel read) Macenko's stain vectors are within
    0.2 degrees, its max concentrations within 1%, and the Reinhard Lab
    statistics within 0.2 and 1%, of the estimate from the whole level.

    Parameters
    ----------
    method : {"macenko", "reinhard", "vahadane"}, default="macenko"
        ``"macenko"``: Macenko et al. (2009), with its published defaults
        ``Io=240``, ``alpha=1``, ``beta=0.15``, its stained pixels those of
        mean optical density ``>= beta`` and its extreme angles weighted by
        optical density (:func:`estimate_stains`: within 3 degrees of the
        true stains of renders of every simulated lab, where the published
        method misses eosin by up to 6). ``"vahadane"``: Vahadane et
        al. (2016), sparse non-negative factorisation by scikit-learn's
        :class:`~sklearn.decomposition.DictionaryLearning` with positive
        dictionary and code. ``"reinhard"``: Reinhard et al. (2001), mean and
        standard deviation matched in CIE Lab.
    target : ndarray of shape (H, W, 3) uint8, str, os.PathLike, Slide or None, \
            default=None
        The reference appearance: an RGB image, a path to an image or a
        slide. ``None`` learns it from the tissue of the slides given to
        ``fit``, pooled.
    n_jobs : int, default=None
        Slides processed in parallel (joblib); ``None`` means 1.
    verbose : int, default=0
        Show a progress bar over slides when positive.
    random_state : int, RandomState instance or None, default=None
        Pixel subsampling and initialisation of ``"vahadane"``; the other
        methods are deterministic. ``transform`` estimates every slide's
        stains with the same seed, so a slide's result depends neither on the
        other slides nor on ``n_jobs``.

    Attributes
    ----------
    target_params_ : dict of ndarray
        The target's parameters: ``"stains"`` and ``"max_concentrations"``,
        or ``"mean"`` and ``"std"`` for Reinhard.
    stain_matrix_ : ndarray of shape (2, 3)
        Target optical-density vectors of haematoxylin (row 0) and eosin
        (row 1), unit length (Macenko and Vahadane only).
    max_concentrations_ : ndarray of shape (2,)
        Target 99th-percentile concentration of each stain (Macenko and
        Vahadane only).
    lab_mean_, lab_std_ : ndarray of shape (3,)
        Target Lab statistics of the tissue (Reinhard only).

    See Also
    --------
    normalize_stains : The same on one array, without an estimator.
    tissue_mask : How tissue pixels are chosen.

    Notes
    -----
    ``transform`` takes slides (paths, arrays, :class:`~sklearn_gastric.io.Slide`)
    and returns :class:`~sklearn_gastric.io.Slide` objects, arrays included
    (read their pixels with ``read_region``, or use :func:`normalize_stains`
    to get an array back). It also accepts :class:`TileBag` objects and then
    returns bags over the normalised slides. The transform attached to each
    slide holds only the stain parameters, so the slides stay cheap to pickle
    and to hash for ``Pipeline(memory=...)``.

    Glass stays glass: pixels blend into their original colour as their
    optical density falls to zero. A slide whose stains cannot be estimated
    (no tissue, one stain only, a degenerate estimate) gets a warning naming
    it and is returned unchanged.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gastric.preprocessing import StainNormalizer
    >>> rng = np.random.RandomState(0)
    >>> def render(stains, size=96):
    ...     stains = np.asarray(stains) / np.linalg.norm(stains, axis=1)[:, None]
    ...     od = rng.gamma(2.0, 0.4, size=(size * size, 2)) @ stains
    ...     return (240 * np.exp(-od)).reshape(size, size, 3).astype(np.uint8)
    >>> target = render([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11]])
    >>> slide = render([[0.45, 0.80, 0.40], [0.25, 0.95, 0.15]])
    >>> normalizer = StainNormalizer(target=target).fit()
    >>> normalizer.stain_matrix_.round(1)
    array([[0.6, 0.7, 0.3],
           [0.1, 1. , 0.1]])
    >>> (out,) = normalizer.transform([slide])
    >>> out.read_region((0, 0), 0, (96, 96)).shape
    (96, 96, 3)
    """

    _parameter_constraints = {
        "method": [StrOptions({"macenko", "reinhard", "vahadane"})],
        "target": [None, "array-like", str, os.PathLike, Slide],
        "n_jobs": N_JOBS,
        "verbose": ["verbose"],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        method="macenko",
        target=None,
        *,
        n_jobs=None,
        verbose=0,
        random_state=None,
    ):
        self.method = method
        self.target = target
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X=None, y=None):
        """Learn the target appearance.

        Parameters
        ----------
        X : list of slides or TileBags, default=None
            The training slides; used only when ``target`` is None.
        y : None
            Ignored.

        Returns
        -------
        self : StainNormalizer
        """
        rng = check_random_state(self.random_state)
        if self.target is not None:
            target = self.target
            if not isinstance(target, (str, os.PathLike, Slide)):
                target = np.asarray(target)
            slide = open_slide(target, name="target")
            pixels = _slide_tissue_pixels(slide)
            source = f"the stain target {slide.name!r}"
        else:
            if X is None:
                raise ValueError(
                    "StainNormalizer(target=None) learns the target from the "
                    "training slides: pass them to fit."
                )
            items = check_slide_list(X, type(self).__name__)
            slides = [_as_slide(item) for item in items]
            pooled = map_slides(
                _slide_tissue_pixels,
                slides,
                n_jobs=self.n_jobs,
                verbose=self.verbose,
                desc="stain target",
            )
            pixels = np.concatenate([np.zeros((0, 3), np.uint8), *pooled])
            if len(pixels) > _MAX_PIXELS:
                keep = rng.choice(len(pixels), _MAX_PIXELS, replace=False)
                pixels = pixels[np.sort(keep)]
            source = f"the tissue of the {len(slides)} training slide(s)"
        try:
            params = estimate_stains(pixels, self.method, random_state=rng)
        except StainEstimationError as exc:
            raise ValueError(
                f"StainNormalizer cannot learn the target from {source}: {exc}."
            ) from exc
        self.target_params_ = params
        if self.method == "reinhard":
            self.lab_mean_, self.lab_std_ = params["mean"], params["std"]
        else:
            self.stain_matrix_ = params["stains"]
            self.max_concentrations_ = params["max_concentrations"]
        return self

    def transform(self, X):
        """Attach the normalising transform to each slide.

        Parameters
        ----------
        X : list of (str, os.PathLike, ndarray, Slide or TileBag)
            The slides, or bags of tiles.

        Returns
        -------
        normalised : list of Slide or TileBag
            One per input, in order: a :class:`~sklearn_gastric.io.Slide`
            for each slide (arrays included), a :class:`TileBag` over the
            normalised slide for each bag.
        """
        check_is_fitted(self, "target_params_")
        items = check_slide_list(X, type(self).__name__)
        # One seed for every slide: a slide's result depends neither on the
        # slides before it nor on n_jobs (workers get copies of a RandomState).
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        results = map_slides(
            partial(
                _normalize_one,
                method=self.method,
                target=self.target_params_,
                seed=seed,
            ),
            items,
            n_jobs=self.n_jobs,
            verbose=self.verbose,
            desc="stain",
        )
        outputs = []
        # Warnings are raised here, not in the workers, so that they reach
        # the caller whatever the joblib backend.
        for output, message in results:
            if message is not None:
                warnings.warn(message, UserWarning, stacklevel=2)
            outputs.append(output)
        return outputs

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        return tags


def _as_slide(item):
    return item.slide if isinstance(item, TileBag) else open_slide(item)


def _slide_tissue_pixels(slide):
    """The tissue pixels that a slide's stains are estimated from.

    Those of the view of longest side ``_ESTIMATION_VIEW_SIDE``, one pixel
    sampled per block (no mixing of neighbouring colours), when that view
    reads at most ``_ESTIMATION_READ_PIXELS`` pixels of the slide; else the
    same sampling of the blocks that :func:`_estimation_blocks` picks.
    """
    downsample = max(1.0, max(slide.dimensions) / _ESTIMATION_VIEW_SIDE)
    level = slide.get_best_level_for_downsample(downsample)
    width, height = slide.level_dimensions[level]
    if width * height <= _ESTIMATION_READ_PIXELS or not _can_locate(slide, level):
        view, _ = low_resolution_view(slide, downsample, reduce="sample")
        return _tissue_pixels(view)
    step = max(1, math.ceil(downsample / slide.level_downsamples[level] - 1e-6))
    size = _block_size(slide, level)
    coords, threshold = _estimation_blocks(slide, level, size)
    blocks = [
        slide.read_region(tuple(xy), level, size)[::step, ::step] for xy in coords
    ]
    if not blocks:
        return np.zeros((0, 3), np.uint8)
    return _tissue_pixels(np.concatenate(blocks), threshold=threshold)


def _can_locate(slide, level):
    """Whether the coarse view reads less than ``level``: a coarser pyramid
    level or a stored thumbnail exists (else reading ``level`` once, whole,
    is the cheaper way)."""
    coarse = max(slide.dimensions) / _LOCATOR_SIDE
    coarser_level = slide.get_best_level_for_downsample(coarse) > level
    return coarser_level or slide.stored_thumbnail_dimensions is not None


def _block_size(slide, level):
    """The file's tile at ``level``, when it is a sensible block."""
    size = slide.tile_size(level)
    if size is None or not all(64 <= side <= 2 * _ESTIMATION_BLOCK for side in size):
        return (_ESTIMATION_BLOCK, _ESTIMATION_BLOCK)
    return tuple(int(side) for side in size)


def _estimation_blocks(slide, level, size):
    """Level-0 corners of the ``size`` blocks of ``level`` to read, evenly
    spread over those with tissue in a coarse view, and the view's tissue
    threshold.

    The threshold comes from the coarse view because Otsu's threshold on
    blocks chosen for their tissue would be pulled into the tissue.
    """
    view, view_downsample = low_resolution_view(
        slide, max(slide.dimensions) / _LOCATOR_SIDE
    )
    mask, threshold = tissue_mask(view, return_threshold=True)
    level_downsample = slide.level_downsamples[level]
    (width, height), (block_w, block_h) = slide.level_dimensions[level], size
    xs = np.arange(0, width - block_w + 1, block_w)
    ys = np.arange(0, height - block_h + 1, block_h)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    coords = (grid * level_downsample).astype(np.int64)
    # tissue_fraction takes squares: the block's shorter side, centred.
    side = min(block_w, block_h)
    centred = coords + ((np.array(size) - side) * level_downsample / 2).astype(int)
    fraction = tissue_fraction(mask, view_downsample, centred, side * level_downsample)
    candidates = np.flatnonzero(fraction >= _BLOCK_MIN_TISSUE)
    count = min(len(candidates), _ESTIMATION_READ_PIXELS // (block_w * block_h))
    if count == 0:
        return coords[:0], threshold
    picked = np.round(np.linspace(0, len(candidates) - 1, count)).astype(np.intp)
    return coords[candidates[picked]], threshold


def _normalize_one(item, *, method, target, seed):
    slide = _as_slide(item)
    try:
        source = estimate_stains(
            _slide_tissue_pixels(slide),
            method,
            random_state=np.random.RandomState(seed),
        )
    except StainEstimationError as exc:
        message = (
            f"Slide {slide.name!r}: its stains cannot be estimated ({exc}); it is "
            f"passed through unchanged."
        )
        return (item if isinstance(item, TileBag) else slide), message
    normalised = slide.with_transform(
        StainTransform(method, source, target, before=slide.transform)
    )
    if isinstance(item, TileBag):
        return item.replace(slide=normalised), None
    return normalised, None
