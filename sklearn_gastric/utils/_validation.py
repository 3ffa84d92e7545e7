"""Every input checker of the library, in one place.

Messages follow one style, ``"<subject>: <what is wrong>; <what to do>."``:
the subject is the estimator (``"TopKSelector"``, ``"PatchSegmenter.fit"``)
when an argument is wrong, the slide (``"Slide 'name'"``) when one slide is.

The checkers of TileBags and SlideGraphs import those classes when called:
``utils`` sits below every other subpackage and imports none of them at load
time.
"""

import os
from numbers import Integral

import numpy as np

from ._sklearn_compat import Interval

__all__ = [
    "N_JOBS",
    "check_device",
    "check_divisible_by_depth",
    "check_labels",
    "check_masks",
    "check_patches",
    "check_slide_graphs",
    "check_slide_list",
    "check_tile_bags",
    "stratified_split",
]

# ``n_jobs`` as joblib reads it: None, a positive count, or -1, -2, ...
# (all cores, all but one, ...). 0 means nothing to joblib.
N_JOBS = [
    Interval(Integral, 1, None, closed="left"),
    Interval(Integral, None, -1, closed="right"),
    None,
]
_DEVICE_TYPES = ("cpu", "cuda", "mps")


def check_device(device, owner):
    """``device`` as a :class:`torch.device` this machine has.

    Parameters
    ----------
    device : str or torch.device
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
    owner : str
        The estimator, for the message.

    Returns
    -------
    device : torch.device

    Raises
    ------
    ValueError
        The string is not a torch device, names a device type this library
        does not run on, or a device this machine does not have.

    Examples
    --------
    >>> from sklearn_gastric.utils._validation import check_device
    >>> check_device("cpu", "PatchSegmenter")
    device(type='cpu')
    >>> check_device("potato", "PatchSegmenter")
    Traceback (most recent call last):
    ...
    ValueError: PatchSegmenter: device='potato' is not a torch device; use 'cpu', \
'cuda', 'cuda:N' or 'mps'.
    """
    import torch

    hint = "use 'cpu', 'cuda', 'cuda:N' or 'mps'"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(
            f"{owner}: device={device!r} is not a torch device; {hint}."
        ) from None
    if parsed.type not in _DEVICE_TYPES:
        raise ValueError(
            f"{owner}: device={device!r} is a {parsed.type!r} device, which "
            f"sklearn-gastric does not run on; {hint}."
        )
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"{owner}: device={device!r} was requested but CUDA is not "
                "available on this machine; use device='cpu'."
            )
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(
                f"{owner}: device={device!r} does not exist: this machine has "
                f"{count} CUDA device(s), cuda:0 to cuda:{count - 1}."
            )
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(
            f"{owner}: device={device!r} was requested but MPS is not available "
            "on this machine; use device='cpu'."
        )
    return parsed


def _is_missing(value):
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, NaT
    except (TypeError, ValueError):
        return True  # pandas.NA, whose truth value is ambiguous


