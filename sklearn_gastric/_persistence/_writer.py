"""The pickle-free archive writer: a model as tagged JSON and ``.npy`` members."""

import io
import json
import math
import os
import zipfile

import numpy as np
import torch
from sklearn.base import BaseEstimator

from .._version import __version__
from ..utils._files import atomic_output
from ..utils._nets import net_state
from ._format import (
    ARRAY_KINDS,
    CACHE_PARAMS,
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST,
    allowed_estimators,
    dependency_versions,
    is_plain_item,
    manifest_problem,
    tensor_dtypes,
)

__all__ = ["write_archive"]

TENSOR_DTYPE_NAMES = {dtype: name for name, dtype in tensor_dtypes().items()}


def write_archive(model, path, metadata):
    """Write ``model`` to ``path`` in the pickle-free format, atomically."""
    writer = _Writer()
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "sklearn_gastric_version": __version__,
        "versions": dependency_versions(),
        "metadata": metadata,
        "model": writer.encode(model, "model"),
    }
    text = json.dumps(manifest, indent=1, allow_nan=False).encode("ascii")
    problem = manifest_problem(text)
    if problem is not None:
        raise ValueError(
            f"Cannot save the model: its manifest.json {problem} (and "
            "load_model would refuse it). Is the metadata too large?"
        )
    with (
        atomic_output(path) as temporary,
        open(temporary, "wb") as file,
        zipfile.ZipFile(file, "w", zipfile.ZIP_STORED) as archive,
    ):
        archive.writestr(MANIFEST, text, compress_type=zipfile.ZIP_DEFLATED)
        for member, array in writer.arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            archive.writestr(member, buffer.getvalue())
    return path


class _Writer:
    """Turns a model into tagged JSON, collecting arrays as members."""

    def __init__(self):
        self.arrays = {}
        self._allowed = {cls: name for name, cls in allowed_estimators().items()}

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
            return self._encode_dict(value, where)
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

    def _encode_dict(self, value, where):
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
            if not all(is_plain_item(item) for item in items):
                raise TypeError(
                    f"{where} is an object array holding containers or objects; "
                    "a model file stores object arrays of str, numbers or None "
                    "only."
                )
            return {"__object_array__": [list(array.shape), items]}
        if array.dtype.kind not in ARRAY_KINDS or array.dtype.fields is not None:
            raise TypeError(
                f"{where} is an array of dtype {array.dtype}; not storable."
            )
        array = np.ascontiguousarray(array)
        member = self._add_array(array)
        return {"__array__": [member, array.dtype.str, list(array.shape)]}

    def _encode_tensor(self, tensor, where):
        if tensor.dtype not in TENSOR_DTYPE_NAMES:
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
                TENSOR_DTYPE_NAMES[tensor.dtype],
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
            key: None if key in CACHE_PARAMS else self.encode(value, f"{where}.{key}")
            for key, value in params.items()
        }
        fitted = {}
        for key, value in vars(estimator).items():
            if key in params:
                continue
            if _is_skorch_net(value):
                fitted[key] = self._encode_net(estimator, value, f"{where}.{key}")
            else:
                fitted[key] = self.encode(value, f"{where}.{key}")
        return {"__estimator__": [name, encoded_params, fitted]}

    def _encode_net(self, owner, net, where):
        module_name, params, weights, history = net_state(owner, net, where)
        params = {
            key: self.encode(value, f"{where}.{key}") for key, value in params.items()
        }
        weights = {
            key: self._encode_tensor(value, f"{where}.module_.{key}")
            for key, value in weights.items()
        }
        # Each epoch's row, without the rows of its batches: those grow with
        # the training set (a million values for 200,000 patches over 30
        # epochs), and would make the manifest unbounded.
        history = [
            {**epoch, "batches": []} if "batches" in epoch else epoch
            for epoch in history
        ]
        history = self.encode(history, f"{where}.history_")
        return {"__skorch_net__": [module_name, params, weights, history]}


def _encode_float(value):
    """A non-finite float, which JSON cannot hold."""
    return {"__float__": "nan" if math.isnan(value) else repr(float(value))}


def _is_skorch_net(value):
    from skorch import NeuralNet

    return isinstance(value, NeuralNet)
