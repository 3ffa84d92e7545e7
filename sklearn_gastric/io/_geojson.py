"""QuPath GeoJSON: lesion annotations read and rasterised one tile at a time,
and suspected lesion regions written as annotations QuPath imports.

Reading gives :class:`Annotation` objects, which
:func:`sklearn_gastric.segmentation.sample_patches` samples training patches
from; writing is what :func:`sklearn_gastric.visualization.export_geojson`
does with a lesion map's regions.
"""

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..utils import write_text_atomic
from ..utils._input_files import read_error_message
from ..utils._json import dumps
from ..utils._sklearn_compat import validate_params

__all__ = [
    "CLASS_COLORS",
    "DEFAULT_COLOR",
    "Annotation",
    "AnnotationError",
    "polygon_coordinates",
    "polygon_feature",
    "read_annotations",
    "tile_annotation_mask",
    "write_feature_collection",
]

# Classes that mark tissue known to hold no lesion: their polygons are not
# lesions (compared case-insensitively).
NON_LESION_CLASSES = frozenset({"negative", "normal", "ignore", "ignore*"})
UNCLASSIFIED = "lesion"
# QuPath object types that are not hand-drawn regions (cells, tiles, ...).
_SKIPPED_OBJECT_TYPES = frozenset({"detection", "cell", "tile", "tma_core"})


class AnnotationError(ValueError):
    """An annotation file cannot be read; the message names the file."""


@dataclass(frozen=True)
class Annotation:
    """One annotated region: its class and its polygons in level-0 pixels.

    Attributes
    ----------
    class_name : str
        ``properties.classification.name`` of the QuPath object, or
        ``"lesion"`` when it has none.
    polygons : tuple of tuple of ndarray
        Each polygon as ``(exterior, *holes)``, every ring an array of shape
        (n_points, 2) of level-0 ``(x, y)``.
    bbox : (float, float, float, float)
        ``(x_min, y_min, x_max, y_max)`` over every exterior ring.
    """

    class_name: str
    polygons: tuple
    bbox: tuple


