import numpy as np
import pytest

from sklearn_gastric.baselines import ProportionThresholdClassifier
from sklearn_gastric.baselines._proportion import _best_threshold
from sklearn_gastric.datasets import GASTRIC_CLASSES
from sklearn_gastric.io import Slide
from sklearn_gastric.preprocessing import TileBag


def make_bag(tile_classes, name="slide-t", n_columns=4):
    """A bag whose tiles are predicted as the given column indices."""
    tile_classes = np.asarray(tile_classes, dtype=int)
    proba = np.full((len(tile_classes), n_columns), 0.1 / max(n_columns - 1, 1))
    proba[np.arange(len(tile_classes)), tile_classes] = 0.9
    return TileBag(
        Slide(np.zeros((8, 8, 3), dtype=np.uint8), name=name),
        coords=np.zeros((len(tile_classes), 2), dtype=int),
        tile_size=8,
        patch_proba=proba,
    )


def counts_bag(n_lgin=0, n_hgin=0, n_carcinoma=0, n_tiles=20, name="slide-t"):
    tiles = [1] * n_lgin + [2] * n_hgin + [3] * n_carcinoma
    return make_bag(tiles + [0] * (n_tiles - len(tiles)), name=name)


# (LGIN, HGIN, carcinoma) tile counts out of 20, and the slide label.
TRAIN = [
    ((0, 0, 0), "negative"),
    ((1, 0, 0), "negative"),
    ((4, 0, 0), "LGIN"),
    ((6, 1, 0), "LGIN"),
    ((2, 4, 0), "HGIN"),
    ((3, 6, 1), "HGIN"),
    ((0, 5, 4), "carcinoma"),
    ((1, 2, 8), "carcinoma"),
]


@pytest.fixture(scope="module")
def fitted():
    X = [counts_bag(*counts, name=f"t{i}") for i, (counts, _) in enumerate(TRAIN)]
    y = [label for _, label in TRAIN]
    return ProportionThresholdClassifier().fit(X, y)


def test_thresholds_by_hand(fitted):
    # LGIN: positives (>= LGIN) have LGIN proportions .2 .3 .1 .15 0 .05, the
    # negatives 0 and .05. The midpoint 0.075 gives sensitivity 4/6 and
    # specificity 1 (BA .833); 0.025 gives 5/6 and 1/2 (.667): 0.075 wins.
    # HGIN: positives .2 .3 .25 .1, negatives 0 0 0 .05: 0.075 separates all.
    # carcinoma: positives .2 .4, negatives 0 0 0 0 0 .05: 0.125 separates all.
    np.testing.assert_allclose(fitted.thresholds_, [0.0, 0.075, 0.075, 0.125])
    assert fitted.classes_.tolist() == list(GASTRIC_CLASSES)


