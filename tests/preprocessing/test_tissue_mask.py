import numpy as np
import pytest

from sklearn_gastric.io import open_slide, write_pyramidal_tiff
from sklearn_gastric.preprocessing import (
    low_resolution_view,
    tissue_fraction,
    tissue_mask,
)

GLASS = (238, 236, 240)
EOSIN = (225, 140, 195)
NUCLEI = (110, 60, 150)
GREEN_PEN = (70, 130, 147)  # the median pen pixel of CMU-1-Small-Region


def test_tissue_mask_separates_tissue_from_glass_and_pen():
    rgb = np.full((10, 10, 3), GLASS, dtype=np.uint8)
    rgb[:, :3] = EOSIN
    rgb[:, 3] = NUCLEI
    rgb[:, 8:] = GREEN_PEN
    mask = tissue_mask(rgb)
    expected = np.zeros((10, 10), bool)
    expected[:, :4] = True
    np.testing.assert_array_equal(mask, expected)
    with_pen = tissue_mask(rgb, remove_pen=False)
    expected[:, 8:] = True
    np.testing.assert_array_equal(with_pen, expected)


@pytest.mark.parametrize("value", [0, 20, 255, 240])
def test_uniform_black_or_glass_is_not_tissue(value):
    rgb = np.full((32, 32, 3), value, dtype=np.uint8)
    mask, threshold = tissue_mask(rgb, return_threshold=True)
    assert not mask.any()
    assert threshold == -1


def test_tile_that_is_all_tissue_is_not_split_by_its_own_threshold():
    # Nuclei and eosin, no glass: plain Otsu splits the tissue in two.
    rng = np.random.RandomState(0)
    rgb = np.where(rng.rand(64, 64, 1) < 0.4, np.array(NUCLEI), np.array(EOSIN)).astype(
        np.uint8
    )
    from skimage.filters import threshold_otsu

    gray = rgb @ np.array([0.2125, 0.7154, 0.0721])
    assert (gray <= threshold_otsu(gray)).mean() < 0.5  # the known failure
    assert tissue_mask(rgb).all()


def test_glass_noise_is_not_tissue():
    rng = np.random.RandomState(0)
    rgb = np.clip(rng.normal(238, 4, size=(64, 64, 3)), 0, 255).astype(np.uint8)
    assert not tissue_mask(rgb).any()


def test_one_tissue_pixel_is_found():
    rgb = np.full((50, 50, 3), GLASS, dtype=np.uint8)
    rgb[7, 9] = NUCLEI
    mask = tissue_mask(rgb)
    assert mask.sum() == 1 and mask[7, 9]


def test_tissue_mask_rejects_non_rgb():
    with pytest.raises(ValueError, match="RGB uint8"):
        tissue_mask(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="RGB uint8"):
        tissue_mask(np.zeros((4, 4, 3), np.float32))


def test_tissue_fraction_is_exact_for_unaligned_footprints():
    rng = np.random.RandomState(0)
    mask = rng.rand(40, 30) < 0.5
    downsample = 4
    full = np.kron(mask, np.ones((downsample, downsample), bool))  # level 0
    coords = rng.randint(0, 90, size=(50, 2))
    footprint = 27
    fractions = tissue_fraction(mask, downsample, coords, footprint)
    expected = [full[y : y + footprint, x : x + footprint].mean() for x, y in coords]
    np.testing.assert_allclose(fractions, expected, atol=1e-12)


def test_tissue_fraction_counts_outside_of_mask_as_empty():
    mask = np.ones((2, 2), bool)
    np.testing.assert_allclose(
        tissue_fraction(mask, 10, [[10, 10], [30, 30]], 20), [0.25, 0.0]
    )


def test_low_resolution_view_of_array_is_block_mean():
    rng = np.random.RandomState(0)
    rgb = rng.randint(0, 256, size=(70, 90, 3)).astype(np.uint8)
    view, downsample = low_resolution_view(rgb, 10)
    assert downsample == 10.0 and view.shape == (7, 9, 3)
    expected = rgb.reshape(7, 10, 9, 10, 3).mean(axis=(1, 3))
    np.testing.assert_array_equal(view, np.floor(expected + 0.5).astype(np.uint8))


def test_low_resolution_view_of_pyramid_reads_a_coarse_level(tmp_path, monkeypatch):
    rgb = np.full((2048, 3072, 3), 200, dtype=np.uint8)
    rgb[:, :1024] = 100
    path = write_pyramidal_tiff(rgb, tmp_path / "p.tiff", compression="deflate")
    slide = open_slide(path)
    levels = []
    read = slide.read_region
    monkeypatch.setattr(
        slide,
        "read_region",
        lambda loc, lvl, size: levels.append(lvl) or read(loc, lvl, size),
    )
    view, downsample = low_resolution_view(slide, 32)
    assert downsample == 32.0 and view.shape == (64, 96, 3)
    assert set(levels) == {2}  # downsample 16, block-averaged by 2
    assert (view[:, :32] == 100).all() and (view[:, 32:] == 200).all()


