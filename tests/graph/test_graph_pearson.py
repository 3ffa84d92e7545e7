import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_gastric.graph import (
    PearsonGraphBuilder,
    SlideGraph,
    TopKSelector,
    pearson_adjacency,
)
from sklearn_gastric.io import Slide
from sklearn_gastric.preprocessing import TileBag

PATENT_A = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=np.uint8)

# An orthonormal basis of the zero-mean plane of R^3: the Pearson correlation of
# two vectors built on it is the cosine of the angle between them.
E1 = np.array([1.0, -1.0, 0.0]) / np.sqrt(2)
E2 = np.array([1.0, 1.0, -2.0]) / np.sqrt(6)


def at_angles(*degrees, offsets=(5.0, -3.0, 100.0), scales=(1.0, 7.0, 0.01)):
    """Feature vectors at the given angles, shifted and scaled (r ignores both)."""
    rows = []
    for angle, offset, scale in zip(np.deg2rad(degrees), offsets, scales):
        rows.append(scale * (np.cos(angle) * E1 + np.sin(angle) * E2) + offset)
    return np.array(rows)


def make_bag(features, scores=None, name="slide-p"):
    n = len(features)
    coords = np.stack([np.arange(n) * 16, np.zeros(n, dtype=int)], axis=1)
    return TileBag(
        Slide(np.zeros((16, 16 * max(n, 1), 3), dtype=np.uint8), name=name),
        coords=coords,
        tile_size=16,
        features=features,
        scores=scores,
    )


def test_patent_three_node_example_similarity():
    # Angles 0, 45, 90 degrees: r(0,1) = r(1,2) = cos 45 = 0.7071, r(0,2) = 0.
    features = at_angles(0, 45, 90)
    r = np.corrcoef(features)
    np.testing.assert_allclose(
        r[[0, 1, 0], [1, 2, 2]], [np.sqrt(0.5)] * 2 + [0.0], atol=1e-12
    )
    adjacency = pearson_adjacency(features, threshold=0.5)
    assert adjacency.dtype == np.uint8
    np.testing.assert_array_equal(adjacency, PATENT_A)
    # Between 0 and cos 45 the threshold gives the same graph; above, no edge.
    np.testing.assert_array_equal(pearson_adjacency(features, threshold=0.7), PATENT_A)
    np.testing.assert_array_equal(
        pearson_adjacency(features, threshold=0.71), np.zeros((3, 3))
    )
    np.testing.assert_array_equal(
        pearson_adjacency(features, threshold=-0.1), 1 - np.eye(3)
    )


def test_patent_three_node_example_distance():
    # Angles 0, 135, 270: r(0,1) = r(1,2) = cos 135 = -0.7071, r(0,2) = cos 270 = 0,
    # so the Pearson distances 1 - r are 1.7071, 1.7071 and 1.
    features = at_angles(0, 135, 270)
    adjacency = pearson_adjacency(features, threshold=1.5, rule="distance")
    np.testing.assert_array_equal(adjacency, PATENT_A)
    np.testing.assert_array_equal(
        pearson_adjacency(features, threshold=0.9, rule="distance"), 1 - np.eye(3)
    )
    # The similarity reading of the same vectors connects nothing at t = 0.5.
    np.testing.assert_array_equal(
        pearson_adjacency(features, threshold=0.5), np.zeros((3, 3))
    )


@pytest.mark.parametrize("rule", ["similarity", "distance"])
def test_matches_numpy_corrcoef_on_random_features(rule):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(15, 64)) * rng.random((15, 1)) + rng.random((15, 1))
    threshold = 0.1 if rule == "similarity" else 0.9
    adjacency = pearson_adjacency(features, threshold=threshold, rule=rule)
    r = np.corrcoef(features)
    expected = r >= threshold if rule == "similarity" else 1 - r >= threshold
    np.fill_diagonal(expected, False)
    np.testing.assert_array_equal(adjacency, expected)
    np.testing.assert_array_equal(adjacency, adjacency.T)
    assert not adjacency.diagonal().any()
    assert 0 < adjacency.sum() < 15 * 14  # the threshold splits the pairs


@pytest.mark.parametrize("rule", ["similarity", "distance"])
def test_zero_variance_vector_connects_to_nothing(rule):
    features = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.5], [4.0, 4.0, 4.0]])
    with np.errstate(all="raise"):
        adjacency = pearson_adjacency(features, threshold=-1.0, rule=rule)
    # At t = -1 every pair with a defined r is connected, under both rules.
    expected = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(adjacency, expected)


def test_duplicate_and_huge_vectors():
    features = np.array([[1e300, -1e300, 0.0], [1e300, -1e300, 0.0], [0, 1, 2]])
    adjacency = pearson_adjacency(features, threshold=1.0)
    np.testing.assert_array_equal(adjacency[0], [0, 1, 0])


def test_pearson_adjacency_rejects_bad_input():
    with pytest.raises(ValueError, match="NaN or infinite"):
        pearson_adjacency([[0.0, np.nan], [1.0, 2.0]])
    with pytest.raises(ValueError, match="shape"):
        pearson_adjacency([1.0, 2.0])
    with pytest.raises(InvalidParameterError, match="rule"):
        pearson_adjacency([[1.0, 2.0]], rule="spearman")