def check_labels(y, n_samples, owner, *, unit="slide"):
    """``y`` as a 1-d array of one present label per sample.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        The labels (strings or numbers, not a mix).
    n_samples : int
        How many labels there must be.
    owner : str
        The estimator, for the messages.
    unit : str, default="slide"
        What one label labels, for the messages (``"slide"``, ``"patch"``).

    Returns
    -------
    y : ndarray of shape (n_samples,)
        ``numpy.asarray(y)``: strings stay strings, numbers numbers.

    Raises
    ------
    ValueError
        ``y`` is None, not one-dimensional, of another length than
        ``n_samples``, holds a missing label (None, NaN, NaT, ``pandas.NA``;
        the message gives its position), mixes strings and numbers, or has
        a single class.

    Examples
    --------
    >>> from sklearn_gastric.utils._validation import check_labels
    >>> check_labels(["HGIN", "negative"], 2, "GCNSlideClassifier")
    array(['HGIN', 'negative'], dtype='<U8')
    >>> check_labels(["HGIN", None, "LGIN"], 3, "GCNSlideClassifier")
    Traceback (most recent call last):
    ...
    ValueError: GCNSlideClassifier: the label of slide 1 is missing (None); \
every slide needs a label.
    """
    plural = f"{unit}es" if unit.endswith("ch") else f"{unit}s"
    if y is None:
        raise ValueError(
            f"{owner}: y is None; fit needs one label per {unit} "
            f"({n_samples} {plural})."
        )
    raw = np.asarray(y, dtype=object)
    if raw.ndim != 1:
        raise ValueError(
            f"{owner}: y must be one-dimensional, one label per {unit}; got "
            f"{'a single label' if raw.ndim == 0 else f'shape {raw.shape}'}."
        )
    if len(raw) != n_samples:
        raise ValueError(
            f"{owner}: X has {n_samples} {plural} but y has {len(raw)} labels; "
            "they must match."
        )
    if n_samples == 0:
        raise ValueError(f"{owner}: fit needs at least one {unit}; got none.")
    missing = [i for i, value in enumerate(raw) if _is_missing(value)]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ValueError(
            f"{owner}: the label of {unit} {missing[0]} is missing "
            f"({raw[missing[0]]!r}){more}; every {unit} needs a label."
        )
    is_text = [isinstance(value, (str, bytes, np.str_, np.bytes_)) for value in raw]
    if any(is_text) and not all(is_text):
        first = is_text.index(not is_text[0])
        raise ValueError(
            f"{owner}: y mixes strings and other labels ({raw[0]!r} at {unit} 0, "
            f"{raw[first]!r} at {unit} {first}); use labels of one kind."
        )
    try:
        labels = np.asarray(y)
        classes = np.unique(labels)
    except TypeError as exc:
        raise ValueError(f"{owner}: the labels cannot be compared ({exc}).") from exc
    if labels.dtype.kind not in "biuOUS":
        from sklearn.utils.multiclass import check_classification_targets

        check_classification_targets(labels)
    if len(classes) < 2:
        only = repr(classes[0].item()) if len(classes) else "none"
        raise ValueError(f"{owner}: fit needs at least two classes; got only {only}.")
    return labels


def stratified_split(labels, fraction, seed):
    """Train and validation indices, stratified by label where every class
    has enough members, plainly seeded otherwise.

    The validation part holds ``max(1, round(fraction * n))`` items.
    """
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    n_valid = max(1, round(fraction * len(labels)))
    try:
        return train_test_split(
            indices, test_size=n_valid, random_state=seed, stratify=labels
        )
    except ValueError:  # a class too small to stratify
        return train_test_split(indices, test_size=n_valid, random_state=seed)


def _as_list(X, owner, kind, *, alone, not_lists=(str, bytes, np.ndarray)):
    """``X`` as a list, or a TypeError; ``alone(X)`` tells one item passed on
    its own (a common mistake, answered with a hint), ``not_lists`` the
    iterable types that are no list of items."""

    def refuse(problem):
        return TypeError(f"{owner}: X must be a list of {kind}; {problem}.")

    if X is None:
        raise refuse("got None")
    if alone(X):
        raise refuse(f"got a single {type(X).__name__}: wrap it in a list")
    if isinstance(X, not_lists):
        raise refuse(f"got {type(X).__name__}")
    try:
        return list(X)
    except TypeError:
        raise refuse(f"got {type(X).__name__}") from None


def _list_of(X, owner, item_type, kind):
    """``X`` as a list of ``item_type``, naming the first wrong item."""
    items = _as_list(X, owner, kind, alone=lambda x: isinstance(x, item_type))
    for i, item in enumerate(items):
        if not isinstance(item, item_type):
            raise TypeError(
                f"{owner}: X must be a list of {kind}; item {i} is a "
                f"{type(item).__name__}."
            )
    return items


