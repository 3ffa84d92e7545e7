"""sample_patches: the segmenter's training patches, as the pipeline sees them."""

import numpy as np
import pytest

from sklearn_gastric.datasets import make_gastric_slides, make_stain_profile
from sklearn_gastric.preprocessing import StainNormalizer
from sklearn_gastric.segmentation import sample_patches


@pytest.fixture(scope="module")
def cohort():
    """Four slides of two labs, one of each class."""
    first = make_gastric_slides(4, size=512, random_state=3)
    second = make_gastric_slides(4, size=512, lab=make_stain_profile(7), random_state=4)
    slides, labels, lesions = (a + b for a, b in zip(first[:1] + first[1:], second))
    return list(slides), np.concatenate([first[1], second[1]]), lesions


def _origin(slide, patch):
    """Where ``patch`` lies in ``slide`` (an exact crop)."""
    side = patch.shape[0]
    candidates = np.argwhere((slide[: -side + 1, : -side + 1] == patch[0, 0]).all(-1))
    for y, x in candidates:
        if np.array_equal(slide[y : y + side, x : x + side], patch):
            return y, x
    raise AssertionError("the patch is not a crop of its slide")


@pytest.mark.parametrize("normalised", [False, True], ids=["raw", "normalised"])
def test_patches_are_crops_and_masks_are_the_truth(cohort, normalised):
    slides, labels, lesions = cohort
    normalizer = StainNormalizer().fit(slides) if normalised else None
    patches, masks, patch_labels, groups = sample_patches(
        slides,
        lesions,
        labels,
        tile_size=64,
        n_patches=8,
        normalizer=normalizer,
        random_state=0,
    )
    assert patches.dtype == np.uint8 and masks.dtype == np.float32
    assert sorted(set(groups)) == list(range(len(slides)))
    for index, label in enumerate(labels):
        mine = patch_labels[groups == index]
        if label == "negative":
            assert set(mine) == {"negative"}
        else:  # positive_fraction=0.5
            assert (mine == label).sum() == 4 and (mine == "negative").sum() == 4
    # Each patch is a crop of its slide as the pipeline shows it (normalised
    # with the slide's own estimated stains), its mask the crop of the
    # generator's lesion mask at the same place.
    shown = slides
    if normalised:
        shown = [
            s.read_region((0, 0), 0, s.dimensions) for s in normalizer.transform(slides)
        ]
    for patch, mask, label, index in zip(patches, masks, patch_labels, groups):
        y, x = _origin(shown[index], patch)
        truth = lesions[index][y : y + 64, x : x + 64]
        np.testing.assert_array_equal(mask.astype(bool), truth)
        if label != "negative":
            assert truth.mean() >= 0.1
    if normalised:
        raw = sample_patches(
            slides, lesions, labels, tile_size=64, n_patches=8, random_state=0
        )
        # Same draws, other colours: the normaliser changes pixels only.
        np.testing.assert_array_equal(raw[1], masks)
        assert np.abs(raw[0].astype(int) - patches).mean() > 2


def test_patches_do_not_depend_on_n_jobs_or_other_slides(cohort):
    slides, labels, lesions = cohort
    kwargs = dict(tile_size=64, n_patches=6, random_state=1)
    alone = sample_patches(slides, lesions, labels, **kwargs)
    parallel = sample_patches(slides, lesions, labels, n_jobs=2, **kwargs)
    for a, b in zip(alone, parallel):
        np.testing.assert_array_equal(a, b)


def test_bad_lesion_entries_name_the_slide(cohort):
    slides, labels, lesions = cohort
    with pytest.raises(ValueError, match="4 slides but 3 lesion entries"):
        sample_patches(slides[:4], lesions[:3], labels[:4], tile_size=64)
    with pytest.raises(ValueError, match=r"lesions\[0\] is a mask, which has no class"):
        sample_patches(slides[:1], lesions[:1], tile_size=64)
    with pytest.raises(ValueError, match=r"lesions\[1\] must be a 2-d lesion mask"):
        sample_patches(slides[:2], [lesions[0], np.zeros(5)], labels[:2], tile_size=64)
    with pytest.raises(TypeError, match=r"lesions\[0\] is a list, so it must hold"):
        sample_patches(slides[:1], [["not an annotation"]], tile_size=64)
