import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_gastric.io import Slide
from sklearn_gastric.preprocessing import TileBag
from sklearn_gastric.visualization import export_geojson, lesion_features, lesion_map


def make_bag(maps, coords, *, shape=(64, 96), tile_size=32, name="geo"):
    slide = Slide(np.zeros((*shape, 3), dtype=np.uint8), name=name)
    return TileBag(slide, coords, tile_size, prob_maps=np.asarray(maps, np.float32))


def shoelace(ring):
    ring = np.asarray(ring, dtype=float)
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * (np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))


@pytest.fixture
def bag():
    """Three regions: a square, a ring with a hole, one touching two edges."""
    maps = np.zeros((3, 8, 8), dtype=np.float32)
    maps[0, 1:4, 1:4] = 0.7  # 3x3 square
    maps[1, 1:6, 1:6] = 0.9
    maps[1, 2:5, 2:5] = 0.0  # hole in a 5x5 ring
    maps[2, 5:, 6:] = 0.6  # bottom-right corner of the slide
    return make_bag(maps, [[0, 0], [32, 0], [64, 32]])


def test_round_trip_through_json(bag, tmp_path):
    path = tmp_path / "nested" / "folder" / "lesions.geojson"
    written = export_geojson(bag, path, threshold=0.5, class_name="HGIN")
    assert written == path and path.is_file()
    collection = json.loads(path.read_text())
    assert collection["type"] == "FeatureCollection"
    regions = lesion_map(bag, 0.5).regions
    assert len(collection["features"]) == len(regions) == 3
    width, height = 96, 64
    for feature, region in zip(collection["features"], regions):
        assert feature["type"] == "Feature"
        assert feature["geometry"]["type"] == "Polygon"
        props = feature["properties"]
        assert props["objectType"] == "annotation"
        assert props["classification"] == {"name": "HGIN", "color": [230, 110, 30]}
        assert props["name"] == f"lesion {region.label}"
        assert props["probability"] == pytest.approx(region.mean_probability)
        assert props["max_probability"] == pytest.approx(region.max_probability)
        assert props["area_px"] == region.area
        assert props["bbox"] == list(region.bbox)
        rings = feature["geometry"]["coordinates"]
        for index, ring in enumerate(rings):
            assert len(ring) >= 4
            assert ring[0] == ring[-1]
            xy = np.asarray(ring)
            assert (xy[:, 0] >= 0).all() and (xy[:, 0] <= width).all()
            assert (xy[:, 1] >= 0).all() and (xy[:, 1] <= height).all()
            # Exterior counter-clockwise (positive area), holes clockwise.
            assert (shoelace(ring) > 0) == (index == 0)
        x_min, y_min, x_max, y_max = region.bbox
        exterior = np.asarray(rings[0])
        assert exterior[:, 0].min() >= x_min and exterior[:, 0].max() <= x_max
        assert exterior[:, 1].min() >= y_min and exterior[:, 1].max() <= y_max


def test_polygon_geometry_is_exact(bag):
    square, ring, corner = lesion_features(bag, 0.5)
    # Map pixels of d = 4 level-0 pixels. A k x k block: the contour runs on
    # the pixel edges and cuts each corner by d^2 / 8.
    (exterior,) = square["geometry"]["coordinates"]
    assert shoelace(exterior) == pytest.approx(12.0**2 - 4 * 2)
    assert square["properties"]["area_px"] == 9 * 16.0
    assert square["properties"]["probability"] == pytest.approx(0.7)
    outer, hole = ring["geometry"]["coordinates"]
    assert shoelace(outer) == pytest.approx(20.0**2 - 4 * 2)
    assert shoelace(hole) == pytest.approx(-(12.0**2 - 4 * 2))
    hole_xy = np.asarray(hole)
    assert hole_xy[:, 0].min() == 40 and hole_xy[:, 0].max() == 52
    assert hole_xy[:, 1].min() == 8 and hole_xy[:, 1].max() == 20
    assert ring["properties"]["area_px"] == (25 - 9) * 16.0
    # Clipped to the slide's right and bottom edges.
    (corner_ring,) = corner["geometry"]["coordinates"]
    xy = np.asarray(corner_ring)
    assert xy[:, 0].max() == 96 and xy[:, 1].max() == 64
    assert corner["properties"]["bbox"] == [88, 52, 96, 64]


