"""The classifier's out-of-distribution flag and temperature scaling."""

import numpy as np
import pytest
from scipy.special import softmax

from sklearn_gastric.graph import GCNSlideClassifier, SlideGraph
from sklearn_gastric.graph._confidence import (
    conformal_threshold,
    fit_temperature,
    out_of_fold_splits,
    slide_distance,
)


def test_conformal_threshold_is_the_exact_order_statistic():
    scores = np.arange(1.0, 100.0)  # 99 scores, shuffled below
    rng = np.random.default_rng(0)
    # ceil((99 + 1) * 0.95) = 95: the 95th smallest.
    assert conformal_threshold(rng.permutation(scores), 0.05) == 95.0
    # ceil(20 * 0.9) = 18 of 19.
    assert conformal_threshold(np.arange(1.0, 20.0), 0.1) == 18.0
    # Too few for the rate: ceil(6 * 0.95) = 6 > 5, the largest.
    assert conformal_threshold([3.0, 1.0, 2.0, 5.0, 4.0], 0.05) == 5.0


def test_slide_distance_is_the_median_squared_mahalanobis_per_feature():
    nodes = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    # Identity precision: squared norms 1, 4, 9; median 4, over 2 features.
    assert slide_distance(nodes, np.zeros(2), np.eye(2)) == 2.0
    # A precision of 4 on x only: 4, 4, 36 -> median 4 -> 2.
    assert slide_distance(nodes, np.zeros(2), np.diag([4.0, 1.0])) == 2.0


def test_fit_temperature_recovers_the_temperature_of_the_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 4))
    y = np.array([rng.choice(4, p=p) for p in softmax(logits / 2.0, axis=1)])
    assert fit_temperature(logits, y) == pytest.approx(2.0, rel=0.08)


def test_fit_temperature_never_sharpens_more_than_twice():
    logits = np.array([[5.0, -5.0], [-5.0, 5.0]] * 10)
    y = np.array([0, 1] * 10)  # perfectly separated
    assert fit_temperature(logits, y) == pytest.approx(0.5, rel=1e-3)


def test_out_of_fold_splits_cover_every_slide_once():
    y = np.array([0, 1, 2] * 5)
    folds = out_of_fold_splits(y, 5, seed=0)
    held = np.sort(np.concatenate([test for _, test in folds]))
    np.testing.assert_array_equal(held, np.arange(15))
    assert all(len(np.unique(y[test])) == 3 for _, test in folds)
    assert out_of_fold_splits(np.array([0, 1, 0]), 5, seed=0) == []


def _graphs(rng, n, shift=0.0, n_nodes=6, n_features=4):
    labels = np.array(["negative", "HGIN"] * (n // 2))
    graphs = []
    for label in labels:
        centre = shift + (1.0 if label == "HGIN" else -1.0)
        features = rng.normal(centre, 1.0, (n_nodes, n_features))
        adjacency = np.ones((n_nodes, n_nodes)) - np.eye(n_nodes)
        graphs.append(SlideGraph(features, adjacency))
    return graphs, labels


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    graphs, y = _graphs(rng, 40)
    clf = GCNSlideClassifier(hidden_units=8, max_epochs=30, random_state=0)
    return clf.fit(graphs, y), rng


def test_ood_flags_shifted_slides_and_few_held_out_ones(fitted):
    clf, rng = fitted
    held_out, _ = _graphs(np.random.default_rng(1), 200)
    shifted, _ = _graphs(np.random.default_rng(2), 20, shift=4.0)
    false_alarms = clf.is_out_of_distribution(held_out).mean()
    assert false_alarms <= 0.05 + 0.03  # 0.05 in expectation; 200 slides
    assert clf.is_out_of_distribution(shifted).all()
    scores = clf.ood_score(held_out)
    assert scores.shape == (200,)
    np.testing.assert_array_equal(
        clf.is_out_of_distribution(held_out), scores > clf.ood_threshold_
    )


def test_ood_score_needs_the_fitted_feature_length(fitted):
    clf, _ = fitted
    with pytest.raises(ValueError, match="has 3 node features; the classifier"):
        clf.ood_score([SlideGraph(np.zeros((2, 3)), np.zeros((2, 2)))])


def test_temperature_changes_probabilities_never_the_class():
    rng = np.random.default_rng(3)
    graphs, y = _graphs(rng, 40)
    params = {"hidden_units": 8, "max_epochs": 30, "random_state": 0}
    plain = GCNSlideClassifier(**params).fit(graphs, y)
    calibrated = GCNSlideClassifier(calibration="temperature", **params).fit(graphs, y)
    assert plain.temperature_ == 1.0
    assert calibrated.temperature_ != 1.0
    test, _ = _graphs(np.random.default_rng(4), 20)
    np.testing.assert_array_equal(plain.predict(test), calibrated.predict(test))
    proba = calibrated.predict_proba(test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    logits = np.log(plain.predict_proba(test))
    np.testing.assert_allclose(
        proba, softmax(logits / calibrated.temperature_, axis=1), rtol=1e-6
    )


def test_temperature_needs_enough_slides_to_hold_out():
    graphs, y = _graphs(np.random.default_rng(0), 4)
    clf = GCNSlideClassifier(max_epochs=2, calibration="temperature", random_state=0)
    with pytest.raises(ValueError, match="4 graphs are too few for calibration_cv=5"):
        clf.fit(graphs, y)
