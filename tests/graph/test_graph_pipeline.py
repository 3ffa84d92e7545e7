import joblib
import numpy as np
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from sklearn_gastric.graph import GCNSlideClassifier, PearsonGraphBuilder, TopKSelector
from sklearn_gastric.io import Slide
from sklearn_gastric.preprocessing import TileBag


def make_bags(n_slides, seed):
    """Slides whose highest-scoring tiles carry the label in their features."""
    rng = np.random.default_rng(seed)
    bags, y = [], []
    for i in range(n_slides):
        label = i % 2
        n_tiles = int(rng.integers(8, 20))
        scores = rng.random(n_tiles).astype(np.float32)
        features = rng.normal(size=(n_tiles, 8))
        top = np.argsort(-scores)[:3]
        features[top, :3] += 2.0 * (2 * label - 1)
        bags.append(
            TileBag(
                Slide(np.zeros((8, 8, 3), dtype=np.uint8), name=f"slide-{i}"),
                coords=np.stack([np.arange(n_tiles) * 8, np.zeros(n_tiles)], 1),
                tile_size=8,
                features=features,
                scores=scores,
            )
        )
        y.append(["negative", "carcinoma"][label])
    return bags, np.array(y)


def make_pipeline(**gcn_params):
    return Pipeline(
        [
            ("topk", TopKSelector(k=3)),
            ("graph", PearsonGraphBuilder(threshold=0.3)),
            (
                "gcn",
                GCNSlideClassifier(
                    hidden_units=8, max_epochs=30, random_state=0, **gcn_params
                ),
            ),
        ]
    )


def test_pipeline_from_tile_bags_to_slide_classes(tmp_path):
    X, y = make_bags(40, seed=0)
    X_test, y_test = make_bags(20, seed=1)
    pipe = make_pipeline().fit(X, y)
    assert pipe.score(X_test, y_test) >= 0.9
    proba = pipe.predict_proba(X_test)
    assert proba.shape == (20, 2)
    path = tmp_path / "model.joblib"
    joblib.dump(pipe, path)
    np.testing.assert_array_equal(joblib.load(path).predict_proba(X_test), proba)


def test_grid_search_over_k_and_threshold(tmp_path):
    X, y = make_bags(24, seed=2)
    pipe = make_pipeline()
    pipe.set_params(memory=str(tmp_path / "cache"))
    search = GridSearchCV(
        pipe,
        {"topk__k": [1, 3], "graph__threshold": [0.0, 0.5]},
        cv=2,
    ).fit(X, y)
    assert search.best_params_["topk__k"] in (1, 3)
    assert len(search.predict(X)) == 24