def test_tolerance_zero_keeps_every_contour_point(bag):
    dense = lesion_features(bag, 0.5, tolerance=0)[0]
    sparse = lesion_features(bag, 0.5)[0]
    dense_ring = dense["geometry"]["coordinates"][0]
    sparse_ring = sparse["geometry"]["coordinates"][0]
    assert len(dense_ring) > len(sparse_ring) == 9
    assert shoelace(dense_ring) == pytest.approx(shoelace(sparse_ring))


def test_no_region_writes_an_empty_collection(tmp_path):
    bag = make_bag(np.full((1, 4, 4), 0.2), [[0, 0]])
    path = export_geojson(bag, tmp_path / "none.geojson", threshold=0.5)
    assert json.loads(path.read_text()) == {
        "type": "FeatureCollection",
        "features": [],
    }
    empty = make_bag(np.zeros((0, 4, 4)), np.zeros((0, 2)))
    assert lesion_features(empty) == []


def test_colour_defaults_and_overrides(bag):
    (first, *_) = lesion_features(bag, class_name="Tumor")
    assert first["properties"]["classification"]["color"] == [200, 0, 0]
    (first, *_) = lesion_features(bag, class_name="Tumor", color=(1, 2, 3))
    assert first["properties"]["classification"]["color"] == [1, 2, 3]
    with pytest.raises(ValueError, match="RGB triple"):
        lesion_features(bag, color=(1, 2))


def test_errors(tmp_path):
    bag = TileBag(Slide(np.zeros((32, 32, 3), np.uint8), name="raw"), [[0, 0]], 32)
    with pytest.raises(ValueError, match=r"Slide 'raw'.*prob_maps"):
        export_geojson(bag, tmp_path / "x.geojson")
    assert not (tmp_path / "x.geojson").exists()
    with pytest.raises(InvalidParameterError, match="threshold"):
        export_geojson(bag, tmp_path / "x.geojson", threshold=2)


def test_regions_classified_from_patch_proba(bag):
    patch_proba = [[0.1, 0.2, 0.7, 0.0], [0.1, 0.1, 0.1, 0.7], [0.6, 0.2, 0.1, 0.1]]
    with_proba = bag.replace(patch_proba=patch_proba)
    classes = ["negative", "LGIN", "HGIN", "carcinoma"]
    features = lesion_features(with_proba, classes=classes)
    names = [f["properties"]["classification"]["name"] for f in features]
    assert names == ["HGIN", "carcinoma", "negative"]
    colors = [f["properties"]["classification"]["color"] for f in features]
    assert colors == [[230, 110, 30], [200, 30, 30], [64, 160, 64]]
    assert [f["properties"]["class_probability"] for f in features] == pytest.approx(
        [0.7, 0.7, 0.6]
    )
    assert "class_probability" not in lesion_features(with_proba)[0]["properties"]
    with pytest.raises(ValueError, match=r"Slide 'geo': 3 classes for 4 columns"):
        lesion_features(with_proba, classes=classes[:3])
    with pytest.raises(ValueError, match=r"Slide 'geo'.*no 'patch_proba'"):
        lesion_features(bag, classes=classes)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), density=st.floats(0.1, 0.9))
def test_random_regions_give_valid_polygons(seed, density):
    rng = np.random.default_rng(seed)
    maps = (rng.random((6, 8, 8)) < density) * np.float32(0.9)
    coords = [[x, y] for y in (0, 32) for x in (0, 32, 64)]
    bag = make_bag(maps, coords)
    result = lesion_map(bag, 0.5)
    features = json.loads(json.dumps(lesion_features(bag, 0.5, tolerance=0)))
    assert len(features) == len(result.regions)
    d = result.downsample
    for feature, region in zip(features, result.regions):
        rings = [np.asarray(ring) for ring in feature["geometry"]["coordinates"]]
        x_min, y_min, x_max, y_max = region.bbox
        for index, ring in enumerate(rings):
            assert len(ring) >= 4 and (ring[0] == ring[-1]).all()
            assert (shoelace(ring) > 0) == (index == 0)
            assert (ring[:, 0] >= x_min).all() and (ring[:, 0] <= x_max).all()
            assert (ring[:, 1] >= y_min).all() and (ring[:, 1] <= y_max).all()
        # The contour cuts or adds at most half a map pixel per region pixel.
        polygon_area = sum(shoelace(ring) for ring in rings)
        n_pixels = region.area / d**2
        assert abs(polygon_area - region.area) <= 0.5 * d**2 * n_pixels
