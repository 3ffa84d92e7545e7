"""QuPath GeoJSON: reading lesion annotations, rasterising them per tile,
and writing Features QuPath imports."""

import json

import numpy as np
import pytest

from sklearn_gastric.io import Annotation, AnnotationError, read_annotations
from sklearn_gastric.io._geojson import (
    CLASS_COLORS,
    DEFAULT_COLOR,
    polygon_coordinates,
    polygon_feature,
    tile_annotation_mask,
    write_feature_collection,
)


def _feature(geometry, name=None, object_type="annotation"):
    properties = {"objectType": object_type}
    if name is not None:
        properties["classification"] = {"name": name, "color": [255, 0, 0]}
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def _square(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]


def _write(tmp_path, content):
    path = tmp_path / "slide.geojson"
    path.write_text(json.dumps(content))
    return path


def test_read_feature_collection_kinds_and_classes(tmp_path):
    holed = {
        "type": "Polygon",
        "coordinates": [_square(0, 0, 16, 16), _square(4, 4, 12, 12)],
    }
    multi = {
        "type": "MultiPolygon",
        "coordinates": [[_square(20, 0, 24, 4)], [_square(40, 40, 48, 48)]],
    }
    features = [
        _feature(holed, "HGIN"),
        _feature(multi),  # unclassified: "lesion"
        _feature(
            {
                "type": "Polygon",
                "coordinates": [_square(0, 0, 8, 8)],
            },
            "Negative",
        ),
        _feature(
            {"type": "Polygon", "coordinates": [_square(0, 0, 8, 8)]},
            "HGIN",
            "detection",
        ),
        _feature({"type": "Point", "coordinates": [3, 3]}, "HGIN"),
        _feature(None, "HGIN"),
    ]
    regions = read_annotations(
        _write(tmp_path, {"type": "FeatureCollection", "features": features})
    )
    assert [r.class_name for r in regions] == ["HGIN", "lesion"]
    assert len(regions[0].polygons) == 1 and len(regions[0].polygons[0]) == 2
    assert len(regions[1].polygons) == 2
    assert regions[1].bbox == (20.0, 0.0, 48.0, 48.0)
    # A bare list of Features and a single Feature are accepted too.
    assert len(read_annotations(_write(tmp_path, features[:2]))) == 2
    assert len(read_annotations(_write(tmp_path, features[0]))) == 1


