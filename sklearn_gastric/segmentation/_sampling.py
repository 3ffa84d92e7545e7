"""Training patches for the segmenter, sampled from slides with known lesions."""

from functools import partial
from numbers import Integral, Real

import numpy as np
from sklearn.utils import check_random_state

from ..io import Annotation, open_slide
from ..io._geojson import tile_annotation_mask
from ..utils import map_slides
from ..utils._sklearn_compat import HasMethods, Interval, validate_params
from ..utils._validation import N_JOBS
from ._provenance import StainedPatches

__all__ = ["sample_patches"]


@validate_params(
    {
        "slides": ["array-like"],
        "lesions": ["array-like"],
        "labels": ["array-like", None],
        "tile_size": [Interval(Integral, 1, None, closed="left")],
        "n_patches": [Interval(Integral, 1, None, closed="left")],
        "positive_fraction": [Interval(Real, 0, 1, closed="both")],
        "min_tissue": [Interval(Real, 0, 1, closed="both")],
        "min_lesion": [Interval(Real, 0, 1, closed="right")],
        "normalizer": [HasMethods(["transform"]), None],
        "mpp": [Interval(Real, 0, None, closed="neither"), None],
        "random_state": ["random_state"],
        "n_jobs": N_JOBS,
    },
    prefer_skip_nested_validation=True,
)
def sample_patches(
    slides,
    lesions,
    labels=None,
    *,
    tile_size=512,
    n_patches=64,
    positive_fraction=0.5,
    min_tissue=0.7,
    min_lesion=0.1,
    normalizer=None,
    mpp=None,
    random_state=None,
    n_jobs=None,
):
    """Training patches for :class:`PatchSegmenter`, from slides with known lesions.

    Negative patches are tiles of the pipeline's grid (:class:`Tiler`,
    :class:`OtsuFilter` with ``min_tissue``) that hold no lesion pixel,
    labelled ``"negative"``. Lesion patches are cut around lesion pixels at
    random offsets, off the grid, so that a small lesion still gives many
    distinct patches (on a grid it would give a handful): up to
    ``round(n_patches * positive_fraction)`` per slide, each with its
    lesion covering at least ``min_lesion`` of it and labelled with its
    lesion's class; negatives fill the rest. Only the drawn patches are
    read.

    With a ``normalizer``, the slides go through it first, each with its own
    estimated stains, so that the segmenter learns from the colours the
    pipeline will show it ("the standard colour used in training"): give
    the pipeline the same target (``make_gastric_pipeline(...,
    target=...)``).

    Parameters
    ----------
    slides : list of slides
        Paths, arrays or :class:`~sklearn_gastric.io.Slide` objects.
    lesions : list
        One entry per slide: a lesion mask of the slide's level-0 shape
        ``(height, width)``, as
        :func:`~sklearn_gastric.datasets.make_gastric_slides` returns it
        (boolean, or integers or floats in [0, 1]: a pixel is lesion where it
        is at least 0.5), a list of :class:`~sklearn_gastric.io.Annotation`
        (QuPath polygons read with :func:`~sklearn_gastric.io.read_annotations`;
        each gives its own class), or None (a slide without lesion).
    labels : list of str, default=None
        The class of each slide's mask lesion (its slide label); needed when
        ``lesions`` holds masks.
    tile_size : int, default=512
        Patch side in pixels: level-0 pixels when ``mpp`` is None, pixels
        at ``mpp`` µm/px otherwise.
    n_patches : int, default=64
        Patches per slide at most.
    positive_fraction : float, default=0.5
        Share of each slide's patches taken from lesion tiles, when there
        are enough.
    min_tissue : float, default=0.7
        The tissue filter's threshold.
    min_lesion : float, default=0.1
        Smallest lesion share of a lesion patch (a draw with less is
        drawn again, in up to ten rounds per slide).
    normalizer : StainNormalizer, default=None
        A fitted normaliser the slides go through first.
    mpp : float, default=None
        The patches' resolution in µm per pixel, whatever each slide's own:
        patches are cut as ``Tiler(tile_size, mpp=mpp)`` cuts tiles, from
        the best pyramid level of each slide, area-resized, so a cohort of
        20x and 40x scans gives patches of one physical size (``tile_size *
        mpp`` µm). Give the pipeline the same (``make_gastric_pipeline(...,
        mpp=mpp)``). Every slide needs a resolution (its file's, or
        ``open_slide(path, mpp=...)``); a ValueError names the first without.
        None: level-0 pixels.
    random_state : int, RandomState instance or None, default=None
        The draws; each slide gets its own seed, so a slide's patches depend
        neither on the others nor on ``n_jobs``.
    n_jobs : int, default=None
        Slides sampled in parallel (joblib).

    Returns
    -------
    patches : StainedPatches of shape (n, tile_size, tile_size, 3), dtype uint8
        An ndarray that also says how its pixels were normalised (``stain``:
        raw, or the normaliser's method and target), which
        :meth:`PatchSegmenter.fit` records so that a pipeline coloured
        otherwise gets a warning.
    masks : ndarray of shape (n, tile_size, tile_size), dtype float32
    labels : ndarray of shape (n,), dtype object
        ``"negative"`` or the lesion's class.
    groups : ndarray of shape (n,), dtype int
        The index of each patch's slide (for splits that keep a slide's
        patches together).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gastric.segmentation import sample_patches
    >>> slide = np.full((64, 128, 3), (200, 90, 170), dtype=np.uint8)
    >>> lesion = np.zeros((64, 128), dtype=bool)
    >>> lesion[:, 64:] = True
    >>> patches, masks, labels, groups = sample_patches(
    ...     [slide], [lesion], ["HGIN"], tile_size=64, n_patches=2, random_state=0)
    >>> patches.shape, labels.tolist()
    ((2, 64, 64, 3), ['HGIN', 'negative'])
    >>> bool(masks[0].mean() >= 0.1), float(masks[1].max())
    (True, 0.0)
    """
    slides = list(slides)
    lesions = list(lesions)
    if len(lesions) != len(slides):
        raise ValueError(
            f"sample_patches: {len(slides)} slides but {len(lesions)} lesion "
            "entries; give one (a mask, annotations or None) per slide."
        )
    if labels is not None:
        labels = list(labels)
        if len(labels) != len(slides):
            raise ValueError(
                f"sample_patches: {len(slides)} slides but {len(labels)} labels."
            )
    # Opened here (headers only) so that each mask is checked against its
    # slide's size before any pixel is read.
    slides = [open_slide(slide) for slide in slides]
    sources = [
        _lesion_source(lesion, None if labels is None else labels[i], i, slides[i])
        for i, lesion in enumerate(lesions)
    ]
    if normalizer is not None:
        slides = normalizer.transform(slides)
    seeds = check_random_state(random_state).randint(0, 2**31 - 1, size=len(slides))
    work = partial(
        _sample_slide,
        tile_size=int(tile_size),
        mpp=None if mpp is None else float(mpp),
        n_patches=int(n_patches),
        positive_fraction=float(positive_fraction),
        min_tissue=float(min_tissue),
        min_lesion=float(min_lesion),
    )
    results = map_slides(work, zip(slides, sources, seeds), n_jobs=n_jobs)
    side = int(tile_size)
    patches = [np.zeros((0, side, side, 3), np.uint8)]
    masks = [np.zeros((0, side, side), np.float32)]
    names, groups = [], []
    for index, (slide_patches, slide_masks, slide_labels) in enumerate(results):
        patches.append(slide_patches)
        masks.append(slide_masks)
        names.extend(slide_labels)
        groups.extend([index] * len(slide_labels))
    return (
        StainedPatches(np.concatenate(patches), normalizer),
        np.concatenate(masks),
        np.asarray(names, dtype=object),
        np.asarray(groups, dtype=np.intp),
    )


