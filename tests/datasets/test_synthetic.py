"""Tests of the synthetic slide and patch generators."""

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.color import rgb2hsv
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_gastric.datasets import (
    GASTRIC_CLASSES,
    REFERENCE_LAB,
    make_gastric_slides,
    make_patch_dataset,
)
from sklearn_gastric.datasets._labs import sample_slide_stains
from sklearn_gastric.datasets._regions import grow_region
from sklearn_gastric.datasets._render import render
from sklearn_gastric.io import open_slide


@pytest.fixture(scope="module")
def slides8():
    return make_gastric_slides(8, size=256, random_state=0)


def _optical_density(image):
    """Per-pixel OD summed over channels, relative to the image's background."""
    background = np.percentile(image.reshape(-1, 3), 99, axis=0)
    return np.log(background / np.maximum(image, 1)).clip(0).sum(axis=2)


def _tissue(image):
    return ndi.binary_fill_holes(_optical_density(image) > 0.15)


def test_gastric_classes():
    assert GASTRIC_CLASSES == ("negative", "LGIN", "HGIN", "carcinoma")


def test_slides_shapes_and_dtypes():
    slides, labels, masks = make_gastric_slides(3, size=(256, 320), random_state=1)
    assert isinstance(slides, list) and isinstance(masks, list)
    assert len(slides) == len(masks) == len(labels) == 3
    for slide, mask in zip(slides, masks):
        assert slide.shape == (256, 320, 3) and slide.dtype == np.uint8
        assert mask.shape == (256, 320) and mask.dtype == bool
    assert isinstance(labels, np.ndarray) and labels.shape == (3,)
    assert set(labels) <= set(GASTRIC_CLASSES)


def test_slides_deterministic(slides8):
    slides, labels, masks = slides8
    again = make_gastric_slides(8, size=256, random_state=0)
    assert all(np.array_equal(a, b) for a, b in zip(slides, again[0]))
    assert np.array_equal(labels, again[1])
    assert all(np.array_equal(a, b) for a, b in zip(masks, again[2]))
    other = make_gastric_slides(8, size=256, random_state=1)
    assert not any(np.array_equal(a, b) for a, b in zip(slides, other[0]))


def test_slides_parallel_equals_sequential():
    sequential = make_gastric_slides(2, size=256, random_state=3)
    parallel = make_gastric_slides(2, size=256, random_state=3, n_jobs=2)
    assert all(np.array_equal(a, b) for a, b in zip(sequential[0], parallel[0]))
    assert all(np.array_equal(a, b) for a, b in zip(sequential[2], parallel[2]))


def test_labels_balanced_and_shuffled(slides8):
    _, labels, _ = slides8
    assert sorted(labels) == sorted(GASTRIC_CLASSES * 2)
    _, labels, _ = make_gastric_slides(
        6, size=256, classes=["HGIN", "negative"], random_state=0
    )
    assert (labels == "HGIN").sum() == 3 and (labels == "negative").sum() == 3
    orders = {
        tuple(make_gastric_slides(4, size=256, random_state=seed)[1])
        for seed in range(4)
    }
    assert len(orders) > 1


@pytest.mark.parametrize("lesion_fraction", [0.05, 0.15])
def test_lesion_area_is_lesion_fraction_of_tissue(lesion_fraction):
    slides, labels, masks = make_gastric_slides(
        4, size=320, lesion_fraction=lesion_fraction, random_state=2
    )
    for slide, label, mask in zip(slides, labels, masks):
        tissue = _tissue(slide)
        if label == "negative":
            assert not mask.any()
            continue
        # Lesion lumens open to the tissue's edge look like background.
        assert (mask & ~tissue).sum() < 0.08 * mask.sum()
        ratio = mask.sum() / tissue.sum()
        assert ratio == pytest.approx(lesion_fraction, rel=0.15)


def test_tiny_lesion_fraction_still_gives_a_lesion():
    _, labels, masks = make_gastric_slides(
        4, size=256, lesion_fraction=1e-9, random_state=0
    )
    for label, mask in zip(labels, masks):
        assert mask.sum() == (0 if label == "negative" else 1)


def test_tissue_coverage(slides8):
    slides, _, _ = slides8
    coverage = [_tissue(slide).mean() for slide in slides]
    assert 0.3 < min(coverage) and max(coverage) < 0.8


