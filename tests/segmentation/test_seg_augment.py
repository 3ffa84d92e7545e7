"""augment_patch keeps patch and mask aligned, and jitters colour only on the patch."""

import numpy as np
import pytest

from sklearn_gastric.segmentation import augment_patch

NO_COLOUR = dict(brightness=0, contrast=0, saturation=0, hue=0)


def _pattern(size=32, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), np.float32)
    for _ in range(4):
        y, x = rng.integers(0, size - 8, 2)
        mask[y : y + rng.integers(3, 8), x : x + rng.integers(3, 8)] = 1.0
    patch = np.repeat((mask * 255).astype(np.uint8)[..., None], 3, axis=2)
    return patch, mask


def _dihedral(image):
    out = []
    for flipped in (image, image[:, ::-1]):
        out += [np.rot90(flipped, k) for k in range(4)]
    return out


@pytest.mark.parametrize("seed", range(6))
def test_geometry_keeps_patch_and_mask_aligned(seed):
    patch, mask = _pattern(seed=seed)
    new_patch, new_mask = augment_patch(patch, mask, random_state=seed, **NO_COLOUR)
    assert new_patch.dtype == np.uint8 and new_patch.shape == patch.shape
    assert new_mask.dtype == np.float32 and new_mask.shape == mask.shape
    assert 0 <= new_mask.min() and new_mask.max() <= 1
    for channel in range(3):
        np.testing.assert_allclose(
            new_patch[..., channel] / 255, new_mask, atol=0.6 / 255
        )


def test_flips_and_rotations_are_exact_dihedral_transforms():
    patch, mask = _pattern()
    seen = set()
    for seed in range(20):
        new_patch, new_mask = augment_patch(
            patch, mask, random_state=seed, stretch=0, **NO_COLOUR
        )
        matches = [
            k
            for k, (p, m) in enumerate(zip(_dihedral(patch), _dihedral(mask)))
            if np.array_equal(p, new_patch) and np.array_equal(m, new_mask)
        ]
        assert matches
        seen.add(matches[0])
    assert len(seen) >= 4


def test_colour_jitter_touches_the_patch_only():
    rng = np.random.default_rng(0)
    patch = rng.integers(40, 220, size=(16, 16, 3), dtype=np.uint8)
    _, mask = _pattern(16)
    for seed in range(5):
        full_patch, full_mask = augment_patch(
            patch, mask, random_state=seed, brightness=0.3, saturation=0.3, hue=0.1
        )
        geo_patch, geo_mask = augment_patch(patch, mask, random_state=seed, **NO_COLOUR)
        # Same seed, same geometry whatever the colour settings.
        np.testing.assert_array_equal(full_mask, geo_mask)
        assert not np.array_equal(full_patch, geo_patch)
    colour_patch, colour_mask = augment_patch(
        patch, mask, random_state=1, flip=False, rotate=False, stretch=0
    )
    np.testing.assert_array_equal(colour_mask, mask)
    assert not np.array_equal(colour_patch, patch)


def test_no_augmentation_is_identity():
    patch, mask = _pattern()
    out_patch, out_mask = augment_patch(
        patch, mask, random_state=0, flip=False, rotate=False, stretch=0, **NO_COLOUR
    )
    np.testing.assert_array_equal(out_patch, patch)
    np.testing.assert_array_equal(out_mask, mask)


def test_brightness_scales_pixels():
    patch = np.full((4, 4, 3), 100, np.uint8)
    mask = np.zeros((4, 4), bool)
    out, _ = augment_patch(
        patch, mask, random_state=3, flip=False, rotate=False, stretch=0,
        brightness=0.5, contrast=0, saturation=0, hue=0,
    )  # fmt: skip
    factor = out[0, 0, 0] / 100
    assert factor != 1 and 0.5 <= factor <= 1.5
    assert (out == out[0, 0, 0]).all()


def test_stretch_changes_the_mask_area_and_is_reproducible():
    patch, mask = _pattern(seed=2)
    areas = []
    for seed in range(5):
        kwargs = dict(flip=False, rotate=False, stretch=0.4, **NO_COLOUR)
        out_patch, out_mask = augment_patch(patch, mask, random_state=seed, **kwargs)
        again = augment_patch(patch, mask, random_state=seed, **kwargs)
        np.testing.assert_array_equal(out_patch, again[0])
        np.testing.assert_array_equal(out_mask, again[1])
        areas.append(out_mask.sum())
    assert np.ptp(areas) > 1


def test_hed_jitter_identity_round_trips_and_leaves_geometry_alone():
    from sklearn_gastric.datasets import make_patch_dataset
    from sklearn_gastric.segmentation._augment import _hed_jitter

    (patch,), (mask,), _ = make_patch_dataset(1, tile_size=32, random_state=0)
    image = patch / 255.0
    same = _hed_jitter(image, np.ones(3), np.zeros(3))
    assert np.abs(same * 255 - patch).max() < 1.0  # within one grey level
    plain = augment_patch(patch, mask, random_state=4)
    stained = augment_patch(patch, mask, random_state=4, hed=0.2)
    # The HED draws come last: the same geometry and mask, other colours.
    np.testing.assert_array_equal(plain[1], stained[1])
    assert np.abs(plain[0].astype(int) - stained[0]).mean() > 1.0
    # Strong jitter shifts the haematoxylin optical density by up to 20 %.
    from skimage.color import rgb2hed

    h_before = rgb2hed(image)[..., 0]
    shifted = _hed_jitter(image, np.array([1.2, 1.0, 1.0]), np.zeros(3))
    h_after = rgb2hed(np.clip(shifted, 0, 1))[..., 0]
    tissue = h_before > 0.05
    np.testing.assert_allclose(h_after[tissue] / h_before[tissue], 1.2, rtol=0.05)


def test_a_rectangular_patch_keeps_its_shape():
    # Quarter turns would swap its sides (and a batch could not be stacked):
    # flips and half turns only, still aligned with its mask.
    patch, mask = _pattern(size=40)
    patch, mask = patch[:, :24], mask[:, :24]
    shapes = set()
    for seed in range(20):
        new_patch, new_mask = augment_patch(
            patch, mask, random_state=seed, stretch=0, **NO_COLOUR
        )
        shapes.add((new_patch.shape, new_mask.shape))
        np.testing.assert_array_equal(new_patch[..., 0] == 255, new_mask == 1)
    assert shapes == {((40, 24, 3), (40, 24))}


def test_a_segmenter_learns_from_rectangular_patches_with_augmentation():
    from sklearn_gastric.segmentation import PatchSegmenter

    rng = np.random.default_rng(0)
    patches = rng.integers(0, 256, (8, 32, 16, 3), dtype=np.uint8)
    masks = (rng.random((8, 32, 16)) > 0.5).astype(np.float32)
    segmenter = PatchSegmenter(
        base_channels=4, depth=2, feature_dim=4, max_epochs=1, batch_size=8,
        validation_fraction=0, augment=True, random_state=0,
    )  # fmt: skip
    segmenter.fit(patches, masks)
    assert segmenter.patch_size_ is None
    assert segmenter.predict_proba_maps(patches[:2]).shape[0] == 2
