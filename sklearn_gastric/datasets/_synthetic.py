"""Synthetic H&E-like gastric slides and patches with pixel-exact lesion masks.

These generators are the only labelled data the project has: it ships no
real gastric slides with slide labels or lesion masks. They are meant for
tests, examples and benchmarks, never as evidence of clinical performance.
"""

import numbers
import os
from functools import partial
from pathlib import Path

import numpy as np
from sklearn.utils import check_random_state

from ..utils import map_slides
from ..utils._sklearn_compat import Interval, validate_params
from ..utils._validation import N_JOBS
from ._fields import random_tissue
from ._labs import REFERENCE_LAB, StainProfile, sample_slide_stains
from ._regions import grow_region, place_foci
from ._render import render

__all__ = ["GASTRIC_CLASSES", "make_gastric_slides", "make_patch_dataset"]

GASTRIC_CLASSES = ("negative", "LGIN", "HGIN", "carcinoma")

_MIN_SLIDE_SIZE = 256
_MIN_TILE_SIZE = 32
#: The resolution the generator draws at, in µm per pixel (a 20x scan): its
#: nuclei, glands and lesions have the sizes of real tissue at 0.5 µm/px.
SYNTHETIC_MPP = 0.5

# The parameters both generators take.
_RENDER_CONSTRAINTS = {
    "classes": ["array-like", None],
    "stain_jitter": [Interval(numbers.Real, 0, 1, closed="both")],
    "lab": [StainProfile, None],
    "random_state": ["random_state"],
}


@validate_params(
    {
        "n_slides": [Interval(numbers.Integral, 1, None, closed="left")],
        "size": [Interval(numbers.Integral, 1, None, closed="left"), tuple, list],
        "lesion_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "return_stains": ["boolean"],
        "return_tissue": ["boolean"],
        "out_dir": [str, os.PathLike, None],
        "n_jobs": N_JOBS,
        "verbose": ["verbose"],
        **_RENDER_CONSTRAINTS,
    },
    prefer_skip_nested_validation=True,
)
def make_gastric_slides(
    n_slides=8,
    *,
    size=2048,
    classes=None,
    lesion_fraction=0.05,
    stain_jitter=0.1,
    lab=None,
    return_stains=False,
    return_tissue=False,
    out_dir=None,
    n_jobs=None,
    verbose=0,
    random_state=None,
):
    """Generate synthetic H&E-like gastric slides with lesion masks.

    The slides are **synthetic**: they are the only labelled gastric data
    this project has, made for tests, examples and benchmarks. Each is
    rendered by the Beer-Lambert law, ``RGB = I0 * exp(-(c_h * h + c_e * e))``,
    from haematoxylin and eosin concentration maps and per-slide stain
    vectors ``h`` and ``e``, at 0.5 microns per pixel. A slide shows an
    irregular piece of tissue (40-70 % of the image) on a near-white
    background: fibrous eosinophilic stroma with fibroblasts and scattered
    lymphocytes, and foveolar glands (rings of basal nuclei around lumens).

    A slide of a lesion class holds one to three lesion foci covering
    ``lesion_fraction`` of its tissue, with the class's morphology:

    - ``"LGIN"``: crowded back-to-back glands lined by elongated,
      pseudostratified nuclei in basophilic cytoplasm without mucin;
    - ``"HGIN"``: loss of gland structure, sheets of enlarged, dark,
      pleomorphic nuclei, a few remnant slit lumens;
    - ``"carcinoma"``: irregular cords and clusters of atypical cells
      infiltrating a pale desmoplastic stroma.

    Every slide, negative ones included, also holds benign mimics: lymphoid
    aggregates (small, round, very dark nuclei packed densely) over 1-10 % of
    the tissue, and inflamed stroma. Their dark-nucleus density matches that
    of high-grade lesions, so a method that averages over the whole tissue,
    or counts dark nuclei, errs; one has to find the lesion.

    Parameters
    ----------
    n_slides : int, default=8
        Number of slides.
    size : int or (int, int), default=2048
        Slide height and width in pixels (a single int for square slides);
        at least 256 each.
    classes : list of str, default=None
        Class names drawn from :data:`GASTRIC_CLASSES`; all four by default.
        Labels cycle through them, so that every class gets
        ``n_slides // len(classes)`` or one more slides, then are shuffled.
    lesion_fraction : float, default=0.05
        Fraction of the tissue area covered by lesions on lesion slides, in
        (0, 1).
    stain_jitter : float, default=0.1
        Per-slide perturbation of the stain vectors' directions (about 5
        degrees at 0.1), of the stain intensities and of the glass, in
        [0, 1], around the lab's profile: the slide-to-slide variation of
        one laboratory. 0 gives every slide the lab's exact stains.
    lab : StainProfile, default=None
        The laboratory whose staining the slides share
        (:func:`make_stain_profile` makes one); None is
        :data:`REFERENCE_LAB`. Slides of another lab differ by their stain
        vectors (rotated by up to about 15 degrees), intensities and glass.
    return_stains : bool, default=False
        Also return the true stain matrix of every slide.
    return_tissue : bool, default=False
        Also return the true tissue mask of every slide.
    out_dir : str or os.PathLike, default=None
        If given, every slide is written there as a tiled, JPEG-compressed
        pyramidal TIFF (mpp 0.5) named ``slide_000.tiff``, ... (existing
        files are overwritten) and its path is returned instead of the
        pixels. The file names do not reveal the labels.
    n_jobs : int, default=None
        Number of joblib workers rendering slides in parallel.
    verbose : int or bool, default=0
        Show a progress bar.
    random_state : int, RandomState instance or None, default=None
        Seed. The same seed gives exactly the same slides, labels and masks.

    Returns
    -------
    slides : list of ndarray of shape (H, W, 3), dtype uint8, or list of str
        The RGB slides, or the paths of the written TIFFs.
    labels : ndarray of shape (n_slides,), dtype object
        The class name of each slide.
    masks : list of ndarray of shape (H, W), dtype bool
        The lesion pixels of each slide; all False for negative slides.
    stains : ndarray of shape (n_slides, 2, 3)
        Only with ``return_stains``: each slide's unit optical-density
        vectors, haematoxylin (row 0) then eosin, as rendered.
    tissue : list of ndarray of shape (H, W), dtype bool
        Only with ``return_tissue`` (after ``stains``): the pixels of each
        slide that are tissue (gland lumens included), the rest glass.

    See Also
    --------
    make_patch_dataset : Patches with lesion masks to train the segmenter.
    make_stain_profile : Laboratories to render slides of.

    Examples
    --------
    >>> from sklearn_gastric.datasets import make_gastric_slides
    >>> slides, labels, masks = make_gastric_slides(
    ...     4, size=256, random_state=0)
    >>> slides[0].shape, slides[0].dtype, masks[0].shape
    ((256, 256, 3), dtype('uint8'), (256, 256))
    >>> sorted(labels)
    ['HGIN', 'LGIN', 'carcinoma', 'negative']
    >>> [bool(m.any()) for m in masks] == [lab != "negative" for lab in labels]
    True
    """
    shape = _check_shape(size, "size", _MIN_SLIDE_SIZE)
    work = partial(
        _make_one_slide,
        shape=shape,
        lesion_fraction=float(lesion_fraction),
        stain_jitter=float(stain_jitter),
        lab=REFERENCE_LAB if lab is None else lab,
        keep_tissue=bool(return_tissue),
    )
    return make_cohort(
        work,
        n_slides,
        _check_classes(classes),
        random_state=random_state,
        out_dir=out_dir,
        n_jobs=n_jobs,
        verbose=verbose,
        desc="synthetic slides",
        return_stains=return_stains,
        return_tissue=return_tissue,
    )


