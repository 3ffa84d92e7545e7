import os
import pickle
import shutil
import warnings

import joblib
import numpy as np
import pytest
import tifffile

from sklearn_gastric.io import (
    Slide,
    SlideError,
    SlideView,
    UnreadableTileWarning,
    low_resolution_view,
    open_slide,
    write_pyramidal_tiff,
)


class _AddOne:
    """A picklable pixel transform for the tests."""

    def __init__(self, amount=1):
        self.amount = amount

    def __call__(self, rgb):
        return np.clip(rgb.astype(np.int16) + self.amount, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def cmu_pixels(cmu_slide_path):
    """Level 0 of the CMU slide decoded independently of OpenSlide."""
    with tifffile.TiffFile(cmu_slide_path) as tif:
        return tif.pages[0].asarray()


def test_cmu_geometry(cmu_slide_path):
    slide = open_slide(cmu_slide_path)
    assert slide.dimensions == (2220, 2967)
    assert slide.level_count == 1
    assert slide.level_dimensions == ((2220, 2967),)
    assert slide.level_downsamples == (1.0,)
    assert slide.mpp == pytest.approx((0.499, 0.499))
    assert slide.vendor == "aperio"
    assert slide.name == "cmu_small_region.svs"
    assert slide.path == cmu_slide_path.absolute()


def test_cmu_region_matches_an_independent_decoder(cmu_slide_path, cmu_pixels):
    slide = open_slide(cmu_slide_path)
    region = slide.read_region((1000, 1500), 0, (300, 200))
    assert region.shape == (200, 300, 3)
    assert region.dtype == np.uint8
    np.testing.assert_array_equal(region, cmu_pixels[1500:1700, 1000:1300])
    np.testing.assert_array_equal(
        slide.read_region((0, 0), 0, (1, 1))[0, 0], [221, 182, 221]
    )


def test_cmu_region_past_the_edge_is_white(cmu_slide_path, cmu_pixels):
    slide = open_slide(cmu_slide_path)
    region = slide.read_region((2200, 2950), 0, (40, 30))
    np.testing.assert_array_equal(region[:17, :20], cmu_pixels[2950:, 2200:])
    assert np.all(region[17:] == 255)
    assert np.all(region[:, 20:] == 255)
    assert np.all(slide.read_region((-50, -50), 0, (10, 10)) == 255)


def test_cmu_thumbnail(cmu_slide_path, cmu_pixels):
    thumbnail = open_slide(cmu_slide_path).get_thumbnail(512)
    assert thumbnail.shape == (512, 383, 3)
    assert thumbnail.dtype == np.uint8
    np.testing.assert_allclose(
        thumbnail.mean(axis=(0, 1)), cmu_pixels.mean(axis=(0, 1)), atol=0.5
    )
    assert open_slide(cmu_slide_path).get_thumbnail((100, 50)).shape == (50, 37, 3)


def test_reading_never_modifies_the_file(cmu_slide_path, tmp_path):
    copy = tmp_path / "copy.svs"
    shutil.copy2(cmu_slide_path, copy)
    before = (copy.read_bytes(), copy.stat().st_mtime_ns)
    slide = open_slide(copy)
    slide.read_region((0, 0), 0, (512, 512))
    slide.get_thumbnail(256)
    slide.close()
    assert (copy.read_bytes(), copy.stat().st_mtime_ns) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.svs"]


def test_png_opens_as_an_image_slide(he_target_path):
    slide = open_slide(he_target_path)
    assert slide.dimensions == (1000, 1000)
    assert slide.vendor == "image"
    assert slide.mpp is None
    assert slide.read_region((0, 0), 0, (16, 16)).shape == (16, 16, 3)


def test_array_slide_levels_and_reads():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(3000, 2100, 3), dtype=np.uint8)
    slide = Slide(pixels, name="random")
    assert slide.dimensions == (2100, 3000)
    assert slide.level_downsamples == (1.0, 4.0)
    assert slide.level_dimensions == ((2100, 3000), (525, 750))
    assert slide.vendor is None and slide.path is None and slide.mpp is None
    np.testing.assert_array_equal(
        slide.read_region((10, 20), 0, (5, 7)), pixels[20:27, 10:15]
    )
    expected = pixels[400:480, 800:880].reshape(20, 4, 20, 4, 3).mean(axis=(1, 3))
    level1 = slide.read_region((800, 400), 1, (20, 20))
    np.testing.assert_array_equal(level1, (expected + 0.5).astype(np.uint8))


def test_array_slide_padding_and_default_name():
    slide = open_slide(np.zeros((10, 20, 3), dtype=np.uint8))
    assert slide.name == "array(10x20)"
    region = slide.read_region((15, 5), 0, (10, 10))
    assert np.all(region[:5, :5] == 0)
    assert np.all(region[5:] == 255) and np.all(region[:, 5:] == 255)


