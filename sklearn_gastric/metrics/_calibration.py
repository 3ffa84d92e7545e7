"""Top-label calibration of multi-class probabilities."""

from numbers import Integral

import numpy as np

from ..utils._sklearn_compat import Interval, StrOptions, validate_params

__all__ = ["expected_calibration_error", "reliability_curve"]

_CURVE_PARAMETERS = {
    "y_true": ["array-like"],
    "y_proba": ["array-like"],
    "labels": ["array-like", None],
    "n_bins": [Interval(Integral, 1, None, closed="left")],
    "strategy": [StrOptions({"uniform", "quantile"})],
}


@validate_params(_CURVE_PARAMETERS, prefer_skip_nested_validation=True)
def reliability_curve(y_true, y_proba, *, labels=None, n_bins=10, strategy="uniform"):
    """Accuracy against confidence of the top label, per confidence bin.

    The confidence of a sample is its highest probability; it is correct
    when the label of that column is its true label.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels.
    y_proba : array-like of shape (n_samples, n_classes)
        Predicted probabilities.
    labels : array-like of shape (n_classes,), default=None
        The label of each column of ``y_proba``; None: the sorted labels of
        ``y_true`` (scikit-learn's ``classes_`` order), which must then be
        as many as the columns.
    n_bins : int, default=10
        Number of bins.
    strategy : {"uniform", "quantile"}, default="uniform"
        ``"uniform"``: equal-width bins over [0, 1], a confidence of exactly
        1 in the last; ``"quantile"``: bins of (nearly) equal counts.

    Returns
    -------
    confidence : ndarray of shape (n_nonempty_bins,)
        Mean confidence in each non-empty bin, in increasing order.
    accuracy : ndarray of shape (n_nonempty_bins,)
        Fraction correct in each of them.
    count : ndarray of shape (n_nonempty_bins,)
        Samples in each of them.

    Examples
    --------
    >>> from sklearn_gastric.metrics import reliability_curve
    >>> proba = [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]]
    >>> confidence, accuracy, count = reliability_curve(
    ...     ["a", "b", "b", "b"], proba, n_bins=5)
    >>> confidence.round(3).tolist(), accuracy.tolist(), count.tolist()
    ([0.65, 0.85], [1.0, 0.5], [2, 2])
    """
    confidence, correct = _top_label(y_true, y_proba, labels)
    if strategy == "uniform":
        bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    else:
        order = np.argsort(confidence, kind="stable")
        bins = np.empty(len(confidence), dtype=int)
        bins[order] = np.arange(len(confidence)) * n_bins // max(len(confidence), 1)
    count = np.bincount(bins, minlength=n_bins)
    filled = count > 0
    total_confidence = np.bincount(bins, weights=confidence, minlength=n_bins)
    total_correct = np.bincount(bins, weights=correct, minlength=n_bins)
    mean_confidence = total_confidence[filled] / count[filled]
    accuracy = total_correct[filled] / count[filled]
    if strategy == "quantile":
        order = np.argsort(mean_confidence, kind="stable")
        return mean_confidence[order], accuracy[order], count[filled][order]
    return mean_confidence, accuracy, count[filled]


@validate_params(_CURVE_PARAMETERS, prefer_skip_nested_validation=True)
def expected_calibration_error(
    y_true, y_proba, *, labels=None, n_bins=10, strategy="uniform"
):
    """Top-label expected calibration error (ECE) of multi-class probabilities.

    The sum over confidence bins of the bin's share of the samples times
    the gap between its accuracy and its mean confidence (Guo et al.,
    2017): 0 when, in every bin, the top label is right as often as its
    probability says.

    Parameters
    ----------
    y_true, y_proba, labels, n_bins, strategy
        As for :func:`reliability_curve`.

    Returns
    -------
    ece : float
        In [0, 1].

    See Also
    --------
    reliability_curve : The bins it sums over.
    sklearn_gastric.visualization.ReliabilityDiagramDisplay : Draw them.

    Examples
    --------
    Two bins of two samples: confidences 0.6 and 0.7 both right (accuracy
    1.0 against a mean confidence of 0.65), and 0.8 and 0.9 with one right
    (0.5 against 0.85): ``0.5 * 0.35 + 0.5 * 0.35 = 0.35``.

    >>> from sklearn_gastric.metrics import expected_calibration_error
    >>> proba = [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]]
    >>> round(expected_calibration_error(["a", "b", "b", "b"], proba, n_bins=5), 3)
    0.35
    """
    confidence, accuracy, count = reliability_curve(
        y_true, y_proba, labels=labels, n_bins=n_bins, strategy=strategy
    )
    return float(np.sum(count * np.abs(accuracy - confidence)) / np.sum(count))


def _top_label(y_true, y_proba, labels):
    """Each sample's confidence and whether its top label is right."""
    y_true = np.asarray(y_true)
    y_proba = np.asarray(y_proba, dtype=np.float64)
    if y_proba.ndim != 2 or len(y_proba) != len(y_true) or not len(y_true):
        raise ValueError(
            f"y_proba must have shape (n_samples, n_classes) with n_samples = "
            f"{len(y_true)} > 0, the length of y_true; got {y_proba.shape}."
        )
    if not np.isfinite(y_proba).all() or y_proba.min() < 0 or y_proba.max() > 1:
        raise ValueError("y_proba must hold finite probabilities in [0, 1].")
    labels = np.unique(y_true) if labels is None else np.asarray(labels)
    if len(labels) != y_proba.shape[1]:
        raise ValueError(
            f"{len(labels)} labels for the {y_proba.shape[1]} columns of "
            "y_proba; pass labels=, the label of each column."
        )
    confidence = y_proba.max(axis=1)
    correct = labels[y_proba.argmax(axis=1)] == y_true
    return confidence, correct.astype(np.float64)