@validate_params({"path": [str, os.PathLike]}, prefer_skip_nested_validation=True)
def read_annotations(path):
    """Read the lesion annotations of one slide from a QuPath GeoJSON export.

    Accepts a FeatureCollection, a list of Features or a single Feature.
    Polygon and MultiPolygon geometries (also inside a GeometryCollection)
    are regions, in level-0 pixel coordinates ``(x, y)``; points and lines
    are ignored, as are QuPath detections, cells and tiles (``objectType``).
    A region's class is ``properties.classification.name`` (or its
    ``names`` joined by ``": "``), ``"lesion"`` when unclassified. Regions
    classified ``"negative"``, ``"normal"`` or ``"ignore"`` (any case) are
    not lesions and are left out.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.geojson`` file.

    Returns
    -------
    annotations : list of Annotation
        The lesion regions, in file order.

    Raises
    ------
    AnnotationError
        The file is not JSON or not GeoJSON, or a polygon is malformed; the
        message names the file and the feature.

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> from sklearn_gastric.io import read_annotations
    >>> feature = {"type": "Feature", "properties": {
    ...     "objectType": "annotation", "classification": {"name": "HGIN"}},
    ...     "geometry": {"type": "Polygon",
    ...                  "coordinates": [[[10, 10], [50, 10], [50, 30], [10, 10]]]}}
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = pathlib.Path(tmp) / "slide.geojson"
    ...     _ = path.write_text(json.dumps([feature]))
    ...     (region,) = read_annotations(path)
    >>> region.class_name, region.bbox
    ('HGIN', (10.0, 10.0, 50.0, 30.0))
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as file:
            content = json.load(file)
    except OSError as exc:
        raise AnnotationError(
            read_error_message(exc, "Annotation file", path, "GeoJSON file")
        ) from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AnnotationError(
            f"Annotation file {str(path)!r} is not valid JSON ({exc})."
        ) from exc
    except RecursionError:
        raise AnnotationError(
            f"Annotation file {str(path)!r} is nested too deeply to be GeoJSON."
        ) from None
    if isinstance(content, dict) and content.get("type") == "FeatureCollection":
        features = content.get("features")
    elif isinstance(content, dict) and content.get("type") == "Feature":
        features = [content]
    else:
        features = content
    if not isinstance(features, list):
        raise AnnotationError(
            f"Annotation file {str(path)!r} is not GeoJSON: expected a "
            "FeatureCollection, a Feature or a list of Features."
        )
    try:
        return _read_features(features, path)
    except RecursionError:
        raise AnnotationError(
            f"Annotation file {str(path)!r}: geometries nested too deeply."
        ) from None


def _read_features(features, path):
    annotations = []
    for index, feature in enumerate(features):
        where = f"Annotation file {str(path)!r}, feature {index}"
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            raise AnnotationError(f"{where}: not a GeoJSON Feature.")
        properties = feature.get("properties") or {}
        if not isinstance(properties, dict):
            raise AnnotationError(f"{where}: 'properties' is not an object.")
        object_type = str(properties.get("objectType", "annotation")).lower()
        if object_type in _SKIPPED_OBJECT_TYPES:
            continue
        class_name = _class_name(properties.get("classification"), where)
        if class_name.lower() in NON_LESION_CLASSES:
            continue
        polygons = tuple(_polygons(feature.get("geometry"), where))
        if not polygons:
            continue
        exteriors = np.concatenate([polygon[0] for polygon in polygons])
        bbox = (*exteriors.min(axis=0).tolist(), *exteriors.max(axis=0).tolist())
        annotations.append(Annotation(class_name, polygons, tuple(bbox)))
    return annotations


def _class_name(classification, where):
    if classification is None:
        return UNCLASSIFIED
    if isinstance(classification, str):
        return classification or UNCLASSIFIED
    if not isinstance(classification, dict):
        raise AnnotationError(f"{where}: 'classification' is not an object.")
    name = classification.get("name")
    names = classification.get("names")
    if not name and isinstance(names, list) and all(isinstance(n, str) for n in names):
        name = ": ".join(names)
    if name and not isinstance(name, str):
        raise AnnotationError(
            f"{where}: the classification's name must be a string; got {_short(name)}."
        )
    return name or UNCLASSIFIED


def _polygons(geometry, where):
    """Yield ``(exterior, *holes)`` rings of the geometry's (multi)polygons."""
    if geometry is None:
        return
    if not isinstance(geometry, dict):
        raise AnnotationError(f"{where}: 'geometry' is not an object.")
    kind = geometry.get("type")
    if kind == "Polygon":
        yield _rings(geometry.get("coordinates"), where)
    elif kind == "MultiPolygon":
        coordinates = geometry.get("coordinates")
        if not isinstance(coordinates, list):
            raise AnnotationError(f"{where}: MultiPolygon coordinates are not a list.")
        for polygon in coordinates:
            yield _rings(polygon, where)
    elif kind == "GeometryCollection":
        members = geometry.get("geometries") or []
        if not isinstance(members, list):
            raise AnnotationError(
                f"{where}: GeometryCollection geometries are not a list."
            )
        for member in members:
            yield from _polygons(member, where)
    elif kind in ("Point", "MultiPoint", "LineString", "MultiLineString"):
        return
    else:
        raise AnnotationError(f"{where}: unknown geometry type {kind!r}.")


def _rings(coordinates, where):
    if not isinstance(coordinates, list) or not coordinates:
        raise AnnotationError(f"{where}: a Polygon needs a list of rings.")
    rings = []
    for ring in coordinates:
        if not isinstance(ring, list) or len(ring) < 3:
            raise AnnotationError(
                f"{where}: a polygon ring must be a list of at least 3 [x, y] points."
            )
        for point in ring:
            # JSON numbers only: Python would take true/false and "12" as numbers.
            if (
                not isinstance(point, list)
                or not 2 <= len(point) <= 3
                or not all(_is_number(value) for value in point)
            ):
                raise AnnotationError(
                    f"{where}: a polygon point must be [x, y] (or [x, y, z]) of "
                    f"numbers; got {_short(point)}."
                )
        array = np.array([point[:2] for point in ring], dtype=np.float64)
        if not np.isfinite(array).all():
            raise AnnotationError(f"{where}: a polygon ring has non-finite points.")
        rings.append(array)
    return tuple(rings)


def _is_number(value):
    return isinstance(value, int | float) and not isinstance(value, bool)


