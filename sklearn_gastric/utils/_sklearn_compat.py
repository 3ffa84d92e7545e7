"""Every import of scikit-learn's private API lives here.

``_fit_context`` and the parameter-validation helpers are private to
scikit-learn; keeping them in one module means a future rename is a one-line
fix (imbalanced-learn does the same in ``imblearn/utils/_sklearn_compat.py``).
"""

from sklearn.base import _fit_context
from sklearn.utils._param_validation import (
    HasMethods,
    Hidden,
    Interval,
    InvalidParameterError,
    Options,
    StrOptions,
    validate_params,
)
from sklearn.utils.validation import validate_data

__all__ = [
    "HasMethods",
    "Hidden",
    "Interval",
    "InvalidParameterError",
    "Options",
    "StrOptions",
    "_fit_context",
    "validate_data",
    "validate_params",
]
