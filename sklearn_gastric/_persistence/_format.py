"""What a model file is: names, versions, bounds and the class allowlist."""

import inspect
import json
import math
import os
import re

import numpy as np

from .._version import __version__

FORMAT_NAME = "sklearn-gastric-model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# Names that say "this is a pickle": written with joblib, loaded only on trust.
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
# What a manifest may hold, checked on its bytes before it is parsed. Loading
# takes about the file's size for the arrays (stored uncompressed, read in
# place) and, for the manifest, what parsing and decoding it make: up to 200
# bytes of Python objects per JSON item (a nested list, parsed then decoded)
# and 4 bytes per character of a string (one escaped emoji widens a whole
# string). Manifests of ours, mostly training history: the demo's pipeline
# (a GCN of 200 epochs, a segmenter of 20) about 11,000 items in 110 KiB; a
# GCN trained for 3,000 epochs 102,000 items in 0.95 MiB. The worst manifest
# within these bounds grew a process by 43 MiB (Python 3.11, measured by
# tests/test_persistence_hostile.py); load_model promises 64 MiB.
MAX_MANIFEST_BYTES = 4 * 2**20
# Items: strings, brackets, commas and colons (each value parsing makes is
# at least one; a list or a dict, the costliest, is two).
MAX_MANIFEST_ITEMS = 2**18
MAX_MANIFEST_DEPTH = 64
# The keys of a manifest, all written by save_model; "versions" and
# "metadata" may be absent.
MANIFEST_KEYS = (
    "format",
    "format_version",
    "sklearn_gastric_version",
    "versions",
    "metadata",
    "model",
)
# A string, or one structural character of JSON.
_MANIFEST_TOKEN = re.compile(rb'"(?:[^"\\]++|\\.)*+"|[\[\]{},:]')
ARRAY_MEMBER = re.compile(r"arrays/[0-9]{5,}\.npy")
ATTRIBUTE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# numpy dtype kinds an array member may have: no object, no structured.
ARRAY_KINDS = set("biufcUS")
# Parameters that hold a machine-local cache location: never stored.
CACHE_PARAMS = {"memory"}


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


# Named where it is imported from, in tracebacks, pickles and the docs.
ModelFileError.__module__ = "sklearn_gastric._persistence"


def allowed_estimators():
    """The only classes a model file may name, by the name it uses."""
    from sklearn.frozen import FrozenEstimator
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from ..baselines import PooledFeatureClassifier, ProportionThresholdClassifier
    from ..graph import GCNSlideClassifier, PearsonGraphBuilder, TopKSelector
    from ..preprocessing import OtsuFilter, StainNormalizer, Tiler
    from ..segmentation import PatchSegmenter

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


def tensor_dtypes():
    """Every tensor dtype a file may name, by that name.

    A file's dtype names are looked up here, never with ``getattr`` on
    torch. A function, so that only reading and writing archives import
    torch.
    """
    import torch

    return {
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


def major_minor(version):
    """``(major, minor)`` of a version string, or None if it has none.

    Examples
    --------
    >>> from sklearn_gastric._persistence._format import major_minor
    >>> major_minor("0.12.3.dev0"), major_minor("unknown")
    ((0, 12), None)
    """
    match = re.match(r"(\d+)\.(\d+)", str(version))
    return (int(match[1]), int(match[2])) if match else None


THIS_VERSION = major_minor(__version__)


def dependency_versions():
    """The versions of the libraries that wrote a file, kept in its manifest."""
    import sklearn
    import skorch
    import torch

    return {
        "scikit-learn": sklearn.__version__,
        "torch": torch.__version__,
        "skorch": skorch.__version__,
        "numpy": np.__version__,
    }


def is_pickle_name(path):
    return os.fspath(path).lower().endswith(PICKLE_SUFFIXES)


def init_parameters(cls):
    """The keyword parameters of ``cls.__init__``."""
    return {
        name
        for name, parameter in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and parameter.kind != parameter.VAR_KEYWORD
    }


def is_plain_item(item):
    """Whether an encoded item may sit in an object array (no containers)."""
    if isinstance(item, dict):
        return len(item) == 1 and next(iter(item)) in ("__float__", "__scalar__")
    return not isinstance(item, list)


def short(value, limit=80):
    """``repr(value)``, cut to ``limit`` characters for a message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def manifest_problem(data):
    """Why the bytes of a ``manifest.json`` may not be parsed, or None.

    Parsing JSON makes up to 25 times its size in Python objects, so the
    bounds are checked first, on the bytes: size, ASCII (``json.dumps``
    writes nothing else, and the text then takes one byte a character),
    items and depth. The scan stops at the first bound passed, so it
    visits at most ``MAX_MANIFEST_ITEMS`` tokens (0.1 s).

    Examples
    --------
    >>> from sklearn_gastric._persistence._format import manifest_problem
    >>> manifest_problem(b'{"model": [1, 2, {"a": "[[["}]}') is None
    True
    >>> manifest_problem(b"[" * 100)
    'is nested more than 64 deep'
    """
    if len(data) > MAX_MANIFEST_BYTES:
        return (
            f"takes {len(data)} bytes, more than the {MAX_MANIFEST_BYTES} a "
            "model file's manifest may"
        )
    if not data.isascii():
        return "holds non-ASCII bytes; save_model writes it as ASCII JSON"
    items = depth = 0
    for match in _MANIFEST_TOKEN.finditer(data):
        token = data[match.start()]
        if token in b"[{":
            depth += 1
            if depth > MAX_MANIFEST_DEPTH:
                return f"is nested more than {MAX_MANIFEST_DEPTH} deep"
        elif token in b"]}":
            depth -= 1
            if depth < 0:
                return "is not valid JSON (a bracket closes nothing)"
        items += 1
        if items > MAX_MANIFEST_ITEMS:
            return (
                f"holds more than {MAX_MANIFEST_ITEMS} JSON items (strings, "
                "brackets, commas and colons), more than a model file's "
                "manifest may"
            )
    return None


def parse_manifest(text):
    """The manifest's JSON, refusing what the writer never writes (NaN,
    Infinity, a number beyond a float's range) as a ValueError."""
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)


def _refuse_constant(name):
    raise ValueError(
        f"{name} is not JSON; a model file writes a non-finite number as "
        '{"__float__": ...}'
    )


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]} is beyond a float's range")
    return value