def _lesion_source(lesion, label, index, slide):
    if lesion is None:
        return None
    if isinstance(lesion, (list, tuple)):
        if not lesion:  # a slide whose annotations hold no lesion
            return None
        if not all(isinstance(item, Annotation) for item in lesion):
            raise TypeError(
                f"sample_patches: lesions[{index}] is a list, so it must hold "
                "Annotation objects (from read_annotations)."
            )
        return _Annotations(lesion)
    mask = np.asarray(lesion)
    if mask.ndim != 2:
        raise ValueError(
            f"sample_patches: lesions[{index}] must be a 2-d lesion mask, a list "
            f"of Annotation or None; got shape {mask.shape}."
        )
    if label is None:
        raise ValueError(
            f"sample_patches: lesions[{index}] is a mask, which has no class: "
            "give labels (each slide's class)."
        )
    return _Mask(_check_mask(mask, slide, index), str(label))


def _check_mask(mask, slide, index):
    """``mask`` as the boolean lesion mask of ``slide``; a ValueError naming
    the slide when it is not one (a mask of another size would put the
    lesions elsewhere, a NaN or text one would make everything lesion)."""
    where = f"sample_patches: lesions[{index}], the mask of slide {slide.name!r},"
    if mask.dtype.kind not in "biuf":
        raise ValueError(
            f"{where} has dtype {mask.dtype}; a lesion mask holds booleans, "
            "integers or floats in [0, 1]."
        )
    width, height = slide.dimensions
    if mask.shape != (height, width):
        raise ValueError(
            f"{where} has shape {mask.shape}, but the slide is {width}x{height} "
            f"pixels at level 0: its mask must have shape (height, width) = "
            f"{(height, width)}."
        )
    if mask.dtype.kind == "b":
        return mask
    low, high = mask.min(), mask.max()  # NaN and infinities propagate
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(f"{where} holds NaN or infinite values.")
    if low < 0 or high > 1:
        raise ValueError(
            f"{where} has values from {low} to {high}; they must be in [0, 1] "
            "(a pixel is lesion where it is at least 0.5)."
        )
    return mask >= 0.5


