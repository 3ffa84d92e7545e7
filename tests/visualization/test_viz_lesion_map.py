import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_gastric.io import Slide
from sklearn_gastric.preprocessing import TileBag
from sklearn_gastric.visualization import LesionMap, lesion_map


def make_bag(coords, maps, *, shape=(64, 96), tile_size=32, name="hand-made"):
    slide = Slide(np.full((*shape, 3), 200, dtype=np.uint8), name=name)
    maps = np.asarray(maps, dtype=np.float32)
    return TileBag(slide, coords, tile_size, prob_maps=maps)


def test_map_places_each_tile_map_at_its_position():
    rng = np.random.default_rng(0)
    maps = rng.random((3, 4, 4)).astype(np.float32)
    bag = make_bag([[0, 0], [32, 0], [64, 32]], maps)
    result = lesion_map(bag)
    assert isinstance(result, LesionMap)
    assert result.downsample == 8.0
    assert result.name == "hand-made"
    assert result.slide_dimensions == (96, 64)
    expected = np.zeros((8, 12), dtype=np.float32)
    expected[0:4, 0:4] = maps[0]
    expected[0:4, 4:8] = maps[1]
    expected[4:8, 8:12] = maps[2]
    np.testing.assert_array_equal(result.probability, expected)
    coverage = np.zeros((8, 12), dtype=bool)
    coverage[0:4, 0:8] = True
    coverage[4:8, 8:12] = True
    np.testing.assert_array_equal(result.coverage, coverage)


def test_overlapping_tiles_are_averaged():
    maps = np.stack([np.full((4, 4), 0.2), np.full((4, 4), 0.6)])
    bag = make_bag([[0, 0], [16, 0]], maps)
    result = lesion_map(bag)
    row = result.probability[0]
    np.testing.assert_allclose(row[:2], 0.2)
    np.testing.assert_allclose(row[2:4], 0.4, rtol=1e-6)
    np.testing.assert_allclose(row[4:6], 0.6)
    np.testing.assert_array_equal(row[6:], 0.0)
    np.testing.assert_array_equal(result.coverage[0], [True] * 6 + [False] * 6)


def test_regions_area_bbox_and_statistics():
    maps = np.zeros((3, 4, 4), dtype=np.float32)
    maps[0, 1:3, 1:4] = [[0.6, 0.7, 0.8], [0.9, 0.7, 0.6]]  # touches tile 1
    maps[1, 0:2, 0] = 0.75
    maps[2, 3, 3] = 1.0  # single pixel at the slide's corner
    bag = make_bag([[0, 0], [32, 0], [64, 32]], maps)
    result = lesion_map(bag, threshold=0.5)
    assert [r.label for r in result.regions] == [1, 2]
    first, second = result.regions
    # 6 pixels of tile 0 and 2 of tile 1 form one 4-connected region.
    assert first.area == 8 * 64.0
    assert first.bbox == (8, 0, 40, 24)
    assert first.max_probability == pytest.approx(0.9)
    assert first.mean_probability == pytest.approx((4.3 + 1.5) / 8)
    assert second.area == 64.0
    assert second.bbox == (88, 56, 96, 64)
    assert second.max_probability == 1.0
    assert result.labels.dtype == np.int32
    assert result.labels[1, 1] == 1 and result.labels[7, 11] == 2
    np.testing.assert_array_equal(result.mask, result.probability > 0.5)


def test_diagonal_pixels_form_one_region():
    maps = np.zeros((1, 4, 4), dtype=np.float32)
    maps[0, [0, 1, 2], [0, 1, 2]] = 0.9
    bag = make_bag([[0, 0]], maps)
    (region,) = lesion_map(bag).regions
    assert region.area == 3 * 64.0
    assert region.bbox == (0, 0, 24, 24)


def test_threshold_is_strict_and_bounded():
    maps = np.zeros((1, 4, 4), dtype=np.float32)
    maps[0, 0, 0] = 0.5
    maps[0, 3, 3] = 1.0
    maps[0, 2, 0] = 0.25
    bag = make_bag([[0, 0]], maps)
    assert [r.bbox for r in lesion_map(bag, 0.5).regions] == [(24, 24, 32, 32)]
    assert len(lesion_map(bag, 0.49).regions) == 2
    assert lesion_map(bag, 1.0).regions == []
    assert not lesion_map(bag, 1.0).mask.any()
    assert int(lesion_map(bag, 0.0).mask.sum()) == 3
    for bad in (-0.1, 1.5):
        with pytest.raises(InvalidParameterError, match="threshold"):
            lesion_map(bag, bad)


