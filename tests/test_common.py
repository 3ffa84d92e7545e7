"""The scikit-learn contract, checked on every public estimator of the library.

One instance generator (``instance_generator.estimator_instances``) drives one
suite, in the style of imbalanced-learn's ``test_common.py``.
``parametrize_with_checks`` runs scikit-learn's own checks where an estimator
takes 2-D arrays; none does today (they take slides, TileBags or SlideGraphs
and declare ``input_tags.two_d_array = False``), so scikit-learn runs only its
clone check and the data-free API checks are called directly. The
data-dependent parts of the contract are checked below on the inputs each
estimator really takes, built once by running the real chain.
"""

import pickle
import warnings

import joblib
import numpy as np
import pytest
from instance_generator import (
    STATELESS,
    changed_params,
    estimator_id,
    estimator_instances,
    same_value,
)
from output_checks import assert_outputs_equal
from sklearn.base import BaseEstimator, clone, is_classifier
from sklearn.exceptions import NotFittedError, SkipTestWarning
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import (
    check_do_not_raise_errors_in_init_or_set_params,
    check_estimator_repr,
    check_estimator_tags_renamed,
    check_get_params_invariance,
    check_mixin_order,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
    check_valid_tag_types,
    parametrize_with_checks,
)
from sklearn.utils.validation import check_is_fitted

import sklearn_gastric
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

ESTIMATORS = list(estimator_instances())
LEARNERS = [e for e in ESTIMATORS if not isinstance(e, STATELESS)]
STATELESS_ESTIMATORS = [e for e in ESTIMATORS if isinstance(e, STATELESS)]
TRANSFORMERS = [e for e in ESTIMATORS if not is_classifier(e)]
CLASSIFIERS = [e for e in ESTIMATORS if is_classifier(e)]

# The inputs of each estimator's fit, by name in the ``data`` fixture; the
# first is also what transform or predict takes, except for PatchSegmenter,
# which is fitted on patches and transforms TileBags.
FIT_INPUTS = {
    StainNormalizer: ("slides",),
    Tiler: ("slides",),
    OtsuFilter: ("tiled",),
    PatchSegmenter: ("patches", "masks", "patch_labels"),
    TopKSelector: ("scored",),
    PearsonGraphBuilder: ("scored",),
    GCNSlideClassifier: ("graphs", "labels"),
    ProportionThresholdClassifier: ("scored", "labels"),
    PooledFeatureClassifier: ("scored", "labels"),
}
OUTPUT_TYPES = {StainNormalizer: Slide, PearsonGraphBuilder: SlideGraph}

# Each estimator's name for a parameter value its fit must reject.
INVALID_PARAMS = {
    StainNormalizer: ("method", "unknown-method"),
    Tiler: ("tile_size", 0),
    OtsuFilter: ("min_tissue", 1.5),
    PatchSegmenter: ("dice_weight", -0.1),
    TopKSelector: ("k", 0),
    PearsonGraphBuilder: ("rule", "cosine"),
    GCNSlideClassifier: ("n_layers", 0),
    ProportionThresholdClassifier: ("n_jobs", "two"),
    PooledFeatureClassifier: ("pooling", "median"),
}

# scikit-learn's checks that need no data: what parametrize_with_checks would
# run first on an estimator it could feed.
API_CHECKS = [
    check_estimator_tags_renamed,
    check_valid_tag_types,
    check_estimator_repr,
    check_no_attributes_set_in_init,
    check_do_not_raise_errors_in_init_or_set_params,
    check_mixin_order,
    check_parameters_default_constructible,
    check_get_params_invariance,
    check_set_params,
]

ROUND_TRIPS = {
    "pickle": lambda obj, path: pickle.loads(pickle.dumps(obj)),
    "joblib": lambda obj, path: joblib.load(joblib.dump(obj, path / "obj.joblib")[0]),
}


def _public_estimator_classes():
    modules = [sklearn_gastric] + [
        getattr(sklearn_gastric, name)
        for name in (
            "baselines",
            "datasets",
            "graph",
            "io",
            "preprocessing",
            "segmentation",
            "visualization",
        )
    ]
    return {
        obj
        for module in modules
        for obj in (getattr(module, name) for name in module.__all__)
        if isinstance(obj, type) and issubclass(obj, BaseEstimator)
    }


def _assert_params_equal(left, right):
    assert left.keys() == right.keys()
    for name, value in left.items():
        assert same_value(value, right[name]), name


