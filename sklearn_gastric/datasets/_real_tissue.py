"""Slides of real H&E tissue with painted lesions: a benchmark cohort the
synthetic renderer did not draw."""

import numbers
import os
from functools import partial

import numpy as np

from ..utils._sklearn_compat import Interval, StrOptions, validate_params
from ..utils._validation import N_JOBS
from ._compartments import LESION_RENDERERS, render_lymphoid
from ._labs import REFERENCE_LAB
from ._nuclei import new_nucleus_canvas, nucleus_view, paste_nuclei
from ._regions import place_foci
from ._render import EOSIN_SCALE, beer_lambert
from ._synthetic import (
    _RENDER_CONSTRAINTS,
    _check_classes,
    _check_shape,
    _random_streams,
    make_cohort,
)
from ._tissue_source import load_tissue_source

__all__ = ["make_real_tissue_slides"]

_PARTS = ("all", "upper", "lower")
_MIN_SIZE = 256
# A slide's crop is drawn among random windows whose tissue covers this
# fraction of the field (the best window when none does).
_TISSUE_COVERAGE = (0.35, 0.9)
_CANDIDATE_WINDOWS = 200
# How much of a painted compartment replaces the real tissue's stains under
# it (the rest of the real texture shows through).
_PAINT_WEIGHT = (0.55, 0.8)


@validate_params(
    {
        "n_slides": [Interval(numbers.Integral, 1, None, closed="left")],
        "size": [Interval(numbers.Integral, 1, None, closed="left"), tuple, list],
        "lesion_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "part": [StrOptions(set(_PARTS))],
        "return_stains": ["boolean"],
        "return_tissue": ["boolean"],
        "out_dir": [str, os.PathLike, None],
        "data_home": [str, os.PathLike, None],
        "n_jobs": N_JOBS,
        "verbose": ["verbose"],
        **_RENDER_CONSTRAINTS,
    },
    prefer_skip_nested_validation=True,
)
def make_real_tissue_slides(
    n_slides=8,
    *,
    size=1024,
    classes=None,
    lesion_fraction=0.05,
    stain_jitter=0.1,
    lab=None,
    part="all",
    return_stains=False,
    return_tissue=False,
    out_dir=None,
    data_home=None,
    n_jobs=None,
    verbose=0,
    random_state=None,
):
    """Slides of real H&E tissue with painted lesions, in simulated labs.

    The tissue is real: the CMU-1-Small-Region slide
    (:func:`fetch_cmu_small_region`, skin, 20x), unmixed onto its own two
    stains (Macenko's published algorithm) into haematoxylin and eosin
    concentrations. Each slide is a window of that tissue (a random quarter
    turn and flip, then a crop whose tissue covers 35-90 % of the field)
    re-rendered by the Beer-Lambert law with the stains of a lab, jittered
    per slide as in :func:`make_gastric_slides`, so every slide's true stain
    vectors are known. Lesions and benign mimics are painted in the
    concentration maps: a lesion focus of the slide's class (the nuclear
    morphology of :func:`make_gastric_slides`) replaces 55-80 % of the real
    stains under it and adds its nuclei; lymphoid aggregates (dense small
    dark nuclei) cover 1-10 % of the tissue of every slide. The real tissue
    brings what the renderer lacks: real nuclei of every size, the dense
    basal layer of the epidermis (a natural mimic), collagen, fraying edges,
    JPEG texture.

    What it can tell: whether the method finds painted lesions on real
    textures and real stain distributions, across labs. What it cannot
    tell: accuracy on real gastric lesions (the lesions are drawn, and the
    tissue is skin). Every slide shares one real source, so the slides of a
    cohort are views of the same tissue; ``part`` keeps the training and
    test cohorts on disjoint halves of it.

    Parameters
    ----------
    n_slides : int, default=8
        Number of slides.
    size : int or (int, int), default=1024
        Slide height and width in pixels at the source's 0.499 microns per
        pixel, at least 256; at most what ``part`` holds (1483 pixels on the
        short side of a half, 2220 for ``"all"``).
    classes : list of str, default=None
        As in :func:`make_gastric_slides`.
    lesion_fraction : float, default=0.05
        Fraction of each lesion slide's tissue covered by lesions, in (0, 1).
    stain_jitter : float, default=0.1
        Per-slide stain perturbation around the lab, as in
        :func:`make_gastric_slides`.
    lab : StainProfile, default=None
        The laboratory; None is :data:`REFERENCE_LAB`.
    part : {"all", "upper", "lower"}, default="all"
        Which part of the real slide the windows come from: the whole of it,
        or one of its two disjoint halves (rows above or below the middle).
    return_stains : bool, default=False
        Also return each slide's true stain matrix (haematoxylin row first).
    return_tissue : bool, default=False
        Also return each slide's tissue mask (the real tissue's, without
        glass or pen ink).
    out_dir : str or os.PathLike, default=None
        If given, slides are written there as pyramidal TIFFs
        ``slide_000.tiff``, ... (mpp 0.499) and their paths returned.
    data_home : str or os.PathLike, default=None
        Where the real slide is cached; see :func:`get_data_home`.
    n_jobs : int, default=None
        Number of joblib workers.
    verbose : int or bool, default=0
        Show a progress bar.
    random_state : int, RandomState instance or None, default=None
        Seed; the same seed gives the same slides, labels and masks.

    Returns
    -------
    slides, labels, masks[, stains][, tissue]
        As :func:`make_gastric_slides` returns them.

    See Also
    --------
    make_gastric_slides : Fully synthetic slides.

    Examples
    --------
    >>> from sklearn_gastric.datasets import make_real_tissue_slides
    >>> slides, labels, masks, tissue = make_real_tissue_slides(
    ...     4, size=256, return_tissue=True, random_state=0)
    >>> slides[0].shape, slides[0].dtype
    ((256, 256, 3), dtype('uint8'))
    >>> all(not (m & ~t).any() for m, t in zip(masks, tissue))
    True
    """
    shape = _check_shape(size, "size", _MIN_SIZE)
    classes = _check_classes(classes)
    source = load_tissue_source("cmu", "own", _as_key(data_home))
    _check_fits(shape, source.tissue.shape, part)
    work = partial(
        _make_one,
        shape=shape,
        part=part,
        lesion_fraction=float(lesion_fraction),
        stain_jitter=float(stain_jitter),
        lab=REFERENCE_LAB if lab is None else lab,
        data_home=_as_key(data_home),
    )
    return make_cohort(
        work,
        n_slides,
        classes,
        random_state=random_state,
        out_dir=out_dir,
        n_jobs=n_jobs,
        verbose=verbose,
        desc="real-tissue slides",
        return_stains=return_stains,
        return_tissue=return_tissue,
    )