def make_cohort(
    make_one,
    n_slides,
    classes,
    *,
    random_state,
    out_dir,
    n_jobs,
    verbose,
    desc,
    return_stains,
    return_tissue,
):
    """Balanced, shuffled labels, one seed per slide, and ``make_one((seed,
    label, path))`` run on each through joblib; the generators' outputs
    (slides, labels, masks[, stains][, tissue])."""
    rng = check_random_state(random_state)
    labels = np.resize(np.asarray(classes, dtype=object), n_slides)
    labels = labels[rng.permutation(n_slides)]
    seeds = rng.randint(0, 2**31 - 1, size=n_slides)
    paths = [None] * n_slides
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = [out_dir / f"slide_{i:03d}.tiff" for i in range(n_slides)]
    results = map_slides(
        make_one,
        zip(seeds, labels, paths),
        n_jobs=n_jobs,
        verbose=verbose,
        desc=desc,
    )
    slides, masks, stains, tissue = (list(column) for column in zip(*results))
    output = [slides, labels, masks]
    if return_stains:
        output.append(np.stack(stains))
    if return_tissue:
        output.append(tissue)
    return tuple(output)


def _make_one_slide(item, *, shape, lesion_fraction, stain_jitter, lab, keep_tissue):
    seed, label, path = item
    image, mask, stains, tissue = _render_slide(
        seed, shape, label, lesion_fraction, stain_jitter, lab
    )
    if not keep_tissue:
        tissue = None
    if path is None:
        return image, mask, stains, tissue
    from ..io import write_pyramidal_tiff

    write_pyramidal_tiff(image, path, mpp=SYNTHETIC_MPP)
    return str(path), mask, stains, tissue


