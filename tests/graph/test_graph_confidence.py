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
    squared_distances,
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


def test_squared_distances_per_dimension():
    points = np.array([[2.0, 0.0], [1.0, 1.0]])
    np.testing.assert_array_equal(
        squared_distances(points, np.zeros(2), np.diag([1.0, 3.0])), [2.0, 2.0]
    )


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


def _graphs(rng, n, shift=0.0, n_nodes=6, n_features=4, profile_shift=None):
    """Slides whose nodes are normal around -1 or +1 (plus ``shift``); with
    ``profile_shift``, each has a profile of 6 numbers around it."""
    labels = np.array(["negative", "HGIN"] * (n // 2))
    graphs = []
    for label in labels:
        centre = shift + (1.0 if label == "HGIN" else -1.0)
        features = rng.normal(centre, 1.0, (n_nodes, n_features))
        adjacency = np.ones((n_nodes, n_nodes)) - np.eye(n_nodes)
        profile = None
        if profile_shift is not None:
            profile = rng.normal(profile_shift, 1.0, 6)
        graphs.append(SlideGraph(features, adjacency, profile=profile))
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


@pytest.fixture(scope="module")
def fitted_with_profiles():
    graphs, y = _graphs(np.random.default_rng(0), 60, profile_shift=0.0)
    clf = GCNSlideClassifier(hidden_units=8, max_epochs=5, random_state=0)
    return clf.fit(graphs, y)


def test_ood_flags_an_unusual_profile_behind_ordinary_nodes(fitted_with_profiles):
    clf = fitted_with_profiles
    held_out, _ = _graphs(np.random.default_rng(1), 200, profile_shift=0.0)
    # Nodes like the training ones; the rest of the slide is not.
    unlike, _ = _graphs(np.random.default_rng(2), 20, profile_shift=3.0)
    assert clf.is_out_of_distribution(held_out).mean() <= 0.05 + 0.03
    assert clf.is_out_of_distribution(unlike).all()
    assert set(clf.ood_density_) == {
        "node_location",
        "node_precision",
        "profile_mean",
        "profile_scale",
        "profile_location",
        "profile_precision",
        "scale",
    }
    # Each distance over its median among the training slides: a typical
    # slide scores about 1.
    assert 0.7 < np.median(clf.ood_score(held_out)) < 2.0


def test_ood_score_without_profiles_is_the_node_distance(fitted):
    clf, _ = fitted
    assert set(clf.ood_density_) == {"node_location", "node_precision", "scale"}
    graphs, _ = _graphs(np.random.default_rng(5), 4)
    density = clf.ood_density_
    expected = [
        slide_distance(
            clf._standardise(g.features),
            density["node_location"],
            density["node_precision"],
        )
        / density["scale"][0]
        for g in graphs
    ]
    np.testing.assert_allclose(clf.ood_score(graphs), expected)


def test_ood_score_needs_the_profiles_it_was_fitted_with(fitted_with_profiles):
    graphs, _ = _graphs(np.random.default_rng(3), 2)
    with pytest.raises(ValueError, match="has no profile; the classifier was"):
        fitted_with_profiles.ood_score(graphs)
    short, _ = _graphs(np.random.default_rng(3), 2, profile_shift=0.0)
    short[0].profile = short[0].profile[:4]
    with pytest.raises(ValueError, match="profile of length 4; the classifier"):
        fitted_with_profiles.ood_score(short)


def test_training_graphs_have_profiles_all_or_none():
    graphs, y = _graphs(np.random.default_rng(0), 20, profile_shift=0.0)
    graphs[3].profile = None
    clf = GCNSlideClassifier(max_epochs=1, random_state=0)
    with pytest.raises(ValueError, match="has no profile; another training graph"):
        clf.fit(graphs, y)


def test_a_model_from_before_profiles_scores_its_nodes(fitted):
    from sklearn.base import clone

    clf, _ = fitted
    old = clone(clf)
    old.__dict__.update(clf.__dict__)
    density = old.__dict__.pop("ood_density_")
    old.ood_location_ = density["node_location"]
    old.ood_precision_ = density["node_precision"]
    graphs, _ = _graphs(np.random.default_rng(6), 4)
    np.testing.assert_allclose(
        old.ood_score(graphs), clf.ood_score(graphs) * density["scale"][0]
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


@pytest.mark.parametrize("n_slides, expected", [(16, False), (20, True)])
def test_the_demo_calibrates_exactly_when_the_gcn_can(n_slides, expected):
    import dataclasses

    from sklearn_gastric._demo import QUICK, _can_calibrate

    config = dataclasses.replace(QUICK, n_slides=n_slides, cv_folds=2)
    assert _can_calibrate(config) is expected
    # The smallest training fold of the demo's 2-fold cross-validation.
    graphs, y = _graphs(np.random.default_rng(0), n_slides // 2)
    clf = GCNSlideClassifier(max_epochs=1, calibration="temperature", random_state=0)
    if expected:
        assert clf.fit(graphs, y).temperature_ > 0
    else:
        with pytest.raises(ValueError, match="too few for calibration_cv=5"):
            clf.fit(graphs, y)


def test_tile_profile_needs_a_matrix_of_tiles():
    from sklearn_gastric.graph import tile_profile

    with pytest.raises(ValueError, match=r"shape \(n_tiles, n_features\).*\(0, 3\)"):
        tile_profile(np.zeros((0, 3)))
    with pytest.raises(ValueError, match=r"got shape \(4,\)"):
        tile_profile(np.zeros(4))