@pytest.fixture(scope="module")
def data(cohort, patch_dataset, tiny_segmenter):
    """Inputs for every step, built once by running the real chain."""
    slides, labels = cohort
    patches, masks, patch_labels = patch_dataset
    tiled = Tiler(tile_size=32).fit_transform(slides)
    bags = OtsuFilter(min_tissue=0.5).fit_transform(tiled)
    scored = tiny_segmenter.transform(bags)
    graphs = PearsonGraphBuilder(threshold=0.2).fit_transform(
        TopKSelector(k=4).fit_transform(scored)
    )
    return {
        "slides": slides,
        "labels": labels,
        "patches": patches,
        "masks": masks,
        "patch_labels": patch_labels,
        "tiled": tiled,
        "bags": bags,
        "scored": scored,
        "graphs": graphs,
    }


def _fit_args(estimator, data):
    return tuple(data[name] for name in FIT_INPUTS[type(estimator)])


def _input(estimator, data):
    if isinstance(estimator, PatchSegmenter):
        return data["bags"]
    return _fit_args(estimator, data)[0]


@pytest.fixture(scope="module")
def fitted(data):
    """``fitted(estimator)``: a clone of it fitted once per module; read-only."""
    cache = {}

    def get(estimator):
        key = estimator_id(estimator)
        if key not in cache:
            cache[key] = clone(estimator).fit(*_fit_args(estimator, data))
        return cache[key]

    return get


@pytest.fixture(scope="module")
def transformed(data, fitted):
    """``transformed(estimator)``: its fitted clone's outputs, computed once."""
    cache = {}

    def get(estimator):
        key = estimator_id(estimator)
        if key not in cache:
            cache[key] = fitted(estimator).transform(_input(estimator, data))
        return cache[key]

    return get


# -- the estimators and scikit-learn's own checks ----------------------------


def test_every_public_estimator_is_tested():
    assert {type(e) for e in ESTIMATORS} == _public_estimator_classes()
    assert set(FIT_INPUTS) == set(INVALID_PARAMS) == _public_estimator_classes()


with warnings.catch_warnings():
    # "Can't test estimator ... which requires input of type ...": the
    # estimators that do not take 2-D arrays get the checks below instead.
    warnings.simplefilter("ignore", SkipTestWarning)
    _sklearn_checks = parametrize_with_checks(ESTIMATORS)


@_sklearn_checks
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.mark.parametrize("check", API_CHECKS, ids=lambda check: check.__name__)
@pytest.mark.parametrize("estimator", ESTIMATORS, ids=estimator_id)
def test_sklearn_api_checks(estimator, check):
    check(type(estimator).__name__, clone(estimator))


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=estimator_id)
def test_non_array_input_is_declared(estimator):
    assert get_tags(estimator).input_tags.two_d_array is False


# -- parameters --------------------------------------------------------------


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=estimator_id)
def test_init_only_stores_parameters(estimator):
    params = estimator.get_params(deep=False)
    _assert_params_equal(vars(type(estimator)(**params)), params)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=estimator_id)
def test_get_params_set_params_clone_round_trip(estimator):
    params = estimator.get_params()
    cloned = clone(estimator)
    assert cloned is not estimator and type(cloned) is type(estimator)
    _assert_params_equal(cloned.get_params(), params)
    rebuilt = type(estimator)()
    assert rebuilt.set_params(**params) is rebuilt
    _assert_params_equal(rebuilt.get_params(), params)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=estimator_id)
def test_repr_names_the_changed_parameters(estimator):
    text = repr(estimator)
    assert text.startswith(f"{type(estimator).__name__}(")
    for name in changed_params(estimator):
        assert f"{name}=" in text, name


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=estimator_id)
def test_invalid_parameters_are_rejected_in_fit(estimator, data):
    name, value = INVALID_PARAMS[type(estimator)]
    bad = clone(estimator).set_params(**{name: value})  # no error yet
    with pytest.raises(ValueError, match=f"'{name}' parameter of {type(bad).__name__}"):
        bad.fit(*_fit_args(bad, data))


# -- fitting -----------------------------------------------------------------