def _render_slide(seed, shape, label, lesion_fraction, stain_jitter, lab):
    """One synthetic slide, its lesion mask, stain matrix and tissue mask,
    from an integer seed."""
    structure, stains = _random_streams(seed, lab, stain_jitter)
    tissue = random_tissue(structure, shape, structure.uniform(0.4, 0.7))
    tissue_area = int(np.count_nonzero(tissue))
    mask = np.zeros(shape, dtype=bool)
    lesions = []
    if label != "negative":
        # One to three foci; at least one pixel each, however small the
        # fraction, so that a lesion slide never has an empty mask.
        area = max(1, round(lesion_fraction * tissue_area))
        n_foci = min(int(structure.integers(1, 4)), area)
        for focus in place_foci(structure, tissue, area, n_foci):
            rows, cols, sub = focus
            mask[rows, cols] |= sub
            lesions.append((label, focus))
    mimic_area = round(structure.uniform(0.01, 0.10) * tissue_area)
    mimics = place_foci(
        structure, tissue & ~mask, mimic_area, int(structure.integers(2, 7))
    )
    image = _render_tissue(structure, tissue, lesions, mimics, stains)
    return image, mask, stains["vectors"], tissue


def _random_streams(seed, lab, stain_jitter):
    """The structure's random generator and the stains of one item, from two
    independent streams of ``seed``, so that changing ``stain_jitter`` or
    ``lab`` recolours the same tissue."""
    structure_seed, stain_seed = np.random.SeedSequence(int(seed)).spawn(2)
    stains = sample_slide_stains(np.random.default_rng(stain_seed), lab, stain_jitter)
    return np.random.default_rng(structure_seed), stains


def stroma_only_slides(n_slides, size, seed, *, whole_field=False):
    """Slides unlike the cohort, for tests and benchmarks of the
    out-of-distribution flag: stroma alone, without a gland (a gland
    density of 1e-3), lesion or mimic, in the reference lab's stains;
    tissue over the whole field, or over an irregular piece covering
    40-70 % of it as the cohort's slides have."""
    slides = []
    for i in range(n_slides):
        structure, stains = _random_streams(seed + i, REFERENCE_LAB, 0.1)
        shape = (size, size)
        tissue = np.ones(shape, dtype=bool)
        if not whole_field:
            tissue = random_tissue(structure, shape, structure.uniform(0.4, 0.7))
        slides.append(
            render(structure, shape, tissue, [], [], stains, gland_density=1e-3)
        )
    return slides


def _render_tissue(structure, tissue, lesions, mimics, stains):
    """The image of the tissue with its lesions and mimics, at a random
    gland density."""
    density = structure.uniform(0.55, 0.9)
    shape = tissue.shape
    return render(
        structure, shape, tissue, lesions, mimics, stains, gland_density=density
    )


def _grow_anywhere(rng, allowed, area):
    """A region of ``area`` allowed pixels around a random allowed pixel."""
    ys, xs = np.nonzero(allowed)
    k = rng.integers(ys.size)
    return grow_region(rng, allowed, area, (ys[k], xs[k]))