class _Annotations:
    """Lesions as annotation polygons, rasterised tile by tile."""

    def __init__(self, annotations):
        self.annotations = annotations

    def near(self, coords, footprint):
        near = np.zeros(len(coords), dtype=bool)
        for annotation in self.annotations:
            left, top, right, bottom = annotation.bbox
            near |= (
                (coords[:, 0] <= right)
                & (coords[:, 0] + footprint >= left)
                & (coords[:, 1] <= bottom)
                & (coords[:, 1] + footprint >= top)
            )
        return near

    def tile(self, origin, footprint, size):
        return tile_annotation_mask(self.annotations, origin, footprint, size)

    def draw_points(self, rng, n):
        """Random points inside the annotations' bounding boxes."""
        boxes = np.array([a.bbox for a in self.annotations], dtype=float)
        if not len(boxes):
            return np.zeros((0, 2), dtype=np.int64)
        which = rng.randint(len(boxes), size=n)
        left, top, right, bottom = boxes[which].T
        return np.stack(
            [rng.uniform(left, right), rng.uniform(top, bottom)], axis=1
        ).astype(np.int64)


class _Mask:
    """Lesions as a level-0 mask of one class."""

    def __init__(self, mask, class_name):
        self.mask = mask
        self.class_name = class_name
        self.pixels = np.flatnonzero(mask)

    def near(self, coords, footprint):
        return np.array(
            [self.mask[y : y + footprint, x : x + footprint].any() for x, y in coords],
            dtype=bool,
        )

    def tile(self, origin, footprint, size):
        x, y = (int(v) for v in origin)
        crop = np.zeros((footprint, footprint), dtype=np.float32)
        part = self.mask[y : y + footprint, x : x + footprint]
        crop[: part.shape[0], : part.shape[1]] = part
        mask = _area_fraction(crop, size) >= 0.5
        return mask, (self.class_name if mask.any() else None)

    def draw_points(self, rng, n):
        """Random lesion pixels, as (x, y)."""
        if not len(self.pixels):
            return np.zeros((0, 2), dtype=np.int64)
        y, x = np.divmod(rng.choice(self.pixels, size=n), self.mask.shape[1])
        return np.stack([x, y], axis=1).astype(np.int64)


