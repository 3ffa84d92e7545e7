"""The scikit-learn contract, for every estimator of sklearn_gastric.graph."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from sklearn_gastric.graph import (
    GCNSlideClassifier,
    PearsonGraphBuilder,
    SlideGraph,
    TopKSelector,
)
from sklearn_gastric.io import Slide
from sklearn_gastric.preprocessing import TileBag

# Unusual but valid values: __init__ must store them as given.
ESTIMATORS = [
    (TopKSelector, dict(k=4, n_jobs=1)),
    (PearsonGraphBuilder, dict(threshold=-0.25, rule="distance", n_jobs=1)),
    (
        GCNSlideClassifier,
        dict(
            hidden_units=5,
            n_layers=1,
            dropout=0.1,
            readout="max",
            max_epochs=3,
            lr=0.05,
            weight_decay=1e-4,
            batch_size=4,
            class_weight="balanced",
            validation_fraction=0.25,
            patience=5,
            device="cpu",
            random_state=7,
            verbose=0,
        ),
    ),
]
IDS = [cls.__name__ for cls, _ in ESTIMATORS]


def tile_bags(n_slides=6):
    rng = np.random.default_rng(0)
    bags = []
    for i in range(n_slides):
        n = 3 + i
        bags.append(
            TileBag(
                Slide(np.zeros((8, 8, 3), dtype=np.uint8), name=f"s{i}"),
                coords=np.zeros((n, 2), dtype=int),
                tile_size=8,
                features=rng.normal(size=(n, 4)),
                scores=rng.random(n),
            )
        )
    return bags


def inputs_for(cls):
    bags = tile_bags()
    if cls is GCNSlideClassifier:
        return PearsonGraphBuilder().transform(bags), ["a", "b"] * 3
    return bags, None


@pytest.mark.parametrize("cls, params", ESTIMATORS, ids=IDS)
def test_init_stores_parameters_and_clone_round_trips(cls, params):
    estimator = cls(**params)
    assert estimator.get_params() == params
    assert vars(estimator) == params  # nothing else is computed in __init__
    cloned = clone(estimator)
    assert cloned is not estimator and cloned.get_params() == params
    assert estimator.set_params(**params) is estimator


@pytest.mark.parametrize("cls, params", ESTIMATORS, ids=IDS)
def test_fit_returns_self_and_outputs_one_per_input(cls, params):
    X, y = inputs_for(cls)
    estimator = cls(**params)
    assert estimator.fit(X, y) is estimator
    outputs = estimator.predict(X) if y is not None else estimator.transform(X)
    assert len(outputs) == len(X)
    if y is None:
        assert [o.name for o in outputs] == [x.name for x in X]
        assert all(
            isinstance(o, SlideGraph if cls is PearsonGraphBuilder else TileBag)
            for o in outputs
        )
    restored = pickle.loads(pickle.dumps(outputs))
    assert len(restored) == len(outputs)
    again = pickle.loads(pickle.dumps(estimator))
    if y is not None:
        np.testing.assert_array_equal(
            again.predict_proba(X), estimator.predict_proba(X)
        )


def test_classifier_not_fitted_error():
    X, _ = inputs_for(GCNSlideClassifier)
    for method in ("predict", "predict_proba", "score"):
        args = (X, ["a"] * len(X)) if method == "score" else (X,)
        with pytest.raises(NotFittedError):
            getattr(GCNSlideClassifier(), method)(*args)
