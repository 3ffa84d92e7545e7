"""How far to trust a slide classifier: its out-of-distribution score and
temperature scaling, both learnt from out-of-fold training slides."""

import math

import numpy as np

from ..utils._sklearn_compat import validate_params

__all__ = [
    "OOD_REPEATS",
    "OOD_WARNING",
    "OODDensity",
    "PROFILE_QUANTILES",
    "check_profiles",
    "conformal_threshold",
    "fit_density",
    "fit_temperature",
    "out_of_fold_splits",
    "slide_distance",
    "squared_distances",
    "tile_profile",
    "training_profiles",
]

# Every place that shows a flagged slide (figure title, command line,
# report) says it in these words.
OOD_WARNING = (
    "OUT OF DISTRIBUTION: unlike the training slides; do not trust the class "
    "or its probability"
)

PROFILE_QUANTILES = (0.1, 0.5, 0.9)


@validate_params({"features": ["array-like"]}, prefer_skip_nested_validation=True)
def tile_profile(features):
    """What a whole slide looks like: the 10th, 50th and 90th percentiles of
    each feature over its tiles.

    The top-K tiles of a slide show its most lesion-like tissue, not the
    rest: a slide of stroma alone, without a gland, has top-K tiles like
    those of a negative training slide. Its profile differs, as no tile
    has the features of a gland. The median sees the bulk of the tissue
    where the outer percentiles see its edges: a piece of stroma's border
    tiles look like those of the cohort's slides, its inner tiles do not.
    (Three percentiles, not more: each added dimension asks more of the
    hundred or so training slides its density is estimated from.)

    Parameters
    ----------
    features : array-like of shape (n_tiles, n_features)
        The features of the slide's tissue tiles.

    Returns
    -------
    profile : ndarray of shape (3 * n_features,), dtype float32
        The three percentiles of the first feature, then of the second, and
        so on.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gastric.graph import tile_profile
    >>> features = np.arange(22, dtype=float).reshape(11, 2)
    >>> tile_profile(features).tolist()
    [2.0, 10.0, 18.0, 3.0, 11.0, 19.0]
    """
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or not features.size:
        raise ValueError(
            "tile_profile needs features of shape (n_tiles, n_features) with "
            f"at least one tile; got shape {features.shape}."
        )
    quantiles = np.quantile(features, PROFILE_QUANTILES, axis=0)
    return quantiles.T.reshape(-1).astype(np.float32)


def out_of_fold_splits(y, n_splits, seed):
    """Stratified folds over the training slides (unstratified when a class
    has fewer slides than folds); an empty list when there are too few slides
    to hold any out."""
    from sklearn.model_selection import KFold, StratifiedKFold

    y = np.asarray(y)
    smallest = np.bincount(y).min() if len(y) else 0
    if smallest >= n_splits:
        splitter = StratifiedKFold(n_splits, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(len(y)), y))
    if len(y) >= 2 * n_splits:
        splitter = KFold(n_splits, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(len(y))))
    return []


def fit_density(points):
    """Mean and precision matrix of standardised points: node features, or
    slide profiles (Ledoit-Wolf shrinkage, so that a few hundred nodes in
    tens of dimensions, or a hundred profiles in a hundred, give a
    well-conditioned estimate)."""
    from sklearn.covariance import LedoitWolf

    estimate = LedoitWolf().fit(points)
    return estimate.location_, estimate.precision_


def squared_distances(points, location, precision):
    """The squared Mahalanobis distance of each point to a density, per
    dimension (about 1 for points drawn from it)."""
    centred = np.atleast_2d(np.asarray(points, dtype=np.float64)) - location
    squared = np.einsum("ij,jk,ik->i", centred, precision, centred)
    return squared / centred.shape[1]


def slide_distance(nodes, location, precision):
    """A slide's distance to the training nodes: the median over its nodes
    of their :func:`squared_distances`.

    The median, not the mean or the maximum: a training slide's own top-K
    often holds one or two atypical tiles (a mimic, a fold), and the
    threshold must not be set by them.
    """
    return float(np.median(squared_distances(nodes, location, precision)))


# Splittings of the training slides whose out-of-fold distances are
# combined (by their median) into the scores the threshold is learnt from.
OOD_REPEATS = 10


