"""Steps 2-4: stain normalisation, tiling, tissue filtering, and the TileBag."""

from ._tile_bag import TileBag

__all__ = ["TileBag"]