def _on_level_grid(origins, downsample):
    """Level-0 corners moved onto the pixels of a level of ``downsample``
    (as the Tiler's are): a tile read from that level starts at a whole
    level pixel, and its mask must start at the same place."""
    if downsample == 1:
        return origins
    return np.floor(np.floor(origins / downsample) * downsample).astype(np.int64)


def _area_fraction(crop, size):
    """The share of each of ``size`` x ``size`` equal cells of ``crop``
    (a square of 0/1 floats) that is 1: the box filter that resizes the
    patch's pixels, so that mask and pixels stay aligned."""
    side = crop.shape[0]
    if side % size == 0:
        factor = side // size
        return crop.reshape(size, factor, size, factor).mean(axis=(1, 3))
    from PIL import Image

    resized = Image.fromarray(crop).resize((size, size), Image.Resampling.BOX)
    return np.asarray(resized)


def _sample_slide(
    item, *, tile_size, mpp, n_patches, positive_fraction, min_tissue, min_lesion
):
    from ..preprocessing import OtsuFilter, TileBag, Tiler

    slide, source, seed = item
    rng = np.random.RandomState(seed)
    (bag,) = OtsuFilter(min_tissue=min_tissue).fit_transform(
        Tiler(tile_size, mpp=mpp).fit_transform([open_slide(slide)])
    )
    size, footprint, coords = bag.tile_size, int(bag.footprint), bag.coords
    near = (
        source.near(coords, footprint)
        if source is not None
        else np.zeros(len(bag), bool)
    )
    n_positive = round(n_patches * positive_fraction) if source is not None else 0
    chosen, masks, labels = [], [], []
    if n_positive:
        width, height = bag.slide.dimensions
        downsample = bag.slide.level_downsamples[bag.level]
        # Each lesion patch contains a random lesion point at a random place.
        for _ in range(10):
            needed = n_positive - len(chosen)
            if needed <= 0:
                break
            points = source.draw_points(rng, 2 * needed)
            origins = points - rng.randint(footprint, size=points.shape)
            origins[:, 0] = np.clip(origins[:, 0], 0, max(0, width - footprint))
            origins[:, 1] = np.clip(origins[:, 1], 0, max(0, height - footprint))
            origins = _on_level_grid(origins, downsample)
            for origin in origins:
                mask, name = source.tile(origin, footprint, size)
                if name is None or mask.mean() < min_lesion:
                    continue
                chosen.append(origin)
                masks.append(mask)
                labels.append(name)
                if len(chosen) == n_positive:
                    break
    # Negatives from tiles away from every lesion: no rasterising needed.
    negatives = np.flatnonzero(~near)
    n_negative = min(len(negatives), n_patches - len(chosen))
    for index in rng.choice(negatives, size=n_negative, replace=False):
        chosen.append(coords[index])
        masks.append(np.zeros((size, size), dtype=bool))
        labels.append("negative")
    patches = np.empty((len(chosen), size, size, 3), dtype=np.uint8)
    start = 0
    drawn = TileBag(
        bag.slide,
        np.asarray(chosen, dtype=np.int64).reshape(-1, 2),
        bag.tile_size,
        level=bag.level,
        read_size=bag.read_size,
    )
    for batch in drawn.iter_batches(32):
        patches[start : start + len(batch)] = batch
        start += len(batch)
    masks = np.asarray(masks, dtype=np.float32).reshape(len(chosen), size, size)
    return patches, masks, labels
