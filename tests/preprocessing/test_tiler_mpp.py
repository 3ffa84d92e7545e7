"""Resolution-aware tiling: ``Tiler(mpp=...)`` and the bags it makes."""

import json
import pickle

import joblib
import numpy as np
import pytest

from sklearn_gastric.io import Slide, open_slide
from sklearn_gastric.io._pixels import block_mean, resize_area
from sklearn_gastric.preprocessing import OtsuFilter, TileBag, Tiler
from sklearn_gastric.utils._sklearn_compat import InvalidParameterError
from sklearn_gastric.visualization import export_geojson, lesion_map

GLASS = (238, 236, 240)
EOSIN = (225, 140, 195)
NUCLEI = (110, 60, 150)
# The synthetic 40x scan: 1024x1536 pixels at 0.25 µm/px, levels 2x and 4x.
SCAN_MPP = 0.25
HEIGHT, WIDTH = 1024, 1536
TISSUE_RIGHT = 384  # tissue on x < 384 (level-0 pixels), glass elsewhere


def _scan_pixels(seed=0):
    rng = np.random.RandomState(seed)
    rgb = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    rgb[:] = GLASS
    tissue = np.where(rng.rand(HEIGHT, TISSUE_RIGHT, 1) < 0.3, NUCLEI, EOSIN)
    noise = rng.randint(-20, 21, size=tissue.shape)
    rgb[:, :TISSUE_RIGHT] = np.clip(tissue + noise, 0, 255)
    return rgb


def write_scan(path, pixels, *, mpp=SCAN_MPP, factors=(1, 2, 4)):
    """A lossless tiled pyramidal TIFF, each level the exact block mean of
    level 0, with the resolution tags OpenSlide turns into ``mpp``."""
    import tifffile

    resolution = None if mpp is None else (1e4 / mpp, 1e4 / mpp)
    with tifffile.TiffWriter(path) as tif:
        for i, factor in enumerate(factors):
            tif.write(
                block_mean(pixels, factor),
                tile=(128, 128),
                photometric="rgb",
                compression="zlib",
                subfiletype=0 if i == 0 else 1,
                resolution=resolution if i == 0 else None,
                resolutionunit="CENTIMETER" if resolution and i == 0 else None,
                metadata=None,
            )
    return path


@pytest.fixture(scope="module")
def scan_pixels():
    return _scan_pixels()


@pytest.fixture(scope="module")
def scan_path(scan_pixels, tmp_path_factory):
    return write_scan(tmp_path_factory.mktemp("scan") / "scan40x.tiff", scan_pixels)


def test_the_synthetic_scan_is_what_the_tests_assume(scan_path):
    slide = open_slide(scan_path)
    assert slide.mpp == pytest.approx((SCAN_MPP, SCAN_MPP))
    assert slide.level_downsamples == (1.0, 2.0, 4.0)


# -- the level read and the geometry -------------------------------------------


@pytest.mark.parametrize(
    "mpp, level, read_size",
    [
        (0.25, 0, 64),  # the scan's own resolution: level 0, nothing resized
        (0.5, 1, 64),  # 20x from a 40x scan: its 2x level, 4x fewer pixels
        (1.0, 2, 64),  # 10x: the 4x level
        (0.75, 1, 96),  # between levels: the finer one, shrunk by 1.5
        (2.0, 2, 128),  # coarser than every level: the coarsest, shrunk by 2
        (0.4, 0, 102),  # finer than level 1: level 0, never enlarged
    ],
)
def test_chosen_level_and_level0_coordinates(scan_path, mpp, level, read_size):
    (bag,) = Tiler(tile_size=64, mpp=mpp).fit_transform([scan_path])
    assert (bag.level, bag.read_size, bag.tile_size) == (level, read_size, 64)
    downsample = 2**level
    footprint = read_size * downsample
    assert bag.footprint == footprint
    assert bag.pixel_downsample == pytest.approx(mpp / SCAN_MPP, rel=0.01)
    xs = range(0, WIDTH - footprint + 1, footprint)
    ys = range(0, HEIGHT - footprint + 1, footprint)
    assert bag.coords.tolist() == [[x, y] for y in ys for x in xs]


