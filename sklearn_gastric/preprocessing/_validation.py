"""Checks shared by the preprocessing estimators."""

import numpy as np

from ._tile_bag import TileBag


def check_slide_list(X, estimator_name):
    """``X`` as a list; a lone image or bag is a common mistake, say so."""
    if X is None:
        raise ValueError(f"{estimator_name} needs a list of slides; got None.")
    if isinstance(X, (str, bytes, TileBag)) or (
        isinstance(X, np.ndarray) and X.ndim == 3
    ):
        raise TypeError(
            f"{estimator_name} takes a list of slides (one entry per slide); got "
            f"a single {type(X).__name__}: wrap it in a list."
        )
    try:
        return list(X)
    except TypeError:
        raise TypeError(
            f"{estimator_name} takes a list of slides; got {type(X).__name__}."
        ) from None


def check_bag_list(X, estimator_name):
    """``X`` as a list of TileBags, naming the first wrong entry."""
    bags = check_slide_list(X, estimator_name)
    for i, bag in enumerate(bags):
        if not isinstance(bag, TileBag):
            raise TypeError(
                f"{estimator_name} takes TileBags (the output of Tiler); entry {i} "
                f"is a {type(bag).__name__}."
            )
    return bags