@validate_params(
    {
        "n_patches": [Interval(numbers.Integral, 1, None, closed="left")],
        "tile_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "positive_fraction": [Interval(numbers.Real, 0, 1, closed="both")],
        **_RENDER_CONSTRAINTS,
    },
    prefer_skip_nested_validation=True,
)
def make_patch_dataset(
    n_patches=256,
    *,
    tile_size=128,
    classes=None,
    positive_fraction=0.5,
    stain_jitter=0.1,
    lab=None,
    random_state=None,
):
    """Generate synthetic H&E-like patches with lesion masks and labels.

    The patches are **synthetic**, rendered by the same engine as
    :func:`make_gastric_slides` (same stains, tissue and lesion morphology);
    with it they are the only labelled data this project has. They train and
    test the patch segmenter: a lesion's pixels differ visibly from the
    normal tissue and the benign mimics around them, and the mask marks
    exactly those pixels.

    A positive patch holds one lesion focus covering 15-100 % of its
    tissue, often cut by the patch border, and is labelled with the
    lesion's class; a negative patch holds none and is labelled
    ``"negative"``. Lymphoid aggregates (benign mimics) appear in about 40 %
    of the patches of either kind; some patches lie at the tissue's edge.

    Parameters
    ----------
    n_patches : int, default=256
        Number of patches.
    tile_size : int, default=128
        Patch height and width in pixels (0.5 microns per pixel), at least 32.
    classes : list of str, default=None
        Names from :data:`GASTRIC_CLASSES`; the positive patches' lesion
        classes are drawn uniformly from the non-negative ones. By default
        ``"LGIN"``, ``"HGIN"`` and ``"carcinoma"``.
    positive_fraction : float, default=0.5
        Fraction of patches that contain a lesion, in [0, 1].
    stain_jitter : float, default=0.1
        Per-patch stain perturbation around the lab's profile, as in
        :func:`make_gastric_slides`.
    lab : StainProfile, default=None
        The laboratory, as in :func:`make_gastric_slides`; None is
        :data:`REFERENCE_LAB`.
    random_state : int, RandomState instance or None, default=None
        Seed. The same seed gives exactly the same patches.

    Returns
    -------
    patches : ndarray of shape (n_patches, tile_size, tile_size, 3), dtype uint8
        RGB patches.
    masks : ndarray of shape (n_patches, tile_size, tile_size), dtype float32
        1.0 on lesion pixels, 0.0 elsewhere.
    labels : ndarray of shape (n_patches,), dtype object
        ``"negative"`` or the class of the patch's lesion.

    See Also
    --------
    make_gastric_slides : Whole synthetic slides with slide labels.

    Examples
    --------
    >>> from sklearn_gastric.datasets import make_patch_dataset
    >>> patches, masks, labels = make_patch_dataset(
    ...     8, tile_size=64, random_state=0)
    >>> patches.shape, masks.shape, labels.shape
    ((8, 64, 64, 3), (8, 64, 64), (8,))
    >>> bool(((masks.sum(axis=(1, 2)) > 0) == (labels != "negative")).all())
    True
    """
    tile_size = _check_shape(tile_size, "tile_size", _MIN_TILE_SIZE)
    classes = _check_classes(classes)
    lesion_classes = [c for c in classes if c != "negative"]
    n_positive = round(positive_fraction * n_patches)
    if n_positive and not lesion_classes:
        raise ValueError(
            "classes must contain a lesion class (one of "
            f"{GASTRIC_CLASSES[1:]}) when positive_fraction > 0; got {classes}."
        )
    rng = check_random_state(random_state)
    labels = np.full(n_patches, "negative", dtype=object)
    if n_positive:
        labels[:n_positive] = np.asarray(lesion_classes, dtype=object)[
            rng.randint(len(lesion_classes), size=n_positive)
        ]
    labels = labels[rng.permutation(n_patches)]
    seeds = rng.randint(0, 2**31 - 1, size=n_patches)
    patches = np.empty((n_patches, *tile_size, 3), dtype=np.uint8)
    masks = np.empty((n_patches, *tile_size), dtype=np.float32)
    lab = REFERENCE_LAB if lab is None else lab
    for i, (seed, label) in enumerate(zip(seeds, labels)):
        patches[i], mask = _render_patch(seed, tile_size, label, stain_jitter, lab)
        masks[i] = mask
    return patches, masks, labels


def _render_patch(seed, shape, label, stain_jitter, lab):
    """One synthetic patch and its lesion mask, from an integer seed."""
    structure, stains = _random_streams(seed, lab, stain_jitter)
    if structure.random() < 0.75:
        tissue = np.ones(shape, dtype=bool)
    else:
        tissue = random_tissue(structure, shape, structure.uniform(0.55, 0.9))
    tissue_area = int(np.count_nonzero(tissue))
    mask = np.zeros(shape, dtype=bool)
    lesions = []
    if label != "negative":
        area = max(1, round(structure.uniform(0.15, 1.0) * tissue_area))
        focus = _grow_anywhere(structure, tissue, area)
        rows, cols, sub = focus
        mask[rows, cols] = sub
        lesions.append((label, focus))
    mimics = []
    free = tissue & ~mask
    if structure.random() < 0.4 and free.any():
        area = round(structure.uniform(0.1, 0.5) * np.count_nonzero(free))
        if area > 0:
            mimics.append(_grow_anywhere(structure, free, area))
    return _render_tissue(structure, tissue, lesions, mimics, stains), mask


def _check_shape(size, name, minimum):
    if isinstance(size, numbers.Integral):
        size = (size, size)
    size = tuple(size)
    if len(size) != 2 or not all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in size
    ):
        raise ValueError(
            f"{name} must be an int or a pair of ints (height, width); got {size!r}."
        )
    if min(size) < minimum:
        raise ValueError(
            f"{name} must be at least {minimum} pixels on each side; got {size!r}."
        )
    return int(size[0]), int(size[1])


def _check_classes(classes):
    if classes is None:
        return list(GASTRIC_CLASSES)
    classes = [str(c) for c in classes]
    if not classes:
        raise ValueError("classes must name at least one class; got an empty list.")
    unknown = [c for c in classes if c not in GASTRIC_CLASSES]
    if unknown:
        raise ValueError(
            f"Unknown class name(s) {unknown}; classes must be taken from "
            f"{GASTRIC_CLASSES}."
        )
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes must not repeat a name; got {classes}.")
    return classes