def test_stride_is_in_pixels_at_mpp(scan_path):
    (bag,) = Tiler(tile_size=64, stride=32, mpp=0.5).fit_transform([scan_path])
    # 32 px at 0.5 µm/px are 32 pixels of level 1, 64 of level 0.
    assert bag.coords[:3].tolist() == [[0, 0], [64, 0], [128, 0]]
    assert bag.footprint == 128


def test_a_40x_scan_at_20x_reads_the_smaller_level(scan_path, monkeypatch):
    read = []
    original = Slide.read_region

    def spy(self, location, level, size):
        read.append((level, size))
        return original(self, location, level, size)

    monkeypatch.setattr(Slide, "read_region", spy)
    (bag,) = Tiler(tile_size=64, mpp=0.5).fit_transform([scan_path])
    tile = bag.read_tile(0)
    assert tile.shape == (64, 64, 3)
    assert read == [(1, (64, 64))]


# -- the pixels ----------------------------------------------------------------


@pytest.mark.parametrize("mpp", [0.5, 1.0, 2.0])
def test_tiles_are_the_area_resized_level0_region(scan_path, scan_pixels, mpp):
    (bag,) = Tiler(tile_size=64, mpp=mpp).fit_transform([scan_path])
    side = bag.footprint
    for index in (0, 1, len(bag) - 1):
        x, y = bag.coords[index]
        region = scan_pixels[y : y + side, x : x + side]
        expected = resize_area(region, 64, 64).astype(int)
        tile = bag.read_tile(index).astype(int)
        assert np.abs(tile - expected).max() <= 1


def test_a_fractional_scale_resizes_the_level_read(scan_path, scan_pixels):
    (bag,) = Tiler(tile_size=64, mpp=0.75).fit_transform([scan_path])
    slide = bag.slide
    x, y = bag.coords[1]
    level_region = slide.read_region((x, y), 1, (96, 96))
    np.testing.assert_array_equal(bag.read_tile(1), resize_area(level_region, 64, 64))
    # Area averaging keeps the colour of the level-0 region (pixel by pixel,
    # a 1.5x box over the pixel noise of this texture blurs its neighbours).
    region = scan_pixels[y : y + 192, x : x + 192].reshape(-1, 3).mean(axis=0)
    tile = bag.read_tile(1).reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(tile, region, atol=1.0)


def test_read_batches_gives_resized_tiles(scan_path):
    (bag,) = Tiler(tile_size=64, mpp=1.0).fit_transform([scan_path])
    batches = list(bag.read_batches(4, n_jobs=2))
    tiles = np.concatenate([batch for _, batch, _ in batches])
    assert tiles.shape == (len(bag), 64, 64, 3)
    for index in (0, len(bag) - 1):
        np.testing.assert_array_equal(tiles[index], bag.read_tile(index))


# -- what a bag keeps ----------------------------------------------------------


def test_read_size_survives_subset_replace_and_pickling(scan_path):
    (bag,) = Tiler(tile_size=64, mpp=0.75).fit_transform([scan_path])
    part = bag.subset([2, 0]).replace(scores=[1.0, 2.0])
    assert (part.read_size, part.level, part.footprint) == (96, 1, 192)
    restored = pickle.loads(pickle.dumps(part))
    assert restored.read_size == 96
    np.testing.assert_array_equal(restored.read_tile(0), bag.read_tile(2))
    # The caching key tells the scales apart.
    unscaled = part.replace(read_size=64)
    assert joblib.hash(unscaled) != joblib.hash(part)
    assert "read_size=96" in repr(part) and "read_size" not in repr(unscaled)


def test_a_bag_pickled_before_read_size_reads_unscaled():
    bag = TileBag(np.zeros((64, 64, 3), np.uint8), [[0, 0]], 32)
    state = dict(bag.__dict__)
    del state["read_size"]
    old = TileBag.__new__(TileBag)
    old.__setstate__(state)
    assert old.read_size == 32 and old.read_tile(0).shape == (32, 32, 3)


# -- mpp=None: today's behaviour -----------------------------------------------