def test_most_severe_crossed_class_wins(fitted):
    X = [
        counts_bag(0, 0, 0),  # nothing crossed
        counts_bag(1, 0, 0),  # .05 < .075
        counts_bag(2, 0, 0),  # LGIN .1
        counts_bag(5, 2, 0),  # LGIN and HGIN crossed: HGIN
        counts_bag(0, 0, 3),  # carcinoma .15 alone
        counts_bag(9, 9, 2),  # carcinoma .1 < .125: HGIN
    ]
    expected = ["negative", "negative", "LGIN", "HGIN", "carcinoma", "HGIN"]
    assert fitted.predict(X).tolist() == expected
    proba = fitted.predict_proba(X)
    assert proba.shape == (6, 4)
    np.testing.assert_array_equal(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(fitted.classes_[proba.argmax(axis=1)], expected)
    assert set(np.unique(proba)) == {0.0, 1.0}


def test_training_accuracy(fitted):
    X = [counts_bag(*counts) for counts, _ in TRAIN]
    y = [label for _, label in TRAIN]
    # E.g. the LGIN slide with 6 LGIN and 1 HGIN tiles: HGIN .05 < .075.
    assert fitted.score(X, y) == 1.0


@pytest.mark.parametrize(
    "proportion, positive, expected",
    [
        ([0.0, 0.1, 0.4, 0.6], [0, 0, 1, 1], 0.25),
        ([0.0, 0.1, 0.4, 0.6], [0, 0, 0, 0], np.inf),  # no positive slide
        ([0.0, 0.1, 0.4, 0.6], [1, 1, 1, 1], 0.0),  # every slide positive
        ([0.2, 0.2, 0.2], [0, 1, 1], np.inf),  # one value: no split
        ([0.5, 0.1], [0, 1], np.inf),  # reversed: no better than chance
        ([0.0, 0.2, 0.2, 0.4], [0, 1, 0, 1], 0.1),  # tie between .1 and .3
    ],
)
def test_best_threshold(proportion, positive, expected):
    got = _best_threshold(np.array(proportion), np.array(positive, dtype=bool))
    assert got == pytest.approx(expected)


def test_custom_columns_and_severity_order():
    X = [make_bag([0] * 9 + [1] * k, n_columns=2) for k in (0, 1, 5, 6)]
    y = ["benign", "benign", "malignant", "malignant"]
    clf = ProportionThresholdClassifier(
        columns=["benign", "malignant"], severity_order=["benign", "malignant"]
    ).fit(X, y)
    # Proportions 0, .1, 5/14, 6/15: the midpoint of .1 and 5/14.
    np.testing.assert_allclose(clf.thresholds_, [0.0, (0.1 + 5 / 14) / 2])
    assert clf.predict(X).tolist() == y
    # Columns in another order than the severity.
    swapped = ProportionThresholdClassifier(
        columns=["malignant", "benign"], severity_order=["benign", "malignant"]
    )
    X_swapped = [make_bag([1] * 9 + [0] * k, n_columns=2) for k in (0, 1, 5, 6)]
    assert swapped.fit(X_swapped, y).predict(X_swapped).tolist() == y


def test_errors_name_the_slide(fitted):
    bag = counts_bag(name="bad-slide")
    with pytest.raises(ValueError, match="'bad-slide'.*'patch_proba'.*PatchSegmenter"):
        fitted.predict([bag.replace(patch_proba=None)])
    with pytest.raises(ValueError, match=r"'bad-slide'.*expected \(n_tiles, 4\)"):
        fitted.predict([make_bag([0, 1], name="bad-slide", n_columns=3)])
    with pytest.raises(ValueError, match="'bad-slide'.*no tissue tile"):
        fitted.predict([bag.subset([])])
    nan_bag = bag.replace(patch_proba=np.full((20, 4), np.nan))
    with pytest.raises(ValueError, match="'bad-slide'.*NaN"):
        fitted.predict([nan_bag])


def test_fit_errors():
    X = [counts_bag(0), counts_bag(5)]
    clf = ProportionThresholdClassifier()
    with pytest.raises(ValueError, match=r"labels \['cancer'\] that are not in"):
        clf.fit(X, ["negative", "cancer"])
    with pytest.raises(ValueError, match="X has 2 slides but y has 1 labels"):
        clf.fit(X, ["negative"])
    with pytest.raises(ValueError, match="at least two classes"):
        clf.fit(X, ["LGIN", "LGIN"])
    with pytest.raises(ValueError, match=r"columns \['other'\] are not in"):
        ProportionThresholdClassifier(columns=["negative", "other"]).fit(
            X, ["LGIN"] * 2
        )
    with pytest.raises(ValueError, match="two distinct classes"):
        ProportionThresholdClassifier(severity_order=["a", "a"]).fit(X, ["a", "b"])
    with pytest.raises(TypeError, match="list of TileBag"):
        clf.fit("slides", ["a"])


def test_predict_on_no_slides(fitted):
    # The shared contract (clone, pickling, NotFittedError) is in test_common.py.
    assert fitted.predict([]).shape == (0,)
