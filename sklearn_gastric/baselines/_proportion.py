"""The background art: per-class thresholds on the proportion of tiles."""

from functools import partial

import numpy as np

from ..utils._validation import N_JOBS
from ._base import BagClassifier

__all__ = ["ProportionThresholdClassifier"]


def _tile_proportions(bag, *, column_to_class, n_classes):
    """The fraction of the slide's tiles classified as each class."""
    proba = bag.require("patch_proba")
    if proba.shape[1] != len(column_to_class):
        raise ValueError(
            f"Slide {bag.name!r}: patch_proba has shape {proba.shape}; expected "
            f"(n_tiles, {len(column_to_class)}), one column per entry of `columns`."
        )
    tile_classes = column_to_class[np.argmax(proba, axis=1)]
    return np.bincount(tile_classes, minlength=n_classes) / len(bag)


class ProportionThresholdClassifier(BagClassifier):
    """The background art the patent improves on: tile-proportion thresholds.

    Every tile is classified (the argmax of its ``patch_proba``), each
    class's proportion of the slide's tiles is computed, and compared with a
    per-class threshold learned on the training slides. The slide gets the
    most severe class whose threshold is crossed; the least severe class
    (``"negative"``) when none is.

    Parameters
    ----------
    columns : list of str, default=None
        The class of each column of ``patch_proba``. None means the columns
        are ``GASTRIC_CLASSES = ("negative", "LGIN", "HGIN", "carcinoma")``,
        in that order.
    severity_order : list of str, default=None
        All slide classes, least severe first. None means
        ``GASTRIC_CLASSES``. Every entry of ``columns`` and every label of
        ``y`` must be one of them.
    n_jobs : int, default=None
        Number of slides processed in parallel through joblib; ``None``
        means 1.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        ``severity_order``, least severe first (not sorted alphabetically):
        the columns of :meth:`predict_proba`.
    thresholds_ : ndarray of shape (n_classes,)
        The proportion threshold of each class. The least severe class has
        0 (always crossed: it is the default); ``inf`` means the class is
        never predicted.

    See Also
    --------
    PooledFeatureClassifier : Another baseline, on pooled tile features.
    sklearn_gastric.graph.GCNSlideClassifier : The patent's method.

    Notes
    -----
    How thresholds are learned: for each class ``c`` but the least severe,
    the training slides split into positives (slide label at least as severe
    as ``c``) and negatives. With ``p`` the proportion of tiles classified as
    ``c``, a slide is predicted positive when ``p >= t``. The candidate
    ``t`` are the midpoints between consecutive distinct values of ``p`` on
    the training slides; the chosen ``t`` maximises the balanced accuracy
    (mean of the true positive and true negative rates), the smallest such
    ``t`` on ties. ``t = inf`` when there is no positive slide, when no
    candidate does better than chance (balanced accuracy 0.5) or when all
    slides have the same ``p``; ``t = 0`` when every slide is positive.

    :meth:`predict_proba` is a hard one-hot of :meth:`predict`: the rule
    gives no confidence.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gastric.baselines import ProportionThresholdClassifier
    >>> from sklearn_gastric.preprocessing import TileBag
    >>> def bag(n_lesion_tiles):
    ...     proba = np.tile([0.9, 0.1], (10, 1))
    ...     proba[:n_lesion_tiles] = [0.2, 0.8]
    ...     coords = np.zeros((10, 2), dtype=int)
    ...     rgb = np.zeros((8, 8, 3), dtype=np.uint8)
    ...     return TileBag(rgb, coords, tile_size=8, patch_proba=proba)
    >>> X = [bag(n) for n in (0, 1, 4, 6)]
    >>> y = ["negative", "negative", "carcinoma", "carcinoma"]
    >>> clf = ProportionThresholdClassifier(
    ...     columns=["negative", "carcinoma"], severity_order=["negative", "carcinoma"]
    ... ).fit(X, y)
    >>> clf.thresholds_
    array([0. , 0.25])
    >>> clf.predict([bag(2), bag(3)])
    array(['negative', 'carcinoma'], dtype='<U9')
    """

    _parameter_constraints: dict = {
        "columns": ["array-like", None],
        "severity_order": ["array-like", None],
        "n_jobs": N_JOBS,
    }

    def __init__(self, columns=None, severity_order=None, *, n_jobs=None):
        self.columns = columns
        self.severity_order = severity_order
        self.n_jobs = n_jobs

    def _check_settings(self):
        self._check_classes()

    def _fit(self, bags, y):
        severity, column_to_class = self._check_classes()
        rank_of = {label: i for i, label in enumerate(severity.tolist())}
        unknown = sorted({str(label) for label in y if label not in rank_of})
        if unknown:
            raise ValueError(
                f"y has labels {unknown} that are not in severity_order "
                f"{severity.tolist()}."
            )
        self.classes_ = severity
        self._column_to_class = column_to_class
        proportions = self._proportions(bags)
        rank = np.array([rank_of[label] for label in y])
        self.thresholds_ = np.array(
            [0.0]
            + [
                _best_threshold(proportions[:, c], rank >= c)
                for c in range(1, len(severity))
            ]
        )
        return self

    def _check_classes(self):
        # Not at import: sklearn_gastric.datasets loads the slide renderer.
        from ..datasets import GASTRIC_CLASSES

        severity = list(
            GASTRIC_CLASSES if self.severity_order is None else self.severity_order
        )
        columns = list(GASTRIC_CLASSES if self.columns is None else self.columns)
        if len(set(severity)) != len(severity) or len(severity) < 2:
            raise ValueError(
                "severity_order must list at least two distinct classes; got "
                f"{severity}."
            )
        if len(set(columns)) != len(columns) or not columns:
            raise ValueError(f"columns must be distinct classes; got {columns}.")
        missing = [c for c in columns if c not in severity]
        if missing:
            raise ValueError(f"columns {missing} are not in severity_order {severity}.")
        column_to_class = np.array([severity.index(c) for c in columns])
        return np.asarray(severity), column_to_class

    def _proportions(self, bags):
        worker = partial(
            _tile_proportions,
            column_to_class=self._column_to_class,
            n_classes=len(self.classes_),
        )
        rows = self._per_slide(worker, bags)
        return np.array(rows).reshape(len(bags), len(self.classes_))

    def _predict(self, bags):
        crossed = self._proportions(bags) >= self.thresholds_
        # The last True column of each row (column 0 is always True).
        most_severe = len(self.classes_) - 1 - np.argmax(crossed[:, ::-1], axis=1)
        return self.classes_[most_severe]

    def _predict_proba(self, bags):
        predicted = self._predict(bags)
        return (predicted[:, None] == self.classes_[None, :]).astype(np.float64)


def _best_threshold(proportion, positive):
    """The proportion threshold of best balanced accuracy (see the Notes)."""
    if not positive.any():
        return np.inf
    if positive.all():
        return 0.0
    values = np.unique(proportion)
    if len(values) == 1:
        return np.inf
    candidates = (values[:-1] + values[1:]) / 2
    predicted = proportion[None, :] >= candidates[:, None]
    sensitivity = predicted[:, positive].mean(axis=1)
    specificity = (~predicted[:, ~positive]).mean(axis=1)
    balanced = (sensitivity + specificity) / 2
    best = int(np.argmax(balanced))
    return float(candidates[best]) if balanced[best] > 0.5 else np.inf
