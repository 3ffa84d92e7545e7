"""Suspected lesion regions as GeoJSON polygons that QuPath imports."""

import os
from numbers import Real

import numpy as np

from ..io._geojson import polygon_feature, write_feature_collection
from ..preprocessing import TileBag
from ..utils._sklearn_compat import HasMethods, Interval, validate_params
from ._lesion_map import lesion_map

__all__ = ["export_geojson", "lesion_features"]


# The region options that export_geojson passes on to lesion_features.
_REGION_OPTIONS = {
    # A SlidePrediction (sklearn_gastric.pipeline), told by its to_dict.
    "bag": [TileBag, HasMethods(["to_dict"])],
    "threshold": [Interval(Real, 0, 1, closed="both"), None],
    "class_name": [str],
    "classes": ["array-like", None],
    "color": ["array-like", None],
    "downsample": [Interval(Real, 0, None, closed="neither"), None],
    "tolerance": [Interval(Real, 0, None, closed="left")],
}


@validate_params(
    {"path": [str, os.PathLike], **_REGION_OPTIONS},
    prefer_skip_nested_validation=True,
)
def export_geojson(
    bag,
    path,
    threshold=None,
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
    bag : TileBag or SlidePrediction
        The tiles of one slide with ``prob_maps``, or the slide's
        prediction (:func:`~sklearn_gastric.pipeline.predict_slides`),
        whose lesion map is exported as it is (no new map is computed
        unless ``threshold`` or ``downsample`` asks for another one).
    path : str or os.PathLike
        The file to write (``.geojson``); parent folders are created. It
        appears under its name only once complete; nothing is written
        anywhere else.
    threshold : float, default=None
        Pixels with probability strictly greater than ``threshold`` are
        suspected lesion. None: the prediction's threshold, or 0.5 for a
        TileBag.
    class_name : str, default="lesion"
        The QuPath classification of every region when ``classes`` is None,
        for instance the slide's predicted class (``pipe.predict([slide])[0]``).
    classes : array-like of shape (n_classes,), default=None
        The names of the columns of the bag's ``patch_proba`` (the
        segmenter's ``classes_``; with a prediction, None means its
        ``patch_classes``). When given, each region is classified as
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
    features = lesion_features(
        bag,
        threshold,
        class_name=class_name,
        classes=classes,
        color=color,
        downsample=downsample,
        tolerance=tolerance,
    )
    return write_feature_collection(features, path)


@validate_params(_REGION_OPTIONS, prefer_skip_nested_validation=True)
def lesion_features(
    bag,
    threshold=None,
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
    bag : TileBag or SlidePrediction
        See :func:`export_geojson`.
    threshold : float, default=None
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
    bag, result, classes = _regions_of(bag, threshold, downsample, classes)
    if color is not None:
        color = [int(c) for c in np.asarray(color).ravel()]
        if len(color) != 3:
            raise ValueError(f"color must be an RGB triple; got {color}.")
    if classes is not None:
        classes = [str(c) for c in np.asarray(classes).ravel()]
        patch_proba = bag.require(
            "patch_proba",
            hint="pass classes=None, or run a PatchSegmenter first",
            allow_empty=True,
        )
        if len(classes) != patch_proba.shape[1]:
            raise ValueError(
                f"Slide {bag.name!r}: {len(classes)} classes for "
                f"{patch_proba.shape[1]} columns of 'patch_proba'."
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
        rings = _region_rings(
            result.labels[window] == region.label,
            (window[0].start, window[1].start),
            result.downsample,
            result.slide_dimensions,
            float(tolerance),
        )
        properties = {
            "name": f"lesion {region.label}",
            "probability": region.mean_probability,
            "max_probability": region.max_probability,
            "area_px": region.area,
            "bbox": list(region.bbox),
            **extra,
        }
        features.append(
            polygon_feature(rings, name, color=color, properties=properties)
        )
    return features


def _regions_of(source, threshold, downsample, classes):
    """The tiles, lesion map and patch classes of a TileBag or a prediction."""
    if isinstance(source, TileBag):
        threshold = 0.5 if threshold is None else threshold
        return source, lesion_map(source, threshold, downsample=downsample), classes
    if not hasattr(source, "lesion_map"):
        raise TypeError(
            "Expected a TileBag or a SlidePrediction (predict_slides); got "
            f"{type(source).__name__}."
        )
    result = source.lesion_map
    if classes is None:
        classes = source.patch_classes
    if downsample is not None or threshold not in (None, result.threshold):
        threshold = result.threshold if threshold is None else threshold
        result = lesion_map(source.bag, threshold, downsample=downsample)
    return source.bag, result, classes


def _region_rings(mask, origin, downsample, dimensions, tolerance):
    """The border rings of one 8-connected region, level-0 (x, y), clipped
    to the slide, in the order found (the GeoJSON writer puts the exterior
    first and orients them).

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
        rings.append(xy)
    return rings
