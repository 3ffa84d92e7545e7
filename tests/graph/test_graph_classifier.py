import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_gastric.graph import GCNSlideClassifier, SlideGraph, pearson_adjacency

CLASSES = ("negative", "LGIN", "HGIN", "carcinoma")


def make_graphs(n_graphs, seed, n_features=16, shift=1.0):
    """Graphs of 3 to 15 nodes whose first features drift with the class."""
    rng = np.random.default_rng(seed)
    graphs, y = [], []
    for i in range(n_graphs):
        label = i % len(CLASSES)
        k = int(rng.integers(3, 16))
        features = rng.normal(size=(k, n_features))
        features[:, :4] += shift * label
        adjacency = pearson_adjacency(features, threshold=0.2)
        graphs.append(SlideGraph(features, adjacency, name=f"g{seed}-{i}"))
        y.append(CLASSES[label])
    return graphs, np.array(y)


FAST = dict(hidden_units=16, max_epochs=40, batch_size=32)


@pytest.fixture(scope="module")
def data():
    return make_graphs(160, seed=0), make_graphs(80, seed=1)


@pytest.fixture(scope="module")
def fitted(data):
    (graphs, y), _ = data
    return GCNSlideClassifier(random_state=0, **FAST).fit(graphs, y)


def test_learns_separable_graphs_with_string_labels(data, fitted):
    _, (test_graphs, y_test) = data
    assert fitted.classes_.tolist() == sorted(CLASSES)
    assert fitted.score(test_graphs, y_test) >= 0.9
    predicted = fitted.predict(test_graphs)
    assert predicted.shape == (80,) and set(predicted) <= set(CLASSES)


def test_predict_proba_rows_sum_to_one(data, fitted):
    _, (test_graphs, _) = data
    proba = fitted.predict_proba(test_graphs)
    assert proba.shape == (80, 4) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    assert (proba >= 0).all()
    np.testing.assert_array_equal(
        fitted.classes_[proba.argmax(axis=1)], fitted.predict(test_graphs)
    )
    assert fitted.predict_proba([]).shape == (0, 4)


def test_same_random_state_same_model_and_global_state_untouched(data, fitted):
    (graphs, y), (test_graphs, _) = data
    torch.manual_seed(123)
    before = torch.get_rng_state()
    threads = torch.get_num_threads()
    again = GCNSlideClassifier(random_state=0, **FAST).fit(graphs, y)
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.get_num_threads() == threads
    np.testing.assert_array_equal(
        again.predict_proba(test_graphs), fitted.predict_proba(test_graphs)
    )
    other = GCNSlideClassifier(random_state=1, **FAST).fit(graphs, y)
    assert not np.array_equal(
        other.predict_proba(test_graphs), fitted.predict_proba(test_graphs)
    )


def test_features_standardised_inside(data, fitted):
    (graphs, y), (test_graphs, _) = data
    nodes = np.concatenate([g.features for g in graphs]).astype(np.float64)
    np.testing.assert_allclose(fitted.feature_mean_, nodes.mean(axis=0))
    np.testing.assert_allclose(fitted.feature_scale_, nodes.std(axis=0))
    assert fitted.n_node_features_ == 16

    # An affine change of the features changes nothing once standardised.
    def rescale(graph_list):
        return [
            SlideGraph(g.features * 100 + 7, g.adjacency, name=g.name)
            for g in graph_list
        ]

    rescaled = GCNSlideClassifier(random_state=0, **FAST).fit(rescale(graphs), y)
    np.testing.assert_allclose(
        rescaled.predict_proba(rescale(test_graphs)),
        fitted.predict_proba(test_graphs),
        atol=2e-3,
    )


def test_constant_feature_gets_unit_scale():
    graphs = [
        SlideGraph(np.array([[s, 5.0], [2 * s, 5.0]]), np.zeros((2, 2)))
        for s in (1.0, -1.0)
    ]
    clf = GCNSlideClassifier(hidden_units=4, max_epochs=2, random_state=0)
    clf.fit(graphs, ["a", "b"])
    assert clf.feature_scale_[1] == 1.0
    assert np.isfinite(clf.predict_proba(graphs)).all()


