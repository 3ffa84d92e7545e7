"""Value equality of what the pipeline steps return: Slides, TileBags, SlideGraphs."""

import numpy as np

from sklearn_gastric import Slide, SlideGraph, TileBag

BAG_COLUMNS = ("tissue_fraction", "features", "scores", "patch_proba", "prob_maps")
GRAPH_ARRAYS = ("features", "adjacency", "scores", "coords")


def assert_slides_equal(left, right):
    """Same name, size and pixels (after any lazy pixel transform)."""
    assert left.name == right.name
    assert left.dimensions == right.dimensions
    np.testing.assert_array_equal(
        left.read_region((0, 0), 0, left.dimensions),
        right.read_region((0, 0), 0, right.dimensions),
        err_msg=left.name,
    )


def assert_bags_equal(left, right, *, pixels=False):
    """Same tiles and the same values in every column, or the same missing ones.

    With ``pixels``, the slides behind the bags must read the same too.
    """
    assert left.name == right.name
    assert (left.tile_size, left.level) == (right.tile_size, right.level)
    np.testing.assert_array_equal(left.coords, right.coords, err_msg=left.name)
    for column in BAG_COLUMNS:
        first, second = getattr(left, column), getattr(right, column)
        assert (first is None) == (second is None), f"{left.name}: {column}"
        if first is not None:
            np.testing.assert_array_equal(first, second, err_msg=column)
    if pixels:
        assert_slides_equal(left.slide, right.slide)


def assert_graphs_equal(left, right):
    """Same name and the same features, adjacency, scores and coordinates."""
    assert left.name == right.name
    for name in GRAPH_ARRAYS:
        np.testing.assert_array_equal(
            getattr(left, name), getattr(right, name), err_msg=name
        )


def assert_outputs_equal(left, right):
    """Two lists of step outputs, item by item and by value."""
    assert len(left) == len(right)
    for first, second in zip(left, right):
        assert type(first) is type(second)
        if isinstance(first, Slide):
            assert_slides_equal(first, second)
        elif isinstance(first, TileBag):
            assert_bags_equal(first, second, pixels=True)
        elif isinstance(first, SlideGraph):
            assert_graphs_equal(first, second)
        else:
            np.testing.assert_array_equal(first, second)
