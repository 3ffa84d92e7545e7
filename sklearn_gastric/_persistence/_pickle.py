"""The joblib envelope: a pickled model with the version that wrote it."""

from sklearn.base import BaseEstimator

from .._version import __version__
from ..utils._files import atomic_output
from ._format import FORMAT_NAME, THIS_VERSION, ModelFileError, major_minor

__all__ = ["dump_pickle", "load_pickle"]


def dump_pickle(model, path, metadata):
    """Pickle ``model`` and ``metadata`` to ``path`` with joblib, atomically."""
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


def load_pickle(path):
    """Unpickle a trusted file: the envelope of :func:`dump_pickle`, or any
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
        if major_minor(made_by) != THIS_VERSION:
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