@pytest.mark.parametrize("readout", ["mean", "max", "sum"])
def test_other_readouts_and_class_weight(data, readout):
    (graphs, y), _ = data
    clf = GCNSlideClassifier(
        readout=readout,
        n_layers=1,
        class_weight="balanced",
        hidden_units=8,
        max_epochs=5,
        random_state=0,
    ).fit(graphs[:20], y[:20])
    np.testing.assert_allclose(clf.net_.criterion_.weight.numpy(), [1.0] * 4)
    assert clf.predict_proba(graphs[:3]).shape == (3, 4)


def test_balanced_class_weight_values():
    graphs = [SlideGraph(np.eye(2) * i, np.zeros((2, 2))) for i in range(4)]
    clf = GCNSlideClassifier(
        hidden_units=4, max_epochs=1, class_weight="balanced", random_state=0
    ).fit(graphs, ["a", "a", "a", "b"])
    # n / (n_classes * count): 4 / (2 * 3) and 4 / (2 * 1).
    np.testing.assert_allclose(clf.net_.criterion_.weight.numpy(), [2 / 3, 2.0])


def test_fit_errors():
    graphs, y = make_graphs(4, seed=3)
    clf = GCNSlideClassifier(max_epochs=1)
    with pytest.raises(ValueError, match="X has 4 slides but y has 3 labels"):
        clf.fit(graphs, y[:3])
    with pytest.raises(
        ValueError, match="GCNSlideClassifier: fit needs at least two classes"
    ):
        clf.fit(graphs, ["HGIN"] * 4)
    with pytest.raises(ValueError, match="at least one slide"):
        clf.fit([], [])
    odd = SlideGraph(np.zeros((2, 5)), np.zeros((2, 2)), name="odd")
    with pytest.raises(
        ValueError, match="'odd' has 5 node features.*first graph has 16"
    ):
        clf.fit(graphs + [odd], list(y) + ["LGIN"])
    broken = SlideGraph(np.ones((2, 16)), np.zeros((2, 2)), name="broken")
    broken.features[0, 3] = np.nan
    with pytest.raises(ValueError, match="'broken': features contain NaN"):
        clf.fit(graphs + [broken], list(y) + ["LGIN"])
    with pytest.raises(TypeError, match="item 1 is a ndarray"):
        clf.fit([graphs[0], np.zeros((3, 3))], y[:2])
    with pytest.raises(TypeError, match="wrap it in a list"):
        clf.fit(graphs[0], y[:1])


def test_predict_errors(fitted):
    with pytest.raises(NotFittedError):
        GCNSlideClassifier().predict(make_graphs(1, seed=4)[0])
    odd = SlideGraph(np.zeros((2, 5)), np.zeros((2, 2)), name="odd")
    with pytest.raises(ValueError, match="'odd' has 5 node features.*fitted with 16"):
        fitted.predict([odd])


@pytest.mark.parametrize(
    "params, name",
    [
        (dict(hidden_units=0), "hidden_units"),
        (dict(n_layers=0), "n_layers"),
        (dict(dropout=1.0), "dropout"),
        (dict(readout="median"), "readout"),
        (dict(max_epochs=0), "max_epochs"),
        (dict(lr=0.0), "lr"),
        (dict(batch_size=0), "batch_size"),
        (dict(class_weight="auto"), "class_weight"),
        (dict(random_state="seed"), "random_state"),
    ],
)
def test_invalid_parameters_rejected_in_fit(params, name):
    graphs, y = make_graphs(4, seed=5)
    clf = GCNSlideClassifier(**params)
    with pytest.raises(InvalidParameterError, match=f"'{name}' parameter"):
        clf.fit(graphs, y)


def test_defaults_and_classifier_tag():
    # The shared contract (clone, pickling, NotFittedError) is in test_common.py.
    clf = GCNSlideClassifier()
    params = clf.get_params()
    assert params["hidden_units"] == 64 and params["device"] == "cpu"
    assert params["n_layers"] == 2 and params["readout"] == "mean_max"
    assert clf.__sklearn_tags__().estimator_type == "classifier"