def test_builder_nodes_in_score_order_with_metadata():
    features = at_angles(0, 45, 90)
    # Tiles in the bag: node order must follow the scores 1, 3, 2.
    bag = make_bag(features[[2, 0, 1]], scores=[1.0, 3.0, 2.0])
    (graph,) = PearsonGraphBuilder(threshold=0.5).fit_transform([bag])
    assert isinstance(graph, SlideGraph) and graph.name == "slide-p"
    np.testing.assert_array_equal(graph.scores, [3.0, 2.0, 1.0])
    np.testing.assert_array_equal(graph.coords[:, 0], [16, 32, 0])
    np.testing.assert_array_equal(graph.features, features.astype(np.float32))
    np.testing.assert_array_equal(graph.adjacency, PATENT_A)
    nx_graph = graph.to_networkx()
    assert [nx_graph.nodes[i]["score"] for i in range(3)] == [3.0, 2.0, 1.0]
    assert [nx_graph.nodes[i]["x"] for i in range(3)] == [16, 32, 0]


def test_builder_after_topk_and_without_scores():
    rng = np.random.default_rng(1)
    bag = make_bag(rng.normal(size=(8, 5)), scores=rng.random(8))
    top = TopKSelector(k=4).transform([bag])
    (graph,) = PearsonGraphBuilder(threshold=0.2).transform(top)
    assert graph.n_nodes == 4
    np.testing.assert_array_equal(graph.scores, np.sort(bag.scores)[::-1][:4])
    (unscored,) = PearsonGraphBuilder().transform([bag.replace(scores=None)])
    assert unscored.scores is None
    np.testing.assert_array_equal(unscored.coords, bag.coords)


def test_graph_profile_is_the_whole_slide_not_the_top_k():
    rng = np.random.default_rng(3)
    bag = make_bag(rng.normal(size=(20, 3)), scores=rng.random(20))
    (graph,) = PearsonGraphBuilder().transform(TopKSelector(k=4).transform([bag]))
    assert graph.n_nodes == 4
    expected = np.quantile(bag.features, [0.1, 0.5, 0.9], axis=0).T.ravel()
    np.testing.assert_allclose(graph.profile, expected, rtol=1e-6)
    # Without a TopKSelector, the profile of the bag's own tiles.
    (direct,) = PearsonGraphBuilder().transform([bag.subset([0, 1, 2])])
    np.testing.assert_allclose(
        direct.profile,
        np.quantile(bag.features[:3], [0.1, 0.5, 0.9], axis=0).T.ravel(),
        rtol=1e-6,
    )


def test_builder_isolates_constant_tiles_without_nan():
    features = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [1.0, 2.0, 4.0]])
    (graph,) = PearsonGraphBuilder(threshold=0.0).transform([make_bag(features)])
    np.testing.assert_array_equal(graph.adjacency, [[0, 0, 1], [0, 0, 0], [1, 0, 0]])
    assert np.isfinite(graph.features).all()


def test_one_output_per_input():
    rng = np.random.default_rng(2)
    bags = [make_bag(rng.normal(size=(n, 4)), name=f"s{n}") for n in (1, 5, 3)]
    graphs = PearsonGraphBuilder().transform(bags)
    assert [(g.name, g.n_nodes) for g in graphs] == [("s1", 1), ("s5", 5), ("s3", 3)]
    assert graphs[0].adjacency.tolist() == [[0]]


def test_builder_errors_name_the_slide():
    builder = PearsonGraphBuilder()
    with pytest.raises(ValueError, match="'slide-p'.*'features'.*PatchSegmenter"):
        builder.transform([make_bag(np.zeros((2, 3))).replace(features=None)])
    with pytest.raises(ValueError, match="'slide-p'.*'features' contains NaN"):
        builder.transform([make_bag(np.array([[0.0, np.nan], [1.0, 2.0]]))])
    with pytest.raises(ValueError, match="'slide-p'.*'features' contains NaN"):
        builder.transform([make_bag(np.array([[0.0, np.inf], [1.0, 2.0]]))])
    with pytest.raises(ValueError, match="'slide-p'.*no tissue tile"):
        builder.transform([make_bag(np.zeros((2, 3))).subset([])])
    with pytest.raises(TypeError, match="list of TileBag"):
        builder.transform([np.zeros((3, 3))])


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(threshold=3.0), "'threshold' parameter"),
        (dict(threshold="high"), "'threshold' parameter"),
        (dict(rule="cosine"), "'rule' parameter"),
    ],
)
def test_invalid_parameters_rejected_in_fit(params, match):
    builder = PearsonGraphBuilder(**params)
    assert builder.get_params()[next(iter(params))] == next(iter(params.values()))
    with pytest.raises(InvalidParameterError, match=match):
        builder.fit([make_bag(np.zeros((2, 3)))])


@settings(max_examples=60, deadline=None)
@given(
    features=arrays(
        np.float64,
        array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=8),
        elements=st.floats(-1e6, 1e6, allow_nan=False).map(lambda v: round(v, 1)),
    ),
    threshold=st.floats(-1.0, 2.0),
    rule=st.sampled_from(["similarity", "distance"]),
)
def test_adjacency_invariants(features, threshold, rule):
    adjacency = pearson_adjacency(features, threshold=threshold, rule=rule)
    n = len(features)
    assert adjacency.dtype == np.uint8 and adjacency.shape == (n, n)
    assert set(np.unique(adjacency)) <= {0, 1}
    np.testing.assert_array_equal(adjacency, adjacency.T)
    assert not adjacency.diagonal().any()
    constant = np.ptp(features, axis=1) == 0
    assert not adjacency[constant].any()
