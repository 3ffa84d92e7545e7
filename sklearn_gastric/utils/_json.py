"""Strict JSON: what every JSON file and output of the tool is written with.

Python's :mod:`json` writes a non-finite float as the bare tokens ``NaN``,
``Infinity`` and ``-Infinity``, which are not JSON: strict parsers (browsers'
``JSON.parse``, ``jq``, most other languages) reject the whole file. Every
writer goes through :func:`dumps`, which writes such a value as ``null``.
"""

import json
import math

import numpy as np

__all__ = ["dumps", "loads"]


def dumps(value, **kwargs):
    """Serialise ``value`` as strict JSON: a non-finite float becomes ``null``.

    NumPy scalars and arrays are written as the Python numbers and lists
    they hold.

    Parameters
    ----------
    value : object
        Dicts, lists, tuples, strings, numbers, booleans and None, nested.
    **kwargs
        Passed on to :func:`json.dumps` (``indent``, ``sort_keys``, ...).

    Returns
    -------
    text : str
        JSON that any strict parser accepts.

    Raises
    ------
    TypeError
        ``value`` holds something JSON cannot represent.

    Examples
    --------
    >>> from sklearn_gastric.utils._json import dumps
    >>> dumps({"p": [0.5, float("nan"), float("-inf")]})
    '{"p": [0.5, null, null]}'
    """
    # allow_nan=False is the last guard: a non-finite number that escaped
    # _finite (a type it does not know) fails instead of writing "NaN".
    return json.dumps(_finite(value), allow_nan=False, **kwargs)


def loads(text):
    """Parse JSON, reading the non-standard ``NaN``/``Infinity`` as None.

    Files written before every writer used :func:`dumps` may hold those
    tokens; they read as :func:`dumps` would have written them.

    Parameters
    ----------
    text : str or bytes

    Returns
    -------
    value : object

    Raises
    ------
    ValueError
        ``text`` is not JSON.

    Examples
    --------
    >>> from sklearn_gastric.utils._json import loads
    >>> loads('{"p": [0.5, NaN]}')
    {'p': [0.5, None]}
    """
    return json.loads(text, parse_constant=lambda _: None)


def _finite(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if isinstance(value, (np.ndarray, np.generic)):
        return _finite(value.tolist())
    return value
