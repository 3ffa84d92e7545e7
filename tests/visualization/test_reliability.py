"""The multi-class reliability diagram."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from sklearn_gastric.metrics import (  # noqa: E402
    expected_calibration_error,
    reliability_curve,
)
from sklearn_gastric.visualization import ReliabilityDiagramDisplay  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_the_line_is_the_reliability_curve():
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(3), size=200)
    y = rng.integers(0, 3, size=200)
    display = ReliabilityDiagramDisplay.from_predictions(y, proba, n_bins=8)
    confidence, accuracy, count = reliability_curve(y, proba, n_bins=8)
    xs, ys = display.line_.get_data()
    np.testing.assert_allclose(xs, confidence)
    np.testing.assert_allclose(ys, accuracy)
    heights = [bar.get_height() for bar in display.count_ax_.patches]
    np.testing.assert_array_equal(heights, count)
    assert display.ece_ == expected_calibration_error(y, proba, n_bins=8)
    assert display.class_lines_ == []


def test_per_class_curves_and_from_estimator():
    X, y = make_classification(300, n_informative=4, n_classes=3, random_state=0)
    model = LogisticRegression(max_iter=500).fit(X, y)
    display = ReliabilityDiagramDisplay.from_estimator(model, X, y, per_class=True)
    assert [line.get_label() for line in display.class_lines_] == [
        "0 vs rest",
        "1 vs rest",
        "2 vs rest",
    ]
    assert display.line_.get_label().startswith("LogisticRegression (ECE ")
    expected = expected_calibration_error(y, model.predict_proba(X))
    assert display.ece_ == pytest.approx(expected)