def test_low_resolution_view_uses_the_aperio_thumbnail(cmu_slide_path):
    slide = open_slide(cmu_slide_path)
    view, downsample = low_resolution_view(slide, 4)
    assert downsample == pytest.approx(2220 / 574, rel=0.01)
    assert view.shape == (768, 574, 3)
    # Aligned with the pixels of level 0: compared with a view read from the
    # pyramid at downsample 4, sampled at the thumbnail's pixel centres.
    pyramid_view, d = low_resolution_view(slide, 4, use_thumbnail=False)
    assert d == 4.0

    def error(dy, dx):
        ii, jj = np.mgrid[0:768, 0:574]
        yy = np.clip(((ii + 0.5) * downsample / d).astype(int) + dy, 0, 741)
        xx = np.clip(((jj + 0.5) * downsample / d).astype(int) + dx, 0, 554)
        return np.abs(view.astype(float) - pyramid_view[yy, xx]).mean()

    aligned = error(0, 0)
    assert aligned < 9
    assert aligned < 0.75 * min(error(-1, 0), error(1, 0), error(0, -1), error(0, 1))


# -- labs: the tissue decision survives stain shifts, the ink does not --------------

LAB_SEEDS = [None, 1, 2, 3, 4, 5, 6]  # the reference lab and six others


def _lab(seed):
    from sklearn_gastric.datasets import REFERENCE_LAB, make_stain_profile

    return REFERENCE_LAB if seed is None else make_stain_profile(seed)


def _block_fraction(mask, factor):
    height, width = (-(-n // factor) * factor for n in mask.shape)
    padded = np.zeros((height, width))
    padded[: mask.shape[0], : mask.shape[1]] = mask
    return padded.reshape(height // factor, factor, width // factor, factor).mean(
        axis=(1, 3)
    )


@pytest.mark.parametrize("seed", LAB_SEEDS)
def test_otsu_filter_finds_the_tissue_of_every_lab(seed):
    """At the view's resolution, OtsuFilter's tissue mask matches the
    generator's (IoU >= 0.95) and keeps >= 98% of the lesion pixels, for
    labs whose haematoxylin the old green-pen rule took for ink."""
    from sklearn_gastric.datasets import make_gastric_slides
    from sklearn_gastric.preprocessing._otsu import slide_tissue_mask

    slides, labels, lesions, tissue = make_gastric_slides(
        4, size=1024, lab=_lab(seed), return_tissue=True, random_state=11
    )
    for slide, label, lesion, truth in zip(slides, labels, lesions, tissue):
        # 128 px tiles, as in the accuracy benchmark: a view at downsample 4.
        mask, downsample, _ = slide_tissue_mask(open_slide(slide), 128)
        assert downsample == 4
        truth = _block_fraction(truth, 4)[: mask.shape[0], : mask.shape[1]] > 0.5
        iou = (mask & truth).sum() / (mask | truth).sum()
        assert iou >= 0.95, (label, iou)
        if lesion.any():
            ys, xs = np.nonzero(lesion)
            assert mask[ys // 4, xs // 4].mean() >= 0.98, label


def test_marker_ink_of_the_cmu_slide_is_rejected(cmu_slide_path):
    """>= 90% of a hand-checked ink mask (tests/data/README.md) is not
    tissue, and the tissue beside it is kept."""
    from pathlib import Path

    from PIL import Image

    ink = np.asarray(Image.open(Path(__file__).parents[1] / "data/cmu_ink_mask.png"))
    view, _ = low_resolution_view(open_slide(cmu_slide_path), 4, use_thumbnail=False)
    assert view.shape[:2] == ink.shape
    mask = tissue_mask(view)
    assert (~mask[ink]).mean() >= 0.9
    # Only ink is removed: outside the fixture (whose groups have at least 3
    # pixels) the ink model removes specks of ink, 0.35% of the tissue.
    without = tissue_mask(view, remove_pen=False)
    assert (without & ~mask & ~ink).sum() <= 0.005 * without.sum()


def test_bluish_haematoxylin_is_not_ink():
    """Nuclei stained with a bluish haematoxylin (green absorbed less than
    red, as after the old benchmark's lab shift) are tissue; teal ink beside
    them is not."""
    rng = np.random.RandomState(0)
    bluish_h = np.array([0.85, 0.60, 0.32])
    eosin = np.array([0.17, 0.88, 0.45])
    concentrations = rng.gamma(2.0, 0.5, size=(64, 64, 2))
    concentrations[:, :32, 1] *= 0.1  # left: nuclei, right: stroma
    od = concentrations @ np.stack([bluish_h, eosin])
    rgb = np.clip(240 * np.exp(-od) + rng.normal(0, 1.5, od.shape), 0, 255)
    rgb = rgb.astype(np.uint8)
    rgb[:8] = GREEN_PEN
    mask = tissue_mask(rgb)
    assert mask[8:].mean() > 0.97  # the palest pixels are glass-bright
    assert not mask[:8].any()
    # The old rule (green above red by more than 15) rejected these nuclei.
    red, green = rgb[8:, :32, 0].astype(int), rgb[8:, :32, 1].astype(int)
    assert (green - red > 15).mean() > 0.3


def test_holes_inside_the_tissue_are_filled_glass_outside_is_not():
    rgb = np.full((60, 60, 3), GLASS, dtype=np.uint8)
    rgb[10:50, 10:50] = EOSIN
    rgb[25:30, 25:30] = GLASS  # a lumen, 25 pixels
    rgb[10:15, 10:15] = GLASS  # a notch at the tissue's border: not a hole
    assert not tissue_mask(rgb)[27, 27]
    mask = tissue_mask(rgb, max_hole_size=25)
    assert mask[25:30, 25:30].all() and not mask[10:15, 10:15].any()
    assert not mask[:10].any()
    assert not tissue_mask(rgb, max_hole_size=24)[27, 27]