def test_out_dir_writes_pyramidal_tiffs(tmp_path):
    arrays, labels, masks = make_gastric_slides(2, size=(256, 384), random_state=4)
    paths, labels_tiff, masks_tiff = make_gastric_slides(
        2, size=(256, 384), random_state=4, out_dir=tmp_path / "slides"
    )
    assert np.array_equal(labels, labels_tiff)
    assert all(np.array_equal(a, b) for a, b in zip(masks, masks_tiff))
    for path, array, label in zip(paths, arrays, labels):
        assert isinstance(path, str) and path.endswith(".tiff")
        assert label not in path
        slide = open_slide(path)
        assert slide.dimensions == (384, 256)
        assert slide.mpp == pytest.approx((0.5, 0.5))
        pixels = slide.read_region((0, 0), 0, (384, 256)).astype(float)
        # JPEG-compressed, so close but not equal.
        assert np.abs(pixels - array).mean() < 4


def test_colours_are_he_like(slides8):
    slides, _, _ = slides8
    for slide in slides:
        tissue = _tissue(slide)
        background = slide[~ndi.binary_dilation(tissue, iterations=5)]
        assert np.all((background.mean(axis=0) > 230) & (background.mean(axis=0) < 254))
        assert background.std(axis=0).max() < 5
        hsv = rgb2hsv(slide)[tissue]
        # Pink to purple, clearly coloured.
        assert 0.75 < np.median(hsv[:, 0]) < 0.95
        assert hsv[:, 1].mean() > 0.2
        od = _optical_density(slide)[tissue]
        # Real H&E: about 2.1 (CMU slide) and 1.8 (the H&E target).
        assert 1.0 < od.mean() < 3.0
        # Nuclei (the darkest pixels) are blue-purple, stroma is pink: green
        # is absorbed most overall, blue more than red in the nuclei.
        dark = slide[tissue][od >= np.quantile(od, 0.97)].astype(float)
        assert dark[:, 2].mean() > dark[:, 0].mean()
        mean = slide[tissue].mean(axis=0)
        assert mean[1] < mean[0] and mean[1] < mean[2]


def test_stain_jitter_changes_colours_not_tissue():
    plain = make_gastric_slides(6, size=256, stain_jitter=0.0, random_state=5)
    jittered = make_gastric_slides(6, size=256, stain_jitter=0.2, random_state=5)
    assert all(np.array_equal(a, b) for a, b in zip(plain[2], jittered[2]))

    def od_directions(slides):
        directions = []
        for slide, reference in zip(slides, plain[0]):
            tissue = _tissue(reference)
            od = -np.log((slide[tissue].astype(float) + 1) / 256).mean(axis=0)
            directions.append(od / np.linalg.norm(od))
        return np.array(directions)

    spread_plain = od_directions(plain[0]).std(axis=0).sum()
    spread_jittered = od_directions(jittered[0]).std(axis=0).sum()
    assert spread_jittered > 2 * spread_plain
    assert not any(np.array_equal(a, b) for a, b in zip(plain[0], jittered[0]))


def _colour_features(image, region):
    od = -np.log((image[region].astype(float) + 1) / 256)
    darkness = od.sum(axis=1)
    return np.r_[
        od.mean(axis=0),
        od.std(axis=0),
        (darkness > 1.5).mean(),
        (darkness > 2.5).mean(),
    ]


def test_whole_tissue_averaging_fails_where_the_lesion_tells():
    """Lesions are small and mimics are everywhere: colour and darkness
    features averaged over the tissue classify slides poorly, the same
    features computed inside the lesion classify them well."""
    slides, labels, masks = make_gastric_slides(32, size=320, random_state=0)
    rng = np.random.default_rng(0)
    whole, lesion = [], []
    for slide, mask in zip(slides, masks):
        tissue = _tissue(slide)
        whole.append(_colour_features(slide, tissue))
        if not mask.any():
            # A negative slide has no lesion: look at a random tissue disc of
            # a lesion's size instead, so the mask's emptiness gives nothing.
            ys, xs = np.nonzero(tissue)
            k = rng.integers(ys.size)
            radius = np.sqrt(0.05 * tissue.sum() / np.pi)
            yy, xx = np.ogrid[: slide.shape[0], : slide.shape[1]]
            mask = ((yy - ys[k]) ** 2 + (xx - xs[k]) ** 2 < radius**2) & tissue
        lesion.append(_colour_features(slide, mask))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    cv = StratifiedKFold(4, shuffle=True, random_state=0)
    whole_accuracy = cross_val_score(model, np.array(whole), labels, cv=cv).mean()
    lesion_accuracy = cross_val_score(model, np.array(lesion), labels, cv=cv).mean()
    assert whole_accuracy <= 0.5
    assert lesion_accuracy >= 0.8
    assert lesion_accuracy - whole_accuracy >= 0.3


