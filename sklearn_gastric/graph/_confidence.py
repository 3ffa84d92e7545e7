"""How far to trust a slide classifier: its out-of-distribution score and
temperature scaling, both learnt from out-of-fold training slides."""

import math

import numpy as np

__all__ = [
    "conformal_threshold",
    "fit_node_density",
    "fit_temperature",
    "out_of_fold_splits",
    "slide_distance",
]


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


def fit_node_density(nodes):
    """Mean and precision matrix of standardised node features (Ledoit-Wolf
    shrinkage, so that a few hundred nodes in tens of dimensions give a
    well-conditioned estimate)."""
    from sklearn.covariance import LedoitWolf

    estimate = LedoitWolf().fit(nodes)
    return estimate.location_, estimate.precision_


def slide_distance(nodes, location, precision):
    """A slide's distance to the training nodes: the median over its nodes
    of the squared Mahalanobis distance, per feature.

    The median, not the mean or the maximum: a training slide's own top-K
    often holds one or two atypical tiles (a mimic, a fold), and the
    threshold must not be set by them.
    """
    centred = np.asarray(nodes, dtype=np.float64) - location
    squared = np.einsum("ij,jk,ik->i", centred, precision, centred)
    return float(np.median(squared) / centred.shape[1])


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
