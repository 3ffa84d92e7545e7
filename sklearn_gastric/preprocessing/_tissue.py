"""Tissue detection: an Otsu tissue mask with guards, and low-resolution views.

Reusable outside the estimators (visualisation, datasets): :func:`tissue_mask`
works on any RGB array; the views it runs on come from
:func:`sklearn_gastric.io.low_resolution_view` (re-exported here).
"""

from numbers import Real

import numpy as np

from ..io import low_resolution_view
from ..utils._sklearn_compat import Interval, validate_params

# Optical density of each uint8 value against a 240 background, 0 above it.
_OD = np.maximum(-np.log(np.maximum(np.arange(256), 1) / 240.0), 0).astype(np.float32)

__all__ = ["ink_mask", "low_resolution_view", "tissue_fraction", "tissue_mask"]

# Gray levels (0-255, luminance). Glass under a brightfield scanner is bright:
# when the brighter of Otsu's two classes is darker than _GLASS_MIN on
# average, the view holds no glass at all (a tile that is all tissue), and
# when the darker class is brighter than _TISSUE_MAX on average, it holds no
# tissue (glass split in two by noise). Both cases are where plain Otsu fails.
_GLASS_MIN = 200
_TISSUE_MAX = 220
# A pixel whose brightest channel is below this is black (scanner border,
# black ink, a black test image), never tissue: stained tissue is coloured.
_BLACK_MAX = 40
# Green and blue-green marker ink, in optical density (OD) space. Stained
# tissue is a mixture of two dyes, so its OD vectors lie on one plane (the
# slide's H-E plane) through the origin; green and teal ink transmits green
# light, so its OD has little green against red, and lies off that plane on
# the side of blue absorption. A pixel is ink when it is dark in red, its
# green OD is below _INK_GREEN_OVER_RED of its red OD (the bluest
# haematoxylin of the simulated labs reaches 0.55-0.7, real ones ~1-1.4;
# teal ink 0.2-0.6) and it lies more than _INK_OFF_PLANE_DEG off the plane
# (the ink of the CMU slide: 5.7 degrees median; renders of every lab: under
# 2.7 at the 99.9th percentile; measured in docs/benchmarks.md).
_INK_MIN_RED_OD = 0.25
_INK_GREEN_OVER_RED = 0.75
_INK_OFF_PLANE_DEG = 3.0
# The plane is estimated from at least this many pixels that cannot be ink;
# below that, the reference lab's plane is used.
_PLANE_MIN_PIXELS = 100
_PLANE_MAX_PIXELS = 200_000
_REFERENCE_PLANE_NORMAL = np.array([0.009, -0.455, 0.890])


def _gray(rgb):
    """Luminance as uint8, with scikit-image's ``rgb2gray`` weights."""
    # 0.2125, 0.7154, 0.0721 in 1/256 steps; the weights sum to 256.
    gray = np.multiply(rgb[..., 0], 54, dtype=np.uint16)
    gray += np.multiply(rgb[..., 1], 183, dtype=np.uint16)
    gray += np.multiply(rgb[..., 2], 19, dtype=np.uint16)
    gray += 128
    return (gray >> 8).astype(np.uint8)


def _candidate_pixels(rgb, remove_pen):
    """Pixels that may be tissue: not black, and not marker ink if asked."""
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    # Channel-wise maxima: much faster than a reduction over the last axis.
    valid = np.maximum(np.maximum(red, green), blue) >= _BLACK_MAX
    if remove_pen:
        valid &= ~ink_mask(rgb)
    return valid


@validate_params({"rgb": [np.ndarray]}, prefer_skip_nested_validation=True)
def ink_mask(rgb):
    """Green and blue-green marker ink, told from stained tissue in OD space.

    A pixel is ink when it absorbs red (optical density at least 0.25), its
    green optical density is below 0.75 of its red one, and its OD vector
    lies more than 3 degrees off the image's H-E plane, on the side of blue
    absorption. The plane is estimated from the pixels that cannot be ink
    (the reference lab's plane when there are fewer than 100), so it follows
    each slide's stains: haematoxylin that turned bluish in another lab
    stays on it, ink does not.

    Parameters
    ----------
    rgb : ndarray of shape (H, W, 3), dtype uint8

    Returns
    -------
    ink : ndarray of shape (H, W), dtype bool

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gastric.preprocessing import ink_mask
    >>> rgb = np.full((2, 3, 3), 240, dtype=np.uint8)
    >>> rgb[:, 0] = (120, 60, 150)   # haematoxylin
    >>> rgb[:, 1] = (200, 90, 160)   # eosin
    >>> rgb[:, 2] = (40, 130, 130)   # teal marker ink
    >>> ink_mask(rgb).astype(int)
    array([[0, 0, 1],
           [0, 0, 1]])
    """
    red, green = _OD[rgb[..., 0]], _OD[rgb[..., 1]]
    candidate = (red >= _INK_MIN_RED_OD) & (green < _INK_GREEN_OVER_RED * red)
    if not candidate.any():
        return candidate
    normal = _stain_plane_normal(rgb, candidate).astype(np.float32)
    ys, xs = np.nonzero(candidate)
    vectors = _OD[rgb[ys, xs]]
    limit = np.sin(np.radians(_INK_OFF_PLANE_DEG)) * np.linalg.norm(vectors, axis=1)
    ink = np.zeros(candidate.shape, dtype=bool)
    ink[ys, xs] = vectors @ normal > limit
    return ink