def test_mpp_override():
    slide = Slide(np.zeros((8, 8, 3), np.uint8), mpp=0.25)
    assert slide.mpp == (0.25, 0.25)
    with pytest.raises(SlideError, match="'tiny'.*mpp must be positive"):
        Slide(np.zeros((8, 8, 3), np.uint8), name="tiny", mpp=-1)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((8, 8), np.uint8), r"shape \(H, W, 3\).*got shape \(8, 8\)"),
        (np.zeros((8, 8, 4), np.uint8), r"got shape \(8, 8, 4\)"),
        (np.zeros((8, 8, 3), np.uint16), "must be uint8 RGB; got dtype uint16"),
        (np.zeros((8, 8, 3), np.float64), "got dtype float64"),
        (np.zeros((0, 8, 3), np.uint8), "has no pixels"),
    ],
)
def test_bad_arrays_are_rejected_with_the_slide_name(array, message):
    with pytest.raises(SlideError, match=f"Slide 'bad': .*{message}"):
        Slide(array, name="bad")


def test_missing_file_names_the_slide(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Slide 'nowhere.svs': no such file"):
        open_slide(tmp_path / "nowhere.svs")


def test_non_slide_file_is_rejected(tmp_path):
    text = tmp_path / "notes.svs"
    text.write_text("not a slide at all")
    with pytest.raises(SlideError, match=r"Slide 'notes.svs': .* not in a format"):
        open_slide(text)
    empty = tmp_path / "empty.tiff"
    empty.touch()
    with pytest.raises(SlideError, match=r"Slide 'empty.tiff': the file .* is empty"):
        open_slide(empty)
    with pytest.raises(SlideError, match="is a directory"):
        open_slide(tmp_path)


def test_other_types_are_rejected():
    with pytest.raises(TypeError, match="got list"):
        open_slide([[1, 2, 3]])


def test_bad_reads_name_the_slide():
    slide = Slide(np.zeros((8, 8, 3), np.uint8), name="small")
    with pytest.raises(SlideError, match="'small': level 3 does not exist"):
        slide.read_region((0, 0), 3, (4, 4))
    with pytest.raises(SlideError, match="'small': region size must be positive"):
        slide.read_region((0, 0), 0, (0, 4))


def test_file_slide_pickles_without_its_handle(cmu_slide_path):
    slide = open_slide(cmu_slide_path)
    region = slide.read_region((500, 500), 0, (64, 64))
    payload = pickle.dumps(slide)
    assert len(payload) < 2000
    restored = pickle.loads(payload)
    assert restored._handle is None
    np.testing.assert_array_equal(restored.read_region((500, 500), 0, (64, 64)), region)
    assert restored.dimensions == slide.dimensions


def test_hash_follows_file_and_transform(cmu_slide_path, tmp_path):
    copy = tmp_path / "copy.svs"
    shutil.copy2(cmu_slide_path, copy)
    first = joblib.hash(open_slide(copy))
    assert joblib.hash(open_slide(copy)) == first
    slide = open_slide(copy)
    slide.read_region((0, 0), 0, (32, 32))  # an open handle changes nothing
    assert joblib.hash(slide) == first
    assert joblib.hash(pickle.loads(pickle.dumps(slide))) == first
    assert joblib.hash(slide.with_transform(_AddOne())) != first
    assert joblib.hash(slide.with_transform(_AddOne(1))) == joblib.hash(
        slide.with_transform(_AddOne(1))
    )
    assert joblib.hash(slide.with_transform(_AddOne(2))) != joblib.hash(
        slide.with_transform(_AddOne(1))
    )
    stat = copy.stat()
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert joblib.hash(open_slide(copy)) != first


def test_transform_applies_to_every_read():
    pixels = np.full((2100, 2100, 3), 100, dtype=np.uint8)
    plain = Slide(pixels)
    shifted = plain.with_transform(_AddOne(5))
    assert plain.transform is None
    assert np.all(shifted.read_region((0, 0), 0, (4, 4)) == 105)
    assert np.all(shifted.read_region((0, 0), 1, (4, 4)) == 105)
    assert np.all(shifted.get_thumbnail(64) == 105)
    assert np.all(plain.read_region((0, 0), 0, (4, 4)) == 100)
    restored = pickle.loads(pickle.dumps(shifted))
    assert np.all(restored.read_region((0, 0), 0, (4, 4)) == 105)


def test_open_slide_returns_slides_unchanged():
    slide = Slide(np.zeros((4, 4, 3), np.uint8))
    assert open_slide(slide) is slide


def test_read_view_gives_the_exact_downsample_and_extent():
    pixels = np.zeros((2000, 3000, 3), dtype=np.uint8)
    pixels[:, 1500:] = 200  # 1500 = 125 view pixels of 12
    slide = Slide(pixels)
    view = slide.read_view(10)
    # Level 1 (downsample 4) reduced by 3: 12 level-0 pixels per view pixel.
    assert isinstance(view, SlideView)
    assert view.downsample == 12.0 and view.failures == ()
    assert view.pixels.shape == (167, 250, 3)
    assert view.extent == (0.0, 3000.0, 2004.0, 0.0)
    assert np.all(view.pixels[:166, :125] == 0)
    assert np.all(view.pixels[:166, 125:] == 200)
    # The last row holds 8 rows of slide and 4 of white past its edge, read
    # as 2 level-1 rows of slide and 1 of white.
    assert np.all(view.pixels[166, :125] == 85)  # round(255 / 3)
    assert np.all(view.pixels[166, 125:] == 218)  # round((2 * 200 + 255) / 3)
    sampled = slide.read_view(10, reduce="sample")
    assert sampled.downsample == 12.0 and np.all(sampled.pixels[166, 125:] == 200)
    same, downsample = low_resolution_view(pixels, 10)
    np.testing.assert_array_equal(same, view.pixels)
    assert downsample == view.downsample
    with pytest.raises(ValueError, match="reduce must be 'mean' or 'sample'"):
        slide.read_view(10, reduce="max")
    with pytest.raises(ValueError, match="on_error must be 'raise' or 'skip'"):
        slide.read_view(10, on_error="ignore")


def test_read_view_takes_the_stored_thumbnail_only_when_allowed(cmu_slide_path):
    slide = open_slide(cmu_slide_path)
    stored = slide.read_view(40)
    # The Aperio thumbnail of CMU-1-Small-Region is 574x768, about 3.87
    # level-0 pixels per thumbnail pixel, reduced by 10.
    assert slide.stored_thumbnail_dimensions == (574, 768)
    assert stored.downsample == 10 * (2220 / 574 + 2967 / 768) / 2
    assert stored.pixels.shape == (76, 57, 3)
    pyramid = slide.read_view(40, use_thumbnail=False)
    assert pyramid.downsample == 40.0 and pyramid.pixels.shape == (75, 56, 3)
    assert stored.extent[1] == pytest.approx(57 * stored.downsample)


def test_shrink_to_area_resizes_and_never_enlarges():
    pixels = np.repeat(np.repeat(np.arange(15, dtype=np.uint8), 2), 2 * 10 * 3)
    pixels = pixels.reshape(30, 20, 3).transpose(1, 0, 2).copy()  # 20 x 30
    view = SlideView(pixels, 2.0)
    half = view.shrink_to(15)
    assert half.shape == (10, 15, 3)
    np.testing.assert_array_equal(half[0, :, 0], np.arange(15))
    assert view.shrink_to((30, 4)).shape == (4, 6, 3)
    assert view.shrink_to(1000) is pixels
    assert view.extent == (0.0, 60.0, 40.0, 0.0)


@pytest.fixture(scope="module")
def corrupt_flat_tiff(tmp_path_factory):
    """A single-level 512x512 TIFF whose level-0 tile (128, 0) holds zeros."""
    rgb = np.full((512, 512, 3), 180, dtype=np.uint8)
    folder = tmp_path_factory.mktemp("flat")
    path = write_pyramidal_tiff(rgb, folder / "flat.tiff", tile_size=128, levels=1)
    with tifffile.TiffFile(path) as tif:
        offset = tif.pages[0].dataoffsets[1]
        count = tif.pages[0].databytecounts[1]
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(b"\0" * count)
    return path


def test_read_view_reports_unreadable_tiles_without_warning(corrupt_flat_tiff):
    slide = open_slide(corrupt_flat_tiff)
    with pytest.raises(SlideError, match=r"'flat.tiff'.*\(x, y\) = \(128, 0\)"):
        slide.read_view(4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        view = slide.read_view(4, on_error="skip")
    assert len(view.failures) == 1
    assert "(x, y) = (128, 0), 128x128 px" in view.failures[0]
    assert "counts as glass" in view.failures[0]
    assert np.all(view.pixels[:32, 32:64] == 255)
    assert np.all(np.abs(view.pixels[32:].astype(int) - 180) <= 2)
    with pytest.warns(UnreadableTileWarning, match=r"\(128, 0\), 128x128 px"):
        pixels, _ = low_resolution_view(slide, 4, on_error="skip")
    np.testing.assert_array_equal(pixels, view.pixels)