def test_chosen_downsample_keeps_geometry():
    maps = np.zeros((1, 4, 4), dtype=np.float32)
    maps[0, 1:3, 2] = 0.9
    bag = make_bag([[32, 0]], maps)
    fine = lesion_map(bag, downsample=4)
    assert fine.probability.shape == (16, 24)
    (region,) = fine.regions
    assert region.area == 2 * 64.0
    assert region.bbox == (48, 8, 56, 24)
    coarse = lesion_map(bag, downsample=16)
    assert coarse.probability.shape == (4, 6)
    # A coarse pixel is the mean of the 2x2 tile-map pixels it holds.
    np.testing.assert_allclose(
        coarse.probability[:2, 2:4], [[0.0, 0.225], [0.0, 0.225]], rtol=1e-6
    )
    expected_coverage = np.zeros((4, 6), dtype=bool)
    expected_coverage[:2, 2:4] = True
    np.testing.assert_array_equal(coarse.coverage, expected_coverage)


def test_coarse_map_averages_over_the_covered_part_only():
    maps = np.tile(np.float32([0.1, 0.2, 0.3, 0.9]), (1, 4, 1))
    # Tile [8, 40) x [8, 40): map pixels 0-2 fall in map pixel 0, 3 in 1.
    bag = make_bag([[8, 8]], maps, shape=(64, 64))
    result = lesion_map(bag, downsample=32)
    np.testing.assert_allclose(result.probability, [[0.2, 0.9], [0.2, 0.9]])
    assert result.coverage.all()


def test_tiles_of_a_coarser_level_use_their_footprint():
    maps = np.zeros((1, 4, 4), dtype=np.float32)
    maps[0, 0, 1] = 0.8
    slide = Slide(np.zeros((512, 2048, 3), dtype=np.uint8), name="pyramid")
    assert slide.level_downsamples[1] == 4.0
    bag = TileBag(slide, [[256, 128]], 32, level=1, prob_maps=maps)
    assert bag.footprint == 128
    result = lesion_map(bag)
    assert result.downsample == 32.0
    assert result.probability.shape == (16, 64)
    (region,) = result.regions
    assert region.bbox == (288, 128, 320, 160)
    assert region.area == 32.0**2


def test_default_map_size_is_bounded():
    slide = Slide(np.zeros((2, 20000, 3), dtype=np.uint8), name="wide")
    bag = TileBag(slide, [[0, 0], [19998, 0]], 2, prob_maps=np.ones((2, 2, 2)))
    result = lesion_map(bag)
    assert result.downsample == pytest.approx(20000 / 4096)
    assert max(result.probability.shape) == 4096
    # Tiles smaller than a map pixel still show.
    assert result.coverage[0, 0] and result.coverage[0, -1]
    assert result.coverage.sum() == 2
    assert result.probability[0, 0] == 1.0


def test_empty_bag_gives_an_empty_map():
    bag = make_bag(np.zeros((0, 2)), np.zeros((0, 4, 4)))
    result = lesion_map(bag)
    assert result.probability.shape == (8, 12)
    assert not result.probability.any()
    assert not result.coverage.any()
    assert result.regions == []


def test_bag_without_prob_maps_names_the_slide():
    bag = TileBag(Slide(np.zeros((32, 32, 3), np.uint8), name="slide-7"), [[0, 0]], 32)
    with pytest.raises(ValueError, match=r"Slide 'slide-7'.*no 'prob_maps'"):
        lesion_map(bag)


@pytest.mark.parametrize("value", [np.nan, 1.5, -0.5])
def test_invalid_probabilities_name_the_slide(value):
    maps = np.zeros((1, 4, 4), dtype=np.float32)
    maps[0, 0, 0] = value
    with pytest.raises(ValueError, match=r"Slide 'bad'.*probabilities in \[0, 1\]"):
        lesion_map(make_bag([[0, 0]], maps, name="bad"))


def test_not_a_bag_is_rejected():
    with pytest.raises(InvalidParameterError, match="bag"):
        lesion_map([np.zeros((4, 4))])


def test_regions_average_their_tiles_patch_proba_by_area():
    maps = np.zeros((3, 4, 4), dtype=np.float32)
    maps[0, 0, 2:] = 0.9  # 2 pixels in tile 0 ...
    maps[1, 0, :2] = 0.9  # ... joined to 2 pixels of tile 1
    maps[2, 3, 3] = 0.9  # a region in tile 2 alone
    bag = make_bag([[0, 0], [32, 0], [64, 32]], maps).replace(
        patch_proba=[[0.5, 0.5], [0.1, 0.9], [0.8, 0.2]]
    )
    joined, alone = lesion_map(bag).regions
    assert joined.patch_proba == pytest.approx((0.3, 0.7))
    assert alone.patch_proba == pytest.approx((0.8, 0.2))
    assert lesion_map(bag.replace(patch_proba=None)).regions[0].patch_proba is None