def test_early_stopping_on_a_stratified_internal_split(data):
    (graphs, y), _ = data
    rng = np.random.default_rng(0)
    noise = rng.permutation(
        y[:48]
    )  # 12 of each class, nothing to learn: valid_loss soon stops falling
    model = GCNSlideClassifier(
        hidden_units=8,
        max_epochs=200,
        lr=0.05,
        validation_fraction=0.25,
        patience=3,
        random_state=0,
    ).fit(graphs[:48], noise[:48])
    history = model.net_.history
    assert len(history) < 200
    best = int(np.argmin(history[:, "valid_loss"]))
    assert len(history) == best + 1 + 3  # three epochs without improvement
    assert not model.net_.module_.training
    from sklearn_gastric.graph._classifier import _StratifiedSplit

    dataset = model._dataset(graphs[:48], model.classes_.searchsorted(noise[:48]))
    train, valid = _StratifiedSplit(0.25, seed=0)(dataset)
    assert len(valid) == 12 and len(train) == 36
    held = dataset.labels[valid.indices]
    assert np.bincount(held, minlength=4).tolist() == [3, 3, 3, 3]


def test_validation_fraction_that_leaves_nothing_to_train_on(data):
    (graphs, y), _ = data
    model = GCNSlideClassifier(max_epochs=1, validation_fraction=0.9)
    with pytest.raises(ValueError, match="leaves no training graph out of 4"):
        model.fit(graphs[:4], y[:4])


def _bag_cohort(n_slides, seed, n_tiles=40, n_lesion=4, n_features=8):
    """Bags whose lesion class shows in 4 high-scoring tiles of 40."""
    from sklearn_gastric.io import Slide
    from sklearn_gastric.preprocessing import TileBag

    rng = np.random.default_rng(seed)
    blank = Slide(np.zeros((8, 8, 3), np.uint8), name="blank")
    centres = 2.0 * np.eye(n_features)[:3]
    bags, labels = [], []
    for i in range(n_slides):
        label = i % 4
        features = rng.normal(size=(n_tiles, n_features))
        scores = rng.random(n_tiles)
        if label:
            features[:n_lesion] += centres[label - 1]
            scores[:n_lesion] += 1.0
        coords = np.zeros((n_tiles, 2), int)
        bags.append(TileBag(blank, coords, 8, features=features, scores=scores))
        labels.append(CLASSES[label])
    return bags, np.array(labels)


def test_regularised_gcn_overfits_a_tiny_cohort_less_than_pooling():
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.pipeline import make_pipeline

    from sklearn_gastric.baselines import PooledFeatureClassifier
    from sklearn_gastric.graph import PearsonGraphBuilder, TopKSelector

    gcn_scores, pooled_scores = [], []
    for seed in range(3):
        train, y_train = _bag_cohort(16, seed)
        test, y_test = _bag_cohort(80, 100 + seed)
        gcn = make_pipeline(
            TopKSelector(k=5),
            PearsonGraphBuilder(threshold=0.3),
            GCNSlideClassifier(
                max_epochs=200,
                dropout=0.2,
                weight_decay=1e-2,
                class_weight="balanced",
                validation_fraction=0.25,
                patience=20,
                random_state=seed,
            ),
        )
        for model, record in (
            (gcn, gcn_scores),
            (PooledFeatureClassifier(), pooled_scores),
        ):
            model.fit(train, y_train)
            record.append(
                [
                    balanced_accuracy_score(y_train, model.predict(train)),
                    balanced_accuracy_score(y_test, model.predict(test)),
                ]
            )
    (gcn_train, gcn_test), (pooled_train, pooled_test) = (
        np.mean(gcn_scores, axis=0),
        np.mean(pooled_scores, axis=0),
    )
    # 16 slides: the GCN generalises better and its train-test gap is smaller
    # (measured 0.71 vs 0.42 held-out, gaps 0.23 vs 0.33).
    assert gcn_test >= pooled_test + 0.15
    assert gcn_train - gcn_test <= pooled_train - pooled_test
