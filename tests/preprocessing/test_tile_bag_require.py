"""TileBag.require and TileBag.score_order: the one check of a per-tile column
and the one order of tiles by score."""

import numpy as np
import pytest

from sklearn_gastric.io import Slide
from sklearn_gastric.preprocessing import TileBag


def make_bag(n=3, name="s1", **columns):
    slide = Slide(np.zeros((32, 64, 3), np.uint8), name=name)
    coords = [[16 * (i % 4), 16 * (i // 4)] for i in range(n)]
    return TileBag(slide, coords, 16, **columns)


def test_require_returns_the_column():
    bag = make_bag(features=np.arange(6).reshape(3, 2))
    np.testing.assert_array_equal(bag.require("features"), [[0, 1], [2, 3], [4, 5]])
    assert bag.require("features") is bag.features


@pytest.mark.parametrize(
    "column", ["tissue_fraction", "features", "scores", "patch_proba", "prob_maps"]
)
def test_a_missing_column_names_the_slide_and_what_to_do(column):
    with pytest.raises(ValueError) as error:
        make_bag().require(column)
    assert str(error.value) == (
        f"Slide 's1': the tiles have no {column!r}; run a PatchSegmenter first."
    )
    with pytest.raises(ValueError, match=rf"no {column!r}; pass k=None\.$"):
        make_bag().require(column, hint="pass k=None")


def test_an_empty_bag_is_no_tissue_tile_unless_allowed():
    bag = make_bag(scores=[1.0, 2.0, 3.0]).subset([])
    with pytest.raises(ValueError, match=r"^Slide 's1': no tissue tile\.$"):
        bag.require("scores")
    assert bag.require("scores", allow_empty=True).shape == (0,)


@pytest.mark.parametrize(
    "column, values, shape",
    [
        ("features", np.zeros(3), "(n_tiles, n_features)"),
        ("scores", np.zeros((3, 2)), "(n_tiles,)"),
        ("patch_proba", np.zeros(3), "(n_tiles, n_classes)"),
        ("prob_maps", np.zeros((3, 4)), "(n_tiles, height, width)"),
    ],
)
def test_a_column_of_the_wrong_shape_is_refused(column, values, shape):
    with pytest.raises(ValueError) as error:
        make_bag(**{column: values}).require(column)
    assert str(error.value) == (
        f"Slide 's1': {column!r} must have shape {shape}; got {values.shape}."
    )


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused(bad):
    with pytest.raises(ValueError, match=r"^Slide 's1': 'scores' contains NaN or inf"):
        make_bag(scores=[1.0, bad, 2.0]).require("scores")


def test_integer_maps_are_not_checked_for_nan():
    maps = np.ones((3, 2, 2), np.uint8)
    assert make_bag(prob_maps=maps).require("prob_maps").dtype == np.uint8


def test_an_unknown_column_is_a_clear_error():
    with pytest.raises(ValueError, match="TileBag has no column 'score'"):
        make_bag().require("score")


def test_score_order_is_by_decreasing_score_then_raster_position():
    # Coordinates (x, y): 0 (0, 0), 1 (16, 0), 2 (32, 0), 3 (48, 0), 4 (0, 16).
    bag = make_bag(5, scores=[1.0, 2.0, 2.0, 0.5, 2.0])
    assert bag.score_order().tolist() == [1, 2, 4, 0, 3]
    # The same tiles in another order give the same tiles in the same order.
    shuffled = bag.subset([4, 3, 2, 1, 0])
    np.testing.assert_array_equal(
        shuffled.coords[shuffled.score_order()], bag.coords[bag.score_order()]
    )


def test_score_order_breaks_ties_on_y_before_x():
    slide = Slide(np.zeros((64, 64, 3), np.uint8), name="s2")
    bag = TileBag(slide, [[32, 0], [0, 32], [16, 0]], 16, scores=[1.0, 1.0, 1.0])
    assert bag.score_order().tolist() == [2, 0, 1]


def test_score_order_needs_scores():
    with pytest.raises(ValueError, match="'s1': the tiles have no 'scores'"):
        make_bag().score_order()


def test_the_profile_survives_subset_replace_and_pickling():
    import pickle

    bag = make_bag(n=4, scores=[1.0, 2.0, 3.0, 4.0], profile=[1, 2])
    assert bag.profile.dtype == np.float32
    for kept in (
        bag.subset([3]),
        bag.replace(scores=None),
        pickle.loads(pickle.dumps(bag)),
    ):
        np.testing.assert_array_equal(kept.profile, [1.0, 2.0])
    state = bag.__dict__.copy()
    del state["profile"]
    old = TileBag.__new__(TileBag)
    old.__setstate__(state)
    assert old.profile is None


@pytest.mark.parametrize(
    "profile, match",
    [
        (np.zeros((2, 2)), r"'s1': profile must be a non-empty numeric vector"),
        ([], r"'s1': profile must be a non-empty numeric vector"),
        ([1.0, np.inf], r"'s1': profile contains NaN or infinite values"),
    ],
)
def test_a_bad_profile_names_the_slide(profile, match):
    with pytest.raises(ValueError, match=match):
        make_bag(profile=profile)