def test_negative_slides_have_dark_mimics():
    """Negative slides hold lymphoid aggregates as dark as high-grade lesions."""
    slides, labels, masks = make_gastric_slides(
        8, size=384, classes=["negative", "HGIN"], random_state=6
    )
    dark_fraction = {"negative": [], "HGIN": []}
    lesion_darkness = []
    # Nucleus-dark: total optical density above 3, as real nuclei (the CMU
    # slide's darkest tenth of tissue: 4.4).
    for slide, label, mask in zip(slides, labels, masks):
        od = _optical_density(slide)
        dark_fraction[label].append((od[_tissue(slide)] > 3.0).mean())
        if mask.any():
            lesion_darkness.append((od[mask] > 3.0).mean())
    assert max(dark_fraction["negative"]) > min(dark_fraction["HGIN"])
    assert min(dark_fraction["negative"]) > 0.005
    assert np.mean(lesion_darkness) > 3 * np.mean(dark_fraction["negative"])


def test_patch_dataset_shapes_labels_and_masks():
    patches, masks, labels = make_patch_dataset(
        40, tile_size=48, positive_fraction=0.6, random_state=0
    )
    assert patches.shape == (40, 48, 48, 3) and patches.dtype == np.uint8
    assert masks.shape == (40, 48, 48) and masks.dtype == np.float32
    assert labels.shape == (40,)
    assert set(np.unique(masks)) <= {0.0, 1.0}
    covered = masks.mean(axis=(1, 2))
    positive = labels != "negative"
    assert positive.sum() == 24
    assert set(labels[positive]) == {"LGIN", "HGIN", "carcinoma"}
    assert np.all(covered[positive] > 0) and np.all(covered[~positive] == 0)
    # Lesions often cover only part of a patch.
    assert np.sum((covered > 0.05) & (covered < 0.9)) >= 8
    again = make_patch_dataset(40, tile_size=48, positive_fraction=0.6, random_state=0)
    assert np.array_equal(patches, again[0]) and np.array_equal(masks, again[1])
    assert np.array_equal(labels, again[2])
    other = make_patch_dataset(40, tile_size=48, positive_fraction=0.6, random_state=1)
    assert not np.array_equal(patches, other[0])


def test_patch_dataset_classes():
    _, masks, labels = make_patch_dataset(
        12, tile_size=32, classes=["negative", "carcinoma"], random_state=0
    )
    assert set(labels) == {"negative", "carcinoma"}
    _, masks, labels = make_patch_dataset(
        6, tile_size=32, classes=["negative"], positive_fraction=0.0, random_state=0
    )
    assert set(labels) == {"negative"} and not masks.any()


@pytest.mark.parametrize("label", ["LGIN", "HGIN", "carcinoma"])
def test_mask_marks_exactly_the_changed_pixels(label):
    """Rendering a lesion changes the pixels inside its mask, visibly, and
    no pixel outside it."""
    shape = (96, 96)
    tissue = np.ones(shape, dtype=bool)
    focus = grow_region(np.random.default_rng(1), tissue, 3000, (48, 40))
    stains = sample_slide_stains(np.random.default_rng(2), REFERENCE_LAB, 0.1)
    plain = render(np.random.default_rng(3), shape, tissue, [], [], stains)
    lesion = render(
        np.random.default_rng(3), shape, tissue, [(label, focus)], [], stains
    )
    rows, cols, sub = focus
    mask = np.zeros(shape, dtype=bool)
    mask[rows, cols] = sub
    assert mask.sum() == 3000
    assert np.array_equal(plain[~mask], lesion[~mask])
    difference = np.abs(plain.astype(int) - lesion.astype(int)).sum(axis=2)
    assert difference[mask].mean() > 40


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_slides": 0}, "n_slides"),
        ({"size": 100}, "at least 256"),
        ({"size": (256,)}, "pair of ints"),
        ({"size": (256, 2.5)}, "pair of ints"),
        ({"classes": ["negative", "adenoma"]}, "Unknown class name.*adenoma"),
        ({"classes": []}, "at least one class"),
        ({"classes": "HGIN"}, "classes"),
        ({"classes": ["LGIN", "LGIN"]}, "repeat"),
        ({"lesion_fraction": 0.0}, "lesion_fraction"),
        ({"lesion_fraction": 1.0}, "lesion_fraction"),
        ({"stain_jitter": -0.1}, "stain_jitter"),
    ],
)
def test_make_gastric_slides_validation(kwargs, match):
    params = {"n_slides": 1, "size": 256, **kwargs}
    with pytest.raises(ValueError, match=match):
        make_gastric_slides(**params)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_patches": 0}, "n_patches"),
        ({"tile_size": 16}, "at least 32"),
        ({"positive_fraction": 1.5}, "positive_fraction"),
        ({"classes": ["HGIN", "metaplasia"]}, "Unknown class name.*metaplasia"),
        ({"classes": ["negative"]}, "must contain a lesion class"),
    ],
)
def test_make_patch_dataset_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_patch_dataset(**{"n_patches": 2, "tile_size": 32, **kwargs})
