"""Same pipeline, data and random_state: identical results on CPU.

Across two runs (whatever the global numpy and torch random states) and
across ``n_jobs=1`` and ``n_jobs=2``. Equality is exact throughout.
"""

import numpy as np
import pytest
import torch
from output_checks import assert_outputs_equal
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline

from sklearn_gastric import (
    GCNSlideClassifier,
    OtsuFilter,
    PearsonGraphBuilder,
    SlideGraph,
    StainNormalizer,
    Tiler,
    TopKSelector,
)
from sklearn_gastric.datasets import make_gastric_slides

TILE = 32


def _scramble_global_random_state(seed):
    """Results must not depend on the global random states."""
    np.random.seed(seed)  # noqa: NPY002 (the legacy global state is the point)
    torch.manual_seed(seed)


def _train_segmenter(make_tiny_segmenter, seed=0):
    # Augmentation, a validation split and early stopping: every random
    # source of training is exercised.
    return make_tiny_segmenter(
        max_epochs=2,
        batch_size=8,
        validation_fraction=0.25,
        patience=1,
        random_state=seed,
    )


def test_segmenter_trained_twice_has_identical_weights(make_tiny_segmenter):
    _scramble_global_random_state(1)
    first = _train_segmenter(make_tiny_segmenter)
    _scramble_global_random_state(2)
    second = _train_segmenter(make_tiny_segmenter)
    weights = first.net_.module_.state_dict()
    for name, value in second.net_.module_.state_dict().items():
        assert torch.equal(value, weights[name]), name
    losses = [[e[k] for k in ("train_loss", "valid_loss")] for e in first.net_.history]
    assert losses == [
        [e[k] for k in ("train_loss", "valid_loss")] for e in second.net_.history
    ]
    # A different seed trains a different network: the test can fail.
    other = _train_segmenter(make_tiny_segmenter, seed=1).net_.module_.state_dict()
    assert not all(torch.equal(other[name], weights[name]) for name in weights)


def test_make_gastric_slides_is_the_same_for_n_jobs_1_and_2():
    sequential = make_gastric_slides(2, size=256, random_state=3, n_jobs=1)
    parallel = make_gastric_slides(2, size=256, random_state=3, n_jobs=2)
    for left, right in zip(sequential[0] + sequential[2], parallel[0] + parallel[2]):
        np.testing.assert_array_equal(left, right)
    np.testing.assert_array_equal(sequential[1], parallel[1])


@pytest.mark.parametrize("method", ["macenko", "vahadane"])
def test_stain_normalizer_is_the_same_for_n_jobs_1_and_2(cohort, method):
    slides = cohort[0][:2]
    outputs = []
    for n_jobs in (1, 2):
        normalizer = StainNormalizer(method=method, n_jobs=n_jobs, random_state=0)
        normalizer.fit(slides)
        normalised = normalizer.transform(slides)
        outputs.append(
            (
                normalizer.target_params_,
                [s.read_region((0, 0), 0, s.dimensions) for s in normalised],
            )
        )
    (params_1, pixels_1), (params_2, pixels_2) = outputs
    assert params_1.keys() == params_2.keys()
    for key in params_1:
        np.testing.assert_array_equal(params_1[key], params_2[key])
    for left, right in zip(pixels_1, pixels_2):
        np.testing.assert_array_equal(left, right)


def test_stain_normalisation_of_a_slide_does_not_depend_on_the_others(cohort):
    # Vahadane draws random numbers per slide: each slide must get the same
    # seed, not the state left by the slides before it.
    slides = cohort[0][:2]
    normalizer = StainNormalizer(method="vahadane", random_state=0).fit(slides)
    alone = normalizer.transform(slides[1:])[0]
    after_another = normalizer.transform(slides)[1]
    np.testing.assert_array_equal(
        alone.read_region((0, 0), 0, alone.dimensions),
        after_another.read_region((0, 0), 0, after_another.dimensions),
    )


def test_per_slide_steps_are_the_same_for_n_jobs_1_and_2(tiny_segmenter, cohort):
    slides = cohort[0]
    bags = Tiler(tile_size=TILE).fit_transform(slides)
    for mode in ("slide", "tile"):
        kept = [
            OtsuFilter(min_tissue=0.5, mode=mode, n_jobs=n_jobs).fit_transform(bags)
            for n_jobs in (1, 2)
        ]
        assert_outputs_equal(*kept)
        assert sum(len(b) for b in kept[0]) > 0
    segmented = [
        tiny_segmenter.set_params(reader_threads=threads).transform(kept[0])
        for threads in (1, 2)
    ]
    tiny_segmenter.set_params(reader_threads=None)
    assert_outputs_equal(*segmented)
    top = [
        TopKSelector(k=4, n_jobs=n_jobs).fit_transform(segmented[0])
        for n_jobs in (1, 2)
    ]
    assert_outputs_equal(*top)
    graphs = [
        PearsonGraphBuilder(threshold=0.3, n_jobs=n_jobs).fit_transform(top[0])
        for n_jobs in (1, 2)
    ]
    assert_outputs_equal(*graphs)


def _pipeline(segmenter, target, n_jobs):
    return Pipeline(
        [
            ("stain", StainNormalizer(target=target, n_jobs=n_jobs)),
            ("tile", Tiler(tile_size=TILE)),
            ("tissue", OtsuFilter(min_tissue=0.5, n_jobs=n_jobs)),
            ("seg", FrozenEstimator(segmenter)),
            ("topk", TopKSelector(k=4, n_jobs=n_jobs)),
            ("graph", PearsonGraphBuilder(threshold=0.5, n_jobs=n_jobs)),
            (
                "gcn",
                GCNSlideClassifier(
                    hidden_units=8, dropout=0.2, max_epochs=15, random_state=0
                ),
            ),
        ]
    )


def test_pipeline_fitted_twice_predicts_identically(
    tiny_segmenter, cohort, he_target_path
):
    slides, labels = cohort
    probas = []
    for run, n_jobs in enumerate((1, 1, 2)):
        _scramble_global_random_state(run)
        pipe = _pipeline(tiny_segmenter, he_target_path, n_jobs).fit(slides, labels)
        probas.append(pipe.predict_proba(slides))
    np.testing.assert_array_equal(probas[0], probas[1])
    np.testing.assert_array_equal(probas[0], probas[2])
    # Not a constant: the equality above is informative.
    assert np.ptp(probas[0][:, 0]) > 0


def test_gcn_does_not_depend_on_the_torch_thread_count():
    # Float sums depend on how torch splits them over threads; the GCN pins
    # one thread on CPU, so the caller's setting changes nothing.
    rng = np.random.default_rng(0)
    graphs = [
        SlideGraph(rng.normal(shift, 1.0, (5, 6)), np.ones((5, 5)) - np.eye(5))
        for shift in (-1.0, 1.0) * 5
    ]
    labels = ["negative", "HGIN"] * 5
    probas = []
    for n_threads in (1, 2):
        torch.set_num_threads(n_threads)
        try:
            gcn = GCNSlideClassifier(hidden_units=16, max_epochs=10, random_state=0)
            probas.append(gcn.fit(graphs, labels).predict_proba(graphs))
        finally:
            torch.set_num_threads(1)
    np.testing.assert_array_equal(probas[0], probas[1])