def _as_key(data_home):
    """``data_home`` as a hashable cache key."""
    return None if data_home is None else str(data_home)


def _part_rows(height, part):
    middle = height // 2
    return {"all": slice(0, height), "upper": slice(0, middle)}.get(
        part, slice(middle, height)
    )


def _check_fits(shape, source_shape, part):
    rows = _part_rows(source_shape[0], part)
    available = sorted((rows.stop - rows.start, source_shape[1]))
    if sorted(shape)[0] > available[0] or sorted(shape)[1] > available[1]:
        raise ValueError(
            f"size {shape} does not fit in the {part!r} part of the real slide "
            f"({available[0]} x {available[1]} pixels, in either orientation)."
        )


def _make_one(
    item,
    *,
    shape,
    part,
    lesion_fraction,
    stain_jitter,
    lab,
    data_home,
    source=("cmu", "own"),
):
    """One slide, its lesion mask, stains and tissue; ``source`` names the
    real image and the stains it is unmixed onto (the benchmarks also use
    the H&E target and Ruifrok's stains)."""
    seed, label, path = item
    source = load_tissue_source(*source, data_home)
    structure, stains = _random_streams(seed, lab, stain_jitter)
    concentrations, tissue = _window(structure, source, shape, part)
    mask, lesions, mimics = _foci(structure, tissue, label, lesion_fraction)
    image = _render(structure, concentrations, tissue, lesions, mimics, stains)
    if path is None:
        return image, mask, stains["vectors"], tissue
    from ..io import write_pyramidal_tiff

    write_pyramidal_tiff(image, path, mpp=source.mpp)
    return str(path), mask, stains["vectors"], tissue


