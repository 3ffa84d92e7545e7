"""Slide-level lesion probability maps and suspected lesion regions (claim 7)."""

import math
from dataclasses import dataclass, replace
from numbers import Real

import numpy as np

from ..preprocessing import TileBag
from ..utils._sklearn_compat import Interval, validate_params

__all__ = ["LesionMap", "LesionRegion", "lesion_map"]

# A default map never exceeds this many pixels along its longer side, so a
# 100 000-pixel-wide slide gives a map of a few tens of megabytes.
_MAX_DEFAULT_SIDE = 4096
# Map pixels covered by less than this fraction of their area count as not
# covered (guards against rounding slivers at tile edges).
_MIN_COVERED_AREA = 1e-6


@dataclass(frozen=True)
class LesionRegion:
    """One suspected lesion region: a connected set of map pixels above threshold.

    Attributes
    ----------
    label : int
        The region's value in :attr:`LesionMap.labels` (1, 2, ...).
    area : float
        Area in level-0 pixels (map pixels times ``downsample ** 2``).
    bbox : (int, int, int, int)
        ``(x_min, y_min, x_max, y_max)`` in level-0 pixels, the maximum
        excluded, clipped to the slide.
    mean_probability : float
        Mean lesion probability over the region's pixels.
    max_probability : float
        Highest lesion probability in the region.
    patch_proba : tuple of float or None
        Mean of the ``patch_proba`` of the tiles under the region, each
        weighted by the region's area it covers (columns of the bag's
        ``patch_proba``); None when the bag has no ``patch_proba``.
    """

    label: int
    area: float
    bbox: tuple
    mean_probability: float
    max_probability: float
    patch_proba: tuple = None


@dataclass(frozen=True, eq=False, repr=False)
class LesionMap:
    """A slide's lesion probability map and its suspected lesion regions.

    Built by :func:`lesion_map`. Map pixel ``(row, col)`` covers the level-0
    box ``[col * downsample, (col + 1) * downsample) x [row * downsample,
    (row + 1) * downsample)``.

    Attributes
    ----------
    probability : ndarray of shape (map_height, map_width), dtype float32
        Lesion probability of each map pixel; 0 where no tile lies.
    coverage : ndarray of shape (map_height, map_width), dtype bool
        Whether a tile covers (part of) the pixel (False: not tissue, or not
        analysed).
    downsample : float
        Level-0 pixels per map pixel, along each axis.
    threshold : float
        Pixels with ``probability > threshold`` form the regions.
    labels : ndarray of shape (map_height, map_width), dtype int32
        0 outside the regions, ``k`` on the pixels of region ``k``.
    regions : list of LesionRegion
        The regions, in the order of their labels (raster order of their
        first pixel).
    slide_dimensions : (int, int)
        ``(width, height)`` of the slide at level 0.
    name : str
        The slide's name.
    """

    probability: np.ndarray
    coverage: np.ndarray
    downsample: float
    threshold: float
    labels: np.ndarray
    regions: list
    slide_dimensions: tuple
    name: str

    def __repr__(self):
        height, width = self.probability.shape
        return (
            f"LesionMap({self.name!r}, shape=({height}, {width}), "
            f"downsample={self.downsample:g}, threshold={self.threshold:g}, "
            f"n_regions={len(self.regions)})"
        )

    @property
    def mask(self):
        """The suspected lesion pixels, ``probability > threshold`` (bool)."""
        return self.labels > 0


