"""The scikit-learn contract, checked on every estimator of the library.

No estimator here takes a 2-D numeric array (they take slides, TileBags or
SlideGraphs and declare ``input_tags.two_d_array = False``), so
``parametrize_with_checks`` has nothing to run on: its data-free API checks
are called directly below, and the data-dependent parts of the contract (fit
returns self, ``NotFittedError``, one output per input in order, picklable
outputs, invalid parameters rejected in ``fit``) are checked on the inputs each
estimator really takes, in the style of imbalanced-learn's ``test_common.py``.
"""

import pickle

import numpy as np
import pytest
from sklearn.base import clone, is_classifier
from sklearn.exceptions import NotFittedError
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import (
    check_do_not_raise_errors_in_init_or_set_params,
    check_estimator_cloneable,
    check_estimator_repr,
    check_estimator_tags_renamed,
    check_get_params_invariance,
    check_mixin_order,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
    check_valid_tag_types,
)

from sklearn_gastric import (
    GCNSlideClassifier,
    OtsuFilter,
    PatchSegmenter,
    PearsonGraphBuilder,
    PooledFeatureClassifier,
    ProportionThresholdClassifier,
    Slide,
    SlideGraph,
    StainNormalizer,
    TileBag,
    Tiler,
    TopKSelector,
)
from sklearn_gastric.datasets import make_gastric_slides, make_patch_dataset

# Small but valid settings, so that every fit below takes well under a second.
SMALL_SEGMENTER = dict(
    base_channels=4, depth=2, feature_dim=8, max_epochs=1, batch_size=8, random_state=0
)
ESTIMATORS = [
    StainNormalizer(),
    Tiler(tile_size=64),
    OtsuFilter(min_tissue=0.5),
    PatchSegmenter(**SMALL_SEGMENTER),
    TopKSelector(k=3),
    PearsonGraphBuilder(threshold=0.2),
    GCNSlideClassifier(hidden_units=8, max_epochs=3, random_state=0),
    # columns follow the segmenter's classes_, sorted: the fixture trains on two.
    ProportionThresholdClassifier(columns=("HGIN", "negative")),
    PooledFeatureClassifier(),
]
IDS = [type(e).__name__ for e in ESTIMATORS]

# Each estimator's name for a parameter value its fit must reject.
INVALID_PARAMS = {
    "StainNormalizer": ("method", "unknown-method"),
    "Tiler": ("tile_size", 0),
    "OtsuFilter": ("min_tissue", 1.5),
    "PatchSegmenter": ("dice_weight", -0.1),
    "TopKSelector": ("k", 0),
    "PearsonGraphBuilder": ("rule", "cosine"),
    "GCNSlideClassifier": ("n_layers", 0),
    "ProportionThresholdClassifier": ("n_jobs", "two"),
    "PooledFeatureClassifier": ("pooling", "median"),
}


@pytest.fixture(scope="module")
def data():
    """Inputs for every step, built once by running the real chain."""
    arrays, labels, _ = make_gastric_slides(
        4, size=256, classes=["negative", "HGIN"], random_state=0
    )
    slides = [Slide(a, name=f"synthetic-{i}") for i, a in enumerate(arrays)]
    patches, masks, patch_labels = make_patch_dataset(
        24, tile_size=64, classes=["HGIN"], random_state=0
    )
    segmenter = PatchSegmenter(**SMALL_SEGMENTER).fit(patches, masks, patch_labels)
    tiled = Tiler(tile_size=64).fit_transform(slides)
    bags = OtsuFilter(min_tissue=0.5).fit_transform(tiled)
    scored = segmenter.transform(bags)
    graphs = PearsonGraphBuilder(threshold=0.2).fit_transform(
        TopKSelector(k=3).fit_transform(scored)
    )
    return {
        "slides": slides,
        "labels": labels,
        "patches": (patches, masks, patch_labels),
        "tiled": tiled,
        "bags": bags,
        "scored": scored,
        "graphs": graphs,
    }


