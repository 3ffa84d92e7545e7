"""The background art: per-class thresholds on the proportion of tiles."""

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from ..datasets import GASTRIC_CLASSES
from ..graph._bags import check_tile_bags, require_column
from ..utils import map_slides
from ..utils._sklearn_compat import _fit_context
from ..utils._validation import N_JOBS, check_labels

__all__ = ["ProportionThresholdClassifier"]


class _TileProportions:
    """Picklable per-slide worker: the fraction of tiles of each class."""

    def __init__(self, column_to_class, n_classes):
        self.column_to_class = column_to_class
        self.n_classes = n_classes

    def __call__(self, bag):
        proba = require_column(bag, "patch_proba")
        if proba.ndim != 2 or proba.shape[1] != len(self.column_to_class):
            raise ValueError(
                f"Slide {bag.name!r}: patch_proba has shape {proba.shape}; "
                f"expected (n_tiles, {len(self.column_to_class)}), one column "
                "per entry of `columns`."
            )
        tile_classes = self.column_to_class[np.argmax(proba, axis=1)]
        counts = np.bincount(tile_classes, minlength=self.n_classes)
        return counts / len(bag)


class ProportionThresholdClassifier(ClassifierMixin, BaseEstimator):
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

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Learn one proportion threshold per class.

        Parameters
        ----------
        X : list of TileBag
            One bag per slide, with ``patch_proba``.
        y : array-like of shape (n_slides,)
            Slide labels, all in ``severity_order``.

        Returns
        -------
        self : ProportionThresholdClassifier
        """
        severity, column_to_class = self._check_classes()
        bags = check_tile_bags(X, type(self).__name__)
        y = check_labels(y, len(bags), type(self).__name__)
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
        worker = _TileProportions(self._column_to_class, len(self.classes_))
        return np.array(map_slides(worker, bags, n_jobs=self.n_jobs)).reshape(
            len(bags), len(self.classes_)
        )

    def predict(self, X):
        """The most severe class whose proportion threshold each slide crosses.

        Parameters
        ----------
        X : list of TileBag

        Returns
        -------
        y : ndarray of shape (n_slides,)
        """
        check_is_fitted(self)
        bags = check_tile_bags(X, type(self).__name__)
        crossed = self._proportions(bags) >= self.thresholds_
        # The last True column of each row (column 0 is always True).
        most_severe = len(self.classes_) - 1 - np.argmax(crossed[:, ::-1], axis=1)
        return self.classes_[most_severe]

    def predict_proba(self, X):
        """One-hot of :meth:`predict` (the rule has no confidence).

        Parameters
        ----------
        X : list of TileBag

        Returns
        -------
        proba : ndarray of shape (n_slides, n_classes)
            Columns in the order of ``classes_``.
        """
        predicted = self.predict(X)
        return (predicted[:, None] == self.classes_[None, :]).astype(np.float64)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        return tags


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
