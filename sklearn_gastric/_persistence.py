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
"""

import inspect
import io
import json
import math
import os
import re
import warnings
import zipfile

import numpy as np
import torch
from sklearn.base import BaseEstimator

from ._version import __version__
from .utils._sklearn_compat import InvalidParameterError

__all__ = ["ModelFileError", "load_model", "save_model"]

FORMAT_NAME = "sklearn-gastric-model"
FORMAT_VERSION = 1
_MANIFEST = "manifest.json"
# Names that say "this is a pickle": written with joblib, loaded only on trust.
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
# Loading allocates at most about the file's size for the arrays (they are
# stored uncompressed) plus this much for the manifest: a zip bomb or a
# manifest inflated to gigabytes is refused before it is read.
MAX_MANIFEST_BYTES = 16 * 2**20
_ARRAY_MEMBER = re.compile(r"arrays/[0-9]{5,}\.npy")
_ATTRIBUTE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# numpy dtype kinds an array member may have: no object, no structured.
_ARRAY_KINDS = set("biufcUS")
# Every tensor dtype a file may name; looked up here, never by getattr.
_TENSOR_DTYPES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
    "uint8": torch.uint8,
    "int8": torch.int8,
    "int16": torch.int16,
    "int32": torch.int32,
    "int64": torch.int64,
    "bool": torch.bool,
}
_TENSOR_DTYPE_NAMES = {dtype: name for name, dtype in _TENSOR_DTYPES.items()}
# Parameters that hold a machine-local cache location: never stored.
_CACHE_PARAMS = {"memory"}
# The parameters of a skorch net that a model file keeps; the rest (module,
# criterion, optimizer and collate classes) comes from a fixed recipe.
_NET_SCALAR_PARAMS = {
    "lr",
    "max_epochs",
    "batch_size",
    "verbose",
    "device",
    "predict_nonlinearity",
    "warm_start",
    "iterator_train__shuffle",
}
_NET_PARAM_PREFIXES = ("module__", "criterion__", "optimizer__")


class ModelFileError(ValueError):
    """A file that :func:`load_model` refuses to load.

    Raised for a file that is not a model archive, one made by a newer
    version of sklearn-gastric, one naming a class outside the allowlist, or
    one whose manifest and arrays disagree. Nothing from the file has been
    executed when it is raised.

    Examples
    --------
    >>> from sklearn_gastric._persistence import ModelFileError
    >>> issubclass(ModelFileError, ValueError)
    True
    """


def _allowed_estimators():
    """The only classes a model file may name, by the name it uses."""
    from sklearn.frozen import FrozenEstimator
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from .baselines import PooledFeatureClassifier, ProportionThresholdClassifier
    from .graph import GCNSlideClassifier, PearsonGraphBuilder, TopKSelector
    from .preprocessing import OtsuFilter, StainNormalizer, Tiler
    from .segmentation import PatchSegmenter

    allowed = {
        "sklearn.pipeline.Pipeline": Pipeline,
        "sklearn.frozen.FrozenEstimator": FrozenEstimator,
        "sklearn.linear_model.LogisticRegression": LogisticRegression,
        "sklearn.preprocessing.StandardScaler": StandardScaler,
    }
    for cls in (
        StainNormalizer,
        Tiler,
        OtsuFilter,
        PatchSegmenter,
        TopKSelector,
        PearsonGraphBuilder,
        GCNSlideClassifier,
        ProportionThresholdClassifier,
        PooledFeatureClassifier,
    ):
        allowed[f"sklearn_gastric.{cls.__name__}"] = cls
    return allowed


def _net_recipes():
    """How to rebuild each kind of skorch net, keyed by its module class."""
    from skorch import NeuralNet

    from .graph._gcn import GCN, collate_graphs
    from .segmentation._losses import SegmentationLoss
    from .segmentation._segmenter import _SegmenterNet
    from .segmentation._vnet import VNet

    return {
        "VNet": (
            _SegmenterNet,
            {
                "module": VNet,
                "criterion": SegmentationLoss,
                "optimizer": torch.optim.Adam,
                "train_split": None,
            },
        ),
        "GCN": (
            NeuralNet,
            {
                "module": GCN,
                "criterion": torch.nn.CrossEntropyLoss,
                "optimizer": torch.optim.Adam,
                "train_split": None,
                "iterator_train__collate_fn": collate_graphs,
                "iterator_valid__collate_fn": collate_graphs,
            },
        ),
    }


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

    See Also
    --------
    load_model : Load a model file.

    Notes
    -----
    The pickle-free format stores parameters (paths as strings), fitted
    arrays, scalars and strings, the networks' weights (``state_dict``) and
    training history. It does not store the optimiser's state (a loaded
    model predicts; ``fit`` retrains from scratch as it always does) or
    cache locations: every ``memory`` parameter is saved as ``None``, as a
    cache belongs to one machine. A network trained on a GPU loads on the
    CPU when CUDA is absent (with skorch's ``DeviceWarning``).

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
    from .utils._files import atomic_output

    path = os.fspath(path)
    if metadata is not None:
        _check_metadata(metadata)
    if _is_pickle_name(path):
        import joblib

        envelope = {
            "format": FORMAT_NAME,
            "sklearn_gastric_version": __version__,
            "metadata": metadata,
            "model": model,
        }
        with atomic_output(path) as temporary:
            joblib.dump(envelope, temporary)
        return path
    writer = _Writer()
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "sklearn_gastric_version": __version__,
        "versions": _dependency_versions(),
        "metadata": metadata,
        "model": writer.encode(model, "model"),
    }
    with (
        atomic_output(path) as temporary,
        open(temporary, "wb") as file,
        zipfile.ZipFile(file, "w", zipfile.ZIP_STORED) as archive,
    ):
        archive.writestr(
            _MANIFEST,
            json.dumps(manifest, indent=1, allow_nan=False),
            compress_type=zipfile.ZIP_DEFLATED,
        )
        for member, array in writer.arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            archive.writestr(member, buffer.getvalue())
    return path


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
        another ``major.minor`` version); it names a class outside the
        allowlist, holds a member the manifest does not describe, or its
        arrays, networks or sizes disagree with the manifest. The message
        names the file. Nothing from the file has been executed when it is
        raised.

    See Also
    --------
    save_model : Write a model file.

    Notes
    -----
    Memory is bounded before it is used: the arrays of a model file are
    stored uncompressed, so they take no more memory than the file's size,
    and ``manifest.json`` may not exceed 16 MiB once decompressed; each
    network is built on PyTorch's ``meta`` device and compared with its
    stored weights before its real weights are allocated. A 2 KB file
    claiming a terabyte array, or a small zip bomb, is refused with a
    :class:`ModelFileError`, not a ``MemoryError``.

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
        try:
            with zipfile.ZipFile(path) as archive:
                return _Reader(archive, path).load()
        except ModelFileError:
            raise
        except (zipfile.BadZipFile, OSError, EOFError, RecursionError) as exc:
            raise ModelFileError(
                f"Model file {path!r} is damaged: {type(exc).__name__}: {exc}"
            ) from exc
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
    return _load_pickle(path)


def _is_pickle_name(path):
    return os.fspath(path).lower().endswith(PICKLE_SUFFIXES)


def _check_metadata(metadata):
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict; got {type(metadata).__name__}.")
    try:
        json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"metadata must hold JSON values only ({exc}).") from exc


def _load_pickle(path):
    """Unpickle a trusted file: the envelope of :func:`save_model`, or any
    estimator given to :func:`joblib.dump`."""
    import joblib

    try:
        content = joblib.load(path)
    except Exception as exc:  # unpickling raises many types for a non-model
        raise ModelFileError(
            f"{path!r} is not a sklearn-gastric model file (it cannot be "
            f"unpickled: {type(exc).__name__}: {exc})."
        ) from exc
    if isinstance(content, dict) and content.get("format") == FORMAT_NAME:
        made_by = content.get("sklearn_gastric_version")
        if _major_minor(made_by) != _major_minor(__version__):
            raise ModelFileError(
                f"Model file {path!r} was made by sklearn-gastric {made_by}; this "
                f"is sklearn-gastric {__version__}. A pickled model only loads in "
                "the same major.minor version: retrain it, or save it with a .sgm "
                "name (a version-independent format) in the version that made it."
            )
        return content.get("model")
    if not isinstance(content, BaseEstimator):
        raise ModelFileError(
            f"{path!r} is not a sklearn-gastric model file: it holds a "
            f"{type(content).__qualname__}, not an estimator."
        )
    return content


def _dependency_versions():
    import sklearn
    import skorch

    return {
        "scikit-learn": sklearn.__version__,
        "torch": torch.__version__,
        "skorch": skorch.__version__,
        "numpy": np.__version__,
    }


def _major_minor(version):
    match = re.match(r"(\d+)\.(\d+)", str(version))
    return (int(match[1]), int(match[2])) if match else None


class _Writer:
    """Turns a model into tagged JSON, collecting arrays as members."""

    def __init__(self):
        self.arrays = {}
        self._allowed = {cls: name for name, cls in _allowed_estimators().items()}

    def _add_array(self, array):
        member = f"arrays/{len(self.arrays):05d}.npy"
        self.arrays[member] = array
        return member

    def encode(self, value, where):
        # Before the Python types: np.float64 is a float, np.str_ a str.
        if isinstance(value, np.generic):
            return self._encode_scalar(value, where)
        if value is None or isinstance(value, bool | str | int):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else _encode_float(value)
        if isinstance(value, list):
            return [self.encode(item, f"{where}[{i}]") for i, item in enumerate(value)]
        if isinstance(value, tuple):
            return {
                "__tuple__": [
                    self.encode(item, f"{where}[{i}]") for i, item in enumerate(value)
                ]
            }
        if isinstance(value, dict):
            for key in value:
                if not isinstance(key, str):
                    raise TypeError(
                        f"{where} is a dict with a {type(key).__name__} key "
                        f"{key!r}; a model file stores dicts with str keys only."
                    )
            return {
                "__dict__": {
                    key: self.encode(item, f"{where}[{key!r}]")
                    for key, item in value.items()
                }
            }
        if isinstance(value, os.PathLike):
            return self.encode(os.fspath(value), where)
        if isinstance(value, np.ndarray):
            return self._encode_array(value, where)
        if isinstance(value, torch.Tensor):
            return self._encode_tensor(value, where)
        if isinstance(value, np.random.RandomState):
            key, keys, position, has_gauss, cached = value.get_state()
            return {
                "__random_state__": [
                    key,
                    self._encode_array(keys, where),
                    int(position),
                    int(has_gauss),
                    float(cached),
                ]
            }
        if isinstance(value, BaseEstimator):
            return self._encode_estimator(value, where)
        raise TypeError(
            f"{where} is a {type(value).__module__}.{type(value).__qualname__}, "
            "which a model file cannot store without pickle (it stores JSON "
            "values, arrays, tensors and allowlisted estimators only). Use "
            "joblib.dump for such a model, or replace it with a plain value "
            "(e.g. a path as a string)."
        )

    def _encode_scalar(self, value, where):
        if value.dtype.kind not in "biuf":
            if value.dtype.kind == "U":
                return str(value)
            raise TypeError(f"{where} is a numpy {value.dtype} scalar; not storable.")
        item = value.item()
        if isinstance(item, float) and not math.isfinite(item):
            item = _encode_float(item)
        return {"__scalar__": [value.dtype.str, item]}

    def _encode_array(self, array, where):
        if array.dtype.kind == "O":
            items = [self.encode(item, f"{where}[...]") for item in array.ravel()]
            if not all(_is_plain_item(item) for item in items):
                raise TypeError(
                    f"{where} is an object array holding containers or objects; "
                    "a model file stores object arrays of str, numbers or None "
                    "only."
                )
            return {"__object_array__": [list(array.shape), items]}
        if array.dtype.kind not in _ARRAY_KINDS or array.dtype.fields is not None:
            raise TypeError(
                f"{where} is an array of dtype {array.dtype}; not storable."
            )
        array = np.ascontiguousarray(array)
        member = self._add_array(array)
        return {"__array__": [member, array.dtype.str, list(array.shape)]}

    def _encode_tensor(self, tensor, where):
        if tensor.dtype not in _TENSOR_DTYPE_NAMES:
            raise TypeError(
                f"{where} is a tensor of dtype {tensor.dtype}; not storable."
            )
        data = tensor.detach().cpu().contiguous()
        if data.dtype == torch.bfloat16:
            data = data.view(torch.int16)
        member = self._add_array(data.numpy())
        return {
            "__tensor__": [
                member,
                _TENSOR_DTYPE_NAMES[tensor.dtype],
                list(tensor.shape),
                bool(tensor.requires_grad),
            ]
        }

    def _encode_estimator(self, estimator, where):
        name = self._allowed.get(type(estimator))
        if name is None:
            cls = type(estimator)
            raise TypeError(
                f"{where} is a {cls.__module__}.{cls.__qualname__}, which is not "
                f"one of the estimators a model file can hold: "
                f"{sorted(self._allowed.values())}. Use joblib.dump for this model."
            )
        params = estimator.get_params(deep=False)
        encoded_params = {
            key: None if key in _CACHE_PARAMS else self.encode(value, f"{where}.{key}")
            for key, value in params.items()
        }
        fitted = {}
        for key, value in vars(estimator).items():
            if key in params:
                continue
            if _is_skorch_net(value):
                fitted[key] = self._encode_net(value, f"{where}.{key}")
            else:
                fitted[key] = self.encode(value, f"{where}.{key}")
        return {"__estimator__": [name, encoded_params, fitted]}

    def _encode_net(self, net, where):
        module_name = type(net.module_).__name__
        recipe = _net_recipes().get(module_name)
        if recipe is None or type(net) is not recipe[0]:
            raise TypeError(
                f"{where} is a {type(net).__name__} of a {module_name} module; a "
                "model file stores this library's networks only."
            )
        params = {
            key: self.encode(value, f"{where}.{key}")
            for key, value in net.get_params().items()
            if _is_stored_net_param(key)
        }
        state = {
            key: self._encode_tensor(value, f"{where}.module_.{key}")
            for key, value in net.module_.state_dict().items()
        }
        history = self.encode(net.history_.to_list(), f"{where}.history_")
        return {"__skorch_net__": [module_name, params, state, history]}


def _encode_float(value):
    """A non-finite float, which JSON cannot hold."""
    return {"__float__": "nan" if math.isnan(value) else repr(float(value))}


def _is_plain_item(item):
    """Whether an encoded item may sit in an object array (no containers)."""
    if isinstance(item, dict):
        return len(item) == 1 and next(iter(item)) in ("__float__", "__scalar__")
    return not isinstance(item, list)


def _is_skorch_net(value):
    from skorch import NeuralNet

    return isinstance(value, NeuralNet)


def _is_stored_net_param(key):
    return key in _NET_SCALAR_PARAMS or key.startswith(_NET_PARAM_PREFIXES)


class _Reader:
    """Rebuilds a model from an open archive, refusing anything unexpected."""

    def __init__(self, archive, path):
        self.archive = archive
        self.path = path
        self.referenced = set()
        self._allowed = _allowed_estimators()

    def error(self, message):
        return ModelFileError(f"Model file {self.path!r}: {message}")

    def load(self):
        names = self.archive.namelist()
        if _MANIFEST not in names:
            raise self.error(
                "no manifest.json: this is not a sklearn-gastric model file (a "
                "torch.save or other archive is refused: it may hold a pickle)."
            )
        if len(set(names)) != len(names):
            raise self.error("the archive holds duplicate member names.")
        for info in self.archive.infolist():
            self._check_member_size(info)
        try:
            manifest = json.loads(self.archive.read(_MANIFEST).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise self.error(f"manifest.json is not valid JSON ({exc}).") from exc
        except RecursionError:
            raise self.error("manifest.json is nested too deeply.") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
            raise self.error(
                f"manifest.json does not declare the format {FORMAT_NAME!r}."
            )
        self._check_versions(manifest)
        if "model" not in manifest:
            raise self.error("manifest.json holds no model.")
        # Building a network draws initial weights (then replaced): leave
        # the caller's torch random state as it was.
        with torch.random.fork_rng(devices=[]):
            model = self.decode(manifest["model"], "model")
        unused = sorted(set(names) - self.referenced - {_MANIFEST})
        if unused:
            listed = ", ".join(unused[:3]) + (", ..." if len(unused) > 3 else "")
            raise self.error(
                f"{len(unused)} member(s) are not referenced by the manifest "
                f"({listed})."
            )
        return model

    def _check_member_size(self, info):
        """Refuse, before reading it, a member that could take more memory
        than the file's own size (arrays) or than the manifest bound."""
        name = info.filename
        if name == _MANIFEST:
            if info.file_size > MAX_MANIFEST_BYTES:
                raise self.error(
                    f"manifest.json would take {info.file_size} bytes once "
                    f"decompressed, more than the {MAX_MANIFEST_BYTES} a model "
                    "file's manifest may (a zip bomb, or not a model file)."
                )
            return
        if not _ARRAY_MEMBER.fullmatch(name):
            raise self.error(
                f"unexpected member {name!r}; a model file holds only "
                "manifest.json and arrays/*.npy."
            )
        if info.compress_type != zipfile.ZIP_STORED or (
            info.file_size != info.compress_size
        ):
            raise self.error(
                f"{name!r} is compressed; a model file stores its arrays "
                "uncompressed, so that they never take more memory than the "
                "file (a compressed member may be a zip bomb)."
            )

    def _check_versions(self, manifest):
        file_format = manifest.get("format_version")
        if not isinstance(file_format, int) or isinstance(file_format, bool):
            raise self.error("manifest.json has no integer format_version.")
        made_by = manifest.get("sklearn_gastric_version")
        file_version = _major_minor(made_by)
        if file_version is None:
            raise self.error("manifest.json has no valid sklearn_gastric_version.")
        this = _major_minor(__version__)
        if file_version[0] > this[0] or file_format > FORMAT_VERSION:
            raise self.error(
                f"made by sklearn-gastric {file_version[0]}.{file_version[1]} "
                f"(model format {file_format}); this is {this[0]}.{this[1]} "
                f"(model format {FORMAT_VERSION}): upgrade sklearn-gastric to "
                "load it."
            )

    def decode(self, value, where):
        if value is None or isinstance(value, bool | str | int | float):
            return value
        if isinstance(value, list):
            return [self.decode(item, f"{where}[{i}]") for i, item in enumerate(value)]
        if not isinstance(value, dict) or len(value) != 1:
            raise self.error(f"{where}: malformed value {_short(value)}.")
        ((tag, content),) = value.items()
        decoder = {
            "__float__": self._decode_float,
            "__scalar__": self._decode_scalar,
            "__tuple__": self._decode_tuple,
            "__dict__": self._decode_dict,
            "__array__": self._decode_array,
            "__object_array__": self._decode_object_array,
            "__tensor__": self._decode_tensor,
            "__random_state__": self._decode_random_state,
            "__estimator__": self._decode_estimator,
            "__skorch_net__": self._decode_net,
        }.get(tag)
        if decoder is None:
            raise self.error(f"{where}: unknown tag {tag!r}.")
        try:
            return decoder(content, where)
        except ModelFileError:
            raise
        except (
            TypeError,
            ValueError,
            KeyError,
            IndexError,
            AttributeError,
            RuntimeError,
        ) as exc:
            raise self.error(
                f"{where}: cannot rebuild {tag} ({type(exc).__name__}: {exc})."
            ) from exc

    def _decode_float(self, content, where):
        if content not in ("nan", "inf", "-inf"):
            raise self.error(f"{where}: bad float {_short(content)}.")
        return float(content)

    def _decode_scalar(self, content, where):
        dtype_str, item = content
        dtype = np.dtype(str(dtype_str))
        if dtype.kind not in "biuf":
            raise self.error(f"{where}: scalar dtype {dtype} is not allowed.")
        if isinstance(item, dict):
            item = self._decode_float(item.get("__float__"), where)
        if not isinstance(item, bool | int | float):
            raise self.error(f"{where}: bad scalar {_short(item)}.")
        return dtype.type(item)

    def _decode_tuple(self, content, where):
        if not isinstance(content, list):
            raise self.error(f"{where}: malformed tuple.")
        return tuple(self.decode(content, where))

    def _decode_dict(self, content, where):
        if not isinstance(content, dict):
            raise self.error(f"{where}: malformed dict.")
        return {k: self.decode(v, f"{where}[{k!r}]") for k, v in content.items()}

    def _read_member(self, member, dtype_str, shape, where):
        if not isinstance(member, str) or not _ARRAY_MEMBER.fullmatch(member):
            raise self.error(f"{where}: bad array member {_short(member)}.")
        if member in self.referenced:
            raise self.error(f"{where}: array member {member!r} is used twice.")
        try:
            info = self.archive.getinfo(member)
        except KeyError:
            raise self.error(
                f"{where}: the manifest names {member!r}, which the archive lacks."
            ) from None
        self.referenced.add(member)
        with self.archive.open(info) as file:
            dtype, declared_shape, fortran_order = self._read_npy_header(
                file, member, where
            )
            if dtype.str != dtype_str or list(declared_shape) != list(shape):
                raise self.error(
                    f"{where}: {member!r} holds {dtype.str} {list(declared_shape)}; "
                    f"the manifest says {dtype_str} {list(shape)}."
                )
            count = math.prod(declared_shape)
            header_size = file.tell()
            if header_size + count * dtype.itemsize != info.file_size:
                raise self.error(
                    f"{where}: {member!r} declares {dtype.str} "
                    f"{list(declared_shape)} ({count * dtype.itemsize} bytes) but "
                    f"holds {info.file_size - header_size} bytes of data."
                )
            # Allocated only now: its size is known to match the member's.
            flat = np.empty(count, dtype=dtype)
            if file.readinto(memoryview(flat.view(np.uint8))) != flat.nbytes:
                raise self.error(f"{where}: {member!r} is truncated.")
        if fortran_order:
            return flat.reshape(declared_shape[::-1]).T
        return flat.reshape(declared_shape)

    def _read_npy_header(self, file, member, where):
        try:
            version = np.lib.format.read_magic(file)
            if version == (1, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(file)
            elif version == (2, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(file)
            else:
                raise ValueError(f"unsupported .npy version {version}")
        except (ValueError, OSError, SyntaxError) as exc:
            raise self.error(
                f"{where}: {member!r} is not a plain .npy array ({exc})."
            ) from exc
        if (
            dtype.kind not in _ARRAY_KINDS
            or dtype.fields is not None
            or dtype.subdtype is not None
        ):
            raise self.error(f"{where}: array dtype {dtype} is not allowed.")
        return dtype, tuple(int(n) for n in shape), bool(fortran_order)

    def _decode_array(self, content, where):
        member, dtype_str, shape = content
        return self._read_member(member, dtype_str, shape, where)

    def _decode_object_array(self, content, where):
        shape, items = content
        if not all(_is_plain_item(item) for item in items):
            raise self.error(f"{where}: object arrays hold plain values only.")
        array = np.empty(len(items), dtype=object)
        array[:] = [self.decode(item, where) for item in items]
        return array.reshape([int(n) for n in shape])

    def _decode_tensor(self, content, where):
        member, dtype_name, shape, requires_grad = content
        dtype = _TENSOR_DTYPES.get(dtype_name)
        if dtype is None:
            raise self.error(f"{where}: tensor dtype {_short(dtype_name)} not allowed.")
        stored = torch.int16 if dtype == torch.bfloat16 else dtype
        expected = np.dtype(str(torch.empty(0, dtype=stored).numpy().dtype)).str
        array = self._read_member(member, expected, shape, where)
        tensor = torch.from_numpy(array.copy())
        if dtype == torch.bfloat16:
            tensor = tensor.view(torch.bfloat16)
        return tensor.requires_grad_(bool(requires_grad))

    def _decode_random_state(self, content, where):
        key, keys, position, has_gauss, cached = content
        state = np.random.RandomState()
        state.set_state(
            (
                str(key),
                self.decode(keys, where),
                int(position),
                int(has_gauss),
                float(cached),
            )
        )
        return state

    def _decode_estimator(self, content, where):
        name, params, fitted = content
        cls = self._allowed.get(name) if isinstance(name, str) else None
        if cls is None:
            raise self.error(
                f"{where}: class {_short(name)} is not one of the estimators a model "
                f"file can hold ({sorted(self._allowed)}); refusing to load it."
            )
        if not isinstance(params, dict) or not isinstance(fitted, dict):
            raise self.error(f"{where}: malformed estimator {name}.")
        for key in _CACHE_PARAMS & set(params):
            if params[key] is not None:
                raise self.error(
                    f"{where}.{key} is set; a model file never sets a cache location."
                )
        kwargs = {
            key: self.decode(value, f"{where}.{key}") for key, value in params.items()
        }
        valid = _init_parameters(cls)
        if not set(kwargs) <= valid:
            raise self.error(
                f"{where}: {name} has no parameter(s) {sorted(set(kwargs) - valid)}."
            )
        estimator = cls(**kwargs)
        if hasattr(estimator, "_parameter_constraints"):
            # What fit would refuse, a model file may not smuggle into predict.
            try:
                estimator._validate_params()
            except InvalidParameterError as exc:
                raise self.error(f"{where}: {exc}") from None
        for key, value in fitted.items():
            self._check_attribute_name(cls, key, where)
            if key in valid:
                raise self.error(
                    f"{where}: {key!r} is a parameter of {name}, not a fitted "
                    "attribute."
                )
            setattr(estimator, key, self.decode(value, f"{where}.{key}"))
        return estimator

    def _check_attribute_name(self, cls, key, where):
        if (
            not isinstance(key, str)
            or not _ATTRIBUTE_NAME.fullmatch(key)
            or key.startswith("__")
            or hasattr(cls, key)
        ):
            raise self.error(
                f"{where}: {_short(key)} is not a fitted attribute a model file may "
                "set."
            )

    def _check_network_size(self, module_class, kwargs, state, where):
        """Build the described network on the ``meta`` device (no memory) and
        compare it with the stored weights before the real one is built."""
        stored = {key: _stored_shape(value) for key, value in state.items()}
        if any(shape is None for shape in stored.values()):
            raise self.error(f"{where}: malformed network weights.")
        n_stored = sum(math.prod(shape) for shape in stored.values())
        module_kwargs = {
            key[len("module__") :]: value
            for key, value in kwargs.items()
            if key.startswith("module__")
        }
        # Every size parameter of our networks (channels, depth, layers,
        # features, classes) makes at least that many weights: one larger
        # than the weights stored would only make building the probe slow.
        for key, value in module_kwargs.items():
            if isinstance(value, int) and value > max(n_stored, 1):
                raise self.error(
                    f"{where}: module__{key}={value} describes a network larger "
                    f"than its {n_stored} stored weights."
                )
        try:
            with torch.device("meta"):
                probe = module_class(**module_kwargs)
            expected = {
                key: list(tensor.shape) for key, tensor in probe.state_dict().items()
            }
        except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
            raise self.error(
                f"{where}: the network cannot be built from its parameters "
                f"({type(exc).__name__}: {exc})."
            ) from exc
        if expected != stored:
            different = sorted(set(expected) ^ set(stored)) or sorted(
                key for key in expected if expected[key] != stored[key]
            )
            raise self.error(
                f"{where}: the stored weights do not fit the network its "
                f"parameters describe (first difference: {different[0]!r})."
            )

    def _decode_net(self, content, where):
        from skorch.exceptions import DeviceWarning
        from skorch.history import History

        module_name, params, state, history = content
        recipe = (
            _net_recipes().get(module_name) if isinstance(module_name, str) else None
        )
        if recipe is None:
            raise self.error(f"{where}: unknown network {_short(module_name)}.")
        net_class, fixed = recipe
        kwargs = {}
        for key, value in params.items():
            if not _is_stored_net_param(key):
                raise self.error(f"{where}: network parameter {key!r} not allowed.")
            kwargs[key] = self.decode(value, f"{where}.{key}")
        device = torch.device(kwargs.get("device", "cpu"))
        if device.type == "cuda" and not torch.cuda.is_available():
            warnings.warn(
                f"{where} was trained on {kwargs['device']!r}, which is not "
                "available: loading it on 'cpu'.",
                DeviceWarning,
                stacklevel=4,
            )
            kwargs["device"] = "cpu"
        if not isinstance(state, dict):
            raise self.error(f"{where}: malformed network weights.")
        self._check_network_size(fixed["module"], kwargs, state, where)
        net = net_class(**fixed, **kwargs)
        net.initialize()
        weights = {
            key: self.decode(value, f"{where}.module_.{key}")
            for key, value in state.items()
        }
        try:
            net.module_.load_state_dict(weights, strict=True)
        except RuntimeError as exc:
            raise self.error(
                f"{where}: the weights do not fit the network ({exc})."
            ) from exc
        net.module_.eval()
        net.criterion_.eval()
        net.history_ = History(self.decode(history, f"{where}.history_"))
        return net


def _stored_shape(value):
    """The shape a ``__tensor__`` node of the manifest declares, or None."""
    if isinstance(value, dict) and len(value) == 1 and "__tensor__" in value:
        content = value["__tensor__"]
        if isinstance(content, list) and len(content) == 4:
            shape = content[2]
            if isinstance(shape, list) and all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
            ):
                return shape
    return None


def _init_parameters(cls):
    return {
        name
        for name, parameter in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and parameter.kind != parameter.VAR_KEYWORD
    }


def _short(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
