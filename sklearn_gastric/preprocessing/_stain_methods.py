"""Stain estimation (Macenko, Vahadane, Reinhard) and the lazy pixel transform.

Everything here works on numpy arrays; :mod:`._stain` wraps it in the
estimator. Estimation failures raise :class:`StainEstimationError` with the
cause; the estimator turns them into a warning and passes the slide through.
"""

import warnings

import numpy as np

from ..utils._sklearn_compat import StrOptions, validate_params
from ._stain_apply import MacenkoKernel, ReinhardKernel, apply_kernel
from ._tissue import tissue_mask

__all__ = [
    "StainEstimationError",
    "StainTransform",
    "estimate_stains",
    "normalize_stains",
]

# Macenko et al. (2009) defaults: background intensity, angle percentile,
# optical-density threshold of "transparent" pixels.
IO = 240.0
ALPHA = 1.0
BETA = 0.15
# Vahadane et al. (2016): sparsity of the concentrations.
VAHADANE_LAMBDA = 0.1
_VAHADANE_SAMPLES = 2000
# Estimation needs this many usable pixels; stain vectors closer than this
# angle make the unmixing ill-conditioned.
MIN_PIXELS = 50
MIN_ANGLE_DEG = 5.0
_MAX_PIXELS = 200_000
METHODS = ("macenko", "vahadane", "reinhard")

# Optical density of each uint8 value, clipped at 0 (pixels brighter than IO
# are background) and finite at 0 (a black pixel is treated as value 1).
_OD_LUT = np.maximum(-np.log(np.maximum(np.arange(256), 1) / IO), 0).astype(np.float32)
# A pixel's weight in the blend with its original colour, by its darkest
# channel: the optical density of that channel over BETA, at most 1.
_BLEND_WEIGHT = np.minimum(_OD_LUT / BETA, 1.0).astype(np.float32)


class StainEstimationError(ValueError):
    """The stains of an image cannot be estimated (the message says why)."""


class _DegenerateStainsError(StainEstimationError):
    """The two stain vectors coincide: the tissue shows one stain only."""


def rgb_to_od(rgb):
    """Optical density ``-ln(I / 240)`` of uint8 RGB, clipped to >= 0."""
    return _OD_LUT[np.asarray(rgb, dtype=np.uint8)]


def _tissue_pixels(rgb, rng=None, threshold=None):
    """The tissue pixels of an image (N, 3), subsampled to a bounded count;
    ``threshold`` as in :func:`tissue_mask`."""
    pixels = rgb[tissue_mask(rgb, threshold=threshold)]
    if len(pixels) > _MAX_PIXELS:
        rng = np.random.RandomState(0) if rng is None else rng
        pixels = pixels[np.sort(rng.choice(len(pixels), _MAX_PIXELS, replace=False))]
    return pixels


def _order_and_check(stains):
    """Rows as unit vectors, haematoxylin first (it absorbs more red light);
    raise when the pair is degenerate."""
    stains = np.asarray(stains, dtype=np.float64)
    if not np.all(np.isfinite(stains)):
        raise StainEstimationError("the stain estimate is not finite")
    # Stain absorbances are non-negative; small negative parts are noise.
    stains = np.clip(stains, 0, None)
    norms = np.linalg.norm(stains, axis=1, keepdims=True)
    if np.any(norms < 1e-6):
        raise StainEstimationError("one stain vector vanished")
    stains = stains / norms
    if stains[0, 0] < stains[1, 0]:
        stains = stains[::-1]
    cosine = float(np.clip(stains[0] @ stains[1], -1, 1))
    angle = np.degrees(np.arccos(cosine))
    if angle < MIN_ANGLE_DEG:
        raise _DegenerateStainsError(
            f"the two stain vectors are {angle:.1f} degrees apart (at least "
            f"{MIN_ANGLE_DEG:g} needed: the tissue shows one stain only)"
        )
    return np.ascontiguousarray(stains)


