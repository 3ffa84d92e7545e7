"""Steps 2-4: stain normalisation, tiling, tissue filtering, and the TileBag."""

from ._otsu import OtsuFilter
from ._stain import StainNormalizer
from ._stain_methods import (
    StainEstimationError,
    StainTransform,
    estimate_stains,
    normalize_stains,
)
from ._tile_bag import TileBag, UnreadableTileWarning
from ._tiler import Tiler
from ._tissue import ink_mask, low_resolution_view, tissue_fraction, tissue_mask

__all__ = [
    "OtsuFilter",
    "StainEstimationError",
    "StainNormalizer",
    "StainTransform",
    "TileBag",
    "Tiler",
    "UnreadableTileWarning",
    "estimate_stains",
    "ink_mask",
    "low_resolution_view",
    "normalize_stains",
    "tissue_fraction",
    "tissue_mask",
]
