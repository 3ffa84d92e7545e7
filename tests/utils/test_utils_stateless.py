"""The steps with nothing to learn are fitted from the start and check their
parameters in ``fit`` only, as scikit-learn's FunctionTransformer does."""

import numpy as np
import pytest
from sklearn.utils import get_tags
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.validation import check_is_fitted

from sklearn_gastric.graph import PearsonGraphBuilder, TopKSelector
from sklearn_gastric.io import Slide
from sklearn_gastric.preprocessing import OtsuFilter, TileBag, Tiler
from sklearn_gastric.utils._stateless import StatelessTransformer

SLIDE = Slide(np.full((64, 64, 3), 200, np.uint8), name="s1")
BAG = TileBag(
    SLIDE,
    [[0, 0], [32, 0], [0, 32]],
    32,
    features=[[1.0, 2.0, 3.0], [1.0, 2.0, 4.0], [3.0, 2.0, 1.0]],
    scores=[1.0, 3.0, 2.0],
)
CASES = [
    (lambda: Tiler(tile_size=32), dict(tile_size=0), [SLIDE]),
    (lambda: OtsuFilter(min_tissue=0.5), dict(min_tissue=2.0), [BAG]),
    (lambda: TopKSelector(k=2), dict(k=0), [BAG]),
    (lambda: PearsonGraphBuilder(threshold=0.5), dict(rule="cosine"), [BAG]),
]
IDS = ["Tiler", "OtsuFilter", "TopKSelector", "PearsonGraphBuilder"]


@pytest.mark.parametrize("make, bad, X", CASES, ids=IDS)
def test_always_fitted_and_declared_so(make, bad, X):
    step = make()
    assert isinstance(step, StatelessTransformer)
    check_is_fitted(step)  # no NotFittedError before fit
    tags = get_tags(step)
    assert tags.requires_fit is False and tags.input_tags.two_d_array is False
    assert len(step.transform(X)) == 1


@pytest.mark.parametrize("make, bad, X", CASES, ids=IDS)
def test_parameters_are_checked_in_fit_not_in_transform(make, bad, X, monkeypatch):
    with pytest.raises(InvalidParameterError, match=f"'{next(iter(bad))}' parameter"):
        make().set_params(**bad).fit(X)

    def refuse():
        raise AssertionError("the parameters were checked")

    step = make()
    monkeypatch.setattr(step, "_validate_params", refuse)
    assert len(step.transform(X)) == 1
    with pytest.raises(AssertionError, match="the parameters were checked"):
        step.fit(X)


def test_fit_learns_nothing_and_returns_self():
    step = TopKSelector(k=2)
    assert step.fit([BAG]) is step
    assert vars(step) == {"k": 2, "n_jobs": None}
    assert step.fit() is step  # X is ignored
