"""How a fitted attribute is declared and checked: the kinds of value
(:class:`Count`, :class:`Number`, :class:`Array`, ...), the sizes they name
and share, and an estimator's whole declaration (:class:`Schema`). What
each allowlisted class declares is in ``_fitted.py``."""

import math
from numbers import Integral, Real

import numpy as np


class FittedValueError(ValueError):
    """A fitted attribute a model file may not set; the message says where."""


class Problem(Exception):
    """What is wrong with the attribute being checked (or ``attribute``)."""

    def __init__(self, message, attribute=None):
        super().__init__(message)
        self.attribute = attribute


class Context:
    """The estimator being checked, the attribute being checked (with its
    key inside a dict) and the sizes its attributes have named so far:
    ``{size: (length, what named it)}``."""

    def __init__(self, estimator):
        self.estimator = estimator
        self.attribute = None
        self.sizes = {}


def _is_int(value):
    return isinstance(value, Integral) and not isinstance(value, bool | np.bool_)


def _is_number(value):
    return isinstance(value, Real) and not isinstance(value, bool | np.bool_)


def _text(value, limit=40):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(value):
    if isinstance(value, np.ndarray):
        return f"an array of dtype {value.dtype} and shape {value.shape}"
    return f"{type(value).__name__} {_text(value)}"


def _bind(context, size, length, description):
    """Name ``length`` ``size`` (an int: a fixed length), or check that it is
    what an earlier attribute called that size; ``description`` says what
    the attribute being checked has."""
    if size is None:
        return
    if _is_int(size):
        if length != size:
            raise Problem(f"{description}; it must be {size}")
        return
    if size in context.sizes and context.sizes[size][0] != length:
        raise Problem(f"{description}, but {context.sizes[size][1]}")
    context.sizes.setdefault(size, (length, f"{context.attribute} {description}"))


def _requirement(low, high, low_open, allow_inf):
    text = "not NaN" if allow_inf else "finite"
    if low is not None:
        text += f" and {'>' if low_open else '>='} {low:g}"
    if high is not None:
        text += f" and <= {high:g}"
    return text + (", or inf" if allow_inf else "")


