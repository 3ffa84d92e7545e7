import numpy as np
import pytest

from sklearn_gastric.io import Slide, open_slide, write_pyramidal_tiff


def _smooth_rgb(height, width, seed=0):
    """A smooth colour field: JPEG keeps it within a few grey levels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / 97.0
    phases = rng.uniform(0, 2 * np.pi, size=3)
    channels = [128 + 90 * np.sin(xx + p) * np.cos(yy - p) for p in phases]
    return np.stack(channels, axis=-1).astype(np.uint8)


def test_deflate_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, size=(700, 1100, 3), dtype=np.uint8)
    path = write_pyramidal_tiff(
        pixels, tmp_path / "exact.tiff", tile_size=128, compression="deflate"
    )
    slide = open_slide(path)
    assert slide.vendor == "generic-tiff"
    assert slide.level_dimensions == ((1100, 700), (275, 175), (68, 43))
    np.testing.assert_array_equal(slide.read_region((0, 0), 0, (1100, 700)), pixels)
    level1 = slide.read_region((0, 0), 1, (275, 175)).astype(float)
    expected = pixels[:700, :1100].reshape(175, 4, 275, 4, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(level1, expected, atol=0.51)


def test_jpeg_pyramid_opens_in_openslide_within_jpeg_error(tmp_path):
    pixels = _smooth_rgb(1500, 2300)
    path = write_pyramidal_tiff(pixels, tmp_path / "slide.tiff", mpp=0.5)
    slide = open_slide(path)
    assert slide.dimensions == (2300, 1500)
    assert slide.level_dimensions == ((2300, 1500), (575, 375), (143, 93))
    assert slide.mpp == pytest.approx((0.5, 0.5))
    region = slide.read_region((300, 200), 0, (512, 512)).astype(int)
    assert np.abs(region - pixels[200:712, 300:812]).mean() < 2.0
    thumbnail = slide.get_thumbnail(256).astype(float)
    assert np.abs(thumbnail.mean(axis=(0, 1)) - pixels.mean(axis=(0, 1))).max() < 2.0


def test_writes_from_a_slide_and_from_a_memmap(tmp_path):
    pixels = _smooth_rgb(600, 400, seed=2)
    memmap = np.lib.format.open_memmap(
        tmp_path / "pixels.npy", mode="w+", dtype=np.uint8, shape=pixels.shape
    )
    memmap[:] = pixels
    from_memmap = write_pyramidal_tiff(
        memmap, tmp_path / "a.tiff", compression="deflate", levels=2
    )
    from_slide = write_pyramidal_tiff(
        Slide(pixels), tmp_path / "b.tiff", compression="deflate", levels=1
    )
    a, b = open_slide(from_memmap), open_slide(from_slide)
    assert a.level_count == 2 and b.level_count == 1
    np.testing.assert_array_equal(a.read_region((0, 0), 0, (400, 600)), pixels)
    np.testing.assert_array_equal(b.read_region((0, 0), 0, (400, 600)), pixels)


@pytest.mark.parametrize(
    ("image", "kwargs", "message"),
    [
        (np.zeros((32, 32), np.uint8), {}, r"shape \(H, W, 3\)"),
        (np.zeros((32, 32, 3), np.float32), {}, "uint8 pixels; got dtype float32"),
        (np.zeros((32, 32, 3), np.uint8), {"tile_size": 100}, "multiple of 16"),
        (np.zeros((32, 32, 3), np.uint8), {"compression": "lzma"}, "compression must"),
        (np.zeros((32, 32, 3), np.uint8), {"levels": 0}, "levels must be >= 1"),
    ],
)
def test_bad_input(tmp_path, image, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_pyramidal_tiff(image, tmp_path / "x.tiff", **kwargs)
