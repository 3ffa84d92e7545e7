"""Glands of the synthetic tissue: rings of epithelium around lumens, lined
by nuclei."""

import numpy as np

from ._fields import jittered_grid, sample_at
from ._nuclei import wobble

__all__ = ["gland_nuclei", "make_glands", "paint_glands"]


def make_glands(rng, bounds, region, *, spacing, radius, lumen, keep=None):
    """Gland parameters on a jittered grid, centred on ``region`` pixels.

    ``region`` is None (keep every gland) or a mask of the image; a centre
    outside the image counts as on the nearest border pixel, so that glands
    centred just outside still show their visible part.

    Returns a dict of arrays: centre ``y``, ``x``, semi-axes ``a``, ``b``,
    ``angle`` and ``lumen`` (the lumen's radius as a fraction of the gland's).
    """
    ys, xs = jittered_grid(rng, bounds, spacing, 0.18)
    n = ys.size
    a = rng.uniform(*radius, n)
    b = a / rng.uniform(1.0, 1.5, n)
    glands = {
        "y": ys,
        "x": xs,
        "a": a,
        "b": b,
        "angle": rng.uniform(0, np.pi, n),
        "lumen": rng.uniform(*lumen, n),
        "phase": rng.uniform(0, 2 * np.pi, (n, 2)),
    }
    selected = np.ones(n, dtype=bool)
    if region is not None:
        selected = sample_at(region, ys, xs)
    if keep is not None:
        selected &= rng.random(n) < keep(ys, xs)
    return {key: value[selected] for key, value in glands.items()}


def paint_glands(label, glands):
    """Write epithelium (1) and lumen (2) of every gland into ``label``."""
    height, width = label.shape
    for i in range(glands["y"].size):
        cy, cx, a, b = (glands[k][i] for k in ("y", "x", "a", "b"))
        half = int(np.ceil(a * 1.15)) + 2
        y0, y1 = max(int(cy) - half, 0), min(int(cy) + half + 1, height)
        x0, x1 = max(int(cx) - half, 0), min(int(cx) + half + 1, width)
        if y0 >= y1 or x0 >= x1:
            continue
        dy = np.arange(y0, y1, dtype=np.float32)[:, None] - cy
        dx = np.arange(x0, x1, dtype=np.float32)[None, :] - cx
        cos, sin = np.cos(glands["angle"][i]), np.sin(glands["angle"][i])
        u = dx * cos + dy * sin
        v = dy * cos - dx * sin
        rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
        rho *= 1 + wobble(u, v, glands["phase"][i], 0.07, 0.05)
        box = label[y0:y1, x0:x1]
        box[(rho < 1) & (box == 0)] = 1
        box[rho < glands["lumen"][i]] = 2


def gland_nuclei(rng, glands, *, spacing, depth):
    """Nuclei around each gland's lumen, long axis radial.

    ``depth`` is the range of radial positions (fractions of the gland's
    radius, measured from the lumen to the outer border); a narrow range near
    1 gives one basal row, a wide range gives crowded pseudostratified nuclei.
    """
    mean_radius = 0.5 * (glands["a"] + glands["b"])
    counts = np.maximum(np.round(2 * np.pi * mean_radius / spacing), 0).astype(int)
    owner = np.repeat(np.arange(counts.size), counts)
    if owner.size == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    position = np.arange(owner.size) - np.repeat(np.cumsum(counts) - counts, counts)
    polar = 2 * np.pi * (position + rng.uniform(-0.3, 0.3, owner.size))
    polar /= counts[owner]
    polar += glands["phase"][owner, 0]
    lumen = glands["lumen"][owner]
    t = rng.uniform(*depth, owner.size)
    rho = lumen + t * (1 - lumen)
    u = glands["a"][owner] * rho * np.cos(polar)
    v = glands["b"][owner] * rho * np.sin(polar)
    angle = glands["angle"][owner]
    ys = glands["y"][owner] + u * np.sin(angle) + v * np.cos(angle)
    xs = glands["x"][owner] + u * np.cos(angle) - v * np.sin(angle)
    radial = angle + np.arctan2(v * glands["a"][owner], u * glands["b"][owner])
    return ys, xs, radial + rng.normal(0, 0.15, owner.size)