def _stained(od):
    """The pixels dark enough to carry a stain direction: mean optical
    density at least ``BETA``. Macenko's own mask (``BETA`` in every channel)
    drops pale eosin, which absorbs little red light, and with it the eosin
    end of the angle distribution (an eosin error of 5-15 degrees)."""
    return od[od.sum(axis=1) >= 3 * BETA]


def _covariance(od):
    """``np.cov(od, rowvar=False)`` summed by einsum, not BLAS: the same bits
    whatever the number of BLAS threads, so that a slide normalises the same
    in a dask worker (one thread) and in the caller."""
    centred = od - od.mean(axis=0)
    return np.einsum("ni,nj->ij", centred, centred) / (len(od) - 1)


def _weighted_percentiles(values, weights, percents):
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    cumulative /= cumulative[-1]
    return np.interp(np.asarray(percents) / 100, cumulative, values[order])


def _macenko_matrix(od):
    od = _stained(od)
    if len(od) < MIN_PIXELS:
        raise StainEstimationError(
            f"only {len(od)} stained pixels (mean optical density >= {BETA}), "
            f"at least {MIN_PIXELS} needed"
        )
    _, vectors = np.linalg.eigh(_covariance(od))
    plane = vectors[:, [2, 1]]
    if plane[:, 0].sum() < 0:
        plane[:, 0] *= -1
    projected = od @ plane
    angles = np.arctan2(projected[:, 1], projected[:, 0])
    # The extreme angles, each pixel weighted by its optical density: the
    # direction of a faint pixel is mostly noise (its angular error grows as
    # 1 / OD), and the plain percentile lets that noise set the extremes.
    low, high = _weighted_percentiles(
        angles, np.linalg.norm(od, axis=1), [ALPHA, 100 - ALPHA]
    )
    first = plane @ np.array([np.cos(low), np.sin(low)])
    second = plane @ np.array([np.cos(high), np.sin(high)])
    return _order_and_check(np.stack([first, second]))


def _vahadane_matrix(od, rng):
    from sklearn.decomposition import DictionaryLearning

    od = _stained(od)
    if len(od) < MIN_PIXELS:
        raise StainEstimationError(
            f"only {len(od)} stained pixels, at least {MIN_PIXELS} needed"
        )
    if len(od) > _VAHADANE_SAMPLES:
        od = od[rng.choice(len(od), _VAHADANE_SAMPLES, replace=False)]
    # Starting from Macenko's estimate halves the iterations; scikit-learn's
    # SVD start is the fallback when Macenko lacks pixels dark in every
    # channel. Tissue with one stain only fails here already: the
    # factorisation cannot find two stains either, and takes seconds to say so.
    init = {}
    try:
        start = _macenko_matrix(od)
        init = {
            "dict_init": start,
            "code_init": np.clip(od @ np.linalg.pinv(start), 0, None),
        }
    except _DegenerateStainsError:
        raise
    except StainEstimationError:
        pass
    learner = DictionaryLearning(
        n_components=2,
        alpha=VAHADANE_LAMBDA,
        max_iter=30,
        tol=1e-6,
        fit_algorithm="cd",
        transform_algorithm="lasso_cd",
        positive_code=True,
        positive_dict=True,
        random_state=rng,
        **init,
    )
    with warnings.catch_warnings():
        # ConvergenceWarning of the inner lasso: the dictionary is what counts.
        warnings.simplefilter("ignore")
        learner.fit(od)
    return _order_and_check(learner.components_)


def _max_concentrations(od, stains):
    concentrations = np.clip(od @ np.linalg.pinv(stains), 0, None)
    maxima = np.percentile(concentrations, 99, axis=0)
    if not np.all(np.isfinite(maxima)) or np.any(maxima < 1e-3):
        raise StainEstimationError(
            "a stain is absent from the tissue (99th-percentile concentration "
            f"{np.round(maxima, 4).tolist()})"
        )
    return maxima


