"""A pooling baseline: the mean (or max) tile feature vector into a classifier."""

from functools import partial

import numpy as np
from sklearn.base import clone
from sklearn.utils.metaestimators import available_if

from ..utils._sklearn_compat import HasMethods, StrOptions
from ..utils._validation import N_JOBS
from ._base import BagClassifier

__all__ = ["PooledFeatureClassifier"]


def _pool_features(bag, *, pooling):
    features = bag.require("features")
    pooled = features.max(axis=0) if pooling == "max" else features.mean(axis=0)
    return pooled.astype(np.float64)


def _default_estimator():
    # sklearn.linear_model is a tenth of a second to import: not at import.
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000)


def _estimator_has(method):
    def check(self):
        estimator = getattr(self, "estimator_", None)
        if estimator is None:
            estimator = self.estimator or _default_estimator()
        return hasattr(estimator, method)

    return check


class PooledFeatureClassifier(BagClassifier):
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

    def _fit(self, bags, y):
        pooled = self._pool(bags, reference="the first slide has")
        self.n_tile_features_ = pooled.shape[1]
        estimator = self.estimator
        if estimator is None:
            estimator = _default_estimator()
        self.estimator_ = clone(estimator).fit(pooled, y)
        self.classes_ = self.estimator_.classes_
        return self

    def _pool(self, bags, reference, expected=None):
        vectors = self._per_slide(partial(_pool_features, pooling=self.pooling), bags)
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
        return self._fitted_vectors(self._fitted_bags(X))

    def _fitted_vectors(self, bags):
        expected = self.n_tile_features_
        return self._pool(bags, "the classifier was fitted with", expected=expected)

    def _predict(self, bags):
        return self.estimator_.predict(self._fitted_vectors(bags))

    def _has_predict_proba(self):
        return _estimator_has("predict_proba")(self)

    def _predict_proba(self, bags):
        return self.estimator_.predict_proba(self._fitted_vectors(bags))

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
