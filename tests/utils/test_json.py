"""Strict JSON: every JSON the tool writes parses with a strict parser."""

import json

import numpy as np
import pytest

from sklearn_gastric.utils._json import dumps, loads


def strict_loads(text):
    """``json.loads`` refusing the bare ``NaN``/``Infinity`` of Python's json."""

    def refuse(token):
        raise ValueError(f"not strict JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_are_written_null_at_any_depth():
    value = {
        "p": [0.5, float("nan"), float("inf"), -float("inf")],
        "nested": {"score": (np.float32("nan"), np.float64(np.inf), 2)},
        "array": np.array([[1.0, np.nan]]),
        "flag": np.bool_(True),
        "count": np.int64(3),
    }
    text = dumps(value, indent=2)
    assert strict_loads(text) == {
        "p": [0.5, None, None, None],
        "nested": {"score": [None, None, 2]},
        "array": [[1.0, None]],
        "flag": True,
        "count": 3,
    }
    # Python's own json would have written a file strict parsers refuse.
    with pytest.raises(ValueError, match="not strict JSON: NaN"):
        strict_loads(json.dumps({"p": float("nan")}))


def test_what_json_cannot_hold_is_still_refused():
    with pytest.raises(TypeError, match="not JSON serializable"):
        dumps({"x": object()})


def test_loads_reads_the_non_standard_tokens_as_null():
    assert loads('{"a": NaN, "b": [Infinity, -Infinity, 1.5]}') == {
        "a": None,
        "b": [None, None, 1.5],
    }
