"""SlideGraph: the top-K tiles of one slide as a graph."""

import numpy as np

from ..utils._validation import check_profile

__all__ = ["SlideGraph"]


class SlideGraph:
    """The graph of one slide: node features, a 0/1 adjacency, and where nodes are.

    Nodes are tiles, ordered by decreasing lesion score. Everything is checked
    when the graph is built, so a graph that exists is well formed.

    Parameters
    ----------
    features : array-like of shape (n_nodes, n_features)
        One finite feature vector per node (stored as float32).
    adjacency : array-like of shape (n_nodes, n_nodes)
        Symmetric matrix of 0 and 1 with a zero diagonal (stored as uint8).
    scores : array-like of shape (n_nodes,), default=None
        The nodes' lesion scores, non-increasing (stored as float32).
    coords : array-like of shape (n_nodes, 2), default=None
        Level-0 ``(x, y)`` of each node's tile (stored as int64).
    profile : array-like of shape (n_profile,), default=None
        What the whole slide looks like, not only its nodes: the
        :func:`tile_profile` of all its tissue tiles (stored as float32).
        :class:`GCNSlideClassifier` uses it in its out-of-distribution score.
    name : str, default="graph"
        The slide's name, used in messages.

    Attributes
    ----------
    n_nodes : int
        Number of nodes.
    n_features : int
        Length of a node's feature vector.

    See Also
    --------
    PearsonGraphBuilder : Builds SlideGraphs from TileBags.
    pearson_adjacency : The adjacency rule.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gastric.graph import SlideGraph
    >>> graph = SlideGraph(
    ...     features=np.eye(3),
    ...     adjacency=[[0, 1, 0], [1, 0, 1], [0, 1, 0]],
    ...     scores=[3.0, 2.0, 1.0],
    ...     coords=[[0, 0], [512, 0], [0, 512]],
    ...     name="slide-1",
    ... )
    >>> graph
    SlideGraph('slide-1', n_nodes=3, n_features=3, n_edges=2)
    >>> nx_graph = graph.to_networkx()
    >>> sorted(nx_graph.edges()), nx_graph.nodes[1]["x"]
    ([(0, 1), (1, 2)], 512)
    """

    def __init__(
        self,
        features,
        adjacency,
        *,
        scores=None,
        coords=None,
        profile=None,
        name="graph",
    ):
        self.name = str(name)
        features = np.asarray(features)
        if features.ndim != 2:
            raise ValueError(
                f"Graph {self.name!r}: features must have shape (n_nodes, "
                f"n_features); got {features.shape}."
            )
        if features.dtype.kind not in "biuf":
            raise ValueError(
                f"Graph {self.name!r}: features must be numeric; got dtype "
                f"{features.dtype}."
            )
        features = features.astype(np.float32, copy=False)
        n_nodes = features.shape[0]
        if n_nodes == 0:
            raise ValueError(f"Graph {self.name!r}: a graph needs at least one node.")
        if not np.isfinite(features).all():
            raise ValueError(
                f"Graph {self.name!r}: features contain NaN or infinite values."
            )
        self.features = features
        self.adjacency = self._check_adjacency(adjacency, n_nodes)
        self.scores = self._check_scores(scores, n_nodes)
        self.coords = self._check_coords(coords, n_nodes)
        self.profile = check_profile(profile, f"Graph {self.name!r}")

    def __setstate__(self, state):
        # Graphs pickled before profiles existed have none.
        state.setdefault("profile", None)
        self.__dict__.update(state)

    def _check_adjacency(self, adjacency, n_nodes):
        adjacency = np.asarray(adjacency)
        if adjacency.shape != (n_nodes, n_nodes):
            raise ValueError(
                f"Graph {self.name!r}: adjacency must have shape "
                f"({n_nodes}, {n_nodes}) for {n_nodes} nodes; got {adjacency.shape}."
            )
        if adjacency.dtype.kind not in "biuf" or not np.isin(adjacency, (0, 1)).all():
            raise ValueError(
                f"Graph {self.name!r}: adjacency must contain only 0 and 1."
            )
        adjacency = adjacency.astype(np.uint8)
        if not np.array_equal(adjacency, adjacency.T):
            raise ValueError(f"Graph {self.name!r}: adjacency is not symmetric.")
        if adjacency.diagonal().any():
            raise ValueError(
                f"Graph {self.name!r}: adjacency must have a zero diagonal "
                "(no self-loops)."
            )
        return adjacency

    def _check_scores(self, scores, n_nodes):
        if scores is None:
            return None
        scores = np.asarray(scores, dtype=np.float32)
        if scores.shape != (n_nodes,):
            raise ValueError(
                f"Graph {self.name!r}: scores must have shape ({n_nodes},); "
                f"got {scores.shape}."
            )
        if np.isnan(scores).any():
            raise ValueError(f"Graph {self.name!r}: scores contain NaN.")
        if (np.diff(scores) > 0).any():
            raise ValueError(
                f"Graph {self.name!r}: nodes must be in decreasing score order."
            )
        return scores

    def _check_coords(self, coords, n_nodes):
        if coords is None:
            return None
        coords = np.asarray(coords)
        if coords.shape != (n_nodes, 2):
            raise ValueError(
                f"Graph {self.name!r}: coords must have shape ({n_nodes}, 2); "
                f"got {coords.shape}."
            )
        return coords.astype(np.int64, copy=False)

    @property
    def n_nodes(self):
        return self.features.shape[0]

    @property
    def n_features(self):
        return self.features.shape[1]

    def __len__(self):
        return self.n_nodes

    def __repr__(self):
        n_edges = int(self.adjacency.sum()) // 2
        return (
            f"SlideGraph({self.name!r}, n_nodes={self.n_nodes}, "
            f"n_features={self.n_features}, n_edges={n_edges})"
        )

    def to_networkx(self):
        """The graph as a :class:`networkx.Graph`.

        Nodes are ``0 .. n_nodes - 1`` in score order, with the attributes
        ``features`` (the node's feature vector), ``score`` (None when the
        graph has no scores) and ``x``, ``y`` (None when it has no coords).
        The graph attributes ``name`` and ``profile`` are the slide's name
        and profile (None when it has none).

        Returns
        -------
        graph : networkx.Graph
        """
        import networkx as nx

        graph = nx.Graph(name=self.name, profile=self.profile)
        for i in range(self.n_nodes):
            graph.add_node(
                i,
                features=self.features[i],
                score=None if self.scores is None else float(self.scores[i]),
                x=None if self.coords is None else int(self.coords[i, 0]),
                y=None if self.coords is None else int(self.coords[i, 1]),
            )
        rows, cols = np.nonzero(np.triu(self.adjacency, k=1))
        graph.add_edges_from(zip(rows.tolist(), cols.tolist()))
        return graph
