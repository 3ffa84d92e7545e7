"""sample_patches refuses lesion masks that are not masks of their slide."""

import numpy as np
import pytest

from sklearn_gastric.io import Slide, write_pyramidal_tiff
from sklearn_gastric.segmentation import sample_patches

SIZE = 128


def _slide(name="slide-a"):
    rgb = np.full((SIZE, SIZE, 3), (200, 90, 170), np.uint8)
    return Slide(rgb, name=name)


def _sample(slides, lesions):
    return sample_patches(
        slides, lesions, ["HGIN"] * len(slides), tile_size=64, n_patches=2,
        random_state=0,
    )  # fmt: skip


def _lesion(dtype=bool, value=1):
    mask = np.zeros((SIZE, SIZE), dtype=dtype)
    mask[:, SIZE // 2 :] = value
    return mask


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        (np.ones((10, 10), bool), r"has shape \(10, 10\), but the slide is 128x128"),
        (np.ones((SIZE, 64), bool), r"has shape \(128, 64\), but .* \(128, 128\)"),
        (np.full((SIZE, SIZE), np.nan), "holds NaN or infinite values"),
        (np.full((SIZE, SIZE), np.inf), "holds NaN or infinite values"),
        (np.full((SIZE, SIZE), "lesion"), "has dtype <U6; a lesion mask holds"),
        (np.full((SIZE, SIZE), None, dtype=object), "has dtype object"),
        (np.full((SIZE, SIZE), 1 + 1j), "has dtype complex128"),
        (_lesion(np.uint8, 255), r"has values from 0 to 255; they must be in \[0, 1\]"),
        (_lesion(float, -0.5), r"has values from -0.5 to 0.0"),
    ],
    ids=[
        "10x10", "half", "NaN", "inf", "strings", "objects", "complex", "0-255",
        "negative",
    ],
)  # fmt: skip
def test_a_bad_mask_is_refused_naming_its_slide(mask, message):
    good = _lesion()
    with pytest.raises(
        ValueError, match=rf"lesions\[1\], the mask of slide 'slide-b', {message}"
    ):
        _sample([_slide("slide-a"), _slide("slide-b")], [good, mask])


def test_a_mask_is_checked_against_the_file_of_its_slide(tmp_path):
    path = write_pyramidal_tiff(
        np.full((96, 160, 3), 200, np.uint8), tmp_path / "wide.tiff"
    )
    with pytest.raises(
        ValueError,
        match=r"the mask of slide 'wide.tiff', has shape \(160, 96\), but the "
        r"slide is 160x96 pixels at level 0: its mask must have shape "
        r"\(height, width\) = \(96, 160\)",
    ):
        _sample([str(path)], [np.zeros((160, 96), bool)])


@pytest.mark.parametrize(
    "mask",
    [_lesion(), _lesion(np.uint8), _lesion(np.int64), _lesion(np.float32)],
    ids=["bool", "uint8", "int64", "float32"],
)
def test_masks_of_every_numeric_dtype_give_the_same_patches(mask):
    expected = _sample([_slide()], [_lesion()])
    for got, want in zip(_sample([_slide()], [mask]), expected):
        np.testing.assert_array_equal(got, want)


def test_a_soft_mask_is_lesion_from_one_half():
    soft = _lesion(np.float64, 0.5)
    soft[:, : SIZE // 2] = 0.49
    for got, want in zip(_sample([_slide()], [soft]), _sample([_slide()], [_lesion()])):
        np.testing.assert_array_equal(got, want)
