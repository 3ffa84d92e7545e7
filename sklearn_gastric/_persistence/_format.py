"""What a model file is: names, versions, bounds and the class allowlist."""

import inspect
import os
import re

import numpy as np

from .._version import __version__

FORMAT_NAME = "sklearn-gastric-model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# Names that say "this is a pickle": written with joblib, loaded only on trust.
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
# Loading allocates at most about the file's size for the arrays (they are
# stored uncompressed) plus this much for the manifest: a zip bomb or a
# manifest inflated to gigabytes is refused before it is read.
MAX_MANIFEST_BYTES = 16 * 2**20
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
