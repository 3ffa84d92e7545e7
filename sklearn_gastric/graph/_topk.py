"""TopKSelector: keep the K tiles with the highest lesion score (step 6)."""

from numbers import Integral

from sklearn.base import BaseEstimator, TransformerMixin

from ..utils import map_slides
from ..utils._sklearn_compat import Interval, _fit_context
from ..utils._validation import N_JOBS
from ._bags import check_tile_bags, require_column, score_order

__all__ = ["TopKSelector"]


class _SelectTopK:
    """Picklable per-slide worker of :class:`TopKSelector`."""

    def __init__(self, k):
        self.k = k

    def __call__(self, bag):
        scores = require_column(bag, "scores")
        return bag.subset(score_order(scores, bag.coords)[: self.k])


class TopKSelector(TransformerMixin, BaseEstimator):
    """Keep the ``k`` tiles with the highest ``scores``, highest first.

    Step 6 of the method: the tile score is the sum of the tile's lesion
    probability map (computed by a :class:`PatchSegmenter`); the selected
    tiles become the nodes of the slide graph, in this order.

    There is nothing to learn: :meth:`fit` only checks the parameters.

    Parameters
    ----------
    k : int, default=10
        Number of tiles to keep (the patent uses 5, 10 or 15). A slide with
        fewer tiles keeps them all.
    n_jobs : int, default=None
        Number of slides processed in parallel through joblib; ``None``
        means 1.

    See Also
    --------
    PearsonGraphBuilder : Builds a graph over the selected tiles.

    Notes
    -----
    Tiles with equal scores are ordered by position: raster order of their
    level-0 coordinates (``y``, then ``x``), then their index in the bag. The
    output therefore does not depend on the order of the input tiles.

    A slide without any tile is an error ("no tissue tile"), as is a bag
    without ``scores`` or with NaN scores.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gastric.graph import TopKSelector
    >>> from sklearn_gastric.preprocessing import TileBag
    >>> bag = TileBag(
    ...     np.zeros((32, 64, 3), dtype=np.uint8),
    ...     coords=[[0, 0], [16, 0], [32, 0], [48, 0]],
    ...     tile_size=16,
    ...     scores=[0.25, 0.75, 0.5, 0.75],
    ... )
    >>> (top,) = TopKSelector(k=3).fit_transform([bag])
    >>> top.coords[:, 0].tolist(), top.scores.tolist()
    ([16, 48, 32], [0.75, 0.75, 0.5])
    """

    _parameter_constraints: dict = {
        "k": [Interval(Integral, 1, None, closed="left")],
        "n_jobs": N_JOBS,
    }

    def __init__(self, k=10, *, n_jobs=None):
        self.k = k
        self.n_jobs = n_jobs

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Check the parameters; there is nothing to learn.

        Parameters
        ----------
        X : list of TileBag
            Ignored.
        y : None
            Ignored.

        Returns
        -------
        self : TopKSelector
        """
        return self

    def transform(self, X):
        """Select the top-``k`` tiles of every slide.

        Parameters
        ----------
        X : list of TileBag
            One bag per slide, with ``scores``.

        Returns
        -------
        bags : list of TileBag
            One bag per input slide, in order, with at most ``k`` tiles by
            decreasing score.
        """
        self._validate_params()
        bags = check_tile_bags(X, type(self).__name__)
        return map_slides(_SelectTopK(self.k), bags, n_jobs=self.n_jobs)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.requires_fit = False
        return tags
