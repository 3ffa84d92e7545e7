import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_gastric.baselines import PooledFeatureClassifier
from sklearn_gastric.io import Slide
from sklearn_gastric.preprocessing import TileBag


def make_bag(features, name="slide-f"):
    features = np.asarray(features, dtype=np.float32)
    return TileBag(
        Slide(np.zeros((8, 8, 3), dtype=np.uint8), name=name),
        coords=np.zeros((len(features), 2), dtype=int),
        tile_size=8,
        features=features,
    )


def make_dataset(n_slides, seed):
    """Slides whose few 'lesion' tiles carry the label (max pooling sees them)."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for i in range(n_slides):
        label = i % 2
        features = rng.normal(size=(int(rng.integers(5, 30)), 6))
        features[0, 0] += 6.0 * label
        X.append(make_bag(features, name=f"s{i}"))
        y.append(["negative", "HGIN"][label])
    return X, np.array(y)


def test_pooled_vectors_exact():
    bag = make_bag([[1.0, 5.0], [3.0, -1.0], [2.0, 2.0]])
    X, y = [bag, make_bag([[0.0, 0.0]])], ["a", "b"]
    mean = PooledFeatureClassifier(pooling="mean").fit(X, y)
    np.testing.assert_allclose(mean.pool_features([bag]), [[2.0, 2.0]])
    maximum = PooledFeatureClassifier(pooling="max").fit(X, y)
    np.testing.assert_allclose(maximum.pool_features([bag]), [[3.0, 5.0]])
    assert maximum.n_tile_features_ == 2


def test_max_pooling_finds_the_rare_lesion_tile():
    X, y = make_dataset(60, seed=0)
    X_test, y_test = make_dataset(40, seed=1)
    clf = PooledFeatureClassifier(pooling="max").fit(X, y)
    assert isinstance(clf.estimator_, LogisticRegression)
    assert clf.estimator_.max_iter == 1000
    assert clf.classes_.tolist() == ["HGIN", "negative"]
    assert clf.score(X_test, y_test) >= 0.9
    proba = clf.predict_proba(X_test)
    assert proba.shape == (40, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert clf.decision_function(X_test).shape == (40,)


def test_custom_estimator_is_cloned():
    X, y = make_dataset(20, seed=2)
    tree = DecisionTreeClassifier(random_state=0)
    clf = PooledFeatureClassifier(estimator=tree).fit(X, y)
    assert clf.estimator_ is not tree and not hasattr(tree, "classes_")
    assert clf.predict(X).shape == (20,)
    assert not hasattr(PooledFeatureClassifier(estimator=LinearSVC()), "predict_proba")
    assert not hasattr(PooledFeatureClassifier(estimator=tree), "decision_function")


def test_errors_name_the_slide():
    X, y = make_dataset(4, seed=3)
    clf = PooledFeatureClassifier().fit(X, y)
    bad = make_bag(np.ones((3, 6)), name="bad-slide")
    with pytest.raises(ValueError, match="'bad-slide'.*'features'.*PatchSegmenter"):
        clf.predict([bad.replace(features=None)])
    with pytest.raises(ValueError, match="'bad-slide'.*NaN"):
        clf.predict([bad.replace(features=np.full((3, 6), np.nan))])
    with pytest.raises(ValueError, match="'bad-slide'.*no tissue tile"):
        clf.predict([bad.subset([])])
    with pytest.raises(ValueError, match="'bad-slide' has 2 features.*fitted with 6"):
        clf.predict([make_bag(np.ones((3, 2)), name="bad-slide")])
    with pytest.raises(ValueError, match="'bad-slide' has 2 features.*first slide"):
        clf.fit(X + [make_bag(np.ones((3, 2)), name="bad-slide")], list(y) + ["HGIN"])
    with pytest.raises(ValueError, match="X has 4 slides but y has 2 labels"):
        clf.fit(X, y[:2])
    with pytest.raises(ValueError, match="at least two classes"):
        clf.fit(X, ["HGIN"] * 4)


@pytest.mark.parametrize(
    "params, name",
    [(dict(pooling="median"), "pooling"), (dict(estimator="lr"), "estimator")],
)
def test_invalid_parameters_rejected_in_fit(params, name):
    X, y = make_dataset(4, seed=4)
    with pytest.raises(InvalidParameterError, match=f"'{name}' parameter"):
        PooledFeatureClassifier(**params).fit(X, y)
