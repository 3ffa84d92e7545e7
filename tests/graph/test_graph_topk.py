import numpy as np
import pytest
from joblib import parallel_config
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_gastric.graph import TopKSelector
from sklearn_gastric.io import Slide
from sklearn_gastric.preprocessing import TileBag


def make_bag(scores, coords=None, name="slide-a", features=True):
    scores = np.asarray(scores, dtype=np.float32)
    n = len(scores)
    if coords is None:
        coords = np.stack([np.arange(n) * 16, np.zeros(n, dtype=int)], axis=1)
    return TileBag(
        Slide(np.zeros((64, 64, 3), dtype=np.uint8), name=name),
        coords=coords,
        tile_size=16,
        scores=scores,
        features=np.arange(n * 2, dtype=np.float32).reshape(n, 2) if features else None,
    )


def test_top_k_in_descending_order():
    bag = make_bag([0.5, 3.0, 1.0, 2.0, 0.0])
    (top,) = TopKSelector(k=3).fit_transform([bag])
    np.testing.assert_array_equal(top.scores, [3.0, 2.0, 1.0])
    np.testing.assert_array_equal(top.coords[:, 0], [16, 48, 32])
    # The other columns follow their tiles.
    np.testing.assert_array_equal(top.features, bag.features[[1, 3, 2]])


def test_the_top_k_keep_the_profile_of_every_tile():
    bag = make_bag([0.5, 3.0, 1.0, 2.0, 0.0])
    (top,) = TopKSelector(k=2).fit_transform([bag])
    # Features 2i, 2i + 1 for tiles i = 0..4: percentiles 10, 50 and 90 of
    # 0, 2, 4, 6, 8 are 0.8, 4 and 7.2; of 1, 3, 5, 7, 9, 1.8, 5 and 8.2.
    np.testing.assert_allclose(top.profile, [0.8, 4.0, 7.2, 1.8, 5.0, 8.2], rtol=1e-6)
    # A second selection keeps the whole slide's profile, not its own.
    (again,) = TopKSelector(k=1).fit_transform([top])
    np.testing.assert_array_equal(again.profile, top.profile)
    (plain,) = TopKSelector(k=2).fit_transform([make_bag([1.0, 2.0], features=False)])
    assert plain.profile is None


def test_ties_broken_by_raster_position_whatever_the_input_order():
    coords = np.array([[32, 16], [0, 16], [48, 0], [16, 0]])
    bag = make_bag([1.0, 1.0, 1.0, 2.0], coords=coords)
    (top,) = TopKSelector(k=4).transform([bag])
    # Highest first, then the tied tiles by y, then x.
    np.testing.assert_array_equal(top.coords, [[16, 0], [48, 0], [0, 16], [32, 16]])
    permuted = bag.subset([2, 0, 3, 1])
    (top_permuted,) = TopKSelector(k=4).transform([permuted])
    np.testing.assert_array_equal(top_permuted.coords, top.coords)


def test_fewer_tiles_than_k_keeps_them_all():
    (top,) = TopKSelector(k=10).transform([make_bag([1.0, 5.0])])
    np.testing.assert_array_equal(top.scores, [5.0, 1.0])


def test_one_output_per_input_in_order():
    bags = [make_bag(np.arange(n, dtype=float), name=f"s{n}") for n in (3, 1, 7)]
    out = TopKSelector(k=2).transform(bags)
    assert [b.name for b in out] == ["s3", "s1", "s7"]
    assert [len(b) for b in out] == [2, 1, 2]
    assert TopKSelector().transform([]) == []


def test_parallel_backend_gives_same_result():
    bags = [
        make_bag(np.random.default_rng(i).random(6), name=f"s{i}") for i in range(4)
    ]
    expected = TopKSelector(k=3).transform(bags)
    with parallel_config(backend="threading"):
        parallel = TopKSelector(k=3, n_jobs=2).transform(bags)
    for a, b in zip(expected, parallel):
        np.testing.assert_array_equal(a.coords, b.coords)


def test_empty_bag_is_an_error_naming_the_slide():
    bag = make_bag([1.0]).subset([])
    with pytest.raises(ValueError, match="'slide-a'.*no tissue tile"):
        TopKSelector().transform([bag])


def test_missing_scores_error_names_the_slide():
    bag = make_bag([1.0, 2.0]).replace(scores=None)
    with pytest.raises(ValueError, match="'slide-a'.*run a PatchSegmenter first"):
        TopKSelector().transform([bag])


def test_nan_scores_rejected():
    bag = make_bag([1.0, np.nan])
    with pytest.raises(ValueError, match="'slide-a'.*'scores' contains NaN"):
        TopKSelector().transform([bag])


@pytest.mark.parametrize("X", [None, "slide.svs", np.zeros((2, 2))])
def test_non_list_input_rejected(X):
    with pytest.raises(TypeError, match="TopKSelector: X must be a list of TileBag"):
        TopKSelector().transform(X)


def test_single_bag_rejected_with_a_hint():
    with pytest.raises(TypeError, match="wrap it in a list"):
        TopKSelector().transform(make_bag([1.0]))


@pytest.mark.parametrize("k", [0, -1, 2.5, "3"])
def test_invalid_k_rejected(k):
    with pytest.raises(InvalidParameterError, match="'k' parameter"):
        TopKSelector(k=k).fit([make_bag([1.0])])
    with pytest.raises(InvalidParameterError, match="'k' parameter"):
        TopKSelector(k=k).fit_transform([make_bag([1.0])])