def test_without_mpp_nothing_changes(scan_path):
    slide = open_slide(scan_path)
    (bag,) = Tiler(tile_size=64, stride=48, level=1).fit_transform([slide])
    assert Tiler().get_params()["mpp"] is None
    assert (bag.read_size, bag.footprint) == (64, 128)
    assert bag.pixel_downsample == slide.level_downsamples[1]
    xs = np.arange(0, 768 - 64 + 1, 48) * 2
    ys = np.arange(0, 512 - 64 + 1, 48) * 2
    assert bag.coords.tolist() == [[x, y] for y in ys for x in xs]
    x, y = bag.coords[5]
    expected = slide.read_region((int(x), int(y)), 1, (64, 64))
    np.testing.assert_array_equal(bag.read_tile(5), expected)
    assert repr(bag).endswith("level=1, columns=[])")


# -- errors --------------------------------------------------------------------


def test_a_slide_without_resolution_is_refused_with_what_to_do(scan_pixels, tmp_path):
    path = write_scan(tmp_path / "no-mpp.tiff", scan_pixels[:512, :512], mpp=None)
    assert open_slide(path).mpp is None
    with pytest.raises(ValueError) as error:
        Tiler(tile_size=64, mpp=0.5).fit_transform([path])
    message = str(error.value)
    assert message.startswith("Slide 'no-mpp.tiff': cannot cut tiles at mpp=0.5")
    assert "does not state a usable resolution" in message
    assert "open_slide(path_or_array, mpp=...)" in message
    assert "Tiler(mpp=None, level=...)" in message
    # Tiling by level still works.
    (bag,) = Tiler(tile_size=64, level=1).fit_transform([path])
    assert len(bag) == 16


def test_an_array_needs_its_resolution():
    rgb = np.zeros((256, 256, 3), np.uint8)
    with pytest.raises(ValueError, match=r"'array\(256x256\)'.*an array has no res"):
        Tiler(tile_size=64, mpp=0.5).fit_transform([rgb])
    (bag,) = Tiler(tile_size=64, mpp=0.5).fit_transform([Slide(rgb, mpp=0.25)])
    assert (bag.read_size, bag.footprint, len(bag)) == (128, 128, 4)


def test_mpp_finer_than_the_scan_is_refused(scan_path):
    with pytest.raises(ValueError, match=r"'scan40x.tiff'.*0\.25 µm/px, coarser th"):
        Tiler(tile_size=64, mpp=0.2).fit_transform([scan_path])


def test_nominal_resolutions_use_their_levels(scan_pixels, tmp_path):
    # A 40x Aperio scan says 0.2527 µm/px: its 2x level still serves 0.5.
    path = write_scan(tmp_path / "aperio40x.tiff", scan_pixels, mpp=0.2527)
    (bag,) = Tiler(tile_size=64, mpp=0.5).fit_transform([path])
    assert (bag.level, bag.read_size) == (1, 63)
    (bag,) = Tiler(tile_size=64, mpp=0.25).fit_transform([path])
    assert (bag.level, bag.read_size) == (0, 63)


def test_mpp_and_level_together_are_refused(scan_path):
    with pytest.raises(ValueError, match=r"give mpp or level, not both"):
        Tiler(tile_size=64, level=1, mpp=0.5).fit_transform([scan_path])


@pytest.mark.parametrize("mpp", [0, -0.5, "0.5", float("nan")])
def test_mpp_is_validated(mpp):
    with pytest.raises(InvalidParameterError, match="'mpp'"):
        Tiler(mpp=mpp).fit()


def test_a_slide_smaller_than_one_tile_at_mpp(scan_path):
    with pytest.raises(ValueError, match=r"smaller than one tile.*at mpp=2 \(512"):
        Tiler(tile_size=256, mpp=2.0).fit_transform([scan_path])


# -- the real slide ------------------------------------------------------------


def test_the_real_slide_at_10x_covers_twice_the_level0_extent(cmu_slide_path):
    slide = open_slide(cmu_slide_path)
    assert slide.mpp == pytest.approx((0.499, 0.499))
    (bag,) = Tiler(tile_size=512, mpp=1.0).fit_transform([slide])
    side = round(512 * 1.0 / 0.499)  # 1026 level-0 pixels, 2.004 x 512
    assert (bag.level, bag.read_size, bag.footprint) == (0, side, side)
    assert bag.coords.tolist() == [[0, 0], [side, 0], [0, side], [side, side]]
    tile = bag.read_tile(3)
    region = slide.read_region((side, side), 0, (side, side))
    assert tile.shape == (512, 512, 3)
    np.testing.assert_array_equal(tile, resize_area(region, 512, 512))
    (unscaled,) = Tiler(tile_size=512).fit_transform([slide])
    assert unscaled.footprint == 512 and len(unscaled) == 20