def _fit_args(estimator, data):
    name = type(estimator).__name__
    if name in ("StainNormalizer", "Tiler"):
        return (data["slides"],)
    if name == "OtsuFilter":
        return (data["tiled"],)
    if name == "PatchSegmenter":
        return data["patches"]
    if name in ("TopKSelector", "PearsonGraphBuilder"):
        return (data["scored"],)
    if name == "GCNSlideClassifier":
        return (data["graphs"], data["labels"])
    return (data["scored"], data["labels"])


def _predict_input(estimator, data):
    name = type(estimator).__name__
    if name == "PatchSegmenter":
        return data["bags"]
    return _fit_args(estimator, data)[0]


@pytest.mark.parametrize(
    "check",
    [
        check_estimator_cloneable,
        check_estimator_tags_renamed,
        check_valid_tag_types,
        check_estimator_repr,
        check_no_attributes_set_in_init,
        check_do_not_raise_errors_in_init_or_set_params,
        check_mixin_order,
        check_parameters_default_constructible,
        check_get_params_invariance,
        check_set_params,
    ],
)
@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_scikit_learn_api_checks(estimator, check):
    check(type(estimator).__name__, clone(estimator))


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_non_array_input_is_declared(estimator):
    assert get_tags(estimator).input_tags.two_d_array is False


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_init_only_stores_parameters(estimator):
    params = estimator.get_params(deep=False)
    rebuilt = type(estimator)(**params)
    assert vars(rebuilt) == params
    assert clone(estimator).get_params() == estimator.get_params()


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_unfitted_estimators_raise_not_fitted(estimator, data):
    if not get_tags(estimator).requires_fit:
        pytest.skip(f"{type(estimator).__name__} has nothing to learn")
    method = "predict" if is_classifier(estimator) else "transform"
    with pytest.raises(NotFittedError):
        getattr(clone(estimator), method)(_predict_input(estimator, data))


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_fit_returns_self_and_gives_one_output_per_input(estimator, data):
    estimator = clone(estimator)
    assert estimator.fit(*_fit_args(estimator, data)) is estimator
    X = _predict_input(estimator, data)
    if is_classifier(estimator):
        predictions = estimator.predict(X)
        assert len(predictions) == len(X)
        assert set(predictions) <= set(estimator.classes_)
        proba = estimator.predict_proba(X)
        assert proba.shape == (len(X), len(estimator.classes_))
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
        return
    outputs = estimator.transform(X)
    assert len(outputs) == len(X)
    for source, output in zip(X, outputs):
        assert output.name == source.name
    # Outputs travel between processes (joblib, dask): they must pickle.
    restored = pickle.loads(pickle.dumps(outputs))
    assert [o.name for o in restored] == [o.name for o in outputs]
    for before, after in zip(outputs, restored):
        if isinstance(before, TileBag):
            np.testing.assert_array_equal(before.coords, after.coords)
        elif isinstance(before, SlideGraph):
            np.testing.assert_array_equal(before.adjacency, after.adjacency)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_estimator_pickles_after_fit(estimator, data):
    estimator = clone(estimator).fit(*_fit_args(estimator, data))
    restored = pickle.loads(pickle.dumps(estimator))
    X = _predict_input(estimator, data)
    if is_classifier(estimator):
        np.testing.assert_allclose(
            restored.predict_proba(X), estimator.predict_proba(X), rtol=1e-6
        )
    else:
        assert len(restored.transform(X)) == len(X)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_invalid_parameters_are_rejected_in_fit(estimator, data):
    name, value = INVALID_PARAMS[type(estimator).__name__]
    bad = clone(estimator).set_params(**{name: value})  # no error yet
    with pytest.raises(ValueError, match=f"'{name}' parameter of {type(bad).__name__}"):
        bad.fit(*_fit_args(bad, data))
