"""The Pearson graph over a slide's top-K tiles (step 7)."""

from functools import partial
from numbers import Real

import numpy as np

from ..utils import map_slides
from ..utils._sklearn_compat import Interval, StrOptions, validate_params
from ..utils._stateless import StatelessTransformer
from ..utils._validation import N_JOBS, check_tile_bags
from ._confidence import tile_profile
from ._slide_graph import SlideGraph

__all__ = ["PearsonGraphBuilder", "pearson_adjacency"]


@validate_params(
    {
        "features": ["array-like"],
        "threshold": [Interval(Real, -1, 2, closed="both")],
        "rule": [StrOptions({"similarity", "distance"})],
    },
    prefer_skip_nested_validation=True,
)
def pearson_adjacency(features, threshold=0.5, rule="similarity"):
    """0/1 adjacency from the Pearson correlation of feature vectors.

    With ``r[i, j]`` the Pearson correlation coefficient of feature vectors
    ``i`` and ``j``, nodes ``i != j`` are connected when ``r >= threshold``
    (``rule="similarity"``) or when the Pearson distance ``1 - r >=
    threshold`` (``rule="distance"``).

    Parameters
    ----------
    features : array-like of shape (n_nodes, n_features)
        One finite feature vector per node.
    threshold : float, default=0.5
        In ``[-1, 1]`` for similarity and ``[0, 2]`` for distance (values in
        ``[-1, 2]`` are accepted; outside their range they connect all or
        nothing).
    rule : {"similarity", "distance"}, default="similarity"
        The claim's reading (similarity) or the description's literal text
        (distance).

    Returns
    -------
    adjacency : ndarray of shape (n_nodes, n_nodes), dtype uint8
        Symmetric, zero diagonal.

    Notes
    -----
    A feature vector whose entries are all equal has zero variance, so its
    correlation with anything is undefined: such a node is connected to
    nothing, under both rules. No NaN is produced.

    ``r`` is rounded to 12 decimals before the comparison, so that exact
    relations (duplicated vectors, ``r = 1``) meet a threshold equal to them
    despite floating-point rounding.

    Examples
    --------
    >>> from sklearn_gastric.graph import pearson_adjacency
    >>> features = [[1, 2, 3], [1, 2, 4], [3, 2, 1], [5, 5, 5]]
    >>> pearson_adjacency(features, threshold=0.5)
    array([[0, 1, 0, 0],
           [1, 0, 0, 0],
           [0, 0, 0, 0],
           [0, 0, 0, 0]], dtype=uint8)
    >>> pearson_adjacency(features, threshold=1.5, rule="distance")
    array([[0, 0, 1, 0],
           [0, 0, 1, 0],
           [1, 1, 0, 0],
           [0, 0, 0, 0]], dtype=uint8)
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(
            f"features must have shape (n_nodes, n_features); got {x.shape}."
        )
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or infinite values.")
    return _adjacency(x, threshold, rule)


def _adjacency(x, threshold, rule):
    """:func:`pearson_adjacency` of a checked float64 matrix."""
    r, defined = _pearson_r(x)
    connected = r >= threshold if rule == "similarity" else 1.0 - r >= threshold
    connected &= defined[:, None] & defined[None, :]
    np.fill_diagonal(connected, False)
    return connected.astype(np.uint8)


def _pearson_r(x):
    """Exactly symmetric correlation matrix (0 where undefined) and the mask."""
    n_nodes = x.shape[0]
    if x.shape[1] == 0:
        return np.zeros((n_nodes, n_nodes)), np.zeros(n_nodes, dtype=bool)
    defined = np.ptp(x, axis=1) > 0
    centered = x - x.mean(axis=1, keepdims=True)
    # Rescaling each row first keeps the norm finite for huge feature values.
    scale = np.abs(centered).max(axis=1, keepdims=True)
    unit = np.divide(centered, scale, out=np.zeros_like(centered), where=scale > 0)
    norms = np.linalg.norm(unit, axis=1, keepdims=True)
    defined &= norms[:, 0] > 0
    unit = np.divide(unit, norms, out=np.zeros_like(unit), where=defined[:, None])
    # Rounding makes exact relations compare exactly (duplicated vectors have
    # r = 1, not 1 - 2e-16), whatever the rounding of the products.
    r = np.clip(np.round(unit @ unit.T, 12), -1.0, 1.0)
    upper = np.triu(r, k=1)
    return upper + upper.T, defined


def _build_graph(bag, *, threshold, rule):
    bag.require("features")
    if bag.scores is not None:
        bag = bag.subset(bag.score_order())
    adjacency = _adjacency(bag.features.astype(np.float64), threshold, rule)
    profile = bag.profile if bag.profile is not None else tile_profile(bag.features)
    return SlideGraph(
        bag.features,
        adjacency,
        scores=bag.scores,
        coords=bag.coords,
        profile=profile,
        name=bag.name,
    )


class PearsonGraphBuilder(StatelessTransformer):
    """Turn each slide's tiles into a graph over the Pearson relation of features.

    Step 7 of the method: one node per tile, in decreasing score order, and
    ``A[i, j] = 1`` when the feature vectors of tiles ``i`` and ``j`` are
    related enough (see :func:`pearson_adjacency`). Usually follows a
    :class:`TopKSelector`.

    There is nothing to learn: :meth:`fit` only checks the parameters.

    Parameters
    ----------
    threshold : float, default=0.5
        The connection threshold ``t``.
    rule : {"similarity", "distance"}, default="similarity"
        ``"similarity"``: connected when the Pearson correlation ``r >= t``
        (the claim's reading). ``"distance"``: connected when ``1 - r >= t``
        (the description's literal text).
    n_jobs : int, default=None
        Number of slides processed in parallel through joblib; ``None``
        means 1.

    See Also
    --------
    TopKSelector : Selects the tiles that become nodes.
    GCNSlideClassifier : Classifies the graphs.
    pearson_adjacency : The adjacency rule, on a feature matrix.

    Notes
    -----
    Each bag needs ``features``. When it also has ``scores``, nodes are
    sorted by decreasing score (ties by raster position, as in
    :class:`TopKSelector`); otherwise the bag's order is kept and the graph
    has no scores. A tile whose feature vector is constant is connected to
    nothing. A slide without tiles or with NaN / infinite features is an
    error naming the slide.

    The graph's ``profile`` is the bag's (the whole slide's, set by
    :class:`TopKSelector`), or else the :func:`tile_profile` of the bag's
    own tiles.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gastric.graph import PearsonGraphBuilder
    >>> from sklearn_gastric.preprocessing import TileBag
    >>> bag = TileBag(
    ...     np.zeros((16, 48, 3), dtype=np.uint8),
    ...     coords=[[0, 0], [16, 0], [32, 0]],
    ...     tile_size=16,
    ...     features=[[3, 2, 1], [1, 2, 3], [1, 2, 4]],
    ...     scores=[1.0, 3.0, 2.0],
    ... )
    >>> (graph,) = PearsonGraphBuilder(threshold=0.5).fit_transform([bag])
    >>> graph.coords[:, 0].tolist()
    [16, 32, 0]
    >>> graph.adjacency
    array([[0, 1, 0],
           [1, 0, 0],
           [0, 0, 0]], dtype=uint8)
    """

    _parameter_constraints: dict = {
        "threshold": [Interval(Real, -1, 2, closed="both")],
        "rule": [StrOptions({"similarity", "distance"})],
        "n_jobs": N_JOBS,
    }

    def __init__(self, threshold=0.5, rule="similarity", *, n_jobs=None):
        self.threshold = threshold
        self.rule = rule
        self.n_jobs = n_jobs

    def transform(self, X):
        """Build one graph per slide.

        Parameters
        ----------
        X : list of TileBag
            One bag per slide, with ``features`` (and usually ``scores``).

        Returns
        -------
        graphs : list of SlideGraph
            One graph per input slide, in order.
        """
        bags = check_tile_bags(X, type(self).__name__)
        worker = partial(_build_graph, threshold=float(self.threshold), rule=self.rule)
        return map_slides(worker, bags, n_jobs=self.n_jobs)
