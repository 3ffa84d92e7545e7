"""Beer-Lambert rendering of synthetic H&E gastric tissue (private engine).

Everything is drawn as two stain concentration maps, haematoxylin ``c_h`` and
eosin ``c_e``, turned into RGB by ``I0 * exp(-(c_h * h + c_e * e))``. Lengths
are pixels at 0.5 microns per pixel (a 20x scan). The slide and the patch
generators both call :func:`render`, so lesions look the same in both.

The pieces: random fields and point sets (``_fields``), lesion and mimic
regions (``_regions``), nuclei (``_nuclei``), glands (``_glands``), the
compartments pasted into regions (``_compartments``).
"""

import numpy as np
from scipy import ndimage as ndi

from ._compartments import LESION_RENDERERS, paste, render_lymphoid
from ._fields import coarse_noise, inside, sample_at, sample_coarse, smooth_noise
from ._glands import gland_nuclei, make_glands, paint_glands
from ._nuclei import (
    FIBROBLASTS,
    GLAND_NUCLEI,
    LYMPHOCYTES,
    new_nucleus_canvas,
    nucleus_view,
)

__all__ = ["EOSIN_SCALE", "beer_lambert", "render"]

# Concentrations below are relative; these scale them to the optical
# densities of real H&E (measured on the CMU slide and the H&E target: tissue
# OD medians about 0.4 / 1.0 / 0.55 in R / G / B, and 85-91 % of tissue
# pixels absorbing at least 0.15 in every channel).
EOSIN_SCALE = 2.2
# Nuclei push the eosin of the tissue around them out: the darkest are
# almost pure haematoxylin, as in real tissue; and they are the darkest
# structures (real nuclei: total optical density about 3-4).
_NUCLEUS_EOSIN_DISPLACEMENT = 0.9
_NUCLEUS_SCALE = 1.6


def render(rng, shape, tissue, lesions, mimics, stains, *, gland_density=0.75):
    """Render an RGB uint8 image.

    Parameters
    ----------
    rng : numpy.random.Generator
    shape : (int, int)
    tissue : bool ndarray of ``shape``
    lesions : list of (class name, (rows, cols, sub))
        Lesion foci; they replace the normal tissue inside ``sub``.
    mimics : list of (rows, cols, sub)
        Lymphoid aggregates (benign), pasted before the lesions.
    stains : dict from :func:`~sklearn_gastric.datasets._labs.sample_slide_stains`
    gland_density : float
        The mean fraction of the gland grid kept in normal mucosa.
    """
    c_e, fibre_weight = _stroma(rng, shape)
    # A haematoxylin counterstain that varies over the stroma, nearly absent
    # in places (where the tissue shows eosin alone).
    c_h = np.maximum(0.20 + 0.08 * smooth_noise(rng, shape, 25), 0).astype(np.float32)
    nuc = new_nucleus_canvas(shape)
    label = _normal_mucosa(rng, tissue, gland_density, c_h, c_e, nuc)
    _stromal_cells(rng, tissue & (label == 0), fibre_weight, nuc)
    for focus in mimics:
        paste(rng, render_lymphoid, focus, c_h, c_e, nuc, soft=True)
    # Lesions are drawn last, so that the pixels outside their masks are
    # exactly those of the same slide rendered without them.
    grain = rng.standard_normal(shape, dtype=np.float32)
    for name, focus in lesions:
        paste(rng, LESION_RENDERERS[name], focus, c_h, c_e, nuc)
    return beer_lambert(c_h, c_e, nucleus_view(nuc), tissue, stains, grain)


