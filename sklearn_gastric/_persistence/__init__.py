"""Model files: ``save_model`` and ``load_model``, the one place models are saved.

Two formats, told apart by the file's name:

- the pickle-free format (``.sgm``, and every name that is not a pickle's): a
  zip archive holding ``manifest.json`` (format, versions, the estimators by
  allowlisted class name with their parameters and fitted attributes as
  tagged JSON) and one uncompressed ``.npy`` member per array or tensor.
  Loading parses JSON, reads arrays with their headers checked against the
  manifest before anything is allocated, and instantiates classes only by
  lookup in a fixed dict: it never unpickles, never evaluates and never
  imports anything named in the file;
- a joblib pickle (``.joblib``, ``.pkl``, ``.pickle``), which keeps
  everything but can run code when loaded: ``load_model`` opens one only
  with ``trust_pickle=True``, and never a file named ``.sgm``.

Where each part lives: ``_format`` (names, versions, bounds, the class
allowlist), ``_fitted`` (the fitted attributes each allowlisted class may
have, checked as it loads), ``_writer`` and ``_reader`` (the archive),
``_pickle`` (the joblib envelope), ``utils._nets`` (skorch nets to storable
state and back, for both formats, and the fallback for a net trained on an
absent GPU). Files are written through
:func:`sklearn_gastric.utils.atomic_output`.

``_writer`` and ``_reader`` import torch (a model may hold networks), so
they are imported when a model file is written or read, not with the
package.
"""

import json
import os
import zipfile

from ._format import ModelFileError, is_pickle_name
from ._pickle import dump_pickle, load_pickle

__all__ = ["ModelFileError", "load_model", "save_model"]


def save_model(model, path, *, metadata=None):
    """Save a fitted estimator or pipeline; by default to a file that cannot run code.

    The format follows the name. A name ending in ``.joblib``, ``.pkl`` or
    ``.pickle`` is a joblib pickle, which keeps everything but, like every
    pickle, can run code when loaded. Any other name (``.sgm`` by
    convention) is the pickle-free format: a zip archive whose
    ``manifest.json`` names each estimator by a class of a fixed allowlist
    (scikit-learn's :class:`~sklearn.pipeline.Pipeline`,
    :class:`~sklearn.frozen.FrozenEstimator`,
    :class:`~sklearn.linear_model.LogisticRegression`,
    :class:`~sklearn.preprocessing.StandardScaler`, and this library's
    estimators) with its ``get_params(deep=False)`` and its fitted
    attributes, and whose ``.npy`` members hold every array and network
    weight. :func:`load_model` reads it back without unpickling anything.

    Parameters
    ----------
    model : estimator
        An allowlisted estimator, fitted or not, e.g. a
        :class:`~sklearn.pipeline.Pipeline` of this library's steps with a
        ``FrozenEstimator(PatchSegmenter)``.
    path : str or os.PathLike
        The file to write. It appears under its name only once complete
        (written beside it, then renamed), replacing any file of that name;
        its folder must exist.
    metadata : dict, default=None
        JSON values describing the model (training data, settings), kept in
        the file: in the manifest of the pickle-free format (readable with
        any zip tool), beside the model in a pickle.

    Returns
    -------
    path : str
        The file written.

    Raises
    ------
    TypeError
        When a parameter or fitted attribute cannot be stored as JSON, an
        array or a tensor (a callable, an arbitrary object, a
        :class:`~sklearn_gastric.io.Slide`), an estimator's class is not
        allowlisted, or ``metadata`` is not JSON; the message names where
        it is in the model. Pickles are not checked.
    ValueError
        When the manifest would pass the bounds :func:`load_model` checks
        (see its Notes): huge or deeply nested ``metadata``.

    See Also
    --------
    load_model : Load a model file.

    Notes
    -----
    The pickle-free format stores parameters (paths as strings), fitted
    arrays, scalars and strings, the networks' weights (``state_dict``) and
    training history, one row per epoch: the rows of each epoch's batches
    are left out (empty ``"batches"``), as they grow with the training set
    and would make the manifest unbounded. It does not store the
    optimiser's state (a loaded model predicts; ``fit`` retrains from
    scratch as it always does) or cache locations: every ``memory``
    parameter is saved as ``None``, as a cache belongs to one machine. A
    network trained on a GPU loads on the CPU when CUDA is absent (with
    skorch's ``DeviceWarning``).

    A pickle keeps everything (optimiser state, ``memory``), but **loading a
    pickle can execute arbitrary code**, and it loads only in the
    ``major.minor`` version of sklearn-gastric that wrote it. Use it for
    your own checkpoints; share models in the pickle-free format.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sklearn_gastric import GCNSlideClassifier, SlideGraph
    >>> from sklearn_gastric import load_model, save_model
    >>> rng = np.random.default_rng(0)
    >>> graphs = [SlideGraph(rng.normal(s, 1, (3, 2)), np.zeros((3, 3)))
    ...           for s in (-1, 1) * 4]
    >>> clf = GCNSlideClassifier(hidden_units=4, max_epochs=5, random_state=0)
    >>> clf = clf.fit(graphs, ["negative", "HGIN"] * 4)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = save_model(clf, os.path.join(folder, "gcn.sgm"))
    ...     loaded = load_model(path)
    >>> bool((loaded.predict_proba(graphs) == clf.predict_proba(graphs)).all())
    True
    """
    path = os.fspath(path)
    if metadata is not None:
        _check_metadata(metadata)
    if is_pickle_name(path):
        return dump_pickle(model, path, metadata)
    from ._writer import write_archive

    return write_archive(model, path, metadata)