def _window(rng, source, shape, part):
    """A crop of the source's concentrations and tissue, turned and flipped
    at random, whose tissue covers a plausible share of the field."""
    rows = _part_rows(source.tissue.shape[0], part)
    turns = int(rng.integers(4))
    flip = bool(rng.random() < 0.5)

    def oriented(array):
        array = np.rot90(array[rows], turns)
        return array[:, ::-1] if flip else array

    tissue = oriented(source.tissue)
    if tissue.shape[0] < shape[0] or tissue.shape[1] < shape[1]:
        turns += 1
        tissue = oriented(source.tissue)
    integral = np.pad(tissue.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    ys = rng.integers(0, tissue.shape[0] - shape[0] + 1, _CANDIDATE_WINDOWS)
    xs = rng.integers(0, tissue.shape[1] - shape[1] + 1, _CANDIDATE_WINDOWS)
    height, width = shape
    covered = (
        integral[ys + height, xs + width]
        - integral[ys, xs + width]
        - integral[ys + height, xs]
        + integral[ys, xs]
    ) / (height * width)
    low, high = _TISSUE_COVERAGE
    good = np.flatnonzero((covered >= low) & (covered <= high))
    pick = good[0] if good.size else int(np.argmax(covered))
    window = (slice(ys[pick], ys[pick] + height), slice(xs[pick], xs[pick] + width))
    concentrations = oriented(source.concentrations)[window]
    return np.array(concentrations, dtype=np.float32), np.array(tissue[window])


def _foci(rng, tissue, label, lesion_fraction):
    """The lesion mask and foci, and the mimics, as the synthetic slides
    place them: one to three lesion foci covering ``lesion_fraction`` of the
    tissue, two to six lymphoid aggregates over 1-10 % of the rest."""
    tissue_area = int(np.count_nonzero(tissue))
    mask = np.zeros(tissue.shape, dtype=bool)
    lesions = []
    if label != "negative" and tissue_area:
        area = max(1, round(lesion_fraction * tissue_area))
        n_foci = min(int(rng.integers(1, 4)), area)
        for focus in place_foci(rng, tissue, area, n_foci):
            rows, cols, sub = focus
            mask[rows, cols] |= sub
            lesions.append((label, focus))
    mimic_area = round(rng.uniform(0.01, 0.10) * tissue_area)
    mimics = []
    if mimic_area:
        mimics = place_foci(rng, tissue & ~mask, mimic_area, int(rng.integers(2, 7)))
    return mask, lesions, mimics


def _render(rng, concentrations, tissue, lesions, mimics, stains):
    """The real stains with the painted foci, in the slide's lab stains."""
    c_h = np.ascontiguousarray(concentrations[..., 0])
    # The renderer scales eosin by EOSIN_SCALE; the real concentrations are
    # already optical densities.
    c_e = np.ascontiguousarray(concentrations[..., 1]) / np.float32(EOSIN_SCALE)
    nuc = new_nucleus_canvas(tissue.shape)
    for focus in mimics:
        _paint(rng, render_lymphoid, focus, c_h, c_e, nuc, soft=True)
    grain = rng.standard_normal(tissue.shape, dtype=np.float32)
    for name, focus in lesions:
        _paint(rng, LESION_RENDERERS[name], focus, c_h, c_e, nuc)
    return beer_lambert(c_h, c_e, nucleus_view(nuc), tissue, stains, grain)


def _paint(rng, renderer, focus, c_h, c_e, nuc, *, soft=False):
    """A compartment blended into the real stains inside the focus, its
    nuclei added."""
    rows, cols, sub = focus
    local_h, local_e, local_nuc = renderer(rng, sub)
    weight = np.float32(rng.uniform(*_PAINT_WEIGHT))
    for real, local in ((c_h, local_h), (c_e, local_e)):
        region = real[rows, cols]
        region[sub] = (1 - weight) * region[sub] + weight * local[sub]
    paste_nuclei(nuc, local_nuc, rows, cols, sub, spill=soft)
