import pickle

import networkx as nx
import numpy as np
import pytest

from sklearn_gastric.graph import SlideGraph

PATENT_A = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]])


def make_graph(**changes):
    fields = dict(
        features=np.arange(6, dtype=np.float64).reshape(3, 2),
        adjacency=PATENT_A,
        scores=[3.0, 2.0, 2.0],
        coords=[[0, 0], [512, 0], [0, 512]],
        name="s1",
    )
    fields.update(changes)
    features = fields.pop("features")
    adjacency = fields.pop("adjacency")
    return SlideGraph(features, adjacency, **fields)


def test_dtypes_and_shapes():
    graph = make_graph()
    assert graph.features.dtype == np.float32
    assert graph.adjacency.dtype == np.uint8
    assert graph.scores.dtype == np.float32
    assert graph.coords.dtype == np.int64
    assert (graph.n_nodes, graph.n_features, len(graph)) == (3, 2, 3)
    np.testing.assert_array_equal(graph.adjacency, PATENT_A)
    assert repr(graph) == "SlideGraph('s1', n_nodes=3, n_features=2, n_edges=2)"


def test_boolean_adjacency_accepted():
    graph = make_graph(adjacency=PATENT_A.astype(bool))
    assert graph.adjacency.dtype == np.uint8
    np.testing.assert_array_equal(graph.adjacency, PATENT_A)


def test_scores_and_coords_optional():
    graph = make_graph(scores=None, coords=None)
    assert graph.scores is None and graph.coords is None
    node = graph.to_networkx().nodes[0]
    assert node["score"] is None and node["x"] is None and node["y"] is None


@pytest.mark.parametrize(
    "changes, match",
    [
        (dict(adjacency=[[0, 1, 0], [0, 0, 1], [0, 1, 0]]), "'s1'.*not symmetric"),
        (dict(adjacency=[[1, 1, 0], [1, 0, 1], [0, 1, 0]]), "'s1'.*zero diagonal"),
        (dict(adjacency=[[0, 2, 0], [2, 0, 1], [0, 1, 0]]), "'s1'.*only 0 and 1"),
        (dict(adjacency=np.zeros((2, 2))), r"'s1'.*shape \(3, 3\)"),
        (dict(features=np.zeros(3)), "'s1'.*features must have shape"),
        (dict(features=np.zeros((0, 2)), adjacency=np.zeros((0, 0))), "at least one"),
        (dict(features=[[0, 1], [np.nan, 0], [0, 0]]), "'s1'.*NaN or infinite"),
        (dict(features=[[0, 1], [np.inf, 0], [0, 0]]), "'s1'.*NaN or infinite"),
        (dict(scores=[1.0, 2.0, 0.0]), "'s1'.*decreasing score order"),
        (dict(scores=[1.0, 2.0]), r"'s1'.*scores must have shape \(3,\)"),
        (dict(coords=[[0, 0], [1, 1]]), r"'s1'.*coords must have shape \(3, 2\)"),
        (dict(profile=np.zeros((2, 2))), "'s1'.*profile must be a non-empty"),
        (dict(profile=[]), "'s1'.*profile must be a non-empty"),
        (dict(profile=[0.0, np.nan]), "'s1'.*profile contains NaN"),
    ],
)
def test_invalid_graph_rejected(changes, match):
    with pytest.raises(ValueError, match=match):
        make_graph(**changes)


def test_to_networkx():
    graph = make_graph()
    nx_graph = graph.to_networkx()
    assert isinstance(nx_graph, nx.Graph)
    assert nx_graph.graph["name"] == "s1"
    assert list(nx_graph.nodes) == [0, 1, 2]
    assert sorted(nx_graph.edges) == [(0, 1), (1, 2)]
    np.testing.assert_array_equal(nx.to_numpy_array(nx_graph), PATENT_A)
    assert nx_graph.nodes[1]["score"] == 2.0
    assert (nx_graph.nodes[2]["x"], nx_graph.nodes[2]["y"]) == (0, 512)
    np.testing.assert_array_equal(nx_graph.nodes[2]["features"], [4.0, 5.0])


def test_profile_is_optional_float32_and_reaches_networkx():
    assert make_graph().profile is None
    assert make_graph().to_networkx().graph["profile"] is None
    graph = make_graph(profile=[1, 2, 3, 4])
    assert graph.profile.dtype == np.float32
    np.testing.assert_array_equal(graph.to_networkx().graph["profile"], [1, 2, 3, 4])


def test_pickle_round_trip():
    graph = make_graph(profile=[0.5, 1.5])
    restored = pickle.loads(pickle.dumps(graph))
    assert restored.name == graph.name
    for field in ("features", "adjacency", "scores", "coords", "profile"):
        np.testing.assert_array_equal(getattr(restored, field), getattr(graph, field))


def test_a_graph_pickled_before_profiles_has_none():
    graph = make_graph()
    state = graph.__dict__.copy()
    del state["profile"]
    old = SlideGraph.__new__(SlideGraph)
    old.__setstate__(state)
    assert old.profile is None
