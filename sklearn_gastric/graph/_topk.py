"""TopKSelector: keep the K tiles with the highest lesion score (step 6)."""

from functools import partial
from numbers import Integral

from ..utils import map_slides
from ..utils._sklearn_compat import Interval
from ..utils._stateless import StatelessTransformer
from ..utils._validation import N_JOBS, check_tile_bags
from ._confidence import tile_profile

__all__ = ["TopKSelector"]


def _select_top_k(bag, *, k):
    top = bag.subset(bag.score_order()[:k])
    if bag.profile is None and bag.features is not None:
        top = top.replace(profile=tile_profile(bag.require("features")))
    return top


class TopKSelector(StatelessTransformer):
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
    level-0 coordinates (``y``, then ``x``), then their index in the bag
    (:meth:`~sklearn_gastric.preprocessing.TileBag.score_order`). The output
    therefore does not depend on the order of the input tiles.

    When the bags have ``features``, each output bag keeps the
    :func:`tile_profile` of all the slide's tiles as its ``profile`` (unless
    it had one already): what the whole slide looks like, for the
    classifier's out-of-distribution score.

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
        bags = check_tile_bags(X, type(self).__name__)
        return map_slides(partial(_select_top_k, k=self.k), bags, n_jobs=self.n_jobs)
