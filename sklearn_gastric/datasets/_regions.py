"""Regions of the synthetic tissue: lesion foci and benign mimics, as blobs
of exactly the wanted area."""

import numpy as np
from scipy import ndimage as ndi

from ._fields import smooth_noise

__all__ = ["grow_region", "pick_centre", "place_foci"]


def pick_centre(rng, allowed, radius):
    """A pixel of ``allowed`` at least ``radius`` (or as far as possible)
    from its border; ``None`` when nothing is allowed."""
    step = max(1, int(radius // 6))
    coarse = allowed[::step, ::step]
    if not coarse.any():
        ys, xs = np.nonzero(allowed)
        if ys.size == 0:
            return None
        k = rng.integers(ys.size)
        return int(ys[k]), int(xs[k])
    distance = ndi.distance_transform_edt(np.pad(coarse, 1))[1:-1, 1:-1] * step
    far = distance >= min(radius, 0.8 * distance.max())
    ys, xs = np.nonzero(far)
    k = rng.integers(ys.size)
    y = min(int(ys[k]) * step + int(rng.integers(step)), allowed.shape[0] - 1)
    x = min(int(xs[k]) * step + int(rng.integers(step)), allowed.shape[1] - 1)
    return y, x


def grow_region(rng, allowed, area, centre):
    """An irregular blob of exactly ``area`` allowed pixels around ``centre``.

    Returns ``(rows, cols, sub)``: slices of the image and the blob's mask
    inside them. Fewer pixels are returned only if the image has fewer
    allowed pixels.
    """
    height, width = allowed.shape
    area = int(area)
    radius = np.sqrt(area / np.pi)
    aspect = rng.uniform(1.0, 1.8)
    axis_a, axis_b = radius * np.sqrt(aspect), radius / np.sqrt(aspect)
    angle = rng.uniform(0, np.pi)
    cy, cx = centre
    half = int(2.2 * axis_a) + 8
    while True:
        rows = slice(max(cy - half, 0), min(cy + half + 1, height))
        cols = slice(max(cx - half, 0), min(cx + half + 1, width))
        sub_allowed = allowed[rows, cols]
        available = int(np.count_nonzero(sub_allowed))
        covers_all = (
            rows.stop - rows.start == height and cols.stop - cols.start == width
        )
        if available >= 2 * area or covers_all:
            break
        half *= 2
    yy = np.arange(rows.start, rows.stop, dtype=np.float32)[:, None] - cy
    xx = np.arange(cols.start, cols.stop, dtype=np.float32)[None, :] - cx
    u = xx * np.cos(angle) + yy * np.sin(angle)
    v = -xx * np.sin(angle) + yy * np.cos(angle)
    field = np.sqrt((u / axis_a) ** 2 + (v / axis_b) ** 2)
    field += 0.45 * smooth_noise(rng, field.shape, max(radius / 3, 4.0))
    field[~sub_allowed] = np.inf
    count = min(area, available)
    sub = np.zeros(field.shape, dtype=bool)
    if count > 0:
        chosen = np.argpartition(field.ravel(), count - 1)[:count]
        sub.ravel()[chosen] = True
    return rows, cols, sub


def place_foci(rng, allowed, total_area, n_foci):
    """``n_foci`` disjoint blobs with ``total_area`` pixels in all."""
    shares = rng.dirichlet(np.full(n_foci, 3.0))
    areas = np.floor(shares * total_area).astype(int)
    areas[0] += int(total_area) - int(areas.sum())
    allowed = allowed.copy()
    foci = []
    for area in areas:
        if area <= 0:
            continue
        centre = pick_centre(rng, allowed, np.sqrt(area / np.pi))
        if centre is None:
            break
        rows, cols, sub = grow_region(rng, allowed, area, centre)
        allowed[rows, cols] &= ~sub
        foci.append((rows, cols, sub))
    return foci