def _short(value, limit=60):
    try:
        text = json.dumps(value, default=repr)
    except (RecursionError, ValueError):
        text = f"a nested {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def tile_annotation_mask(annotations, origin, footprint, size):
    """Rasterise the annotations over one tile.

    Only the tile is rasterised, at the tile's own resolution: a pixel is a
    lesion when its centre lies inside a region's exterior ring and outside
    its holes (:func:`skimage.draw.polygon`).

    Parameters
    ----------
    annotations : list of Annotation
        The slide's lesion regions.
    origin : (int, int)
        Level-0 ``(x, y)`` of the tile's top-left corner.
    footprint : float
        Side of the tile in level-0 pixels.
    size : int
        Side of the mask in pixels (the tile's size at its level).

    Returns
    -------
    mask : ndarray of shape (size, size), dtype bool
        Lesion pixels of the tile.
    class_name : str or None
        The class covering most of the tile's lesion pixels; None when the
        tile holds no lesion pixel.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gastric.io import Annotation
    >>> from sklearn_gastric.io._geojson import tile_annotation_mask
    >>> square = np.array([[0, 0], [8, 0], [8, 8], [0, 8]], dtype=float)
    >>> region = Annotation("LGIN", ((square,),), (0.0, 0.0, 8.0, 8.0))
    >>> mask, name = tile_annotation_mask([region], (0, 0), 16, 4)
    >>> mask.astype(int).tolist(), name
    ([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], 'LGIN')
    """
    from skimage.draw import polygon as fill_polygon

    x0, y0 = float(origin[0]), float(origin[1])
    scale = size / float(footprint)
    x1, y1 = x0 + footprint, y0 + footprint
    mask = np.zeros((size, size), dtype=bool)
    areas = {}
    for annotation in annotations:
        left, top, right, bottom = annotation.bbox
        if right < x0 or left > x1 or bottom < y0 or top > y1:
            continue
        region = np.zeros((size, size), dtype=bool)
        for exterior, *holes in annotation.polygons:
            filled = np.zeros((size, size), dtype=bool)
            rows, cols = _ring_pixels(fill_polygon, exterior, x0, y0, scale, size)
            filled[rows, cols] = True
            for hole in holes:
                rows, cols = _ring_pixels(fill_polygon, hole, x0, y0, scale, size)
                filled[rows, cols] = False
            region |= filled
        count = int(np.count_nonzero(region))
        if count:
            areas[annotation.class_name] = areas.get(annotation.class_name, 0) + count
            mask |= region
    if not areas:
        return mask, None
    # Ties go to the name first in sorted order, so the label is deterministic.
    return mask, max(sorted(areas), key=areas.__getitem__)


def _ring_pixels(fill_polygon, ring, x0, y0, scale, size):
    # Pixel (r, c) covers [c, c + 1) x [r, r + 1) in tile pixels; its centre
    # is at (c + 0.5, r + 0.5), and skimage tests the point (c, r).
    cols = (ring[:, 0] - x0) * scale - 0.5
    rows = (ring[:, 1] - y0) * scale - 0.5
    if math.isclose(float(np.ptp(cols)), 0) or math.isclose(float(np.ptp(rows)), 0):
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    return fill_polygon(rows, cols, shape=(size, size))


# -- writing ------------------------------------------------------------------

# QuPath-like colours of the gastric classes (the names of
# sklearn_gastric.datasets.GASTRIC_CLASSES); other names get DEFAULT_COLOR.
CLASS_COLORS = {
    "negative": (64, 160, 64),
    "LGIN": (230, 180, 40),
    "HGIN": (230, 110, 30),
    "carcinoma": (200, 30, 30),
}
DEFAULT_COLOR = (200, 0, 0)