def check_slide_list(X, owner):
    """``X`` as a list of slides: paths, RGB arrays, Slides or TileBags.

    The items themselves are checked when they are opened
    (:func:`~sklearn_gastric.io.open_slide`).

    Parameters
    ----------
    X : list
        One entry per slide.
    owner : str
        The estimator, for the messages.

    Returns
    -------
    slides : list

    Raises
    ------
    TypeError
        ``X`` is None, a single slide (a path, an (H, W, 3) array, a Slide or
        a TileBag) or not a list.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gastric.utils._validation import check_slide_list
    >>> len(check_slide_list(("a.svs", "b.svs"), "Tiler"))
    2
    >>> check_slide_list(np.zeros((8, 8, 3), np.uint8), "Tiler")
    Traceback (most recent call last):
    ...
    TypeError: Tiler: X must be a list of slides (paths, RGB arrays or Slide \
objects); got a single ndarray: wrap it in a list.
    """
    from ..io import Slide
    from ..preprocessing._tile_bag import TileBag

    def alone(x):
        return isinstance(x, (str, bytes, os.PathLike, Slide, TileBag)) or (
            isinstance(x, np.ndarray) and x.ndim == 3
        )

    # A stack of images, (n, H, W, 3), is a list of slides.
    kind = "slides (paths, RGB arrays or Slide objects)"
    return _as_list(X, owner, kind, alone=alone, not_lists=())


def check_tile_bags(X, owner):
    """``X`` as a list of TileBags, naming the first wrong item.

    Parameters
    ----------
    X : list of TileBag
        One bag per slide.
    owner : str
        The estimator, for the messages.

    Returns
    -------
    bags : list of TileBag

    Raises
    ------
    TypeError
        ``X`` is None, a single TileBag, not a list, or holds anything else.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gastric.utils._validation import check_tile_bags
    >>> check_tile_bags([np.zeros(3)], "TopKSelector")
    Traceback (most recent call last):
    ...
    TypeError: TopKSelector: X must be a list of TileBag, one per slide (the \
output of Tiler); item 0 is a ndarray.
    """
    from ..preprocessing._tile_bag import TileBag

    kind = "TileBag, one per slide (the output of Tiler)"
    return _list_of(X, owner, TileBag, kind)


def check_slide_graphs(X, owner):
    """``X`` as a list of SlideGraphs with finite features.

    As :func:`check_tile_bags`, for the SlideGraphs of
    :class:`~sklearn_gastric.graph.PearsonGraphBuilder`; a graph whose
    features were changed in place to NaN or infinite values (a SlideGraph
    checks them only when built) is a ValueError naming the graph.
    """
    from ..graph._slide_graph import SlideGraph

    kind = "SlideGraph, one per slide (the output of PearsonGraphBuilder)"
    graphs = _list_of(X, owner, SlideGraph, kind)
    for graph in graphs:
        if not np.isfinite(graph.features).all():
            raise ValueError(
                f"Graph {graph.name!r}: features contain NaN or infinite values."
            )
    return graphs


def check_profile(profile, subject):
    """A slide's profile (a bag's or a graph's) as a float32 vector, or
    None; ``subject`` ("Slide 'x'", "Graph 'x'") starts the message."""
    if profile is None:
        return None
    profile = np.asarray(profile)
    if profile.ndim != 1 or profile.size == 0 or profile.dtype.kind not in "biuf":
        raise ValueError(
            f"{subject}: profile must be a non-empty numeric vector; got shape "
            f"{profile.shape}, dtype {profile.dtype}."
        )
    if not np.isfinite(profile).all():
        raise ValueError(f"{subject}: profile contains NaN or infinite values.")
    return profile.astype(np.float32, copy=False)


