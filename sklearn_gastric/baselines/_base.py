"""The base of the baselines: classifiers of slides given as TileBags."""

from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from ..utils import map_slides
from ..utils._sklearn_compat import _fit_context
from ..utils._validation import check_labels, check_tile_bags

__all__ = ["BagClassifier"]


class BagClassifier(ClassifierMixin, BaseEstimator):
    """A classifier of slides, each given as the TileBag of its tiles.

    :meth:`fit` checks the parameters (``_parameter_constraints``, then
    ``_check_settings`` for what constraints cannot say), the bags and the
    labels, and hands them to the subclass's ``_fit(bags, y)``;
    :meth:`predict` and :meth:`predict_proba` check that the classifier is
    fitted and the bags, and hand them to ``_predict(bags)`` and
    ``_predict_proba(bags)``. Per-slide work goes through :meth:`_per_slide`,
    in parallel over slides with ``n_jobs``.
    """

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Learn the classifier from labelled slides.

        Parameters
        ----------
        X : list of TileBag
            One bag per slide, with the column the classifier reads.
        y : array-like of shape (n_slides,)
            Slide labels (strings welcome); at least two classes.

        Returns
        -------
        self : object
            The fitted classifier.
        """
        self._check_settings()
        bags = check_tile_bags(X, type(self).__name__)
        y = check_labels(y, len(bags), type(self).__name__)
        return self._fit(bags, y)

    def _check_settings(self):
        """Refuse parameter values that ``_parameter_constraints`` accepts but
        the classifier cannot use; nothing by default."""

    def predict(self, X):
        """The class of each slide.

        Parameters
        ----------
        X : list of TileBag
            One bag per slide.

        Returns
        -------
        y : ndarray of shape (n_slides,)
            Labels from ``classes_``.
        """
        return self._predict(self._fitted_bags(X))

    @available_if(lambda self: self._has_predict_proba())
    def predict_proba(self, X):
        """Class probabilities of each slide.

        Parameters
        ----------
        X : list of TileBag
            As for :meth:`predict`.

        Returns
        -------
        proba : ndarray of shape (n_slides, n_classes)
            Columns in the order of ``classes_``.
        """
        return self._predict_proba(self._fitted_bags(X))

    def _has_predict_proba(self):
        return True

    def _fitted_bags(self, X):
        """``X`` as a list of TileBags, once the classifier is fitted."""
        check_is_fitted(self)
        return check_tile_bags(X, type(self).__name__)

    def _per_slide(self, worker, bags):
        """``worker(bag)`` of every bag, in order."""
        return map_slides(worker, bags, n_jobs=self.n_jobs)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        return tags
