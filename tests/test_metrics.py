"""Top-label calibration metrics, against hand-computed cases."""

import numpy as np
import pytest

from sklearn_gastric.metrics import expected_calibration_error, reliability_curve

PROBA = [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]]
Y = ["a", "b", "b", "b"]


def test_hand_checked_ece():
    # Bins of 0.2: {0.6, 0.7} both right (1.0 vs 0.65), {0.8, 0.9} one right
    # (0.5 vs 0.85): 0.5 * 0.35 + 0.5 * 0.35.
    assert expected_calibration_error(Y, PROBA, n_bins=5) == pytest.approx(0.35)
    confidence, accuracy, count = reliability_curve(Y, PROBA, n_bins=5)
    np.testing.assert_allclose(confidence, [0.65, 0.85])
    np.testing.assert_array_equal(accuracy, [1.0, 0.5])
    np.testing.assert_array_equal(count, [2, 2])
    # One bin: accuracy 0.75 against a mean confidence of 0.75.
    assert expected_calibration_error(Y, PROBA, n_bins=1) == pytest.approx(0.0)


def test_perfect_calibration_and_certainty_in_the_last_bin():
    proba = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error([0, 1], proba, n_bins=10) == 0.0
    confidence, _, count = reliability_curve([0, 1], proba, n_bins=10)
    np.testing.assert_array_equal(confidence, [1.0])
    np.testing.assert_array_equal(count, [2])
    # Always wrong and certain: the worst case.
    assert expected_calibration_error([1, 0], proba) == 1.0


def test_labels_name_the_columns():
    proba = np.array(PROBA)[:, ::-1]
    ece = expected_calibration_error(Y, proba, labels=["b", "a"], n_bins=5)
    assert ece == pytest.approx(0.35)
    with pytest.raises(ValueError, match="3 labels for the 2 columns of y_proba"):
        expected_calibration_error(Y, PROBA, labels=["a", "b", "c"])
    with pytest.raises(ValueError, match="n_samples = 4 > 0"):
        expected_calibration_error(Y, PROBA[:3])
    with pytest.raises(ValueError, match="finite probabilities in"):
        expected_calibration_error(Y, [[1.5, -0.5]] * 4)


def test_quantile_bins_hold_equal_counts():
    confidence, accuracy, count = reliability_curve(
        Y, PROBA, n_bins=2, strategy="quantile"
    )
    np.testing.assert_array_equal(count, [2, 2])
    np.testing.assert_allclose(confidence, [0.65, 0.85])


def test_agrees_with_a_brute_force_loop():
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(4), size=500)
    y = rng.integers(0, 4, size=500)
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    expected = 0.0
    for b in range(10):
        inside = [min(int(c * 10), 9) == b for c in confidence]
        inside = np.array(inside)
        if inside.any():
            gap = abs(correct[inside].mean() - confidence[inside].mean())
            expected += inside.mean() * gap
    assert expected_calibration_error(y, proba) == pytest.approx(expected)


def test_bad_parameters_are_refused_by_name():
    from sklearn.utils._param_validation import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="The 'n_bins' parameter"):
        expected_calibration_error(Y, PROBA, n_bins=0)
    with pytest.raises(InvalidParameterError, match="The 'strategy' parameter"):
        reliability_curve(Y, PROBA, strategy="kmeans")
