"""A pooling baseline: the mean (or max) tile feature vector into a classifier."""

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from ..graph._bags import check_tile_bags, require_column
from ..utils import map_slides
from ..utils._sklearn_compat import HasMethods, StrOptions, _fit_context
from ..utils._validation import N_JOBS, check_labels

__all__ = ["PooledFeatureClassifier"]


class _PoolFeatures:
    """Picklable per-slide worker: one pooled feature vector."""

    def __init__(self, pooling):
        self.pooling = pooling

    def __call__(self, bag):
        features = require_column(bag, "features")
        if features.ndim != 2:
            raise ValueError(
                f"Slide {bag.name!r}: features must have shape (n_tiles, "
                f"n_features); got {features.shape}."
            )
        pooled = features.max(axis=0) if self.pooling == "max" else features.mean(0)
        return pooled.astype(np.float64)


def _estimator_has(method):
    def check(self):
        estimator = getattr(self, "estimator_", None)
        if estimator is None:
            estimator = self.estimator or LogisticRegression()
        return hasattr(estimator, method)

    return check


class PooledFeatureClassifier(ClassifierMixin, BaseEstimator):
    """Pool every tile's features into one slide vector and classify it.

    A baseline without a graph: the slide vector is the mean (or the
    element-wise max) of the feature vectors of all its tiles, and a
    scikit-learn classifier is fitted on those vectors.

    Parameters
    ----------
    pooling : {"mean", "max"}, default="mean"
        How tile vectors become the slide vector.
    estimator : classifier, default=None
        The classifier of slide vectors (cloned in ``fit``). None means
        ``LogisticRegression(max_iter=1000)``.
    n_jobs : int, default=None
        Number of slides pooled in parallel through joblib; ``None`` means 1.

    Attributes
    ----------
    estimator_ : classifier
        The fitted clone of ``estimator``.
    classes_ : ndarray of shape (n_classes,)
        The classes of ``estimator_``.
    n_tile_features_ : int
        Length of a tile's feature vector.

    See Also
    --------
    ProportionThresholdClassifier : The background-art baseline.
    sklearn_gastric.graph.GCNSlideClassifier : The patent's method.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gastric.baselines import PooledFeatureClassifier
    >>> from sklearn_gastric.preprocessing import TileBag
    >>> rng = np.random.default_rng(0)
    >>> def bag(shift):
    ...     features = rng.normal(shift, 1.0, size=(5, 3))
    ...     coords = np.zeros((5, 2), dtype=int)
    ...     rgb = np.zeros((8, 8, 3), dtype=np.uint8)
    ...     return TileBag(rgb, coords, tile_size=8, features=features)
    >>> X = [bag(s) for s in (-2, -2, -2, 2, 2, 2)]
    >>> y = ["negative"] * 3 + ["HGIN"] * 3
    >>> clf = PooledFeatureClassifier().fit(X, y)
    >>> clf.predict([bag(-2), bag(2)])
    array(['negative', 'HGIN'], dtype='<U8')
    """

    _parameter_constraints: dict = {
        "pooling": [StrOptions({"mean", "max"})],
        "estimator": [HasMethods(["fit", "predict"]), None],
        "n_jobs": N_JOBS,
    }

    def __init__(self, pooling="mean", estimator=None, *, n_jobs=None):
        self.pooling = pooling
        self.estimator = estimator
        self.n_jobs = n_jobs

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Pool the tiles of each slide and fit the estimator.

        Parameters
        ----------
        X : list of TileBag
            One bag per slide, with ``features``.
        y : array-like of shape (n_slides,)
            Slide labels.

        Returns
        -------
        self : PooledFeatureClassifier
        """
        bags = check_tile_bags(X, type(self).__name__)
        y = check_labels(y, len(bags), type(self).__name__)
        pooled = self._pool(bags, reference="the first slide has")
        self.n_tile_features_ = pooled.shape[1]
        estimator = self.estimator
        if estimator is None:
            estimator = LogisticRegression(max_iter=1000)
        self.estimator_ = clone(estimator).fit(pooled, y)
        self.classes_ = self.estimator_.classes_
        return self

    def _pool(self, bags, reference, expected=None):
        vectors = map_slides(_PoolFeatures(self.pooling), bags, n_jobs=self.n_jobs)
        if expected is None and vectors:
            expected = len(vectors[0])
        for bag, vector in zip(bags, vectors):
            if len(vector) != expected:
                raise ValueError(
                    f"Slide {bag.name!r} has {len(vector)} features per tile; "
                    f"{reference} {expected}."
                )
        return np.array(vectors).reshape(len(bags), expected or 0)

    def pool_features(self, X):
        """The pooled slide vectors.

        Parameters
        ----------
        X : list of TileBag

        Returns
        -------
        vectors : ndarray of shape (n_slides, ``n_tile_features_``)
        """
        check_is_fitted(self)
        bags = check_tile_bags(X, type(self).__name__)
        return self._pool(
            bags, "the classifier was fitted with", expected=self.n_tile_features_
        )

    def predict(self, X):
        """Class of each slide.

        Parameters
        ----------
        X : list of TileBag

        Returns
        -------
        y : ndarray of shape (n_slides,)
        """
        vectors = self.pool_features(X)
        return self.estimator_.predict(vectors)

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities of each slide.

        Parameters
        ----------
        X : list of TileBag

        Returns
        -------
        proba : ndarray of shape (n_slides, n_classes)
            Columns in the order of ``classes_``.
        """
        vectors = self.pool_features(X)
        return self.estimator_.predict_proba(vectors)

    @available_if(_estimator_has("decision_function"))
    def decision_function(self, X):
        """The estimator's decision function on the pooled vectors.

        Parameters
        ----------
        X : list of TileBag

        Returns
        -------
        scores : ndarray
        """
        vectors = self.pool_features(X)
        return self.estimator_.decision_function(vectors)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        return tags
