"""Suspected lesion regions as GeoJSON polygons that QuPath imports."""

import json
import os
from numbers import Real
from pathlib import Path

import numpy as np

from ..datasets import GASTRIC_CLASSES
from ..preprocessing import TileBag
from ..utils import write_text_atomic
from ..utils._sklearn_compat import Interval, validate_params
from ._lesion_map import lesion_map

__all__ = ["export_geojson", "lesion_features"]

# QuPath-like colours per class; other class names get _DEFAULT_COLOR.
CLASS_COLORS = dict(
    zip(
        GASTRIC_CLASSES,
        ([64, 160, 64], [230, 180, 40], [230, 110, 30], [200, 30, 30]),
    )
)
_DEFAULT_COLOR = [200, 0, 0]


@validate_params(
    {
        "bag": [TileBag],
        "path": [str, os.PathLike],
        "threshold": [Interval(Real, 0, 1, closed="both")],
        "class_name": [str],
        "classes": ["array-like", None],
        "color": ["array-like", None],
        "downsample": [Interval(Real, 0, None, closed="neither"), None],
        "tolerance": [Interval(Real, 0, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def export_geojson(
    bag,
    path,
    threshold=0.5,
    *,
    class_name="lesion",
    classes=None,
    color=None,
    downsample=None,
    tolerance=0.1,
):
    """Write a slide's suspected lesion regions as a GeoJSON FeatureCollection.

    The regions of :func:`lesion_map` become polygons in level-0 pixel
    coordinates ``(x, y)``, one Feature each, with the properties QuPath
    reads when it imports annotations (File > Import objects, or drag and
    drop the file onto the slide).

    Parameters
    ----------
    bag : TileBag
        The tiles of one slide with ``prob_maps``.
    path : str or os.PathLike
        The file to write (``.geojson``); parent folders are created. It
        appears under its name only once complete; nothing is written
        anywhere else.
    threshold : float, default=0.5
        Pixels with probability strictly greater than ``threshold`` are
        suspected lesion.
    class_name : str, default="lesion"
        The QuPath classification of every region when ``classes`` is None,
        for instance the slide's predicted class (``pipe.predict([slide])[0]``).
    classes : array-like of shape (n_classes,), default=None
        The names of the columns of the bag's ``patch_proba`` (the
        segmenter's ``classes_``). When given, each region is classified as
        the class of highest mean ``patch_proba`` over its tiles
        (:attr:`LesionRegion.patch_proba`), and that mean is written as
        ``class_probability``.
    color : (int, int, int), default=None
        RGB colour of the classification; None picks one per class of
        :data:`~sklearn_gastric.datasets.GASTRIC_CLASSES`, red otherwise.
    downsample : float, default=None
        Resolution of the lesion map, see :func:`lesion_map`.
    tolerance : float, default=0.1
        Douglas-Peucker tolerance of the polygon simplification
        (:func:`skimage.measure.approximate_polygon`), in map pixels. The
        default only drops points on straight runs of the border; 0 keeps
        every contour point. A simplification that would leave fewer than
        four points is not applied.

    Returns
    -------
    path : pathlib.Path
        The written file.

    See Also
    --------
    lesion_features : The features, without writing them.

    Notes
    -----
    Each Feature's geometry is a Polygon whose exterior ring (then holes)
    follows the region's border (:func:`skimage.measure.find_contours` at
    level 0.5 of the region's mask, through pixel edges and cut across
    corners). Rings are closed (first point == last point); exterior rings
    have a positive shoelace area in the ``(x, y)`` coordinates written and
    holes a negative one, i.e. counter-clockwise and clockwise in the sense
    of RFC 7946 with the y axis pointing up. Coordinates are clipped to the
    slide.

    Properties: ``objectType`` ("annotation"), ``classification`` (``name``
    and ``color``), ``name`` ("lesion 1", ...), ``probability`` (mean
    probability in the region), ``max_probability``, ``area_px`` (area in
    level-0 pixels, from the region's map pixels), ``bbox`` (level-0
    ``[x_min, y_min, x_max, y_max]``) and, with ``classes``,
    ``class_probability``.

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> import numpy as np
    >>> from sklearn_gastric.preprocessing import TileBag
    >>> from sklearn_gastric.visualization import export_geojson
    >>> maps = np.zeros((1, 4, 4), dtype=np.float32)
    >>> maps[0, 1:3, 1:3] = 0.8
    >>> bag = TileBag(np.zeros((32, 32, 3), np.uint8), [[0, 0]], 32,
    ...               prob_maps=maps)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     out = export_geojson(bag, pathlib.Path(tmp) / "lesions.geojson")
    ...     collection = json.loads(out.read_text())
    >>> (feature,) = collection["features"]
    >>> (ring,) = feature["geometry"]["coordinates"]
    >>> ring[:4], ring[0] == ring[-1]
    ([[20.0, 24.0], [12.0, 24.0], [8.0, 20.0], [8.0, 12.0]], True)
    >>> properties = feature["properties"]
    >>> properties["classification"]["name"], properties["area_px"]
    ('lesion', 256.0)
    """
    collection = {
        "type": "FeatureCollection",
        "features": lesion_features(
            bag,
            threshold,
            class_name=class_name,
            classes=classes,
            color=color,
            downsample=downsample,
            tolerance=tolerance,
        ),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(path, json.dumps(collection))


@validate_params(
    {
        "bag": [TileBag],
        "threshold": [Interval(Real, 0, 1, closed="both")],
        "class_name": [str],
        "classes": ["array-like", None],
        "color": ["array-like", None],
        "downsample": [Interval(Real, 0, None, closed="neither"), None],
        "tolerance": [Interval(Real, 0, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def lesion_features(
    bag,
    threshold=0.5,
    *,
    class_name="lesion",
    classes=None,
    color=None,
    downsample=None,
    tolerance=0.1,
):
    """The GeoJSON Features of a slide's suspected lesion regions.

    Parameters
    ----------
    bag : TileBag
        The tiles of one slide with ``prob_maps``.
    threshold : float, default=0.5
        See :func:`export_geojson`.
    class_name : str, default="lesion"
        See :func:`export_geojson`.
    classes : array-like of shape (n_classes,), default=None
        See :func:`export_geojson`.
    color : (int, int, int), default=None
        See :func:`export_geojson`.
    downsample : float, default=None
        See :func:`lesion_map`.
    tolerance : float, default=0.1
        See :func:`export_geojson`.

    Returns
    -------
    features : list of dict
        One GeoJSON Feature per region, ready for :func:`json.dumps`.
    """
    result = lesion_map(bag, threshold, downsample=downsample)
    if color is not None:
        color = [int(c) for c in np.asarray(color).ravel()]
        if len(color) != 3:
            raise ValueError(f"color must be an RGB triple; got {color}.")
    if classes is not None:
        classes = [str(c) for c in np.asarray(classes).ravel()]
        if bag.patch_proba is None:
            raise ValueError(
                f"Slide {bag.name!r}: classes were given but the tiles have no "
                "'patch_proba' to classify the regions with."
            )
        if len(classes) != bag.patch_proba.shape[1]:
            raise ValueError(
                f"Slide {bag.name!r}: {len(classes)} classes for "
                f"{bag.patch_proba.shape[1]} columns of 'patch_proba'."
            )
    from scipy.ndimage import find_objects

    features = []
    for region, window in zip(result.regions, find_objects(result.labels)):
        extra = {}
        name = class_name
        if classes is not None:
            best = int(np.argmax(region.patch_proba))
            name = classes[best]
            extra["class_probability"] = region.patch_proba[best]
        region_color = (
            color if color is not None else CLASS_COLORS.get(name, _DEFAULT_COLOR)
        )
        rings = _region_rings(
            result.labels[window] == region.label,
            (window[0].start, window[1].start),
            result.downsample,
            result.slide_dimensions,
            float(tolerance),
        )
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": rings},
                "properties": {
                    "objectType": "annotation",
                    "classification": {"name": name, "color": list(region_color)},
                    "name": f"lesion {region.label}",
                    "probability": region.mean_probability,
                    "max_probability": region.max_probability,
                    "area_px": region.area,
                    "bbox": list(region.bbox),
                    **extra,
                },
            }
        )
    return features


def _region_rings(mask, origin, downsample, dimensions, tolerance):
    """Exterior ring then holes of one 8-connected region, level-0 (x, y).

    ``mask`` is the region's bounding box in the map, whose top-left pixel is
    map pixel ``origin`` (row, col).
    """
    from skimage.measure import approximate_polygon, find_contours

    # The padding closes contours that touch the map's border.
    padded = np.pad(mask, 1).astype(np.float32)
    contours = find_contours(padded, 0.5, fully_connected="high")
    width, height = dimensions
    rings = []
    for contour in contours:
        if tolerance > 0:
            simplified = approximate_polygon(contour, tolerance)
            if len(simplified) >= 4:
                contour = simplified
        # Pixel (row, col) of the padded mask is map pixel (row - 1 + origin
        # row, col - 1 + origin col), whose centre is at level-0 (x, y) =
        # ((map col + 0.5) * d, (map row + 0.5) * d).
        xy = (contour[:, ::-1] + np.array(origin[::-1]) - 0.5) * downsample
        xy[:, 0] = np.clip(xy[:, 0], 0, width)
        xy[:, 1] = np.clip(xy[:, 1], 0, height)
        if not np.array_equal(xy[0], xy[-1]):
            xy = np.vstack([xy, xy[:1]])
        rings.append(xy)
    areas = [_signed_area(ring) for ring in rings]
    exterior = int(np.argmax(np.abs(areas)))
    ordered = [rings[exterior]] + [r for i, r in enumerate(rings) if i != exterior]
    oriented = []
    for index, ring in enumerate(ordered):
        area = _signed_area(ring)
        if (index == 0) != (area > 0):
            ring = ring[::-1]
        oriented.append([[round(float(x), 3), round(float(y), 3)] for x, y in ring])
    return oriented


def _signed_area(ring):
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))