def training_profiles(graphs):
    """The training graphs' profiles as a matrix; None when no graph has one
    (all or none must, of one length)."""
    first = next((g.profile for g in graphs if g.profile is not None), None)
    if first is None:
        return None
    return check_profiles(graphs, len(first), "another training graph has")


class OODDensity:
    """Where the training slides lie: the density of their standardised
    nodes and, optionally, that of their standardised profiles; ``scale``
    divides each distance."""

    def __init__(
        self,
        node_density,
        profile_standardisation=(None, None),
        profile_density=(None, None),
    ):
        self.node_location, self.node_precision = node_density
        self.profile_mean, self.profile_scale = profile_standardisation
        self.profile_location, self.profile_precision = profile_density
        self.scale = np.ones(1 if self.profile_location is None else 2)

    @classmethod
    def fit(cls, nodes, profiles=None):
        node_density = fit_density(np.concatenate(nodes))
        if profiles is None:
            return cls(node_density)
        mean, scale = profiles.mean(axis=0), profiles.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        profile_density = fit_density((profiles - mean) / scale)
        return cls(node_density, (mean, scale), profile_density)

    def distances(self, nodes, profiles=None):
        """One row per slide: its node distance, then its profile distance."""
        node = [
            slide_distance(n, self.node_location, self.node_precision) for n in nodes
        ]
        if self.profile_location is None:
            return np.array(node)[:, None]
        profile = squared_distances(
            (profiles - self.profile_mean) / self.profile_scale,
            self.profile_location,
            self.profile_precision,
        )
        return np.column_stack([node, profile])

    _FIELDS = (
        "node_location",
        "node_precision",
        "profile_mean",
        "profile_scale",
        "profile_location",
        "profile_precision",
        "scale",
    )

    def to_arrays(self):
        return {
            name: getattr(self, name)
            for name in self._FIELDS
            if getattr(self, name) is not None
        }

    @classmethod
    def from_fitted(cls, clf):
        arrays = getattr(clf, "ood_density_", None)
        if arrays is None:
            # Models saved before profiles: a node density, unscaled.
            return cls((clf.ood_location_, clf.ood_precision_))
        density = cls((arrays["node_location"], arrays["node_precision"]))
        for name in cls._FIELDS[2:]:
            setattr(density, name, arrays.get(name))
        return density


def check_profiles(graphs, length, reference):
    """The graphs' profiles as a float64 matrix, or the error naming the
    first graph without one of ``length``; ``reference`` says where that
    length comes from."""
    for graph in graphs:
        if graph.profile is None:
            raise ValueError(
                f"Graph {graph.name!r} has no profile; {reference} one of "
                f"length {length} (graphs from PearsonGraphBuilder have them)."
            )
        if len(graph.profile) != length:
            raise ValueError(
                f"Graph {graph.name!r} has a profile of length "
                f"{len(graph.profile)}; {reference} {length}."
            )
    return np.stack([g.profile for g in graphs]).astype(np.float64)


def conformal_threshold(scores, false_alarm_rate):
    """The split-conformal quantile of out-of-fold in-distribution scores:
    a new in-distribution slide exceeds it with probability at most
    ``false_alarm_rate`` (when the slides are exchangeable)."""
    scores = np.sort(np.asarray(scores, dtype=np.float64))
    n = len(scores)
    rank = math.ceil((n + 1) * (1 - false_alarm_rate))
    if rank > n:
        # Too few slides for the rate asked: the largest score seen, which
        # holds at most 1 / (n + 1) false alarms in expectation.
        return float(scores[-1])
    return float(scores[rank - 1])


def fit_temperature(logits, y):
    """The temperature ``T`` minimising the negative log-likelihood of
    ``softmax(logits / T)`` on out-of-fold logits (Guo et al., 2017).

    Searched over ``T`` in [0.5, 20] (bounded Brent on ``log T``): folds
    the network separates perfectly would send ``T`` to 0 and every
    probability to exactly 0 or 1, a certainty a few dozen slides never
    justify; sharpening is capped at a factor 2.
    """
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    logits = np.asarray(logits, dtype=np.float64)
    rows = np.arange(len(y))

    def nll(log_t):
        return -log_softmax(logits / math.exp(log_t), axis=1)[rows, y].mean()

    result = minimize_scalar(
        nll, bounds=(math.log(0.5), math.log(20.0)), method="bounded"
    )
    return float(math.exp(result.x))