@pytest.mark.parametrize(
    "content, match",
    [
        ({"type": "Topology"}, "not GeoJSON"),
        ([{"type": "Feature", "geometry": {"type": "Circle"}}], "feature 0: unknown"),
        (
            [_feature({"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}, "x")],
            "at least 3",
        ),
        ([{"geometry": None}], "feature 0: not a GeoJSON Feature"),
        (
            [
                _feature(
                    {"type": "Polygon", "coordinates": [[[0, 0], [9, 0], [True, 1]]]}
                )
            ],
            r"feature 0: a polygon point must be \[x, y\].*\[true, 1\]",
        ),
        (
            [
                _feature(
                    {"type": "Polygon", "coordinates": [[[0, 0], ["9", 0], [1, 1]]]}
                )
            ],
            r"a polygon point must be \[x, y\].*\[\"9\", 0\]",
        ),
        (
            [
                _feature(
                    {"type": "Polygon", "coordinates": [[[0, 0, 0, 0], [9, 0], [1, 1]]]}
                )
            ],
            "a polygon point must be",
        ),
        (
            [_feature({"type": "GeometryCollection", "geometries": 5})],
            "GeometryCollection geometries are not a list",
        ),
        (
            [
                {
                    "type": "Feature",
                    "geometry": {
                        "type": "Polygon",
                        "coordinates": [_square(0, 0, 4, 4)],
                    },
                    "properties": {"classification": {"name": {"a": 1}}},
                }
            ],
            "the classification's name must be a string",
        ),
    ],
)
def test_read_errors_name_the_file_and_feature(tmp_path, content, match):
    path = _write(tmp_path, content)
    with pytest.raises(AnnotationError, match=match) as info:
        read_annotations(path)
    assert str(path) in str(info.value)


def test_read_not_json(tmp_path):
    path = tmp_path / "slide.geojson"
    path.write_bytes(b"\xff\xfe garbage")
    with pytest.raises(AnnotationError, match="is not valid JSON"):
        read_annotations(path)


def test_tile_mask_exterior_minus_hole_at_tile_resolution(tmp_path):
    holed = {
        "type": "Polygon",
        "coordinates": [_square(0, 0, 16, 16), _square(4, 4, 12, 12)],
    }
    (region,) = read_annotations(_write(tmp_path, [_feature(holed, "LGIN")]))
    # A 32-pixel tile at half resolution: 16 mask pixels of 2 level-0 pixels.
    mask, name = tile_annotation_mask([region], (0, 0), 32, 16)
    expected = np.zeros((16, 16), dtype=bool)
    expected[:8, :8] = True
    expected[2:6, 2:6] = False
    np.testing.assert_array_equal(mask, expected)
    assert name == "LGIN"
    # A tile away from the region is empty, with no class.
    mask, name = tile_annotation_mask([region], (64, 64), 32, 16)
    assert not mask.any() and name is None


def test_tile_class_is_the_majority_class(tmp_path):
    features = [
        _feature({"type": "Polygon", "coordinates": [_square(0, 0, 4, 16)]}, "LGIN"),
        _feature({"type": "Polygon", "coordinates": [_square(4, 0, 16, 16)]}, "HGIN"),
    ]
    regions = read_annotations(_write(tmp_path, features))
    mask, name = tile_annotation_mask(regions, (0, 0), 16, 16)
    assert mask.all() and name == "HGIN"


def test_sample_balances_lesion_and_negative_tiles():
    from sklearn_gastric.segmentation import sample_patches

    # All tissue; the lesion (x < 64) in another colour, so that each patch
    # shows where its mask must be.
    slide = np.full((64, 256, 3), (200, 90, 170), np.uint8)
    slide[:, :64] = (120, 40, 150)
    ring = np.array(_square(0, 0, 64, 64), dtype=float)
    region = Annotation("carcinoma", ((ring,),), (0.0, 0.0, 64.0, 64.0))
    patches, masks, labels, groups = sample_patches(
        [slide], [[region]], tile_size=32, n_patches=6, random_state=0
    )
    assert patches.shape == (6, 32, 32, 3) and set(groups) == {0}
    assert sorted(labels.tolist()) == ["carcinoma"] * 3 + ["negative"] * 3
    lesion_pixels = (patches == (120, 40, 150)).all(axis=-1)
    np.testing.assert_array_equal(masks.astype(bool), lesion_pixels)
    positive = masks[labels == "carcinoma"]
    assert (positive.mean(axis=(1, 2)) >= 0.1).all()
    # Lesion patches are cut off the 32 px grid: a 64 px lesion gives more
    # than the two grid tiles' worth of distinct patches.
    assert len({p.tobytes() for p in patches[labels == "carcinoma"]}) == 3
    assert not masks[labels == "negative"].any()
    # Without annotations every sampled tile is negative.
    _, masks, labels, _ = sample_patches(
        [slide], [None], tile_size=32, n_patches=3, random_state=0
    )
    assert labels.tolist() == ["negative"] * 3 and not masks.any()


def test_read_files_that_are_no_geojson_at_all(tmp_path):
    deep = tmp_path / "deep.geojson"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(AnnotationError, match=r"deep\.geojson' is nested too deeply"):
        read_annotations(deep)
    # Geometries nested as deep as JSON parses are read, not a crash.
    geometry = {"type": "Polygon", "coordinates": [_square(0, 0, 4, 4)]}
    for _ in range(400):
        geometry = {"type": "GeometryCollection", "geometries": [geometry]}
    nested = _write(tmp_path, [_feature(geometry, "HGIN")])
    assert [r.class_name for r in read_annotations(nested)] == ["HGIN"]
    with pytest.raises(AnnotationError, match="is a folder, not a GeoJSON file"):
        read_annotations(tmp_path)


def test_sample_a_slide_with_an_empty_annotation_list():
    from sklearn_gastric.segmentation import sample_patches

    slide = np.full((64, 128, 3), (200, 90, 170), np.uint8)
    _, masks, labels, _ = sample_patches(
        [slide], [[]], tile_size=32, n_patches=4, random_state=0
    )
    assert labels.tolist() == ["negative"] * 4 and not masks.any()


def test_read_a_missing_file_names_it(tmp_path):
    missing = tmp_path / "gone.geojson"
    with pytest.raises(AnnotationError, match=r"gone\.geojson' does not exist\.$"):
        read_annotations(missing)


# -- writing ------------------------------------------------------------------


def test_polygon_coordinates_put_the_exterior_first_closed_and_oriented():
    # The hole first, both rings clockwise-in-(x, y), neither closed.
    hole = [[1, 1], [1, 2], [2, 2], [2, 1]]
    exterior = [[0, 0], [0, 3], [3, 3], [3.00049, 0]]
    outer, inner = polygon_coordinates([hole, exterior])
    # The exterior reversed (positive area), the hole kept (negative).
    assert outer == [[0.0, 0.0], [3.0, 0.0], [3.0, 3.0], [0.0, 3.0], [0.0, 0.0]]
    assert inner == [[1.0, 1.0], [1.0, 2.0], [2.0, 2.0], [2.0, 1.0], [1.0, 1.0]]
    assert polygon_coordinates([exterior], decimals=4)[0][1] == [3.0005, 0.0]


def test_polygon_feature_colours():
    from sklearn_gastric.datasets import GASTRIC_CLASSES

    square = [[0, 0], [4, 0], [4, 4], [0, 4]]
    assert set(CLASS_COLORS) == set(GASTRIC_CLASSES)
    for name in GASTRIC_CLASSES:
        feature = polygon_feature([square], name)
        assert feature["properties"]["classification"] == {
            "name": name,
            "color": list(CLASS_COLORS[name]),
        }
    assert len({CLASS_COLORS[name] for name in GASTRIC_CLASSES}) == 4
    other = polygon_feature([square], "mimic", properties={"name": "a"})
    assert other["properties"] == {
        "objectType": "annotation",
        "classification": {"name": "mimic", "color": list(DEFAULT_COLOR)},
        "name": "a",
    }
    chosen = polygon_feature([square], "HGIN", color=np.array([1, 2, 3]))
    assert chosen["properties"]["classification"]["color"] == [1, 2, 3]


def test_written_features_read_back_as_annotations(tmp_path):
    holed = polygon_feature(
        [_square(4, 4, 12, 12), _square(0, 0, 16, 16)], "LGIN", properties={"x": 1}
    )
    path = write_feature_collection([holed], tmp_path / "new" / "a.geojson")
    assert path == tmp_path / "new" / "a.geojson"
    assert json.loads(path.read_text())["type"] == "FeatureCollection"
    (region,) = read_annotations(path)
    assert region.class_name == "LGIN" and region.bbox == (0.0, 0.0, 16.0, 16.0)
    mask, name = tile_annotation_mask([region], (0, 0), 32, 16)
    expected = np.zeros((16, 16), dtype=bool)
    expected[:8, :8] = True
    expected[2:6, 2:6] = False
    np.testing.assert_array_equal(mask, expected)
    assert name == "LGIN"


def test_a_failed_write_leaves_the_earlier_file(tmp_path):
    path = tmp_path / "a.geojson"
    path.write_text("earlier")
    unserialisable = polygon_feature([_square(0, 0, 4, 4)], "HGIN")
    unserialisable["properties"]["bad"] = object()
    with pytest.raises(TypeError):
        write_feature_collection([unserialisable], path)
    assert path.read_text() == "earlier"
    assert [p.name for p in tmp_path.iterdir()] == ["a.geojson"]