def _first_out_of_range(values, low, high, low_open, allow_inf):
    """The first value outside the range, or None."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    infinite = allow_inf & (values == np.inf)
    with np.errstate(invalid="ignore"):
        good = np.isfinite(values) | infinite
        if low is not None:
            good &= (values > low) if low_open else (values >= low)
        if high is not None:
            good &= (values <= high) | infinite
    bad = np.flatnonzero(~good)
    return None if not len(bad) else values[bad[0]].item()


class _Spec:
    """How one fitted attribute is checked: ``check`` raises a
    :class:`Problem`."""

    def check(self, value, context):
        raise NotImplementedError


class Count(_Spec):
    """An int >= ``minimum``, the length named ``size``."""

    def __init__(self, minimum=1, size=None):
        self.minimum = minimum
        self.size = size

    def check(self, value, context):
        if not _is_int(value):
            raise Problem(f"is {_describe(value)}; it must be an int")
        if value < self.minimum:
            raise Problem(f"is {value}; it must be at least {self.minimum}")
        _bind(context, self.size, int(value), f"is {_text(int(value))}")


class Number(_Spec):
    """A finite real number, ``> low`` (``low_open``) or ``>= low``."""

    def __init__(self, low=None, *, low_open=False):
        self.low = low
        self.low_open = low_open

    def check(self, value, context):
        requirement = _requirement(self.low, None, self.low_open, False)
        if not _is_number(value):
            raise Problem(f"is {_describe(value)}; it must be a number")
        try:
            bad = _first_out_of_range(value, self.low, None, self.low_open, False)
        except OverflowError:
            bad = value
        if bad is not None:
            raise Problem(f"is {_text(value)}; it must be {requirement}")


class Array(_Spec):
    """An array of dtype kind in ``kinds`` whose axes have the lengths
    ``shape`` (ints, size names, or None for any), its values in a range
    (``allow_inf``: +inf too)."""

    def __init__(
        self,
        shape,
        *,
        kinds="f",
        low=None,
        high=None,
        low_open=False,
        allow_inf=False,
    ):
        self.shape = shape
        self.kinds = kinds
        self.low = low
        self.high = high
        self.low_open = low_open
        self.allow_inf = allow_inf

    def check(self, value, context):
        wanted = "floats" if self.kinds == "f" else "ints"
        if not isinstance(value, np.ndarray) or value.dtype.kind not in self.kinds:
            raise Problem(f"is {_describe(value)}; it must be an array of {wanted}")
        if value.ndim != len(self.shape):
            raise Problem(
                f"has shape {value.shape}; it must have {len(self.shape)} axes"
            )
        for length, size in zip(value.shape, self.shape):
            _bind(context, size, length, f"has shape {value.shape}")
        bad = _first_out_of_range(
            value, self.low, self.high, self.low_open, self.allow_inf
        )
        if bad is not None:
            requirement = _requirement(
                self.low, self.high, self.low_open, self.allow_inf
            )
            raise Problem(f"holds {bad!r}; its values must be {requirement}")


class Labels(_Spec):
    """Classes: a 1-D array of at least ``minimum`` distinct labels (str,
    int or finite float), as many as the size ``"classes"``."""

    def __init__(self, minimum=1):
        self.minimum = minimum

    def check(self, value, context):
        if not isinstance(value, np.ndarray) or value.ndim != 1:
            raise Problem(f"is {_describe(value)}; it must be a 1-D array of labels")
        seen = set()
        for item in value.tolist():
            if not isinstance(item, str | bytes | Real) or (
                isinstance(item, float) and not math.isfinite(item)
            ):
                raise Problem(
                    f"holds the label {_text(item)}; a label is a string, an int "
                    "or a finite float"
                )
            if item in seen:
                raise Problem(f"holds the label {_text(item)} twice")
            seen.add(item)
        if len(seen) < self.minimum:
            raise Problem(
                f"holds {len(seen)} label(s); it must hold at least {self.minimum}"
            )
        _bind(context, "classes", len(seen), f"holds {len(seen)} classes")


class Names(_Spec):
    """Feature names: a 1-D array of strings, one per feature."""

    def check(self, value, context):
        if (
            not isinstance(value, np.ndarray)
            or value.ndim != 1
            or not all(isinstance(item, str) for item in value.tolist())
        ):
            raise Problem(f"is {_describe(value)}; it must be a 1-D array of str")
        _bind(context, "features", len(value), f"names {len(value)} features")


class Choice(_Spec):
    """One of the strings ``options``."""

    def __init__(self, options):
        self.options = tuple(options)

    def check(self, value, context):
        if not isinstance(value, str) or value not in self.options:
            raise Problem(f"is {_text(value)}; it must be one of {list(self.options)}")


class Maybe(_Spec):
    """None, or what ``spec`` accepts."""

    def __init__(self, spec):
        self.spec = spec

    def check(self, value, context):
        if value is not None:
            self.spec.check(value, context)


class Either(_Spec):
    """What one of ``specs`` accepts (else the first one's complaint)."""

    def __init__(self, *specs):
        self.specs = specs

    def check(self, value, context):
        sizes = context.sizes
        problems = []
        for spec in self.specs:
            context.sizes = dict(sizes)
            try:
                spec.check(value, context)
            except Problem as problem:
                problems.append(problem)
                continue
            return
        context.sizes = sizes
        raise problems[0]


class Net(_Spec):
    """The trained skorch net that the estimator builds, whose module
    parameters ``module_sizes`` (``{"module__n_classes": "classes"}``) are
    the lengths of those sizes."""

    def __init__(self, module_sizes):
        self.module_sizes = module_sizes

    def check(self, value, context):
        from skorch import NeuralNet

        from ..utils._nets import estimator_net

        blueprint = estimator_net(context.estimator)
        if (
            not isinstance(value, NeuralNet)
            or type(value) is not type(blueprint)
            or not getattr(value, "initialized_", False)
            or type(getattr(value, "module_", None)) is not blueprint.module
        ):
            raise Problem(
                f"is {_describe(value)}; it must be the trained "
                f"{type(blueprint).__name__} of a {blueprint.module.__name__}"
            )
        for key, size in self.module_sizes.items():
            length = module_param(value, key)
            if not _is_int(length):
                raise Problem(f"does not say its {key}")
            _bind(context, size, int(length), f"has {key}={_text(length)}")


class Fields(_Spec):
    """A dict: ``fields`` (key to spec), ``required`` among them."""

    def __init__(self, fields, required=()):
        self.fields = fields
        self.required = set(required)

    def check(self, value, context):
        if not isinstance(value, dict):
            raise Problem(f"is {_describe(value)}; it must be a dict")
        if not set(self.required) <= set(value) <= set(self.fields):
            raise Problem(
                f"has the keys {sorted(value, key=str)}; it may have "
                f"{sorted(self.fields)}, {sorted(self.required)} always"
            )
        outer = context.attribute
        for key, item in value.items():
            context.attribute = f"{outer}[{key!r}]"
            self.fields[key].check(item, context)
        context.attribute = outer


class FittedClassifier(_Spec):
    """A fitted scikit-learn classifier, of as many features as the size
    ``"features"``."""

    def check(self, value, context):
        from sklearn.base import BaseEstimator, is_classifier
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted

        if not isinstance(value, BaseEstimator) or not is_classifier(value):
            raise Problem(f"is {_describe(value)}; it must be a classifier")
        try:
            check_is_fitted(value)
            width = value.n_features_in_
        except (NotFittedError, AttributeError):
            raise Problem("is a classifier that was never fitted") from None
        _bind(context, "features", width, f"was fitted on {width} features")


def module_param(net, key):
    """A module parameter of a skorch net: as stored, else the module's."""
    name = key.removeprefix("module__")
    return net.get_params_for("module").get(name, getattr(net.module_, name, None))


class Schema:
    """The fitted attributes of one class: all of ``required`` once fitted,
    any of ``optional``; each of ``rules(estimator, sizes)`` raises a
    :class:`Problem` naming its attribute if the values disagree."""

    def __init__(self, required=None, optional=None, rules=(), reads=None, makes=None):
        self.required = required or {}
        self.optional = optional or {}
        self.rules = rules
        # What the estimator reads from and makes for the steps of a
        # Pipeline: channel -> function(estimator, widths) -> width or None.
        self.reads = reads or {}
        self.makes = makes or {}

    @property
    def attributes(self):
        return {**self.required, **self.optional}


# Rules: what one attribute's declaration cannot say.
