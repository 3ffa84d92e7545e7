"""A fitted PatchSegmenter remembers how its training patches were
normalised, and warns when a pipeline shows it tiles coloured otherwise."""

import pickle
import warnings

import numpy as np
import pytest

from sklearn_gastric import load_model, save_model
from sklearn_gastric.datasets import make_gastric_slides
from sklearn_gastric.preprocessing import OtsuFilter, StainNormalizer, Tiler
from sklearn_gastric.segmentation import (
    PatchSegmenter,
    StainedPatches,
    sample_patches,
)

TINY = dict(
    base_channels=4,
    depth=2,
    feature_dim=8,
    max_epochs=1,
    validation_fraction=0,
    random_state=0,
)


@pytest.fixture(scope="module")
def cohort():
    slides, labels, lesions = make_gastric_slides(
        2, size=256, classes=["HGIN", "carcinoma"], random_state=0
    )
    return slides, labels, lesions


@pytest.fixture(scope="module")
def he_normalizer(he_target_path):
    return StainNormalizer(target=he_target_path).fit()


@pytest.fixture(scope="module")
def other_normalizer(cohort):
    # A target of the synthetic lab's colours, not the H&E image's.
    return StainNormalizer(target=cohort[0][0]).fit()


def _fit(cohort, normalizer):
    slides, labels, lesions = cohort
    patches, masks, patch_labels, _ = sample_patches(
        slides, lesions, labels, tile_size=32, n_patches=4,
        min_tissue=0.0, normalizer=normalizer, random_state=0,
    )  # fmt: skip
    return PatchSegmenter(**TINY).fit(patches, masks, patch_labels)


@pytest.fixture(scope="module")
def raw_segmenter(cohort):
    return _fit(cohort, None)


@pytest.fixture(scope="module")
def he_segmenter(cohort, he_normalizer):
    return _fit(cohort, he_normalizer)


def _bags(cohort, normalizer=None):
    slides = cohort[0]
    if normalizer is not None:
        slides = normalizer.transform(slides)
    return OtsuFilter(min_tissue=0.0).fit_transform(Tiler(32).fit_transform(slides))


def _transform_warnings(segmenter, bags):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        segmenter.transform(bags)
    return [str(w.message) for w in caught if "trained on patches of" in str(w.message)]


def test_sample_patches_says_how_its_patches_were_normalised(cohort, he_normalizer):
    slides, labels, lesions = cohort
    raw, *_ = sample_patches(slides, lesions, labels, tile_size=32, n_patches=2)
    normalised, *_ = sample_patches(
        slides, lesions, labels, tile_size=32, n_patches=2, normalizer=he_normalizer
    )
    assert isinstance(raw, StainedPatches) and raw.stain == {"method": "none"}
    assert normalised.stain["method"] == "macenko"
    np.testing.assert_allclose(normalised.stain["stains"], he_normalizer.stain_matrix_)
    # Indexing (a split) keeps it; new pixel values do not.
    assert normalised[:1].stain["method"] == "macenko"
    assert type(normalised / 255) is np.ndarray
    assert type(normalised.mean()) is not StainedPatches


def test_provenance_is_recorded_raw_normalised_or_unknown(
    cohort, raw_segmenter, he_segmenter, he_normalizer
):
    assert raw_segmenter.training_stain_ == {"method": "none"}
    stain = he_segmenter.training_stain_
    assert set(stain) == {"method", "stains", "max_concentrations"}
    np.testing.assert_allclose(stain["stains"], he_normalizer.stain_matrix_)
    rng = np.random.default_rng(0)
    patches = rng.integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    unknown = PatchSegmenter(**TINY).fit(patches, np.zeros((4, 32, 32)))
    assert unknown.training_stain_ is None
    declared = PatchSegmenter(**TINY).fit(
        StainedPatches(patches, he_normalizer), np.zeros((4, 32, 32))
    )
    assert declared.training_stain_["method"] == "macenko"


def test_raw_trained_segmenter_shown_normalised_tiles_warns(
    cohort, raw_segmenter, he_normalizer
):
    bags = _bags(cohort, he_normalizer)
    (message,) = _transform_warnings(raw_segmenter, bags)
    assert f"Slide {bags[0].name!r} (and 1 other slide)" in message
    assert "raw, unnormalised colours" in message
    assert "Macenko-normalised" in message
    assert "sample_patches(..., normalizer=)" in message


def test_normalised_trained_segmenter_shown_raw_tiles_warns(cohort, he_segmenter):
    bags = _bags(cohort)
    (message,) = _transform_warnings(he_segmenter, bags)
    assert f"Slide {bags[0].name!r} (and 1 other slide)" in message
    assert "trained on patches of colours Macenko-normalised" in message
    assert "shown tiles of raw, unnormalised colours" in message
    assert "make_gastric_pipeline(..., target=)" in message


def test_another_target_warns_naming_both(cohort, he_segmenter, other_normalizer):
    bags = _bags(cohort, other_normalizer)
    (message,) = _transform_warnings(he_segmenter, bags[:1])
    assert message.startswith(f"Slide {bags[0].name!r}: ")
    trained = he_segmenter.training_stain_["stains"][0]
    shown = other_normalizer.stain_matrix_[0]
    assert f"{trained[0]:.3f}" in message and f"{shown[0]:.3f}" in message


def test_the_recipe_path_and_unknown_provenance_say_nothing(
    cohort, he_segmenter, he_target_path
):
    # The pipeline's own normaliser, refitted on the same target.
    pipeline_normalizer = StainNormalizer(target=he_target_path).fit()
    patches = np.zeros((2, 32, 32, 3), np.uint8)
    unknown = PatchSegmenter(**TINY).fit(patches, np.zeros((2, 32, 32)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        he_segmenter.transform(_bags(cohort, pipeline_normalizer))
        unknown.transform(_bags(cohort, pipeline_normalizer))
        unknown.transform(_bags(cohort))


@pytest.mark.parametrize("how", ["sgm", "pickle"])
def test_provenance_survives_saving(he_segmenter, raw_segmenter, tmp_path, how):
    for segmenter in (he_segmenter, raw_segmenter):
        if how == "sgm":
            loaded = load_model(save_model(segmenter, tmp_path / "seg.sgm"))
        else:
            loaded = pickle.loads(pickle.dumps(segmenter))
        stain = segmenter.training_stain_
        assert loaded.training_stain_.keys() == stain.keys()
        for key, value in stain.items():
            np.testing.assert_array_equal(loaded.training_stain_[key], value)


def test_stained_patches_pickle_with_their_provenance(he_normalizer):
    patches = StainedPatches(np.zeros((2, 8, 8, 3), np.uint8), he_normalizer)
    copy = pickle.loads(pickle.dumps(patches))
    assert type(copy) is StainedPatches
    np.testing.assert_array_equal(copy.stain["stains"], patches.stain["stains"])


def test_a_model_saved_before_provenance_loads_and_says_nothing(
    cohort, he_segmenter, tmp_path
):
    old = pickle.loads(pickle.dumps(he_segmenter))
    del old.training_stain_
    loaded = load_model(save_model(old, tmp_path / "old.sgm"))
    assert not hasattr(loaded, "training_stain_")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded.transform(_bags(cohort))
