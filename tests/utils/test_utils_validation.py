"""The input checkers of ``sklearn_gastric.utils._validation``: one wording for
every list, patch and mask error."""

from pathlib import Path

import numpy as np
import pytest

from sklearn_gastric.graph import SlideGraph
from sklearn_gastric.io import Slide
from sklearn_gastric.preprocessing import TileBag
from sklearn_gastric.utils._validation import (
    check_divisible_by_depth,
    check_masks,
    check_patches,
    check_slide_graphs,
    check_slide_list,
    check_tile_bags,
)

RGB = np.zeros((16, 16, 3), np.uint8)
BAG = TileBag(Slide(RGB, name="s1"), [[0, 0]], 16)
GRAPH = SlideGraph(np.eye(2), np.zeros((2, 2)), name="g1")
BAGS = "TopKSelector: X must be a list of TileBag, one per slide (the output of Tiler)"
GRAPHS = (
    "GCN: X must be a list of SlideGraph, one per slide (the output of "
    "PearsonGraphBuilder)"
)
SLIDES = "Tiler: X must be a list of slides (paths, RGB arrays or Slide objects)"


def test_lists_are_returned_as_lists():
    assert check_slide_list(("a.svs", RGB), "Tiler")[0] == "a.svs"
    assert check_tile_bags((b for b in [BAG, BAG]), "TopKSelector") == [BAG, BAG]
    assert check_slide_graphs([GRAPH], "GCN") == [GRAPH]
    assert check_tile_bags([], "TopKSelector") == []


@pytest.mark.parametrize(
    "X, problem",
    [
        (None, "got None"),
        (BAG, "got a single TileBag: wrap it in a list"),
        ("slide.svs", "got str"),
        (np.zeros((2, 2)), "got ndarray"),
        (3, "got int"),
        ([BAG, RGB], "item 1 is a ndarray"),
        ([GRAPH], "item 0 is a SlideGraph"),
    ],
)
def test_tile_bag_list_errors(X, problem):
    with pytest.raises(TypeError) as error:
        check_tile_bags(X, "TopKSelector")
    assert str(error.value) == f"{BAGS}; {problem}."


@pytest.mark.parametrize(
    "X, problem",
    [
        (None, "got None"),
        (GRAPH, "got a single SlideGraph: wrap it in a list"),
        ([GRAPH, BAG], "item 1 is a TileBag"),
    ],
)
def test_slide_graph_list_errors(X, problem):
    with pytest.raises(TypeError) as error:
        check_slide_graphs(X, "GCN")
    assert str(error.value) == f"{GRAPHS}; {problem}."


def test_a_graph_changed_in_place_to_nan_is_refused():
    graph = SlideGraph(np.eye(2), np.zeros((2, 2)), name="broken")
    graph.features[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"^Graph 'broken': features contain NaN"):
        check_slide_graphs([graph], "GCN")


@pytest.mark.parametrize(
    "X, problem",
    [
        (None, "got None"),
        ("slide.svs", "got a single str: wrap it in a list"),
        (Path("slide.svs"), "got a single PosixPath: wrap it in a list"),
        (RGB, "got a single ndarray: wrap it in a list"),
        (Slide(RGB), "got a single Slide: wrap it in a list"),
        (BAG, "got a single TileBag: wrap it in a list"),
        (3.5, "got float"),
    ],
)
def test_slide_list_errors(X, problem):
    if isinstance(X, Path) and type(X).__name__ != "PosixPath":
        problem = problem.replace("PosixPath", type(X).__name__)
    with pytest.raises(TypeError) as error:
        check_slide_list(X, "Tiler")
    assert str(error.value) == f"{SLIDES}; {problem}."


def test_slide_list_takes_a_stack_of_images_and_bags():
    assert len(check_slide_list(np.zeros((2, 8, 8, 3), np.uint8), "Tiler")) == 2
    assert check_slide_list([BAG], "StainNormalizer") == [BAG]


def test_patches():
    owner = "PatchSegmenter.fit"
    patches = np.zeros((2, 16, 16, 3), np.uint8)
    assert check_patches(list(patches), owner, 2).shape == (2, 16, 16, 3)
    with pytest.raises(TypeError, match=rf"^{owner}: .*not TileBags.*FrozenEstimator"):
        check_patches([BAG], owner, 2)
    with pytest.raises(ValueError, match=rf"^{owner}: patches must be RGB uint8"):
        check_patches(patches.astype(np.float32), owner, 2)
    with pytest.raises(ValueError, match=rf"^{owner}: patches is empty"):
        check_patches(patches[:0], owner, 2)
    with pytest.raises(
        ValueError,
        match=rf"^{owner}: tile size 16x16 is not divisible by 2\*\*depth = 32",
    ):
        check_patches(patches, owner, 5)


def test_masks():
    owner = "PatchSegmenter.fit"
    masks = check_masks(np.ones((2, 4, 4), bool), (2, 4, 4), owner)
    assert masks.dtype == np.float32 and masks.sum() == 32
    with pytest.raises(
        ValueError, match=rf"^{owner}: masks must have shape \(2, 4, 4\)"
    ):
        check_masks(np.ones((2, 4, 5)), (2, 4, 4), owner)
    with pytest.raises(ValueError, match=rf"^{owner}: masks must be float or bool"):
        check_masks(np.full((2, 4, 4), "a"), (2, 4, 4), owner)
    with pytest.raises(ValueError, match=rf"^{owner}: masks must hold values in"):
        check_masks(np.full((2, 4, 4), np.nan), (2, 4, 4), owner)


def test_divisible_by_depth():
    check_divisible_by_depth(32, 48, 4, "Slide 's1'")
    with pytest.raises(ValueError) as error:
        check_divisible_by_depth(32, 40, 4, "Slide 's1'")
    assert str(error.value) == (
        "Slide 's1': tile size 32x40 is not divisible by 2**depth = 16."
    )