def load_model(path, *, trust_pickle=False):
    """Load a model saved by :func:`save_model`; never runs code unless told to.

    A file in the pickle-free format is read as JSON and uncompressed
    ``.npy`` arrays whose headers are checked against the manifest before
    anything is allocated, and estimators are instantiated only from a
    fixed allowlist of classes (nothing named in the file is imported or
    evaluated), so a model file from an untrusted source cannot execute
    code. A file whose name ends in ``.sgm`` (any case) is only ever read
    this way. Any other file that is not such an archive can only be a
    pickle, and is opened with :func:`joblib.load` only when
    ``trust_pickle`` is True.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save_model` (or by :func:`joblib.dump`).
    trust_pickle : bool, default=False
        Allow loading a pickle. **Loading a pickle can execute arbitrary
        code**: set it only for a file you made or whose source you trust.
        Ignored for a file named ``.sgm``, which is never unpickled.

    Returns
    -------
    model : estimator
        The estimator or pipeline, with its fitted state.

    Raises
    ------
    FileNotFoundError
        There is no file at ``path``.
    ModelFileError
        The path is a folder; the file is a pickle and ``trust_pickle`` is
        False; it is named ``.sgm`` but is not a model archive (e.g. a
        pickle renamed); it is truncated or damaged; it was made by a newer
        major version of sklearn-gastric or of the format (a pickle: by
        another ``major.minor`` version); its manifest passes a bound (see
        the Notes) or has a key save_model never writes; it names a class
        outside the allowlist, holds a member the manifest does not
        describe, or its arrays, networks or sizes disagree with the
        manifest; a fitted value is not one the estimator can have (see the
        Notes). The message names the file and, for a value, where it is in
        the model (``model.steps[6][1].temperature_``). Nothing from the
        file has been executed when it is raised.

    See Also
    --------
    save_model : Write a model file.

    Notes
    -----
    Memory is bounded before it is used: loading takes at most the file's
    size plus 64 MiB. The arrays of a model file are stored uncompressed,
    so they take no more memory than their share of the file, and a
    network's weights are read straight into the network, which is built
    on PyTorch's ``meta`` device and compared with them first.
    ``manifest.json`` is checked on its bytes before it is parsed: at most
    4 MiB once decompressed, ASCII, 262,144 JSON items (strings, brackets,
    commas, colons) and 64 levels of nesting, which keeps what parsing it
    makes to tens of MiB (the worst manifest within these bounds grew the
    process by 43 MiB, Python 3.11). A 2 KB file claiming a terabyte
    array, a small zip bomb or a manifest inflated to millions of empty
    lists is refused with a :class:`ModelFileError`, not a ``MemoryError``.

    Every fitted attribute of every estimator in the file is checked as it
    loads, against what the estimator's ``fit`` can make: its type, dtype,
    shape and range (a temperature finite and positive, thresholds finite,
    classes distinct, stain vectors of unit length), its agreement with
    the estimator's other attributes and network (``classes_`` and the
    network's outputs, ``n_features_in_`` and ``coef_``), and, in a
    Pipeline, with the steps before it (a classifier fitted on features of
    the width the segmenter makes). An attribute the estimator never has
    is refused. A damaged or tampered value is a :class:`ModelFileError`
    here, not a wrong prediction or a numpy error at predict time.

    A file from a newer major version of sklearn-gastric is refused; the
    versions of scikit-learn, torch, skorch and numpy that wrote the file are
    recorded in its manifest but not checked.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn_gastric import TopKSelector, load_model, save_model
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = save_model(TopKSelector(k=5), os.path.join(folder, "k.sgm"))
    ...     load_model(path)
    TopKSelector(k=5)
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ModelFileError(f"{path!r} is a folder, not a model file.")
    if not os.path.exists(path):
        raise FileNotFoundError(f"Model file {path!r} does not exist.")
    if not os.path.isfile(path):
        raise ModelFileError(
            f"{path!r} is not a regular file (a device or a pipe?), so not a "
            "model file."
        )
    with open(path, "rb") as file:
        head = file.read(8)
    if not head:
        raise ModelFileError(f"Model file {path!r} is empty.")
    if zipfile.is_zipfile(path):
        from ._reader import read_archive

        return read_archive(path)
    if head.startswith(b"PK"):
        raise ModelFileError(
            f"Model file {path!r} is truncated or damaged: it begins as a zip "
            "archive but its zip directory cannot be read (was a download or "
            "copy cut short?)."
        )
    if path.lower().endswith(".sgm"):
        pickle_hint = ", the start of a pickle" if head[:1] == b"\x80" else ""
        raise ModelFileError(
            f"{path!r} is named .sgm but is not a sklearn-gastric model archive "
            f"(a .sgm file is a zip archive; this one begins with {head!r}"
            f"{pickle_hint}). A .sgm "
            "file is only ever read by the pickle-free loader: nothing in it "
            "was run."
        )
    if not trust_pickle:
        raise ModelFileError(
            f"{path!r} is not a pickle-free model archive, so it can only be a "
            "pickle (joblib) file, and loading a pickle can run any code it "
            "holds. Load it only if you made it or trust its source: "
            "load_model(path, trust_pickle=True), or --trust-pickle on the "
            "command line. To share a model, save it with a .sgm name."
        )
    return load_pickle(path)


def _check_metadata(metadata):
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict; got {type(metadata).__name__}.")
    try:
        json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"metadata must hold JSON values only ({exc}).") from exc
