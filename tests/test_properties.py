"""Property-based tests: over random inputs, TopKSelector, the Pearson graph and
the stain maths raise only their documented errors and never output NaN."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sklearn_gastric.graph import PearsonGraphBuilder, TopKSelector, pearson_adjacency
from sklearn_gastric.preprocessing import (
    StainEstimationError,
    StainTransform,
    TileBag,
    estimate_stains,
    normalize_stains,
    tissue_mask,
)

FAST = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
_SLIDE = np.zeros((8, 8, 3), dtype=np.uint8)

# Finite floats over many magnitudes, with repeats so that constant rows and
# duplicated vectors (r exactly 1) come up often.
finite = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False, width=32),
    st.sampled_from([0.0, 1.0, -1.0, 1e-30, 1e30, -3e38, 3e38]),
)


@st.composite
def feature_matrices(draw, max_nodes=12, max_features=8):
    n = draw(st.integers(1, max_nodes))
    d = draw(st.integers(1, max_features))
    x = draw(arrays(np.float32, (n, d), elements=finite))
    if n > 1 and draw(st.booleans()):
        x[-1] = x[0]  # a duplicated vector
    return x


def _check_adjacency(adjacency, n):
    assert adjacency.dtype == np.uint8
    assert adjacency.shape == (n, n)
    assert set(np.unique(adjacency)) <= {0, 1}
    np.testing.assert_array_equal(adjacency, adjacency.T)
    assert not adjacency.diagonal().any()


@FAST
@given(
    x=feature_matrices(),
    threshold=st.floats(-1, 2),
    rule=st.sampled_from(["similarity", "distance"]),
)
def test_pearson_adjacency_is_a_valid_graph(x, threshold, rule):
    adjacency = pearson_adjacency(x, threshold=threshold, rule=rule)
    _check_adjacency(adjacency, len(x))
    # A constant vector has no correlation: it is connected to nothing.
    constant = np.ptp(x.astype(np.float64), axis=1) == 0
    assert not adjacency[constant].any()
    # Relabelling the nodes relabels the graph.
    order = np.random.default_rng(0).permutation(len(x))
    permuted = pearson_adjacency(x[order], threshold=threshold, rule=rule)
    np.testing.assert_array_equal(permuted, adjacency[np.ix_(order, order)])


@FAST
@given(x=feature_matrices(), threshold=st.floats(-1, 1))
def test_duplicated_vectors_are_always_similar(x, threshold):
    """r = 1 exactly for a duplicate, whatever the threshold in [-1, 1]."""
    doubled = np.concatenate([x[:1], x[:1]])
    adjacency = pearson_adjacency(doubled, threshold=threshold)
    assert adjacency[0, 1] == (np.ptp(x[0].astype(np.float64)) > 0)


@FAST
@given(x=feature_matrices(), bad=st.sampled_from([np.nan, np.inf, -np.inf]))
def test_pearson_adjacency_refuses_non_finite_features(x, bad):
    x = x.copy()
    x.flat[0] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        pearson_adjacency(x)


@st.composite
def scored_bags(draw):
    n = draw(st.integers(1, 15))
    # Few distinct values: ties are common.
    scores = draw(
        arrays(
            np.float32,
            n,
            elements=st.sampled_from([0.0, 0.5, 1.0, 7.0, -2.0, 1e30]),
        )
        | arrays(np.float32, n, elements=finite)
    )
    coords = draw(arrays(np.int64, (n, 2), elements=st.integers(0, 3), unique=False))
    features = draw(arrays(np.float32, (n, 5), elements=finite))
    return TileBag(_SLIDE, coords * 64, 64, scores=scores, features=features)


@FAST
@given(bag=scored_bags(), k=st.integers(1, 20))
def test_topk_keeps_the_k_highest_in_order_whatever_the_input_order(bag, k):
    (top,) = TopKSelector(k=k).fit_transform([bag])
    assert len(top) == min(k, len(bag))
    assert not np.isnan(top.scores).any()
    assert np.all(np.diff(top.scores.astype(np.float64)) <= 0)
    np.testing.assert_array_equal(top.scores, np.sort(bag.scores)[::-1][: len(top)])
    # Documented: the output does not depend on the order of the input tiles
    # (ties go by raster position; exact duplicates are indistinguishable).
    order = np.random.default_rng(1).permutation(len(bag))
    (again,) = TopKSelector(k=k).fit_transform([bag.subset(order)])
    np.testing.assert_array_equal(again.scores, top.scores)
    np.testing.assert_array_equal(again.coords, top.coords)


@FAST
@given(
    bag=scored_bags(),
    threshold=st.floats(-1, 2),
    rule=st.sampled_from(["similarity", "distance"]),
)
def test_pearson_graph_builder_gives_a_well_formed_graph(bag, threshold, rule):
    (graph,) = PearsonGraphBuilder(threshold=threshold, rule=rule).fit_transform([bag])
    assert graph.n_nodes == len(bag)
    _check_adjacency(graph.adjacency, len(bag))
    assert np.isfinite(graph.features).all()
    assert np.all(np.diff(graph.scores.astype(np.float64)) <= 0)


# -- stain maths --------------------------------------------------------------

uint8_pixels = st.integers(1, 400).flatmap(
    lambda n: arrays(np.uint8, (n, 3), elements=st.integers(0, 255))
)


def _beer_lambert(draw, n):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    stains = rng.random((2, 3)) + 0.01
    stains /= np.linalg.norm(stains, axis=1, keepdims=True)
    concentrations = rng.gamma(draw(st.floats(0.1, 3.0)), 0.5, size=(n, 2))
    od = concentrations @ stains
    return np.clip(240 * np.exp(-od), 0, 255).astype(np.uint8)


@st.composite
def stained_pixels(draw):
    """Beer-Lambert pixels of two random stains, or plain random pixels."""
    if draw(st.booleans()):
        return draw(uint8_pixels)
    return _beer_lambert(draw, draw(st.integers(1, 400)))


@st.composite
def stained_images(draw):
    """Beer-Lambert images (estimation usually succeeds), or random ones."""
    height, width = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    if draw(st.booleans()):
        return draw(arrays(np.uint8, (height, width, 3)))
    return _beer_lambert(draw, height * width).reshape(height, width, 3)


def _check_params(params, method):
    for value in params.values():
        assert np.isfinite(value).all()
    if method == "reinhard":
        assert np.all(params["std"] > 0)
    else:
        stains = params["stains"]
        assert stains.shape == (2, 3)
        np.testing.assert_allclose(np.linalg.norm(stains, axis=1), 1.0)
        assert np.all(stains >= 0)
        assert np.all(params["max_concentrations"] > 0)


@FAST
@given(pixels=stained_pixels(), method=st.sampled_from(["macenko", "reinhard"]))
def test_estimate_stains_succeeds_finite_or_says_why(pixels, method):
    try:
        params = estimate_stains(pixels, method)
    except StainEstimationError as exc:
        assert str(exc)
        return
    _check_params(params, method)


@settings(max_examples=10, deadline=None)
@given(pixels=stained_pixels(), seed=st.integers(0, 100))
def test_vahadane_estimate_succeeds_finite_or_says_why(pixels, seed):
    try:
        params = estimate_stains(pixels, "vahadane", random_state=seed)
    except StainEstimationError as exc:
        assert str(exc)
        return
    _check_params(params, "vahadane")


@st.composite
def stain_params(draw, method):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if method == "reinhard":
        return {
            "mean": rng.uniform([0, -50, -50], [100, 50, 50]),
            "std": rng.uniform(1e-3, 40, 3),
        }
    stains = rng.random((2, 3)) + 1e-3
    stains /= np.linalg.norm(stains, axis=1, keepdims=True)
    return {
        "stains": stains,
        "max_concentrations": rng.uniform(1e-3, 5, 2),
    }


images = st.tuples(st.integers(1, 12), st.integers(1, 12)).flatmap(
    lambda shape: arrays(np.uint8, (*shape, 3), elements=st.integers(0, 255))
)


@FAST
@given(data=st.data(), image=images, method=st.sampled_from(["macenko", "reinhard"]))
def test_stain_transform_maps_any_pixels_to_rgb_and_keeps_glass(data, image, method):
    source = data.draw(stain_params(method))
    target = data.draw(stain_params(method))
    out = StainTransform(method, source, target)(image)
    assert out.dtype == np.uint8 and out.shape == image.shape
    # Glass stays glass: a pixel at or above the background intensity (240)
    # in every channel has zero optical density and is left as it was.
    glass = np.all(image >= 240, axis=-1)
    np.testing.assert_array_equal(out[glass], image[glass])


@FAST
@given(
    image=stained_images(),
    target=stained_images(),
    method=st.sampled_from(["macenko", "reinhard"]),
)
def test_normalize_stains_raises_only_the_documented_error(image, target, method):
    try:
        out = normalize_stains(image, target, method)
    except StainEstimationError:
        return
    assert out.dtype == np.uint8 and out.shape == image.shape


@FAST
@given(image=images, remove_pen=st.booleans())
def test_tissue_mask_of_any_image(image, remove_pen):
    mask = tissue_mask(image, remove_pen=remove_pen)
    assert mask.dtype == bool and mask.shape == image.shape[:2]
    # Black pixels are never tissue.
    assert not mask[image.max(axis=-1) < 40].any()