@validate_params(
    {
        "bag": [TileBag],
        "threshold": [Interval(Real, 0, 1, closed="both")],
        "downsample": [Interval(Real, 0, None, closed="neither"), None],
    },
    prefer_skip_nested_validation=True,
)
def lesion_map(bag, threshold=0.5, *, downsample=None):
    """Assemble a slide's lesion probability map from its tiles' ``prob_maps``.

    Step 9 of the method (claim 7): the tiles' probability maps, as a
    :class:`~sklearn_gastric.segmentation.PatchSegmenter` stores them, are
    placed where the tiles lie on the slide; the suspected lesion regions
    are the connected groups of pixels whose probability is above
    ``threshold``.

    Parameters
    ----------
    bag : TileBag
        The tiles of one slide with ``prob_maps`` (all tissue tiles, i.e.
        the output of the segmenter, not of a top-K selection). When it has
        ``patch_proba``, each region gets its tiles' mean ``patch_proba``.
    threshold : float, default=0.5
        Pixels with probability strictly greater than ``threshold`` are
        suspected lesion; in [0, 1].
    downsample : float, default=None
        Level-0 pixels per map pixel. None: the resolution of ``prob_maps``
        (a tile's footprint over its map's side), made coarser when needed
        so that the map's longer side is at most 4096 pixels.

    Returns
    -------
    lesion_map : LesionMap
        The map, its coverage, the labelled regions with area and bounding
        box.

    Raises
    ------
    ValueError
        The bag has no ``prob_maps``, or they are not finite probabilities in
        [0, 1]; the message names the slide.

    See Also
    --------
    LesionMapDisplay : Show the map over the slide.
    export_geojson : Write the regions as QuPath annotations.

    Notes
    -----
    Each map pixel is the area-weighted mean of the tile probability-map
    pixels that overlap it, over the part of it that tiles cover: at the
    default resolution on a tile grid this copies the maps exactly; a
    coarser map averages them (no tile is ever skipped); a finer one repeats
    them. Where tiles overlap (a :class:`~sklearn_gastric.preprocessing.Tiler`
    with ``stride < tile_size``) the overlapping probabilities are averaged.
    Pixels that no tile covers have probability 0 and ``coverage`` False, so
    a display can tell "no lesion" from "not analysed".

    Regions are 8-connected (:func:`skimage.measure.label` with
    ``connectivity=2``) and their statistics come from
    :func:`skimage.measure.regionprops`.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gastric.preprocessing import TileBag
    >>> from sklearn_gastric.visualization import lesion_map
    >>> maps = np.zeros((2, 4, 4), dtype=np.float32)
    >>> maps[1, :2, 2:] = 0.9
    >>> bag = TileBag(np.zeros((32, 64, 3), np.uint8), [[0, 0], [32, 0]], 32,
    ...               prob_maps=maps)
    >>> result = lesion_map(bag, threshold=0.5)
    >>> result
    LesionMap('array(32x64)', shape=(4, 8), downsample=8, threshold=0.5, n_regions=1)
    >>> [(r.area, r.bbox) for r in result.regions]
    [(256.0, (48, 0, 64, 16))]
    """
    prob_maps = _check_prob_maps(bag)
    width, height = bag.slide.dimensions
    footprint = bag.footprint
    map_h, map_w = prob_maps.shape[1:]
    if downsample is None:
        downsample = footprint / max(map_h, map_w)
        downsample = max(downsample, max(width, height) / _MAX_DEFAULT_SIDE)
    downsample = float(downsample)
    out_w = max(1, math.ceil(width / downsample))
    out_h = max(1, math.ceil(height / downsample))
    total = np.zeros((out_h, out_w), dtype=np.float32)
    area = np.zeros((out_h, out_w), dtype=np.float32)
    windows = []
    for (x, y), tile_map in zip(bag.coords, prob_maps):
        col0, weights_x = _axis_weights(x, footprint, map_w, downsample, out_w)
        row0, weights_y = _axis_weights(y, footprint, map_h, downsample, out_h)
        if len(weights_x) and len(weights_y):
            window = (
                slice(row0, row0 + len(weights_y)),
                slice(col0, col0 + len(weights_x)),
            )
            tile_area = np.outer(weights_y.sum(axis=1), weights_x.sum(axis=1))
            total[window] += weights_y @ tile_map.astype(np.float64) @ weights_x.T
            area[window] += tile_area
        else:
            window, tile_area = None, None
        windows.append((window, tile_area))
    coverage = area > _MIN_COVERED_AREA
    probability = np.zeros((out_h, out_w), dtype=np.float32)
    probability[coverage] = total[coverage] / area[coverage]
    labels, regions = _find_regions(
        probability, float(threshold), downsample, (width, height)
    )
    if bag.patch_proba is not None and regions:
        regions = _add_patch_proba(regions, labels, windows, bag.patch_proba)
    return LesionMap(
        probability=probability,
        coverage=coverage,
        downsample=downsample,
        threshold=float(threshold),
        labels=labels,
        regions=regions,
        slide_dimensions=(int(width), int(height)),
        name=bag.name,
    )