@pytest.mark.parametrize("estimator", LEARNERS, ids=estimator_id)
def test_learners_raise_not_fitted_before_fit(estimator, data):
    assert get_tags(estimator).requires_fit
    unfitted = clone(estimator)
    with pytest.raises(NotFittedError):
        check_is_fitted(unfitted)
    X = _input(estimator, data)
    calls = {
        "transform": (X,),
        "predict": (X,),
        "predict_proba": (X,),
        "score": (X, data["labels"]),
    }
    methods = [m for m in calls if hasattr(unfitted, m)]
    assert methods
    for method in methods:
        with pytest.raises(NotFittedError):
            getattr(unfitted, method)(*calls[method])


@pytest.mark.parametrize("estimator", STATELESS_ESTIMATORS, ids=estimator_id)
def test_stateless_steps_are_always_fitted(estimator, data, fitted, transformed):
    # As FunctionTransformer: fitted from the start, and fit learns nothing.
    assert get_tags(estimator).requires_fit is False
    unfitted = clone(estimator)
    check_is_fitted(unfitted)
    X = _input(estimator, data)
    assert_outputs_equal(unfitted.transform(X), transformed(estimator))
    assert vars(fitted(estimator)) == vars(unfitted)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=estimator_id)
def test_fit_returns_self(estimator, data):
    estimator = clone(estimator)
    assert estimator.fit(*_fit_args(estimator, data)) is estimator


@pytest.mark.parametrize("estimator", LEARNERS, ids=estimator_id)
def test_clone_of_a_fitted_estimator_is_unfitted(estimator, fitted):
    cloned = clone(fitted(estimator))
    _assert_params_equal(cloned.get_params(), fitted(estimator).get_params())
    with pytest.raises(NotFittedError):
        check_is_fitted(cloned)


# -- one output per input, in order ------------------------------------------


@pytest.mark.parametrize("estimator", TRANSFORMERS, ids=estimator_id)
def test_transform_gives_one_output_per_input_in_order(
    estimator, data, fitted, transformed
):
    X = _input(estimator, data)
    outputs = transformed(estimator)
    assert len(outputs) == len(X)
    expected_type = OUTPUT_TYPES.get(type(estimator), TileBag)
    assert all(type(output) is expected_type for output in outputs)
    for source, output in zip(X, outputs):
        assert output.name == source.name
        if isinstance(output, Slide):
            assert output.dimensions == source.dimensions
    assert_outputs_equal(fitted(estimator).transform(X[::-1]), outputs[::-1])


@pytest.mark.parametrize("estimator", CLASSIFIERS, ids=estimator_id)
def test_predict_gives_one_output_per_input_in_order(estimator, data, fitted):
    estimator = fitted(estimator)
    X = _input(estimator, data)
    proba = estimator.predict_proba(X)
    assert proba.shape == (len(X), len(estimator.classes_))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    predictions = estimator.predict(X)
    assert predictions.shape == (len(X),)
    assert set(predictions) <= set(estimator.classes_)
    np.testing.assert_array_equal(estimator.predict_proba(X[::-1]), proba[::-1])
    np.testing.assert_array_equal(estimator.predict(X[::-1]), predictions[::-1])


# -- persistence: fitted estimators and their outputs, by value ---------------


@pytest.mark.parametrize("round_trip", ROUND_TRIPS.values(), ids=ROUND_TRIPS)
@pytest.mark.parametrize("estimator", ESTIMATORS, ids=estimator_id)
def test_fitted_estimator_round_trip_gives_the_same_outputs(
    estimator, round_trip, data, fitted, transformed, tmp_path
):
    original = fitted(estimator)
    restored = round_trip(original, tmp_path)
    _assert_params_equal(restored.get_params(), original.get_params())
    X = _input(estimator, data)
    if is_classifier(original):
        np.testing.assert_array_equal(restored.classes_, original.classes_)
        np.testing.assert_array_equal(
            restored.predict_proba(X), original.predict_proba(X)
        )
        np.testing.assert_array_equal(restored.predict(X), original.predict(X))
    else:
        assert_outputs_equal(restored.transform(X), transformed(estimator))


@pytest.mark.parametrize("round_trip", ROUND_TRIPS.values(), ids=ROUND_TRIPS)
@pytest.mark.parametrize("estimator", TRANSFORMERS, ids=estimator_id)
def test_transform_outputs_round_trip_by_value(
    estimator, round_trip, transformed, tmp_path
):
    # Outputs travel between processes (joblib, dask) and into caches.
    outputs = transformed(estimator)
    assert_outputs_equal(round_trip(outputs, tmp_path), outputs)