def check_divisible_by_depth(height, width, depth, subject):
    """Refuse a tile or patch size that ``depth`` downsamplings do not divide.

    Parameters
    ----------
    height, width : int
        The size in pixels.
    depth : int
        The network's number of downsamplings (each halves the size).
    subject : str
        What has the size, for the message (``"Slide 'name'"``).

    Raises
    ------
    ValueError
        ``2**depth`` does not divide ``height`` or ``width``.

    Examples
    --------
    >>> from sklearn_gastric.utils._validation import check_divisible_by_depth
    >>> check_divisible_by_depth(18, 18, 2, "Slide 's1'")
    Traceback (most recent call last):
    ...
    ValueError: Slide 's1': tile size 18x18 is not divisible by 2**depth = 4.
    """
    factor = 2**depth
    if height % factor or width % factor:
        raise ValueError(
            f"{subject}: tile size {height}x{width} is not divisible by "
            f"2**depth = {factor}."
        )


def check_patches(patches, owner, depth):
    """``patches`` as a non-empty RGB uint8 array (n, height, width, 3).

    Parameters
    ----------
    patches : array-like of shape (n_patches, height, width, 3)
        The patches; height and width divisible by ``2**depth``.
    owner : str
        The estimator's method, for the messages (``"PatchSegmenter.fit"``).
    depth : int
        The network's number of downsamplings.

    Returns
    -------
    patches : ndarray of shape (n_patches, height, width, 3), dtype uint8

    Raises
    ------
    TypeError
        ``patches`` is a list of TileBags (a segmenter put in a Pipeline
        without :class:`~sklearn.frozen.FrozenEstimator`).
    ValueError
        Not RGB uint8 of that shape, empty, or of a size ``2**depth`` does
        not divide.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gastric.utils._validation import check_patches
    >>> check_patches(np.zeros((2, 16, 16)), "PatchSegmenter.fit", 2)
    Traceback (most recent call last):
    ...
    ValueError: PatchSegmenter.fit: patches must be RGB uint8 of shape (n_patches, \
height, width, 3); got float64 of shape (2, 16, 16).
    """
    from ..preprocessing._tile_bag import TileBag

    if (
        isinstance(patches, list | tuple)
        and patches
        and isinstance(patches[0], TileBag)
    ):
        raise TypeError(
            f"{owner}: patches must be an array of patches, not TileBags; to use a "
            "trained segmenter in a Pipeline, wrap it in "
            "sklearn.frozen.FrozenEstimator."
        )
    patches = np.asarray(patches)
    if patches.ndim != 4 or patches.shape[-1] != 3 or patches.dtype != np.uint8:
        raise ValueError(
            f"{owner}: patches must be RGB uint8 of shape (n_patches, height, "
            f"width, 3); got {patches.dtype} of shape {patches.shape}."
        )
    if len(patches) == 0:
        raise ValueError(f"{owner}: patches is empty; at least one patch is required.")
    check_divisible_by_depth(patches.shape[1], patches.shape[2], depth, owner)
    return patches


def check_masks(masks, shape, owner):
    """``masks`` as float32 in [0, 1], one per patch and as large.

    Parameters
    ----------
    masks : array-like of shape (n_patches, height, width)
        Lesion masks, float or bool.
    shape : tuple of int
        ``(n_patches, height, width)`` of the patches.
    owner : str
        The estimator's method, for the messages.

    Returns
    -------
    masks : ndarray of shape ``shape``, dtype float32

    Raises
    ------
    ValueError
        Another shape, a non-numeric dtype, or a value outside [0, 1] (NaN
        included).
    """
    masks = np.asarray(masks)
    if masks.shape != shape:
        raise ValueError(
            f"{owner}: masks must have shape {shape}, one per patch and as large; "
            f"got {masks.shape}."
        )
    if masks.dtype != bool and masks.dtype.kind not in "fiu":
        raise ValueError(f"{owner}: masks must be float or bool; got {masks.dtype}.")
    masks = masks.astype(np.float32)
    if not np.isfinite(masks).all() or masks.min() < 0 or masks.max() > 1:
        raise ValueError(f"{owner}: masks must hold values in [0, 1] (no NaN).")
    return masks
