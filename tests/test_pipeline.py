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
    Slide,
    StainNormalizer,
    Tiler,
    TopKSelector,
)
from sklearn_gastric.datasets import make_gastric_slides, make_patch_dataset

TILE = 32


@pytest.fixture(scope="module")
def segmenter():
    patches, masks, labels = make_patch_dataset(64, tile_size=TILE, random_state=0)
    return PatchSegmenter(
        base_channels=4,
        depth=2,
        feature_dim=8,
        max_epochs=2,
        batch_size=16,
        validation_fraction=0,
        random_state=0,
    ).fit(patches, masks, labels)


@pytest.fixture(scope="module")
def cohort():
    arrays, labels, _ = make_gastric_slides(
        8, size=256, classes=["negative", "carcinoma"], random_state=0
    )
    return [Slide(a, name=f"slide-{i}") for i, a in enumerate(arrays)], labels


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
    segmenter, cohort, he_target_path
):
    slides, labels = cohort
    pipe = _pipeline(segmenter, target=he_target_path)
    assert pipe.fit(slides, labels) is pipe
    assert pipe.classes_.tolist() == ["carcinoma", "negative"]
    proba = pipe.predict_proba(slides)
    assert proba.shape == (8, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    predictions = pipe.predict(slides)
    np.testing.assert_array_equal(predictions, pipe.classes_[proba.argmax(axis=1)])
    assert pipe.score(slides, labels) == np.mean(predictions == labels)


def test_fit_never_retrains_the_frozen_segmenter(segmenter, cohort):
    weights = {k: v.clone() for k, v in segmenter.net_.module_.state_dict().items()}
    _pipeline(segmenter).fit(*cohort)
    for name, value in segmenter.net_.module_.state_dict().items():
        assert value.equal(weights[name]), name


def test_clone_of_an_unfitted_pipeline_is_unfitted(segmenter, cohort):
    pipe = _pipeline(segmenter)
    cloned = clone(pipe)
    # FrozenEstimator's clone is the same trained segmenter.
    assert cloned.named_steps["seg"] is pipe.named_steps["seg"]
    with pytest.raises(NotFittedError):
        cloned.predict(cohort[0])
    fitted = _pipeline(segmenter).fit(*cohort)
    refit_clone = clone(fitted)
    with pytest.raises(NotFittedError):
        refit_clone.predict(cohort[0])


def test_joblib_round_trip_gives_identical_probabilities(segmenter, cohort, tmp_path):
    slides, labels = cohort
    pipe = _pipeline(segmenter).fit(slides, labels)
    joblib.dump(pipe, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_array_equal(
        loaded.predict_proba(slides), pipe.predict_proba(slides)
    )


def test_cross_val_score_in_parallel_equals_sequential(segmenter, cohort):
    slides, labels = cohort
    cv = StratifiedKFold(2, shuffle=True, random_state=0)
    sequential = cross_val_score(_pipeline(segmenter), slides, labels, cv=cv)
    parallel = cross_val_score(_pipeline(segmenter), slides, labels, cv=cv, n_jobs=2)
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
    segmenter, cohort, tmp_path, counted_segmentations
):
    slides, labels = cohort
    cache = str(tmp_path / "cache")
    cached_segmenter = copy.deepcopy(segmenter).set_params(memory=cache)
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
    segmenter, cohort, tmp_path, counted_segmentations
):
    # The reason for PatchSegmenter(memory=...): Pipeline(memory=...) alone
    # caches fits, while every candidate's scoring runs the CNN again.
    slides, labels = cohort
    grid = GridSearchCV(
        _pipeline(segmenter, memory=str(tmp_path / "cache")),
        {"topk__k": [2, 4]},
        cv=StratifiedKFold(2, shuffle=True, random_state=0),
    )
    grid.fit(slides, labels)
    assert len(counted_segmentations) > len(slides)