def test_cli_info_takes_mpp(cmu_slide_path, capsys):
    from sklearn_gastric.cli import main

    assert main(["info", str(cmu_slide_path), "--mpp", "1.0", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["tile_mpp"], info["tile_level"], info["tiles"]) == (1.0, 0, 4)
    assert info["tile_footprint"] == 1026
    assert main(["info", str(cmu_slide_path), "--mpp", "0.1"]) == 2
    assert "coarser than mpp=0.1" in capsys.readouterr().err


# -- the consumers of a tile's extent ------------------------------------------


@pytest.mark.parametrize("mode", ["slide", "tile"])
def test_otsu_measures_tissue_over_the_scaled_footprint(scan_path, mode):
    # Tiles of 64 px at 2 µm/px are 128 px of the 4x level and cover 512
    # level-0 pixels: the first column of tiles is 3/4 tissue (x < 384).
    (bag,) = Tiler(tile_size=64, mpp=2.0).fit_transform([scan_path])
    (kept,) = OtsuFilter(min_tissue=0.0, mode=mode).fit_transform([bag])
    assert kept.read_size == 128 and kept.footprint == 512
    fractions = kept.tissue_fraction.reshape(2, 3)
    np.testing.assert_allclose(fractions[:, 0], 0.75, atol=0.03)
    np.testing.assert_allclose(fractions[:, 1:], 0.0, atol=0.03)


def test_the_lesion_map_and_geojson_use_the_scaled_footprint(scan_path, tmp_path):
    (bag,) = Tiler(tile_size=64, mpp=2.0).fit_transform([scan_path])
    maps = np.zeros((len(bag), 8, 8), np.float32)
    maps[4, :, :4] = 0.9  # the left half of the tile at level-0 (512, 512)
    bag = bag.replace(prob_maps=maps)
    assert bag.coords[4].tolist() == [512, 512]
    result = lesion_map(bag)
    assert result.downsample == 64.0
    (region,) = result.regions
    assert region.bbox == (512, 512, 768, 1024)
    assert region.area == 256 * 512
    path = export_geojson(bag, tmp_path / "lesions.geojson", tolerance=0)
    (feature,) = json.loads(path.read_text())["features"]
    assert feature["properties"]["bbox"] == [512, 512, 768, 1024]
    ring = np.asarray(feature["geometry"]["coordinates"][0])
    assert 512 <= ring[:, 0].min() and ring[:, 0].max() <= 768
    assert 512 <= ring[:, 1].min() and ring[:, 1].max() <= 1024
    assert ring[:, 1].max() - ring[:, 1].min() > 400


def test_top_tiles_and_graph_keep_level0_coordinates(scan_path):
    from sklearn_gastric.graph import PearsonGraphBuilder, TopKSelector

    (bag,) = Tiler(tile_size=64, mpp=0.75).fit_transform([scan_path])
    rng = np.random.RandomState(0)
    bag = bag.replace(
        scores=np.arange(len(bag), dtype=np.float32),
        features=rng.rand(len(bag), 4).astype(np.float32),
    )
    (top,) = TopKSelector(k=3).fit_transform([bag])
    assert top.read_size == 96 and top.footprint == 192
    (graph,) = PearsonGraphBuilder().fit_transform([top])
    np.testing.assert_array_equal(graph.coords, bag.coords[[-1, -2, -3]])


def test_the_segmenter_reads_tiles_at_mpp(scan_path, tiny_segmenter):
    (bag,) = Tiler(tile_size=32, mpp=2.0).fit_transform([scan_path])
    (segmented,) = tiny_segmenter.transform([bag.subset([0, 1, 5])])
    assert (segmented.read_size, segmented.footprint) == (64, 256)
    tiles = np.stack([bag.read_tile(i) for i in (0, 1, 5)])
    assert tiles.shape == (3, 32, 32, 3)
    expected = tiny_segmenter.predict_proba_maps(tiles)
    side = segmented.prob_maps.shape[-1]
    pooled = expected.reshape(3, side, 32 // side, side, 32 // side).mean((2, 4))
    np.testing.assert_allclose(segmented.prob_maps, pooled, atol=1e-4)
