"""Tissue detection: an Otsu tissue mask with guards, and low-resolution views.

Reusable outside the estimators (visualisation, datasets): :func:`tissue_mask`
works on any RGB array; the views it runs on come from
:func:`sklearn_gastric.io.low_resolution_view` (re-exported here).
"""

import numpy as np

from ..io import low_resolution_view

__all__ = ["low_resolution_view", "tissue_fraction", "tissue_mask"]

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
# Green and blue-green marker ink: green exceeds red by this much. Neither
# haematoxylin (blue-purple) nor eosin (pink) ever makes green exceed red.
_PEN_GREEN_OVER_RED = 15


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
        valid &= np.subtract(green, red, dtype=np.int16) <= _PEN_GREEN_OVER_RED
    return valid


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


def tissue_mask(rgb, *, remove_pen=True, threshold=None, return_threshold=False):
    """Boolean tissue mask of an RGB image by a guarded Otsu threshold.

    The image is converted to luminance and Otsu's threshold separates the
    dark class (tissue) from the bright one (glass). Two guards fix the
    failures of plain Otsu: a view with no glass (all tissue) would be split
    in two by its own threshold, and a view with no tissue (glass only)
    would have its noise split in two; in the first case every pixel not
    bright as glass is tissue, in the second none is. Black pixels are never
    tissue and, with ``remove_pen``, neither is green or blue-green marker
    ink, which is also left out when the threshold is computed.

    Parameters
    ----------
    rgb : ndarray of shape (H, W, 3), dtype uint8
        The image.
    remove_pen : bool, default=True
        Reject green and blue-green pen marks (pixels whose green channel
        exceeds the red one by more than 15 levels; stained tissue never
        does).
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
    if return_threshold:
        return mask, int(threshold)
    return mask


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
