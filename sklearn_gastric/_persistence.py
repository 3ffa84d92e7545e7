"""Model files that cannot run code: ``save_model`` and ``load_model``.

A model file is a zip archive holding ``manifest.json`` (format, versions,
the estimators by allowlisted class name with their parameters and fitted
attributes as tagged JSON) and one ``.npy`` member per array or tensor.
Loading parses JSON, reads arrays with ``allow_pickle=False`` and
instantiates classes only by lookup in a fixed dict: it never unpickles,
never evaluates and never imports anything named in the file.
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

__all__ = ["ModelFileError", "load_model", "save_model"]

FORMAT_NAME = "sklearn-gastric-model"
FORMAT_VERSION = 1
_MANIFEST = "manifest.json"
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


def save_model(model, path):
    """Save a fitted estimator or pipeline to a file that cannot run code.

    The file is a zip archive: ``manifest.json`` names each estimator by a
    class of a fixed allowlist (scikit-learn's :class:`~sklearn.pipeline.Pipeline`,
    :class:`~sklearn.frozen.FrozenEstimator`,
    :class:`~sklearn.linear_model.LogisticRegression`,
    :class:`~sklearn.preprocessing.StandardScaler`, and this library's
    estimators) with its ``get_params(deep=False)`` and its fitted
    attributes, and every array and network weight is a ``.npy`` member.
    :func:`load_model` reads it back without unpickling anything.

    Parameters
    ----------
    model : estimator
        An allowlisted estimator, fitted or not, e.g. a
        :class:`~sklearn.pipeline.Pipeline` of this library's steps with a
        ``FrozenEstimator(PatchSegmenter)``.
    path : str or os.PathLike
        The file to write (replaced atomically if it exists). The ``.sgm``
        suffix is a convention, not a requirement.

    Returns
    -------
    path : str
        The file written.

    Raises
    ------
    TypeError
        When a parameter or fitted attribute cannot be stored as JSON, an
        array or a tensor (a callable, an arbitrary object, a
        :class:`~sklearn_gastric.io.Slide`), or an estimator's class is not
        allowlisted; the message names where it is in the model.

    See Also
    --------
    load_model : Load a model file.

    Notes
    -----
    Stored: parameters (paths as strings), fitted arrays, scalars and
    strings, the networks' weights (``state_dict``) and training history.
    Not stored: the optimiser's state (a loaded model predicts; ``fit``
    retrains from scratch as it always does) and cache locations: every
    ``memory`` parameter is saved as ``None``, as a cache belongs to one
    machine. A network trained on a GPU loads on the CPU when CUDA is absent
    (with skorch's ``DeviceWarning``).

    ``joblib.dump`` / ``joblib.load`` remain supported and keep everything
    (optimiser state, ``memory``), but a joblib file is a pickle: **loading a
    pickle can execute arbitrary code**. Only ``joblib.load`` files you made
    or trust; to share a model, use :func:`save_model`.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sklearn_gastric import GCNSlideClassifier, SlideGraph
    >>> from sklearn_gastric._persistence import load_model, save_model
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
    writer = _Writer()
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "sklearn_gastric_version": __version__,
        "versions": _dependency_versions(),
        "model": writer.encode(model, "model"),
    }
    # Written next to the target, then renamed: a failure never leaves a
    # half-written model under the final name.
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        with (
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
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return path


def load_model(path):
    """Load a model saved by :func:`save_model`, without running code from it.

    The manifest is parsed as JSON, arrays are read as ``.npy`` with
    ``allow_pickle=False``, and estimators are instantiated only from a
    fixed allowlist of classes (nothing named in the file is imported or
    evaluated), so a model file from an untrusted source cannot execute
    code.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save_model`.

    Returns
    -------
    model : estimator
        The estimator or pipeline, with its fitted state.

    Raises
    ------
    ModelFileError
        The file is not a model archive (e.g. a pickle or joblib file), was
        made by a newer major version of sklearn-gastric or of the format,
        names a class outside the allowlist, holds a member the manifest
        does not describe, or its arrays disagree with the manifest. The
        message names the file.

    See Also
    --------
    save_model : Write a model file.

    Notes
    -----
    A file from a newer major version of sklearn-gastric is refused; the
    versions of scikit-learn, torch, skorch and numpy that wrote the file are
    recorded in its manifest but not checked. Loading cannot execute code,
    but a hostile file can still describe very large arrays or networks:
    load untrusted files where running out of memory is acceptable.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn_gastric import TopKSelector
    >>> from sklearn_gastric._persistence import load_model, save_model
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = save_model(TopKSelector(k=5), os.path.join(folder, "k.sgm"))
    ...     load_model(path)
    TopKSelector(k=5)
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Model file {path!r} does not exist.")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"{path!r} is not a sklearn-gastric model file (not a zip archive). "
            "A joblib or pickle file must be opened with joblib.load, which can "
            "execute code: only do so for a file you trust."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            return _Reader(archive, path).load()
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, RecursionError) as exc:
        raise ModelFileError(
            f"Model file {path!r} is damaged: {type(exc).__name__}: {exc}"
        ) from exc


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
        for name in names:
            if name != _MANIFEST and not _ARRAY_MEMBER.fullmatch(name):
                raise self.error(
                    f"unexpected member {name!r}; a model file holds only "
                    "manifest.json and arrays/*.npy."
                )
        try:
            manifest = json.loads(self.archive.read(_MANIFEST).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise self.error(f"manifest.json is not valid JSON ({exc}).") from exc
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
        unused = set(names) - self.referenced - {_MANIFEST}
        if unused:
            raise self.error(
                f"members {sorted(unused)} are not referenced by the manifest."
            )
        return model

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
            try:
                array = np.lib.format.read_array(file, allow_pickle=False)
            except ValueError as exc:
                raise self.error(
                    f"{where}: {member!r} is not a plain .npy array ({exc})."
                ) from exc
        if array.dtype.str != dtype_str or list(array.shape) != list(shape):
            raise self.error(
                f"{where}: {member!r} holds {array.dtype.str} {list(array.shape)}; "
                f"the manifest says {dtype_str} {list(shape)}."
            )
        if array.dtype.kind not in _ARRAY_KINDS or array.dtype.fields is not None:
            raise self.error(f"{where}: array dtype {array.dtype} is not allowed.")
        return array

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
        for key, value in fitted.items():
            self._check_attribute_name(cls, key, where)
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


def _init_parameters(cls):
    return {
        name
        for name, parameter in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and parameter.kind != parameter.VAR_KEYWORD
    }


def _short(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
