"""The fast per-pixel stain transforms against the step-by-step reference."""

import pickle
import warnings

import numpy as np
import pytest
from stain_reference import ReferenceTransform

from sklearn_gastric.io import open_slide
from sklearn_gastric.preprocessing import StainNormalizer, StainTransform
from sklearn_gastric.preprocessing._stain_apply import CHUNK

# Channel values that cover the whole range, every branch boundary of the
# blend weight (optical density 0.15 at 206.6, zero from 240), of the sRGB
# decoding (10.3) and the darkest and brightest values.
_VALUES = np.unique(
    np.r_[np.arange(0, 256, 5), 1, 2, 3, 9, 10, 11, 205:210, 238:243, 253, 254, 255]
)


def _colour_grid():
    """Every combination of ``_VALUES`` in the three channels, as an image."""
    grid = np.stack(np.meshgrid(_VALUES, _VALUES, _VALUES, indexing="ij"), axis=-1)
    return grid.reshape(len(_VALUES) ** 2, len(_VALUES), 3).astype(np.uint8)


def _stain_params(method, seed):
    rng = np.random.default_rng(seed)
    if method == "reinhard":
        return {
            "mean": rng.uniform([40, 0, -30], [90, 40, 10]),
            "std": rng.uniform(2, 25, 3),
        }
    stains = np.abs(rng.normal([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11]], 0.15))
    stains /= np.linalg.norm(stains, axis=1, keepdims=True)
    return {"stains": stains, "max_concentrations": rng.uniform(0.5, 3.0, 2)}


def _pair(method, seed):
    family = "reinhard" if method == "reinhard" else "macenko"
    return _stain_params(family, seed), _stain_params(family, seed + 100)


def assert_within_one_grey(got, want):
    assert got.dtype == np.uint8 and got.shape == want.shape
    difference = np.abs(got.astype(np.int16) - want)
    assert difference.max() <= 1, f"{(difference > 1).sum()} values off by > 1"


@pytest.mark.parametrize("method", ["macenko", "vahadane", "reinhard"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_colour_is_within_one_grey_level_of_the_reference(method, seed):
    source, target = _pair(method, seed)
    image = _colour_grid()
    got = StainTransform(method, source, target)(image)
    assert_within_one_grey(got, ReferenceTransform(method, source, target)(image))


def test_extreme_reinhard_scales_stay_within_one_grey_level():
    """A source spread 100 times narrower than the target's pushes most
    colours out of the sRGB gamut and below zero in Lab's z."""
    source = {"mean": np.array([70.0, 20.0, -10.0]), "std": np.full(3, 0.2)}
    target = {"mean": np.array([60.0, 25.0, -15.0]), "std": np.full(3, 20.0)}
    image = _colour_grid()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = StainTransform("reinhard", source, target)(image)
    assert_within_one_grey(got, ReferenceTransform("reinhard", source, target)(image))


@pytest.fixture(scope="module")
def cmu_tiles(cmu_slide_path):
    slide = open_slide(cmu_slide_path)
    corners = [(700, 1200), (1200, 1800), (200, 300), (1500, 2400)]
    return np.stack([slide.read_region(xy, 0, (512, 512)) for xy in corners])


@pytest.mark.parametrize("method", ["macenko", "vahadane", "reinhard"])
def test_cmu_tiles_fitted_to_the_target_match_the_reference(
    cmu_slide_path, he_target_path, cmu_tiles, method
):
    normalizer = StainNormalizer(method, target=he_target_path, random_state=0)
    (slide,) = normalizer.fit().transform([cmu_slide_path])
    transform = slide.transform
    reference = ReferenceTransform(method, transform.source, transform.target)
    # A batch of tiles at once, as TileBag batches are read, and one by one.
    assert_within_one_grey(transform(cmu_tiles), reference(cmu_tiles))
    for tile in cmu_tiles:
        assert_within_one_grey(transform(tile), reference(tile))


@pytest.mark.parametrize("method", ["macenko", "vahadane", "reinhard"])
@pytest.mark.parametrize(
    "value", [(255, 255, 255), (0, 0, 0), (240, 240, 240), (128, 128, 128)]
)
def test_background_and_uniform_tiles_pass_without_error_or_nan(method, value):
    source, target = _pair(method, 3)
    tile = np.full((512, 512, 3), value, np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow, no invalid value, no NaN
        out = StainTransform(method, source, target)(tile)
    assert_within_one_grey(out, ReferenceTransform(method, source, target)(tile))
    assert len(np.unique(out.reshape(-1, 3), axis=0)) == 1
    if min(value) >= 240:  # glass is left as it was
        np.testing.assert_array_equal(out, tile)


@pytest.mark.parametrize(
    "shape",
    [(1, 1, 3), (7, 3), (CHUNK + 1, 3), (3, 64, 65, 3), (2, CHUNK // 64, 128, 3)],
)
def test_any_shape_and_chunk_boundary(shape):
    source, target = _pair("macenko", 4)
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    got = StainTransform("macenko", source, target)(image)
    assert_within_one_grey(got, ReferenceTransform("macenko", source, target)(image))


def test_non_contiguous_and_non_uint8_input():
    source, target = _pair("reinhard", 5)
    transform = StainTransform("reinhard", source, target)
    image = np.random.default_rng(1).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    view = image[::2, ::-3]
    np.testing.assert_array_equal(transform(view), transform(view.copy()))
    np.testing.assert_array_equal(transform(image.astype(np.int64)), transform(image))
    assert transform(np.zeros((0, 5, 3), np.uint8)).shape == (0, 5, 3)


def test_pickled_transform_gives_the_same_pixels():
    source, target = _pair("macenko", 6)
    transform = StainTransform("macenko", source, target)
    image = np.random.default_rng(2).integers(0, 256, (50, 50, 3), dtype=np.uint8)
    restored = pickle.loads(pickle.dumps(transform))
    np.testing.assert_array_equal(restored(image), transform(image))
    assert "_kernel" not in transform.__getstate__()


@pytest.mark.parametrize("method", ["macenko", "reinhard"])
def test_non_finite_parameters_are_refused(method):
    source, target = _pair(method, 7)
    key = next(iter(source))
    source[key] = source[key] * np.nan
    with pytest.raises(ValueError, match="source parameters are not finite"):
        StainTransform(method, source, target)
