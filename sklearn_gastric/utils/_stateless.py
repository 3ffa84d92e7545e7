"""The base of the pipeline steps that have nothing to learn."""

from sklearn.base import BaseEstimator, TransformerMixin

from ._sklearn_compat import _fit_context

__all__ = ["StatelessTransformer"]


class StatelessTransformer(TransformerMixin, BaseEstimator):
    """A transformer with nothing to learn, fitted from the start.

    As scikit-learn's :class:`~sklearn.preprocessing.FunctionTransformer`:
    :meth:`fit` checks the parameters (``_parameter_constraints``) and learns
    nothing; the estimator counts as fitted without it
    (``__sklearn_is_fitted__`` is True, the ``requires_fit`` tag False), so
    ``transform`` runs on a new instance and does not check the parameters
    again. Subclasses write ``transform``; their input is a list of slides,
    TileBags or SlideGraphs, never a 2-D array.
    """

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X=None, y=None):
        """Check the parameters; there is nothing to learn.

        Parameters
        ----------
        X : list, default=None
            Ignored.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The estimator, unchanged.
        """
        return self

    def __sklearn_is_fitted__(self):
        return True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.two_d_array = False
        return tags
