"""Checks of labels and parameters shared by every estimator's ``fit``."""

from numbers import Integral

import numpy as np

from ._sklearn_compat import Interval

__all__ = ["N_JOBS", "check_device", "check_labels", "stratified_split"]

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
