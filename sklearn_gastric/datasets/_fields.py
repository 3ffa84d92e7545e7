"""Random fields and point sets of the synthetic tissue renderer.

Lengths are pixels at 0.5 microns per pixel (a 20x scan).
"""

import numpy as np
from scipy import ndimage as ndi

__all__ = [
    "coarse_noise",
    "inside",
    "jittered_grid",
    "random_tissue",
    "sample_at",
    "sample_coarse",
    "smooth_noise",
]


def smooth_noise(rng, shape, sigma):
    """Gaussian random field, zero mean and unit variance, correlation ``sigma``.

    Drawn on a grid coarser by ``sigma // 4`` and upsampled linearly, so that
    large correlation lengths cost little on large images.
    """
    small, factor = coarse_noise(rng, shape, sigma)
    if factor == 1:
        return np.ascontiguousarray(small[: shape[0], : shape[1]])
    return _upsample(small, factor, shape)


def coarse_noise(rng, shape, sigma):
    """The coarse grid of :func:`smooth_noise` and its factor, not upsampled;
    read it at points with :func:`sample_coarse`."""
    height, width = shape
    factor = max(1, int(sigma // 4))
    small_shape = (-(-height // factor) + 2, -(-width // factor) + 2)
    small = rng.standard_normal(small_shape, dtype=np.float32)
    small = ndi.gaussian_filter(small, sigma / factor, mode="wrap")
    small -= small.mean()
    small /= small.std() + 1e-12
    return small, factor


def sample_coarse(small, factor, ys, xs):
    """Values of a coarse field at image points (nearest grid point)."""
    return sample_at(small, np.asarray(ys) / factor, np.asarray(xs) / factor)


def sample_at(field, ys, xs):
    """Values of ``field`` at points, clipped onto its border pixels."""
    iy = np.clip(ys.astype(np.intp), 0, field.shape[0] - 1)
    ix = np.clip(xs.astype(np.intp), 0, field.shape[1] - 1)
    return field[iy, ix]


def _upsample(small, factor, shape):
    """Linear interpolation of ``small`` by an integer ``factor``, cropped.

    Output pixel ``q * factor + p`` mixes cells ``q`` and ``q + 1`` with the
    same weight for every ``q``, so each axis takes ``factor`` strided array
    operations instead of a gather.
    """
    height, width = shape
    n_rows, n_cols = -(-height // factor), -(-width // factor)
    weights = (np.arange(factor, dtype=np.float32) + 0.5) / factor
    rows = np.empty((n_rows, factor, small.shape[1]), dtype=np.float32)
    for p, w in enumerate(weights):
        np.multiply(small[:n_rows], 1 - w, out=rows[:, p])
        rows[:, p] += w * small[1 : n_rows + 1]
    rows = rows.reshape(n_rows * factor, -1)[:height]
    out = np.empty((height, n_cols, factor), dtype=np.float32)
    for p, w in enumerate(weights):
        np.multiply(rows[:, :n_cols], 1 - w, out=out[:, :, p])
        out[:, :, p] += w * rows[:, 1 : n_cols + 1]
    return np.ascontiguousarray(out.reshape(height, n_cols * factor)[:, :width])


def _quantile_threshold(field, keep_fraction):
    """The value above which ``keep_fraction`` of ``field`` lies."""
    step = max(1, int(np.sqrt(field.size / 250_000)))
    sample = field[::step, ::step].ravel()
    return np.quantile(sample, 1.0 - keep_fraction)


def random_tissue(rng, shape, coverage):
    """An irregular piece of tissue covering about ``coverage`` of the image
    (a boolean mask; :func:`~sklearn_gastric.preprocessing.tissue_mask`
    finds tissue in an image)."""
    height, width = shape
    field = smooth_noise(rng, shape, min(shape) / 7)
    field += 0.12 * smooth_noise(rng, shape, 10)
    # A bump in the middle keeps the tissue mostly away from the borders.
    yy = (np.arange(height, dtype=np.float32) - height / 2) / (height / 2)
    xx = (np.arange(width, dtype=np.float32) - width / 2) / (width / 2)
    field -= 1.2 * (yy[:, None] ** 2 + xx[None, :] ** 2)
    return field > _quantile_threshold(field, coverage)


def jittered_grid(rng, bounds, spacing, jitter):
    """Points on a square grid of ``spacing`` with a random offset and jitter.

    ``bounds`` is ``(y0, x0, y1, x1)``, possibly beyond the image.
    """
    y0, x0, y1, x1 = bounds
    offset = rng.uniform(0, spacing, size=2)
    ys = np.arange(y0 + offset[0], y1, spacing)
    xs = np.arange(x0 + offset[1], x1, spacing)
    gy, gx = np.meshgrid(ys, xs, indexing="ij")
    gy = gy.ravel() + rng.uniform(-jitter, jitter, gy.size) * spacing
    gx = gx.ravel() + rng.uniform(-jitter, jitter, gx.size) * spacing
    return gy, gx


def inside(mask, ys, xs):
    """Whether the points fall on True pixels of ``mask`` (False outside)."""
    iy = np.floor(ys).astype(np.intp)
    ix = np.floor(xs).astype(np.intp)
    ok = (iy >= 0) & (iy < mask.shape[0]) & (ix >= 0) & (ix < mask.shape[1])
    result = np.zeros(ys.shape, dtype=bool)
    result[ok] = mask[iy[ok], ix[ok]]
    return result
