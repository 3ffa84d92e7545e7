"""Tests of the real-tissue generator: real H&E tissue, painted lesions,
true stains and masks."""

import numpy as np
import pytest

from sklearn_gastric.datasets import (
    REFERENCE_LAB,
    StainProfile,
    fetch_cmu_small_region,
    make_real_tissue_slides,
    make_stain_profile,
)
from sklearn_gastric.datasets._labs import sample_slide_stains
from sklearn_gastric.datasets._real_tissue import _foci, _render, _window
from sklearn_gastric.datasets._tissue_source import (
    _GLASS,
    TissueSource,
    load_tissue_source,
)
from sklearn_gastric.io import open_slide


@pytest.fixture(scope="module")
def cohort(data_home):
    return make_real_tissue_slides(
        8,
        size=384,
        return_stains=True,
        return_tissue=True,
        data_home=data_home,
        random_state=0,
    )


@pytest.fixture(scope="module")
def source(data_home):
    return load_tissue_source("cmu", "own", str(data_home))


def _unmix(image, stains, glass):
    """Concentrations of the two stains and the residual optical density."""
    od = -np.log(np.maximum(image, 1).astype(np.float64) / np.asarray(glass))
    concentrations = od.reshape(-1, 3) @ np.linalg.pinv(stains)
    residual = od.reshape(-1, 3) - concentrations @ stains
    return concentrations, np.linalg.norm(residual, axis=1)


def test_shapes_labels_and_types(cohort):
    slides, labels, masks, stains, tissue = cohort
    assert [s.shape for s in slides] == [(384, 384, 3)] * 8
    assert all(s.dtype == np.uint8 for s in slides)
    assert sorted(labels) == sorted(["negative", "LGIN", "HGIN", "carcinoma"] * 2)
    assert stains.shape == (8, 2, 3)
    assert [m.shape for m in masks] == [t.shape for t in tissue] == [(384, 384)] * 8


def test_lesions_lie_on_tissue_and_cover_the_asked_fraction(cohort):
    _, labels, masks, _, tissue = cohort
    for label, mask, on_tissue in zip(labels, masks, tissue):
        assert not (mask & ~on_tissue).any()
        if label == "negative":
            assert not mask.any()
        else:
            expected = round(0.05 * on_tissue.sum())
            assert abs(int(mask.sum()) - expected) <= 1


def test_windows_hold_a_plausible_share_of_tissue(cohort):
    *_, tissue = cohort
    coverage = [t.mean() for t in tissue]
    assert min(coverage) >= 0.35 and max(coverage) <= 0.9


def test_the_true_stains_are_those_rendered(cohort):
    """Unmixed with its returned stains, every slide's tissue lies on their
    plane (the residual is the scanner's grain and uint8 rounding) with
    non-negative concentrations."""
    slides, _, _, stains, tissue = cohort
    for image, matrix, on_tissue in zip(slides, stains, tissue):
        glass = np.percentile(image[~on_tissue], 50, axis=0)
        dark = on_tissue & (image.max(axis=2) < 200)
        concentrations, residual = _unmix(image[dark], matrix, glass)
        assert np.median(residual) < 0.02
        assert np.percentile(concentrations, 1, axis=0).min() > -0.05
        # A wrong matrix (another lab's) leaves a residual off the plane.
        other = make_stain_profile(1).stain_matrix
        _, off = _unmix(image[dark], other, glass)
        assert np.median(off) > 2 * np.median(residual)


def test_no_jitter_renders_the_labs_exact_stains(data_home):
    lab = make_stain_profile(3)
    *_, stains = make_real_tissue_slides(
        2,
        size=256,
        stain_jitter=0,
        lab=lab,
        return_stains=True,
        data_home=data_home,
        random_state=0,
    )
    np.testing.assert_allclose(stains, np.stack([lab.stain_matrix] * 2))


def test_off_tissue_is_the_labs_glass(data_home):
    lab = StainProfile(
        REFERENCE_LAB.haematoxylin, REFERENCE_LAB.eosin, glass=(240, 230, 235)
    )
    slides, _, _, tissue = make_real_tissue_slides(
        2,
        size=512,
        stain_jitter=0,
        lab=lab,
        return_tissue=True,
        data_home=data_home,
        random_state=1,
    )
    for image, on_tissue in zip(slides, tissue):
        np.testing.assert_allclose(
            image[~on_tissue].mean(axis=0), (240, 230, 235), atol=0.5
        )


