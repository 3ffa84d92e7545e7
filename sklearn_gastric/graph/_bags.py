"""Checks shared by the estimators that read TileBags."""

import numpy as np

from ..preprocessing import TileBag


def check_tile_bags(X, estimator_name):
    """``X`` as a list of TileBag, or a TypeError that says what was given."""
    if isinstance(X, TileBag):
        raise TypeError(
            f"{estimator_name} expects a list of TileBag (one per slide); got a "
            "single TileBag. Wrap it in a list."
        )
    if isinstance(X, (str, bytes, np.ndarray)) or not hasattr(X, "__iter__"):
        raise TypeError(
            f"{estimator_name} expects a list of TileBag (one per slide); got "
            f"{type(X).__name__}."
        )
    bags = list(X)
    for i, bag in enumerate(bags):
        if not isinstance(bag, TileBag):
            raise TypeError(
                f"{estimator_name} expects a list of TileBag (one per slide); "
                f"item {i} is a {type(bag).__name__}."
            )
    return bags


def require_column(bag, column, hint="run a PatchSegmenter first"):
    """The bag's non-empty, finite ``column``, or a ValueError naming the slide."""
    if len(bag) == 0:
        raise ValueError(f"Slide {bag.name!r}: no tissue tile.")
    values = getattr(bag, column)
    if values is None:
        raise ValueError(f"Slide {bag.name!r}: the tiles have no {column!r}; {hint}.")
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise ValueError(
            f"Slide {bag.name!r}: {column!r} contains NaN or infinite values."
        )
    return values


def score_order(scores, coords):
    """Tile indices by decreasing score; ties by raster position, then index.

    Raster position is ``y`` then ``x`` of the level-0 coordinates, so the
    order of equal-score tiles does not depend on the bag's order.
    """
    index = np.arange(len(scores))
    return np.lexsort((index, coords[:, 0], coords[:, 1], -scores.astype(np.float64)))
