"""Real H&E tissue as stain concentrations: the ground the real-tissue
generator paints lesions on (private).

A real image is turned into optical density against its glass and unmixed
onto two stain vectors; the non-negative haematoxylin and eosin
concentrations of every pixel keep the real tissue's texture, nuclei and
stroma, and can be re-rendered with any lab's stains, whose vectors are then
known exactly. What the unmixing cannot express (light absorbed off the
plane of the two stains: JPEG artefacts, pigment, the scanner's colour
response) is dropped: the renders are exactly two-stain images.
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["TISSUE_SOURCES", "TissueSource", "load_tissue_source"]

# The stains each source is unmixed onto, haematoxylin first: the source's
# own stains by the published Macenko algorithm (Macenko et al. 2009:
# Io=240, alpha=1, beta=0.15 in every channel, plain percentiles) on its
# tissue pixels without ink; computed once and kept as constants, so that
# the ground truth does not move with this library's own estimator.
_OWN_STAINS = {
    "cmu": ((0.7006, 0.6411, 0.3133), (0.1536, 0.9104, 0.3841)),
    "he_target": ((0.5305, 0.7507, 0.3937), (0.1777, 0.8346, 0.5214)),
}
# Ruifrok & Johnston (2001): the classic published H&E vectors. Real images
# unmix onto them with many clipped (negative) concentrations: a harder
# ground truth for stain estimation, where the concentrations of real
# tissue never reach a pure stain.
RUIFROK_STAINS = ((0.65, 0.70, 0.29), (0.07, 0.99, 0.11))
# Each source's glass (RGB of bare glass): the 99th percentile of the image.
_GLASS = {"cmu": (255.0, 252.0, 251.0), "he_target": (246.0, 233.0, 239.0)}
# The sources' resolutions in microns per pixel: the CMU slide's own tag; the
# H&E target has none, and its nuclei (about 40 px across) are those of a 40x
# scan.
TISSUE_SOURCES = {"cmu": 0.499, "he_target": 0.25}


@dataclass(frozen=True)
class TissueSource:
    """Unmixed real tissue.

    Attributes
    ----------
    name : str
    concentrations : ndarray of shape (H, W, 2), float32
        Haematoxylin and eosin concentrations (optical density along each
        unit stain vector), 0 off the tissue.
    tissue : ndarray of shape (H, W), bool
        Tissue pixels (no glass, no ink).
    stains : ndarray of shape (2, 3)
        The unit vectors the image was unmixed onto.
    mpp : float
    """

    name: str
    concentrations: np.ndarray
    tissue: np.ndarray
    stains: np.ndarray
    mpp: float


def _read_rgb(name, data_home):
    from ..io import open_slide
    from ._fetch import fetch_cmu_small_region, fetch_he_target

    fetch = fetch_cmu_small_region if name == "cmu" else fetch_he_target
    slide = open_slide(fetch(data_home), mpp=TISSUE_SOURCES[name])
    return slide.read_region((0, 0), 0, slide.dimensions)


@lru_cache(maxsize=4)
def load_tissue_source(name="cmu", basis="own", data_home=None):
    """The concentrations and tissue mask of a real image (cached).

    Parameters
    ----------
    name : {"cmu", "he_target"}
    basis : {"own", "ruifrok"}
        Unmix onto the source's own stains or Ruifrok & Johnston's.
    data_home : str, default=None
        Where :func:`fetch_cmu_small_region` caches the files.
    """
    from ..preprocessing._tissue import ink_mask, tissue_mask

    if name not in TISSUE_SOURCES:
        raise ValueError(
            f"Unknown tissue source {name!r}; known: {list(TISSUE_SOURCES)}."
        )
    stains = np.array(_OWN_STAINS[name] if basis == "own" else RUIFROK_STAINS)
    stains /= np.linalg.norm(stains, axis=1, keepdims=True)
    rgb = _read_rgb(name, data_home)
    tissue = tissue_mask(rgb) & ~ink_mask(rgb)
    glass = np.asarray(_GLASS[name], dtype=np.float32)
    od = -np.log(np.maximum(rgb, 1).astype(np.float32) / glass)
    np.maximum(od, 0, out=od)
    concentrations = od.reshape(-1, 3) @ np.linalg.pinv(stains).astype(np.float32)
    concentrations = concentrations.reshape(*rgb.shape[:2], 2)
    np.maximum(concentrations, 0, out=concentrations)
    concentrations[~tissue] = 0
    for array in (concentrations, tissue):
        array.setflags(write=False)
    return TissueSource(name, concentrations, tissue, stains, TISSUE_SOURCES[name])