def test_the_real_texture_survives_rendering(source, data_home):
    """The source rendered with its own stains and glass, with nothing painted,
    is the real slide less what two stains cannot express."""
    real = open_slide(fetch_cmu_small_region(data_home))
    window = (slice(2000, 2512), slice(900, 1412))
    image = real.read_region((900, 2000), 0, (512, 512))
    tissue = source.tissue[window]
    stains = {
        "vectors": source.stains,
        "strength": np.ones(2),
        "I0": np.asarray(_GLASS["cmu"]),
    }
    rendered = _render(
        np.random.default_rng(0),
        source.concentrations[window],
        tissue,
        [],
        [],
        stains,
    )
    difference = np.abs(rendered.astype(int) - image.astype(int))[tissue]
    assert tissue.mean() > 0.5
    assert np.median(difference) <= 6
    correlation = np.corrcoef(
        rendered[tissue].mean(axis=1), image[tissue].mean(axis=1)
    )[0, 1]
    assert correlation > 0.99


def _row_source(height=200, width=120):
    """A fake source whose haematoxylin is the row index: a window's rows
    say where it was cut."""
    rows = np.broadcast_to(
        np.arange(height, dtype=np.float32)[:, None], (height, width)
    )
    concentrations = np.stack([rows, np.zeros_like(rows)], axis=-1)
    return TissueSource(
        "rows", concentrations, np.ones((height, width), bool), np.eye(2, 3), 0.5
    )


@pytest.mark.parametrize("seed", range(12))
def test_the_two_halves_are_disjoint(seed):
    fake = _row_source()
    rng = np.random.default_rng(seed)
    upper, _ = _window(rng, fake, (60, 60), "upper")
    lower, _ = _window(rng, fake, (60, 60), "lower")
    assert upper[..., 0].max() < 100 <= lower[..., 0].min()
    everywhere, _ = _window(rng, fake, (60, 60), "all")
    assert everywhere.shape == (60, 60, 2)


def test_the_same_seed_gives_the_same_slides(data_home):
    first = make_real_tissue_slides(2, size=256, data_home=data_home, random_state=5)
    second = make_real_tissue_slides(2, size=256, data_home=data_home, random_state=5)
    for a, b in zip(first[0] + first[2], second[0] + second[2]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first[1], second[1])


@pytest.mark.parametrize("label", ["LGIN", "HGIN", "carcinoma"])
def test_a_lesion_changes_only_its_own_pixels(source, label):
    """The same window rendered with and without its lesion: identical
    outside the mask, more haematoxylin inside (lesions are painted last)."""
    window = (slice(2000, 2512), slice(900, 1412))
    concentrations = source.concentrations[window]
    tissue = source.tissue[window]
    mask, lesions, mimics = _foci(np.random.default_rng(0), tissue, label, 0.1)
    stains = sample_slide_stains(np.random.default_rng(1), REFERENCE_LAB, 0.1)
    with_lesion, without = (
        _render(np.random.default_rng(2), concentrations, tissue, foci, mimics, stains)
        for foci in (lesions, [])
    )
    assert mask.any()
    np.testing.assert_array_equal(with_lesion[~mask], without[~mask])
    haematoxylin = np.linalg.pinv(stains["vectors"])[:, 0]
    od = [
        -np.log(np.maximum(image[mask], 1) / stains["I0"])
        for image in (with_lesion, without)
    ]
    assert (od[0] @ haematoxylin).mean() > 1.2 * (od[1] @ haematoxylin).mean()


def test_a_size_beyond_the_part_is_refused(data_home):
    with pytest.raises(ValueError, match=r"does not fit in the 'upper' part"):
        make_real_tissue_slides(1, size=1600, part="upper", data_home=data_home)
    with pytest.raises(ValueError, match="at least 256"):
        make_real_tissue_slides(1, size=100, data_home=data_home)


def test_out_dir_writes_pyramidal_tiffs(tmp_path, data_home):
    paths, labels, masks = make_real_tissue_slides(
        2, size=256, out_dir=tmp_path, data_home=data_home, random_state=0
    )
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["slide_000.tiff", "slide_001.tiff"]
    slide = open_slide(paths[0])
    assert slide.dimensions == (256, 256)
    assert slide.mpp == pytest.approx((0.499, 0.499))