def _stain_plane_normal(rgb, excluded):
    """Unit normal of the plane through the origin that the stained pixels'
    ODs span (the H-E plane), oriented towards blue absorption; estimated
    from a bounded sample of the pixels that cannot be ink, trimmed once of
    outliers."""
    step = max(1, excluded.size // _PLANE_MAX_PIXELS)
    pixels = rgb.reshape(-1, 3)[::step]
    vectors = _OD[pixels[~excluded.ravel()[::step]]].astype(np.float64)
    vectors = vectors[vectors.sum(axis=1) >= 0.3]
    if len(vectors) < _PLANE_MIN_PIXELS:
        return _REFERENCE_PLANE_NORMAL
    for _ in range(2):
        # einsum, not BLAS: the same bits whatever the thread count.
        _, eigenvectors = np.linalg.eigh(np.einsum("ni,nj->ij", vectors, vectors))
        normal = eigenvectors[:, 0]
        residual = np.abs(vectors @ normal) / np.linalg.norm(vectors, axis=1)
        vectors = vectors[residual <= np.percentile(residual, 90)]
    return normal if normal[2] >= 0 else -normal


def _guarded_otsu(gray, valid):
    """Otsu threshold on the valid pixels, with the guards for views that hold
    only tissue or only glass. Pixels ``<= threshold`` are tissue; ``-1``
    means no tissue."""
    from skimage.filters import threshold_otsu

    counts = np.bincount(gray[valid].ravel(), minlength=256)
    levels = np.flatnonzero(counts)
    if len(levels) == 0:
        return -1
    if len(levels) == 1:
        return 255 if levels[0] <= _TISSUE_MAX else -1
    values = np.arange(256)
    threshold = int(threshold_otsu(hist=(counts, values)))
    dark, bright = counts[: threshold + 1], counts[threshold + 1 :]
    dark_mean = (dark * values[: threshold + 1]).sum() / max(dark.sum(), 1)
    bright_mean = (bright * values[threshold + 1 :]).sum() / max(bright.sum(), 1)
    if bright.sum() == 0 or bright_mean < _GLASS_MIN:
        return _TISSUE_MAX
    if dark_mean > _TISSUE_MAX:
        return -1
    return threshold


@validate_params(
    {
        "rgb": ["array-like"],
        "remove_pen": ["boolean"],
        "max_hole_size": [Interval(Real, 0, None, closed="left")],
        "threshold": [Real, None],
        "return_threshold": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def tissue_mask(
    rgb, *, remove_pen=True, max_hole_size=0, threshold=None, return_threshold=False
):
    """Boolean tissue mask of an RGB image by a guarded Otsu threshold.

    The image is converted to luminance and Otsu's threshold separates the
    dark class (tissue) from the bright one (glass). Two guards fix the
    failures of plain Otsu: a view with no glass (all tissue) would be split
    in two by its own threshold, and a view with no tissue (glass only)
    would have its noise split in two; in the first case every pixel not
    bright as glass is tissue, in the second none is. Black pixels are never
    tissue and, with ``remove_pen``, neither is green or blue-green marker
    ink (:func:`ink_mask`), which is also left out when the threshold is
    computed.

    Parameters
    ----------
    rgb : ndarray of shape (H, W, 3), dtype uint8
        The image.
    remove_pen : bool, default=True
        Reject green and blue-green pen marks (:func:`ink_mask`: dark in
        red, little green absorption, off the image's H-E plane in optical
        density), which stained tissue of any lab's colours is not.
    max_hole_size : int, default=0
        Holes of the mask of at most this many pixels, enclosed by tissue
        (gland lumens, small tears), are filled: they are part of the
        tissue's architecture. Glass that reaches the image's border is never
        a hole. 0 fills nothing.
    threshold : int, default=None
        A gray level (0-255) to use instead of computing one; pixels at or
        below it are tissue.
    return_threshold : bool, default=False
        Also return the threshold used (``-1`` when nothing is tissue).

    Returns
    -------
    mask : ndarray of shape (H, W), dtype bool
        True on tissue.
    threshold : int
        Only when ``return_threshold`` is True.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gastric.preprocessing import tissue_mask
    >>> rgb = np.full((4, 6, 3), 240, dtype=np.uint8)
    >>> rgb[:, :2] = (150, 60, 140)   # stained tissue
    >>> rgb[:, 5] = (70, 130, 150)    # green pen
    >>> tissue_mask(rgb).astype(int)
    array([[1, 1, 0, 0, 0, 0],
           [1, 1, 0, 0, 0, 0],
           [1, 1, 0, 0, 0, 0],
           [1, 1, 0, 0, 0, 0]])
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
        raise ValueError(
            f"tissue_mask needs an RGB uint8 image of shape (H, W, 3); got "
            f"shape {rgb.shape} and dtype {rgb.dtype}."
        )
    gray = _gray(rgb)
    valid = _candidate_pixels(rgb, remove_pen)
    if threshold is None:
        threshold = _guarded_otsu(gray, valid)
    mask = valid & (gray <= int(threshold))
    if max_hole_size > 0:
        mask = _fill_holes(mask, int(max_hole_size))
    if return_threshold:
        return mask, int(threshold)
    return mask


def _fill_holes(mask, max_size):
    from scipy import ndimage as ndi

    # A frame of glass: background touching the border joins it, so it is
    # never taken for a hole.
    background = np.pad(~mask, 1, constant_values=True)
    labels, _ = ndi.label(background)
    sizes = np.bincount(labels.ravel())
    small = sizes <= max_size
    small[0] = False  # label 0 is the tissue itself
    small[labels[0, 0]] = False  # the frame's component
    return mask | small[labels[1:-1, 1:-1]]


@validate_params(
    {
        "mask": ["array-like"],
        "downsample": [Interval(Real, 0, None, closed="neither")],
        "coords": ["array-like"],
        "footprint": [Interval(Real, 0, None, closed="neither")],
    },
    prefer_skip_nested_validation=True,
)
def tissue_fraction(mask, downsample, coords, footprint):
    """Fraction of each square footprint covered by a low-resolution mask.

    The mask is taken as piecewise constant over its pixels, and each
    footprint's covered area is computed exactly from the mask's summed-area
    table (bilinear interpolation of the table is exact for such a mask), so
    a footprint need not align with mask pixels.

    Parameters
    ----------
    mask : ndarray of shape (h, w), dtype bool or float
        The mask; pixel ``(i, j)`` covers level-0 pixels
        ``[j * downsample, (j + 1) * downsample)`` and likewise in y.
    downsample : float
        Level-0 pixels per mask pixel.
    coords : ndarray of shape (n, 2)
        Level-0 ``(x, y)`` top-left corners.
    footprint : float
        Side of each square in level-0 pixels.

    Returns
    -------
    fraction : ndarray of shape (n,), dtype float64
        In [0, 1]; the parts of a square outside the mask count as empty.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gastric.preprocessing import tissue_fraction
    >>> mask = np.array([[1, 0], [1, 1]], dtype=bool)
    >>> tissue_fraction(mask, 10, np.array([[0, 0], [5, 5], [10, 0]]), 10)
    array([1.  , 0.75, 0.  ])
    """
    mask = np.asarray(mask, dtype=np.float64)
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    height, width = mask.shape
    table = np.zeros((height + 1, width + 1))
    table[1:, 1:] = mask.cumsum(axis=0).cumsum(axis=1)

    def area_before(u, v):
        u = np.clip(u, 0, width)
        v = np.clip(v, 0, height)
        i0 = np.minimum(np.floor(v).astype(np.intp), height - 1)
        j0 = np.minimum(np.floor(u).astype(np.intp), width - 1)
        i0, j0 = np.maximum(i0, 0), np.maximum(j0, 0)
        dv, du = v - i0, u - j0
        return (
            table[i0, j0] * (1 - dv) * (1 - du)
            + table[i0, j0 + 1] * (1 - dv) * du
            + table[i0 + 1, j0] * dv * (1 - du)
            + table[i0 + 1, j0 + 1] * dv * du
        )

    x0, y0 = coords[:, 0] / downsample, coords[:, 1] / downsample
    x1, y1 = x0 + footprint / downsample, y0 + footprint / downsample
    area = (
        area_before(x1, y1)
        - area_before(x0, y1)
        - area_before(x1, y0)
        + area_before(x0, y0)
    )
    fraction = area / ((footprint / downsample) ** 2)
    return np.clip(fraction, 0.0, 1.0)