def polygon_feature(rings, class_name, *, color=None, properties=None):
    """A QuPath annotation: one classified Polygon Feature.

    Parameters
    ----------
    rings : list of array-like of shape (n_points, 2)
        The polygon's rings in level-0 ``(x, y)``, in any order, see
        :func:`polygon_coordinates`.
    class_name : str
        The QuPath classification.
    color : (int, int, int), default=None
        RGB colour of the classification; None: ``CLASS_COLORS`` of the
        class, ``DEFAULT_COLOR`` for a class it does not name.
    properties : dict, default=None
        More properties, written after ``objectType`` and ``classification``.

    Returns
    -------
    feature : dict
        Ready for :func:`json.dumps`.

    Examples
    --------
    >>> from sklearn_gastric.io._geojson import polygon_feature
    >>> square = [[0, 0], [0, 4], [4, 4], [4, 0]]
    >>> feature = polygon_feature([square], "HGIN", properties={"name": "lesion 1"})
    >>> feature["properties"]["classification"], feature["properties"]["name"]
    ({'name': 'HGIN', 'color': [230, 110, 30]}, 'lesion 1')
    >>> feature["geometry"]["coordinates"]
    [[[0.0, 0.0], [4.0, 0.0], [4.0, 4.0], [0.0, 4.0], [0.0, 0.0]]]
    """
    if color is None:
        color = CLASS_COLORS.get(class_name, DEFAULT_COLOR)
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": polygon_coordinates(rings)},
        "properties": {
            "objectType": "annotation",
            "classification": {"name": class_name, "color": [int(c) for c in color]},
            **(properties or {}),
        },
    }


def polygon_coordinates(rings, decimals=3):
    """GeoJSON Polygon coordinates of a polygon's rings given in any order.

    The ring enclosing the largest area is the exterior and comes first, the
    others are its holes. Every ring is closed (first point == last point);
    the exterior has a positive shoelace area in the ``(x, y)`` written and
    each hole a negative one, i.e. counter-clockwise and clockwise in the
    sense of RFC 7946 with the y axis pointing up.

    Parameters
    ----------
    rings : list of array-like of shape (n_points, 2)
        ``(x, y)`` points, closed or not.
    decimals : int, default=3
        Coordinates are rounded to this many decimals.

    Returns
    -------
    coordinates : list of list of [float, float]

    Examples
    --------
    >>> from sklearn_gastric.io._geojson import polygon_coordinates
    >>> hole = [[1, 1], [2, 1], [2, 2], [1, 2]]
    >>> exterior = [[0, 0], [0, 3], [3, 3], [3, 0], [0, 0]]
    >>> outer, inner = polygon_coordinates([hole, exterior])
    >>> outer
    [[0.0, 0.0], [3.0, 0.0], [3.0, 3.0], [0.0, 3.0], [0.0, 0.0]]
    >>> inner
    [[1.0, 1.0], [1.0, 2.0], [2.0, 2.0], [2.0, 1.0], [1.0, 1.0]]
    """
    closed = []
    for ring in rings:
        ring = np.asarray(ring, dtype=np.float64)
        if not np.array_equal(ring[0], ring[-1]):
            ring = np.vstack([ring, ring[:1]])
        closed.append(ring)
    exterior = int(np.argmax([abs(_signed_area(ring)) for ring in closed]))
    ordered = [closed[exterior]] + [r for i, r in enumerate(closed) if i != exterior]
    coordinates = []
    for index, ring in enumerate(ordered):
        if (index == 0) != (_signed_area(ring) > 0):
            ring = ring[::-1]
        coordinates.append(
            [[round(float(x), decimals), round(float(y), decimals)] for x, y in ring]
        )
    return coordinates


def _signed_area(ring):
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))


def write_feature_collection(features, path):
    """Write GeoJSON Features as one FeatureCollection file.

    Parameters
    ----------
    features : list of dict
        The Features, e.g. of :func:`polygon_feature`.
    path : str or os.PathLike
        The file to write; parent folders are created. It appears under its
        name only once complete.

    Returns
    -------
    path : pathlib.Path
        ``path``, once the file is complete.

    See Also
    --------
    read_annotations : Read the regions of such a file back.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from sklearn_gastric.io import read_annotations
    >>> from sklearn_gastric.io._geojson import (
    ...     polygon_feature, write_feature_collection)
    >>> feature = polygon_feature([[[0, 0], [8, 0], [8, 8]]], "LGIN")
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = write_feature_collection([feature], pathlib.Path(tmp) / "a.geojson")
    ...     (region,) = read_annotations(path)
    >>> region.class_name, region.bbox
    ('LGIN', (0.0, 0.0, 8.0, 8.0))
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    collection = {"type": "FeatureCollection", "features": list(features)}
    return write_text_atomic(path, dumps(collection))