def _stroma(rng, shape):
    """Eosin of fibrous stroma, fibres along two orientations blended by a
    smooth weight; drawn at half resolution. Returns the eosin map and the
    half-resolution weight of horizontal fibres."""
    half_shape = (-(-shape[0] // 2), -(-shape[1] // 2))
    white = rng.standard_normal(half_shape, dtype=np.float32)
    along_x = ndi.gaussian_filter(white, (0.8, 3.0))
    along_y = ndi.gaussian_filter(white, (3.0, 0.8))
    weight = 1 / (1 + np.exp(-3 * smooth_noise(rng, half_shape, 60)))
    fibres = weight * along_x + (1 - weight) * along_y
    fibres /= fibres.std() + 1e-12
    half = 0.46 + 0.07 * fibres + 0.04 * smooth_noise(rng, half_shape, 40)
    c_e = np.repeat(np.repeat(half, 2, axis=0), 2, axis=1)[: shape[0], : shape[1]]
    return np.ascontiguousarray(c_e), weight


def _normal_mucosa(rng, tissue, gland_density, c_h, c_e, nuc):
    """Foveolar glands with pale mucinous cytoplasm and basal nuclei, their
    density varying over the slide (gland-rich and gland-poor areas), drawn
    into the stain maps and the nuclei; returns the gland label image
    (0 stroma, 1 epithelium, 2 lumen)."""
    height, width = shape = tissue.shape
    density_field = coarse_noise(rng, shape, 300)
    logit = np.log(gland_density / (1 - gland_density))

    def keep(ys, xs):
        local = sample_coarse(*density_field, ys, xs)
        return 1 / (1 + np.exp(-(logit + 2.0 * local)))

    glands = make_glands(
        rng,
        (-45, -45, height + 45, width + 45),
        tissue,
        spacing=84,
        radius=(27, 40),
        lumen=(0.45, 0.6),
        keep=keep,
    )
    label = np.zeros(shape, dtype=np.int8)
    paint_glands(label, glands)
    epithelium, lumen = label == 1, label == 2
    c_h[epithelium] = 0.25
    c_e[epithelium] = 0.22
    c_h[lumen] = 0.0
    c_e[lumen] = 0.04
    ys, xs, angle = gland_nuclei(rng, glands, spacing=8.5, depth=(0.72, 0.85))
    GLAND_NUCLEI.stamp(rng, nuc, ys, xs, angle)
    return label


def _stromal_cells(rng, stroma, fibre_weight, nuc):
    """Fibroblasts elongated along the local fibres, and the scattered
    lymphocytes of inflammation, denser in some places."""
    ys, xs = _scatter(rng, stroma, 1 / 1800)
    along_x = sample_at(fibre_weight, ys / 2, xs / 2) > 0.5
    FIBROBLASTS.stamp(rng, nuc, ys, xs, np.where(along_x, 0.0, np.pi / 2))
    inflamed = rng.uniform(1 / 6000, 1 / 1200)
    ys, xs = _scatter(rng, stroma, inflamed * 2.5)
    hot = sample_coarse(*coarse_noise(rng, stroma.shape, 200), ys, xs)
    keep = rng.random(ys.size) < 1 / (1 + np.exp(-2 * hot))
    LYMPHOCYTES.stamp(rng, nuc, ys[keep], xs[keep])


def _scatter(rng, region, density):
    """Uniform random points on ``region`` with ``density`` per pixel."""
    height, width = region.shape
    n = rng.poisson(density * height * width)
    ys = rng.uniform(0, height, n)
    xs = rng.uniform(0, width, n)
    keep = inside(region, ys, xs)
    return ys[keep], xs[keep]


def beer_lambert(c_h, c_e, nuclei, tissue, stains, grain):
    """The RGB image of the stain maps and nuclei (modified in place), with
    the scanner's grain (standard normal noise)."""
    c_e *= 1 - _NUCLEUS_EOSIN_DISPLACEMENT * np.minimum(nuclei, 1.0)
    c_h += _NUCLEUS_SCALE * nuclei
    c_h *= tissue
    c_e *= tissue
    c_h *= stains["strength"][0]
    c_e *= stains["strength"][1] * EOSIN_SCALE
    grain *= 1.5
    grain += 0.5  # rounds to nearest when cast to uint8
    image = np.empty((*tissue.shape, 3), dtype=np.uint8)
    h_vec, e_vec = stains["vectors"]
    for channel in range(3):
        optical_density = c_h * np.float32(h_vec[channel])
        optical_density += c_e * np.float32(e_vec[channel])
        np.exp(-optical_density, out=optical_density)
        optical_density *= np.float32(stains["I0"][channel])
        optical_density += grain
        np.clip(optical_density, 0, 255, out=optical_density)
        image[..., channel] = optical_density
    return image
