import os
import pickle
import shutil

import joblib
import numpy as np
import pytest
import tifffile

from sklearn_gastric.io import Slide, SlideError, open_slide


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