def _check_prob_maps(bag):
    prob_maps = bag.prob_maps
    if prob_maps is None:
        raise ValueError(
            f"Slide {bag.name!r}: the tiles have no 'prob_maps'; run a "
            "PatchSegmenter on the bag first."
        )
    if prob_maps.ndim != 3 or 0 in prob_maps.shape[1:]:
        raise ValueError(
            f"Slide {bag.name!r}: prob_maps must have shape (n_tiles, height, "
            f"width); got {prob_maps.shape}."
        )
    if prob_maps.dtype.kind not in "biuf":
        raise ValueError(
            f"Slide {bag.name!r}: prob_maps must be numeric; got dtype "
            f"{prob_maps.dtype}."
        )
    if len(prob_maps) and not (
        np.isfinite(prob_maps).all() and prob_maps.min() >= 0 and prob_maps.max() <= 1
    ):
        raise ValueError(
            f"Slide {bag.name!r}: prob_maps must hold finite probabilities in [0, 1]."
        )
    return prob_maps


def _axis_weights(start, footprint, map_side, downsample, out_side):
    """Along one axis: the first output pixel a tile touches, and the fraction
    of each touched output pixel that each tile-map pixel covers."""
    first = max(0, math.floor(start / downsample))
    stop = min(out_side, math.ceil((start + footprint) / downsample))
    if stop <= first:
        return first, np.zeros((0, map_side))
    out_edges = np.arange(first, stop + 1) * downsample
    map_edges = start + np.arange(map_side + 1) * (footprint / map_side)
    overlap = np.minimum(out_edges[1:, None], map_edges[None, 1:]) - np.maximum(
        out_edges[:-1, None], map_edges[None, :-1]
    )
    return first, np.clip(overlap, 0, None) / downsample


def _add_patch_proba(regions, labels, windows, patch_proba):
    """Each region's mean tile ``patch_proba``, weighted by covered area."""
    n_regions = len(regions)
    weighted = np.zeros((n_regions, patch_proba.shape[1]))
    weight = np.zeros(n_regions)
    for (window, tile_area), proba in zip(windows, patch_proba):
        if window is None:
            continue
        overlap = np.bincount(
            labels[window].ravel(), weights=tile_area.ravel(), minlength=n_regions + 1
        )[1:]
        weighted += overlap[:, None] * proba[None, :]
        weight += overlap
    return [
        replace(
            region,
            patch_proba=tuple(float(p) for p in weighted[i] / weight[i]),
        )
        for i, region in enumerate(regions)
    ]


def _find_regions(probability, threshold, downsample, dimensions):
    from skimage.measure import label, regionprops

    labels = label(probability > threshold, connectivity=2).astype(np.int32)
    width, height = dimensions
    regions = []
    for props in regionprops(labels, intensity_image=probability):
        min_row, min_col, max_row, max_col = props.bbox
        bbox = (
            min(int(round(min_col * downsample)), width),
            min(int(round(min_row * downsample)), height),
            min(int(round(max_col * downsample)), width),
            min(int(round(max_row * downsample)), height),
        )
        regions.append(
            LesionRegion(
                label=int(props.label),
                area=float(props.area) * downsample**2,
                bbox=bbox,
                mean_probability=float(props.intensity_mean),
                max_probability=float(props.intensity_max),
            )
        )
    return labels, regions