def _lab(rgb):
    from skimage.color import rgb2lab

    return rgb2lab(np.asarray(rgb, dtype=np.uint8).reshape(-1, 1, 3)).reshape(-1, 3)


@validate_params(
    {
        "pixels": ["array-like"],
        "method": [StrOptions(set(METHODS))],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def estimate_stains(pixels, method="macenko", *, random_state=None):
    """Stain parameters of a set of tissue pixels.

    Parameters
    ----------
    pixels : ndarray of shape (n_pixels, 3), dtype uint8
        RGB tissue pixels (background, pen and black pixels already removed).
    method : {"macenko", "vahadane", "reinhard"}, default="macenko"
        Macenko et al. (2009): stain vectors from the extreme angles of the
        optical densities projected on their principal plane (``Io=240``,
        ``alpha=1``, ``beta=0.15``), with two changes measured to recover
        the true stains of renders of every simulated lab within 3 degrees
        (``docs/benchmarks.md``): the stained pixels are those of mean
        optical density ``>= beta`` (Macenko's ``>= beta`` in every channel
        drops pale eosin), and the extreme angles are percentiles weighted
        by each pixel's optical density. Vahadane et al. (2016): sparse
        non-negative factorisation of the optical densities (scikit-learn's
        ``DictionaryLearning`` with positive dictionary and code,
        ``lambda=0.1``). Reinhard et al. (2001): mean and standard deviation
        in CIE Lab.
    random_state : int, RandomState or None, default=None
        Subsampling and initialisation for ``"vahadane"``.

    Returns
    -------
    params : dict of ndarray
        ``{"stains": (2, 3), "max_concentrations": (2,)}`` (haematoxylin
        first, unit rows) or, for Reinhard, ``{"mean": (3,), "std": (3,)}``.

    Raises
    ------
    StainEstimationError
        Too few stained pixels, one stain only, or a singular estimate.
    """
    from sklearn.utils import check_random_state

    pixels = np.asarray(pixels, dtype=np.uint8).reshape(-1, 3)
    if len(pixels) < MIN_PIXELS:
        raise StainEstimationError(
            f"only {len(pixels)} tissue pixels, at least {MIN_PIXELS} needed"
        )
    if method == "reinhard":
        lab = _lab(pixels)
        std = lab.std(axis=0)
        if np.any(std < 1e-3):
            raise StainEstimationError("the tissue has a single colour")
        return {"mean": lab.mean(axis=0), "std": std}
    od = rgb_to_od(pixels).astype(np.float64)
    if method == "macenko":
        stains = _macenko_matrix(od)
    else:
        stains = _vahadane_matrix(od, check_random_state(random_state))
    return {"stains": stains, "max_concentrations": _max_concentrations(od, stains)}


class StainTransform:
    """A picklable pixel transform from one stain appearance to another.

    Slides carry it (``Slide.with_transform``) and apply it on every read.
    It holds only small numpy arrays, so it is cheap to pickle and hash.

    Parameters
    ----------
    method : {"macenko", "vahadane", "reinhard"}
        Which parameters ``source`` and ``target`` hold.
    source, target : dict of ndarray
        The output of :func:`estimate_stains` for the image and the target.
    before : callable, default=None
        A transform applied first (one the slide already had).

    Notes
    -----
    Macenko and Vahadane unmix each pixel's optical density on the source
    stains, rescale each stain's concentration by the ratio of the target's
    and the source's 99th percentiles, and remix on the target stains.
    Reinhard matches the tissue's Lab mean and standard deviation. In both
    cases background is kept: each pixel is blended with its original by a
    weight rising from 0 at optical density 0 to 1 at ``beta=0.15`` (its
    most absorbed channel), so glass stays as it was.

    The arithmetic runs in float32 (float64 for a Reinhard map that
    stretches a Lab channel more than 16 times), in cache-sized chunks of
    channel-major pixels, as a few small matrix products between
    per-element functions (``sklearn_gastric/preprocessing/_stain_apply.py``);
    every output value
    is within 1 grey level of the same formulas evaluated one step at a time
    (Reinhard: of :func:`skimage.color.rgb2lab` and
    :func:`~skimage.color.lab2rgb` in float64), over all 2**24 colours.

    Raises
    ------
    ValueError
        When a parameter in ``source`` or ``target`` is not finite.
    """

    def __init__(self, method, source, target, before=None):
        self.method = method
        self.source = {k: np.asarray(v, dtype=np.float64) for k, v in source.items()}
        self.target = {k: np.asarray(v, dtype=np.float64) for k, v in target.items()}
        self.before = before
        _check_finite(self.source, "source")
        _check_finite(self.target, "target")
        self._kernel = _make_kernel(method, self.source, self.target)

    def __call__(self, rgb):
        if self.before is not None:
            rgb = self.before(rgb)
        rgb = np.asarray(rgb, dtype=np.uint8)
        if rgb.size == 0:
            return rgb.copy()
        return apply_kernel(rgb, self._kernel, _BLEND_WEIGHT)

    def __getstate__(self):
        return {
            "method": self.method,
            "source": self.source,
            "target": self.target,
            "before": self.before,
        }

    def __setstate__(self, state):
        self.__init__(**state)

    def __repr__(self):
        return f"StainTransform(method={self.method!r})"


def _check_finite(params, name):
    if not all(np.all(np.isfinite(value)) for value in params.values()):
        raise ValueError(f"StainTransform: the {name} parameters are not finite.")


def _make_kernel(method, source, target):
    if method == "reinhard":
        return ReinhardKernel(
            source["mean"], source["std"], target["mean"], target["std"]
        )
    scale = target["max_concentrations"] / source["max_concentrations"]
    return MacenkoKernel(np.linalg.pinv(source["stains"]) * scale, target["stains"], IO)


@validate_params(
    {
        "image": ["array-like"],
        "target": ["array-like", dict],
        "method": [StrOptions(set(METHODS))],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def normalize_stains(image, target, method="macenko", *, random_state=None):
    """Stain-normalise an RGB array to a target image's stains.

    The function-level counterpart of :class:`StainNormalizer`: both images'
    stains are estimated from their tissue pixels and the image is mapped to
    the target's appearance.

    Parameters
    ----------
    image : ndarray of shape (H, W, 3), dtype uint8
        The pixels to normalise.
    target : ndarray of shape (h, w, 3), dtype uint8, or dict
        The reference image, or stain parameters from :func:`estimate_stains`
        (for example a fitted normalizer's ``target_params_``).
    method : {"macenko", "vahadane", "reinhard"}, default="macenko"
        See :func:`estimate_stains`.
    random_state : int, RandomState or None, default=None
        For ``"vahadane"``.

    Returns
    -------
    normalised : ndarray of shape (H, W, 3), dtype uint8

    Raises
    ------
    StainEstimationError
        When the stains of ``image`` or ``target`` cannot be estimated.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gastric.preprocessing import normalize_stains
    >>> rng = np.random.RandomState(0)
    >>> stains = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11]])
    >>> def render(stains, size=64):
    ...     c = rng.gamma(2.0, 0.4, size=(size * size, 2))
    ...     od = c @ (stains / np.linalg.norm(stains, axis=1, keepdims=True))
    ...     return (240 * np.exp(-od)).reshape(size, size, 3).astype(np.uint8)
    >>> target = render(stains)
    >>> image = render(np.array([[0.5, 0.8, 0.3], [0.2, 0.9, 0.2]]))
    >>> normalize_stains(image, target).shape
    (64, 64, 3)
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"normalize_stains needs an RGB uint8 image (H, W, 3); got shape "
            f"{image.shape} and dtype {image.dtype}."
        )
    if not isinstance(target, dict):
        target = estimate_stains(
            _tissue_pixels(np.asarray(target, dtype=np.uint8)),
            method,
            random_state=random_state,
        )
    source = estimate_stains(_tissue_pixels(image), method, random_state=random_state)
    return StainTransform(method, source, target)(image)
