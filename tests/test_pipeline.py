"""The whole chain of DESIGN.md in a scikit-learn Pipeline."""

import copy
from collections import Counter

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline

from sklearn_gastric import (
    GCNSlideClassifier,
    OtsuFilter,
    PatchSegmenter,
    PearsonGraphBuilder,
    StainNormalizer,
    Tiler,
    TopKSelector,
)

TILE = 32
# The step names of make_gastric_pipeline without stain normalisation.
GASTRIC_STEPS = ["tile", "tissue", "seg", "topk", "graph", "gcn"]


@pytest.fixture(scope="module")
def cohort(make_cohort):
    return make_cohort(8)


def _pipeline(segmenter, *, target=None, memory=None):
    steps = [
        ("tile", Tiler(tile_size=TILE)),
        ("tissue", OtsuFilter(min_tissue=0.5)),
        ("seg", FrozenEstimator(segmenter)),
        ("topk", TopKSelector(k=4)),
        ("graph", PearsonGraphBuilder(threshold=0.5)),
        ("gcn", GCNSlideClassifier(hidden_units=8, max_epochs=20, random_state=0)),
    ]
    if target is not None:
        steps.insert(0, ("stain", StainNormalizer(target=target)))
    return Pipeline(steps, memory=memory)


def test_fit_predict_proba_score_with_stain_normalisation(
    tiny_segmenter, cohort, he_target_path
):
    slides, labels = cohort
    pipe = _pipeline(tiny_segmenter, target=he_target_path)
    assert pipe.fit(slides, labels) is pipe
    assert pipe.classes_.tolist() == ["carcinoma", "negative"]
    proba = pipe.predict_proba(slides)
    assert proba.shape == (8, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    predictions = pipe.predict(slides)
    np.testing.assert_array_equal(predictions, pipe.classes_[proba.argmax(axis=1)])
    assert pipe.score(slides, labels) == np.mean(predictions == labels)


def test_fit_never_retrains_the_frozen_segmenter(tiny_segmenter, cohort):
    weights = {
        k: v.clone() for k, v in tiny_segmenter.net_.module_.state_dict().items()
    }
    _pipeline(tiny_segmenter).fit(*cohort)
    for name, value in tiny_segmenter.net_.module_.state_dict().items():
        assert value.equal(weights[name]), name


def test_clone_of_an_unfitted_pipeline_is_unfitted(tiny_segmenter, cohort):
    pipe = _pipeline(tiny_segmenter)
    cloned = clone(pipe)
    # FrozenEstimator's clone is the same trained segmenter.
    assert cloned.named_steps["seg"] is pipe.named_steps["seg"]
    with pytest.raises(NotFittedError):
        cloned.predict(cohort[0])
    fitted = _pipeline(tiny_segmenter).fit(*cohort)
    refit_clone = clone(fitted)
    with pytest.raises(NotFittedError):
        refit_clone.predict(cohort[0])


def test_joblib_round_trip_gives_identical_probabilities(
    tiny_segmenter, cohort, tmp_path
):
    slides, labels = cohort
    pipe = _pipeline(tiny_segmenter).fit(slides, labels)
    joblib.dump(pipe, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_array_equal(
        loaded.predict_proba(slides), pipe.predict_proba(slides)
    )


def test_cross_val_score_in_parallel_equals_sequential(tiny_segmenter, cohort):
    slides, labels = cohort
    cv = StratifiedKFold(2, shuffle=True, random_state=0)
    sequential = cross_val_score(_pipeline(tiny_segmenter), slides, labels, cv=cv)
    parallel = cross_val_score(
        _pipeline(tiny_segmenter), slides, labels, cv=cv, n_jobs=2
    )
    np.testing.assert_array_equal(sequential, parallel)
    assert np.all((0 <= sequential) & (sequential <= 1))


@pytest.fixture
def counted_segmentations(monkeypatch):
    """Names of the slides the network actually runs on, in order."""
    seen = []
    original = PatchSegmenter._segment_bag

    def counting(self, bag):
        seen.append(bag.name)
        return original(self, bag)

    monkeypatch.setattr(PatchSegmenter, "_segment_bag", counting)
    return seen


def test_grid_search_with_memory_runs_the_cnn_once_per_slide(
    tiny_segmenter, cohort, tmp_path, counted_segmentations
):
    slides, labels = cohort
    cache = str(tmp_path / "cache")
    cached_segmenter = copy.deepcopy(tiny_segmenter).set_params(memory=cache)
    grid = GridSearchCV(
        _pipeline(cached_segmenter, memory=cache),
        {
            "topk__k": [2, 4],
            "graph__threshold": [0.3, 0.7],
            "gcn__hidden_units": [4, 8],
        },
        cv=StratifiedKFold(2, shuffle=True, random_state=0),
    )
    grid.fit(slides, labels)
    assert len(grid.cv_results_["params"]) == 8
    assert Counter(counted_segmentations) == Counter(s.name for s in slides)
    # Predicting again reads the cache too.
    grid.predict(slides)
    assert Counter(counted_segmentations) == Counter(s.name for s in slides)


def test_without_segmenter_memory_scoring_reruns_the_cnn(
    tiny_segmenter, cohort, tmp_path, counted_segmentations
):
    # The reason for PatchSegmenter(memory=...): Pipeline(memory=...) alone
    # caches fits, while every candidate's scoring runs the CNN again.
    slides, labels = cohort
    grid = GridSearchCV(
        _pipeline(tiny_segmenter, memory=str(tmp_path / "cache")),
        {"topk__k": [2, 4]},
        cv=StratifiedKFold(2, shuffle=True, random_state=0),
    )
    grid.fit(slides, labels)
    assert len(counted_segmentations) > len(slides)


# -- make_gastric_pipeline and predict_slides ---------------------------------


def test_make_gastric_pipeline_names_the_steps_and_freezes_the_segmenter(
    tiny_segmenter, cohort
):
    from sklearn_gastric.pipeline import find_step, make_gastric_pipeline

    target = np.full((64, 64, 3), 180, np.uint8)
    pipe = make_gastric_pipeline(
        tiny_segmenter,
        tile_size=TILE,
        target=target,
        k=3,
        threshold=0.2,
        random_state=7,
    )
    assert [name for name, _ in pipe.steps] == ["stain", *GASTRIC_STEPS]
    assert isinstance(pipe.named_steps["seg"], FrozenEstimator)
    assert find_step(pipe, PatchSegmenter) is tiny_segmenter
    assert pipe.named_steps["tile"].tile_size == TILE
    assert pipe.named_steps["topk"].k == 3
    assert pipe.named_steps["graph"].threshold == 0.2
    gcn = pipe.named_steps["gcn"]
    assert (gcn.class_weight, gcn.random_state) == ("balanced", 7)
    assert find_step(pipe, GCNSlideClassifier) is gcn
    assert (
        find_step(
            make_gastric_pipeline(tiny_segmenter, tile_size=TILE), StainNormalizer
        )
        is None
    )
    with pytest.raises(ValueError, match="tile_size"):
        make_gastric_pipeline(tiny_segmenter, tile_size=0)


def test_predict_slides_keeps_every_steps_output(tiny_segmenter, cohort):
    from sklearn_gastric.pipeline import SlidePrediction, predict_slides
    from sklearn_gastric.visualization import lesion_map

    slides, labels = cohort
    pipe = _pipeline(tiny_segmenter).fit(slides, labels)
    predictions = predict_slides(pipe, slides[:3], threshold=0.3)
    assert [p.name for p in predictions] == ["slide-0", "slide-1", "slide-2"]
    proba = pipe.predict_proba(slides[:3])
    bags = pipe[:3].transform(slides[:3])
    top = pipe[:4].transform(slides[:3])
    graphs = pipe[:5].transform(slides[:3])
    for prediction, p, bag, selected, graph in zip(
        predictions, proba, bags, top, graphs
    ):
        assert isinstance(prediction, SlidePrediction)
        np.testing.assert_array_equal(prediction.proba, p)
        assert list(prediction.classes) == list(pipe.classes_)
        assert prediction.predicted_class == pipe.classes_[np.argmax(p)]
        np.testing.assert_array_equal(prediction.bag.coords, bag.coords)
        np.testing.assert_array_equal(prediction.bag.prob_maps, bag.prob_maps)
        np.testing.assert_array_equal(prediction.top_tiles.coords, selected.coords)
        np.testing.assert_array_equal(prediction.graph.adjacency, graph.adjacency)
        np.testing.assert_array_equal(prediction.top_coords, graph.coords)
        np.testing.assert_array_equal(prediction.top_scores, graph.scores)
        expected = lesion_map(bag, 0.3)
        np.testing.assert_array_equal(
            prediction.lesion_map.probability, expected.probability
        )
        assert prediction.lesion_map.regions == expected.regions
        assert list(prediction.patch_classes) == list(tiny_segmenter.classes_)
        record = prediction.to_dict()
        assert record["predicted_class"] == str(prediction.predicted_class)
        assert record["probabilities"] == dict(
            zip(map(str, pipe.classes_), map(float, p))
        )
        assert record["n_tissue_tiles"] == len(bag)
        assert [(t["x"], t["y"]) for t in record["top_tiles"]] == [
            tuple(map(int, xy)) for xy in graph.coords
        ]
        assert [t["score"] for t in record["top_tiles"]] == [
            float(s) for s in graph.scores
        ]
        assert record["lesion_threshold"] == 0.3
        assert record["n_lesion_regions"] == len(expected.regions)


def test_predict_slides_without_graph_or_classifier(tiny_segmenter, cohort):
    from sklearn_gastric.pipeline import predict_slides

    slides, labels = cohort
    pipe = _pipeline(tiny_segmenter).fit(slides, labels)
    (prediction,) = predict_slides(Pipeline(pipe.steps[:4]).fit(slides), slides[:1])
    assert prediction.graph is None and prediction.proba is None
    assert prediction.predicted_class is None
    assert prediction.top_coords.shape == (4, 2)
    (prediction,) = predict_slides(Pipeline(pipe.steps[:3]).fit(slides), slides[:1])
    assert prediction.top_tiles is None and prediction.top_coords.shape == (0, 2)
    assert prediction.to_dict()["top_tiles"] == []


def test_predict_slides_errors(tiny_segmenter, cohort):
    from sklearn_gastric.pipeline import predict_slides

    slides, labels = cohort
    pipe = _pipeline(tiny_segmenter).fit(slides, labels)
    with pytest.raises(ValueError, match=r"Slide 'slide-0': no step .*prob_maps"):
        predict_slides(Pipeline(pipe.steps[:2]).fit(slides), slides[:1])
    with pytest.raises(TypeError, match="'slides' parameter"):
        predict_slides(pipe, slides[0])
    with pytest.raises(TypeError, match="'slides' parameter"):
        predict_slides(pipe, "slide.svs")
    with pytest.raises(TypeError, match="list of slides; got one ndarray"):
        predict_slides(pipe, np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(NotFittedError):
        predict_slides(_pipeline(tiny_segmenter), slides[:1])
    with pytest.raises(ValueError, match="threshold"):
        predict_slides(pipe, slides[:1], threshold=1.5)


def test_export_geojson_of_a_prediction_uses_its_map_and_patch_classes(
    tiny_segmenter, cohort, tmp_path
):
    import json

    from sklearn_gastric import export_geojson
    from sklearn_gastric.pipeline import predict_slides

    slides, labels = cohort
    pipe = _pipeline(tiny_segmenter).fit(slides, labels)
    (prediction,) = predict_slides(pipe, slides[1:2], threshold=0.3)
    written = json.loads(export_geojson(prediction, tmp_path / "p.geojson").read_text())
    expected = json.loads(
        export_geojson(
            prediction.bag, tmp_path / "b.geojson", 0.3, classes=tiny_segmenter.classes_
        ).read_text()
    )
    assert written == expected
    assert len(written["features"]) == len(prediction.lesion_map.regions)
    stricter = json.loads(
        export_geojson(prediction, tmp_path / "s.geojson", threshold=0.9).read_text()
    )
    recomputed = json.loads(
        export_geojson(
            prediction.bag, tmp_path / "r.geojson", 0.9, classes=tiny_segmenter.classes_
        ).read_text()
    )
    assert stricter == recomputed
    with pytest.raises(TypeError, match="'bag' parameter"):
        export_geojson(prediction.to_dict(), tmp_path / "x.geojson")


def test_write_slide_outputs_writes_the_map_and_geojson_of_the_record(
    tiny_segmenter, cohort, tmp_path
):
    import json

    from sklearn_gastric._prediction_folder import write_slide_outputs
    from sklearn_gastric.pipeline import predict_slides

    slides, labels = cohort
    pipe = _pipeline(tiny_segmenter).fit(slides, labels)
    (prediction,) = predict_slides(pipe, slides[:1])
    record = write_slide_outputs(prediction, tmp_path, "s0")
    assert record == {
        **prediction.to_dict(),
        "lesion_map_png": str(tmp_path / "s0_lesion_map.png"),
        "geojson": str(tmp_path / "s0_lesions.geojson"),
        "top_tiles_png": str(tmp_path / "s0_top_tiles.png"),
        "graph_png": str(tmp_path / "s0_graph.png"),
    }
    for name in ("s0_lesion_map.png", "s0_top_tiles.png", "s0_graph.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    collection = json.loads((tmp_path / "s0_lesions.geojson").read_text())
    assert len(collection["features"]) == record["n_lesion_regions"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "s0_graph.png",
        "s0_lesion_map.png",
        "s0_lesions.geojson",
        "s0_top_tiles.png",
    ]


def test_demo_build_pipeline_is_deprecated_for_make_gastric_pipeline(tiny_segmenter):
    from sklearn_gastric._demo import build_pipeline

    with pytest.warns(FutureWarning, match="make_gastric_pipeline"):
        pipe = build_pipeline(tiny_segmenter, tile_size=TILE, k=3, gcn_epochs=7)
    assert [name for name, _ in pipe.steps] == GASTRIC_STEPS
    gcn = pipe.named_steps["gcn"]
    assert (gcn.max_epochs, gcn.class_weight, gcn.random_state) == (7, "balanced", 0)
    assert pipe.named_steps["topk"].k == 3
