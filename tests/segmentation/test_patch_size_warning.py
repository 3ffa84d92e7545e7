"""A segmenter shown tiles of another size than its training patches warns:
it sees the tissue at another scale than it learnt."""

import re
import warnings

import numpy as np
import pytest

from sklearn_gastric import PatchSegmenter, Slide, Tiler
from sklearn_gastric._persistence import load_model, save_model


def _slides(*names, size=128):
    rng = np.random.default_rng(0)
    return [
        Slide(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), name=name)
        for name in names
    ]


def test_the_fitted_segmenter_records_its_patch_size(tiny_segmenter, patch_dataset):
    assert tiny_segmenter.patch_size_ == patch_dataset[0].shape[1] == 32


def test_tiles_of_another_size_warn_naming_both_sizes_and_the_slide(tiny_segmenter):
    bags = Tiler(tile_size=64).transform(_slides("slide-a"))
    with pytest.warns(
        UserWarning,
        match=re.escape(
            "Slide 'slide-a': tiles of 64 pixels, but this PatchSegmenter was "
            "trained on patches of 32 pixels"
        ),
    ):
        tiny_segmenter.transform(bags)


def test_one_warning_per_tile_size_names_the_first_slide(tiny_segmenter):
    bags = Tiler(tile_size=64).transform(_slides("a", "b", "c"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tiny_segmenter.transform(bags)
    messages = [str(w.message) for w in caught if w.category is UserWarning]
    assert len(messages) == 1
    assert messages[0].startswith("Slide 'a' (and 2 other slides): tiles of 64")


def test_tiles_read_at_a_resolution_warn_by_the_size_the_network_sees(
    tiny_segmenter,
):
    (slide,) = _slides("scan")
    scanned = Slide(slide.read_region((0, 0), 0, (128, 128)), name="scan", mpp=0.25)
    # 64 pixels at 0.5 µm/px: read from 128 level-0 pixels, shrunk to 64.
    bags = Tiler(tile_size=64, mpp=0.5).transform([scanned])
    assert bags[0].tile_size == 64
    with pytest.warns(UserWarning, match="'scan': tiles of 64 pixels, but .* 32"):
        tiny_segmenter.transform(bags)


def test_tiles_of_the_training_size_do_not_warn(tiny_segmenter):
    bags = Tiler(tile_size=32).transform(_slides("slide-a", size=64))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tiny_segmenter.transform(bags)


def test_segmenters_without_a_recorded_size_say_nothing(tiny_segmenter, tmp_path):
    loaded = load_model(save_model(tiny_segmenter, tmp_path / "seg.sgm"))
    assert loaded.patch_size_ == 32
    del loaded.patch_size_  # as fitted before the size was recorded
    bags = Tiler(tile_size=64).transform(_slides("slide-a"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded.transform(bags)


def test_oblong_training_patches_record_no_size():
    patches = np.zeros((4, 16, 32, 3), np.uint8)
    # (augment=False: 90-degree rotations cannot batch oblong patches.)
    seg = PatchSegmenter(
        base_channels=2, depth=2, feature_dim=4, max_epochs=1, augment=False,
        validation_fraction=0, random_state=0,
    ).fit(patches, np.zeros((4, 16, 32)))  # fmt: skip
    assert seg.patch_size_ is None
