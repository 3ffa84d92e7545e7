"""The compartments pasted into the synthetic tissue: benign lymphoid
aggregates and the three lesion classes, each drawn in its focus' box."""

import numpy as np

from ._fields import inside, jittered_grid, smooth_noise
from ._glands import gland_nuclei, make_glands, paint_glands
from ._nuclei import (
    CARCINOMA_NUCLEI,
    HGIN_NUCLEI,
    LGIN_NUCLEI,
    LYMPHOCYTES,
    new_nucleus_canvas,
    paste_nuclei,
)

__all__ = ["LESION_RENDERERS", "paste", "render_lymphoid"]


def _blank(shape, haematoxylin, eosin):
    """Uniform stain maps of ``shape`` and an empty nucleus canvas."""
    c_h = np.full(shape, haematoxylin, dtype=np.float32)
    c_e = np.full(shape, eosin, dtype=np.float32)
    return c_h, c_e, new_nucleus_canvas(shape)


def render_lymphoid(rng, region):
    """A lymphoid aggregate: small round very dark nuclei packed densely."""
    shape = region.shape
    c_h, c_e, nuc = _blank(shape, 0.16, 0.22)
    ys, xs = jittered_grid(rng, (-8, -8, shape[0] + 8, shape[1] + 8), 9.5, 0.3)
    keep = (rng.random(ys.size) > 0.12) & inside(region, ys, xs)
    LYMPHOCYTES.stamp(rng, nuc, ys[keep], xs[keep])
    return c_h, c_e, nuc


def _render_lgin(rng, region):
    """Low-grade dysplasia: crowded glands, elongated pseudostratified nuclei,
    basophilic cytoplasm without mucin."""
    shape = region.shape
    c_h, c_e, nuc = _blank(shape, 0.12, 0.40)
    label = np.zeros(shape, dtype=np.int8)
    bounds = (-30, -30, shape[0] + 30, shape[1] + 30)
    glands = make_glands(
        rng, bounds, None, spacing=52, radius=(26, 34), lumen=(0.38, 0.5)
    )
    paint_glands(label, glands)
    epithelium, lumen = label == 1, label == 2
    c_h[epithelium], c_e[epithelium] = 0.30, 0.30
    c_h[lumen], c_e[lumen] = 0.02, 0.05
    ys, xs, angle = gland_nuclei(rng, glands, spacing=3.6, depth=(0.3, 0.8))
    LGIN_NUCLEI.stamp(rng, nuc, ys, xs, angle)
    return c_h, c_e, nuc


def _render_hgin(rng, region):
    """High-grade dysplasia: gland structure lost, enlarged dark pleomorphic
    nuclei packed densely, a few remnant slit lumens."""
    shape = region.shape
    c_h, c_e, nuc = _blank(shape, 0.32, 0.30)
    slits = smooth_noise(rng, shape, 7) > 2.0
    c_h[slits], c_e[slits] = 0.02, 0.05
    ys, xs = jittered_grid(rng, (-10, -10, shape[0] + 10, shape[1] + 10), 15, 0.4)
    keep = ~inside(slits, ys, xs)
    HGIN_NUCLEI.stamp(rng, nuc, ys[keep], xs[keep])
    return c_h, c_e, nuc


def _render_carcinoma(rng, region):
    """Invasive carcinoma: cords and clusters of atypical cells infiltrating a
    pale desmoplastic stroma."""
    shape = region.shape
    c_h = np.full(shape, 0.10, dtype=np.float32)
    c_e = 0.30 + 0.05 * smooth_noise(rng, shape, 6)
    nuc = new_nucleus_canvas(shape)
    cords = np.abs(smooth_noise(rng, shape, 14)) < 0.45
    cords |= smooth_noise(rng, shape, 9) > 1.3
    c_h[cords], c_e[cords] = 0.35, 0.28
    ys, xs = jittered_grid(rng, (0, 0, shape[0], shape[1]), 10, 0.4)
    keep = inside(cords, ys, xs)
    CARCINOMA_NUCLEI.stamp(rng, nuc, ys[keep], xs[keep])
    return c_h, c_e, nuc


LESION_RENDERERS = {
    "LGIN": _render_lgin,
    "HGIN": _render_hgin,
    "carcinoma": _render_carcinoma,
}


def paste(rng, renderer, focus, c_h, c_e, nuc, *, soft=False):
    """Render a compartment in the focus' box and paste it inside the focus;
    with ``soft``, its nuclei spill over the focus' border (lymphocytes
    around an aggregate)."""
    rows, cols, sub = focus
    local_h, local_e, local_nuc = renderer(rng, sub)
    c_h[rows, cols][sub] = local_h[sub]
    c_e[rows, cols][sub] = local_e[sub]
    paste_nuclei(nuc, local_nuc, rows, cols, sub, spill=soft)
