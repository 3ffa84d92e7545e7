"""The fitted attributes a model file may give each estimator, checked as it loads.

A model file sets each estimator's fitted attributes from its manifest. A
damaged or tampered file could set a temperature of NaN, duplicate classes,
a network narrower than its classes or a classifier fitted on features the
segmenter before it does not make: values that load, then fail at predict
time (blaming the slide) or, worse, predict wrongly without a word.

``FITTED`` declares, for every class of the allowlist, each fitted attribute
it may have: its kind, dtype, shape and range. Sizes are named (``"classes"``,
``"features"``): every attribute, network parameter or nested estimator that
names a size must agree on it, which is how ``classes_`` is checked against
the width of the network's output. ``rules`` add what shapes cannot say.
:func:`check_fitted` checks a rebuilt estimator against its declaration;
:func:`check_pipeline` checks that each step of a Pipeline reads what the
steps before it make.
"""

import math
from numbers import Integral, Real

import numpy as np

__all__ = ["FITTED", "FittedValueError", "check_fitted", "check_pipeline"]


class FittedValueError(ValueError):
    """A fitted attribute a model file may not set; the message says where."""


class _Problem(Exception):
    """What is wrong with the attribute being checked (or ``attribute``)."""

    def __init__(self, message, attribute=None):
        super().__init__(message)
        self.attribute = attribute


class _Context:
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
            raise _Problem(f"{description}; it must be {size}")
        return
    if size in context.sizes and context.sizes[size][0] != length:
        raise _Problem(f"{description}, but {context.sizes[size][1]}")
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
    :class:`_Problem`."""

    def check(self, value, context):
        raise NotImplementedError


class Count(_Spec):
    """An int >= ``minimum``, the length named ``size``."""

    def __init__(self, minimum=1, size=None):
        self.minimum = minimum
        self.size = size

    def check(self, value, context):
        if not _is_int(value):
            raise _Problem(f"is {_describe(value)}; it must be an int")
        if value < self.minimum:
            raise _Problem(f"is {value}; it must be at least {self.minimum}")
        _bind(context, self.size, int(value), f"is {_text(int(value))}")


class Number(_Spec):
    """A finite real number, ``> low`` (``low_open``) or ``>= low``."""

    def __init__(self, low=None, *, low_open=False):
        self.low = low
        self.low_open = low_open

    def check(self, value, context):
        requirement = _requirement(self.low, None, self.low_open, False)
        if not _is_number(value):
            raise _Problem(f"is {_describe(value)}; it must be a number")
        try:
            bad = _first_out_of_range(value, self.low, None, self.low_open, False)
        except OverflowError:
            bad = value
        if bad is not None:
            raise _Problem(f"is {_text(value)}; it must be {requirement}")


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
            raise _Problem(f"is {_describe(value)}; it must be an array of {wanted}")
        if value.ndim != len(self.shape):
            raise _Problem(
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
            raise _Problem(f"holds {bad!r}; its values must be {requirement}")


class Labels(_Spec):
    """Classes: a 1-D array of at least ``minimum`` distinct labels (str,
    int or finite float), as many as the size ``"classes"``."""

    def __init__(self, minimum=1):
        self.minimum = minimum

    def check(self, value, context):
        if not isinstance(value, np.ndarray) or value.ndim != 1:
            raise _Problem(f"is {_describe(value)}; it must be a 1-D array of labels")
        seen = set()
        for item in value.tolist():
            if not isinstance(item, str | bytes | Real) or (
                isinstance(item, float) and not math.isfinite(item)
            ):
                raise _Problem(
                    f"holds the label {_text(item)}; a label is a string, an int "
                    "or a finite float"
                )
            if item in seen:
                raise _Problem(f"holds the label {_text(item)} twice")
            seen.add(item)
        if len(seen) < self.minimum:
            raise _Problem(
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
            raise _Problem(f"is {_describe(value)}; it must be a 1-D array of str")
        _bind(context, "features", len(value), f"names {len(value)} features")


class Choice(_Spec):
    """One of the strings ``options``."""

    def __init__(self, options):
        self.options = tuple(options)

    def check(self, value, context):
        if not isinstance(value, str) or value not in self.options:
            raise _Problem(f"is {_text(value)}; it must be one of {list(self.options)}")


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
            except _Problem as problem:
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
            raise _Problem(
                f"is {_describe(value)}; it must be the trained "
                f"{type(blueprint).__name__} of a {blueprint.module.__name__}"
            )
        for key, size in self.module_sizes.items():
            length = _module_param(value, key)
            if not _is_int(length):
                raise _Problem(f"does not say its {key}")
            _bind(context, size, int(length), f"has {key}={_text(length)}")


class Fields(_Spec):
    """A dict: ``fields`` (key to spec), ``required`` among them."""

    def __init__(self, fields, required=()):
        self.fields = fields
        self.required = set(required)

    def check(self, value, context):
        if not isinstance(value, dict):
            raise _Problem(f"is {_describe(value)}; it must be a dict")
        if not set(self.required) <= set(value) <= set(self.fields):
            raise _Problem(
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
            raise _Problem(f"is {_describe(value)}; it must be a classifier")
        try:
            check_is_fitted(value)
            width = value.n_features_in_
        except (NotFittedError, AttributeError):
            raise _Problem("is a classifier that was never fitted") from None
        _bind(context, "features", width, f"was fitted on {width} features")


def _module_param(net, key):
    """A module parameter of a skorch net: as stored, else the module's."""
    name = key.removeprefix("module__")
    return net.get_params_for("module").get(name, getattr(net.module_, name, None))


class _Schema:
    """The fitted attributes of one class: all of ``required`` once fitted,
    any of ``optional``; each of ``rules(estimator, sizes)`` raises a
    :class:`_Problem` naming its attribute if the values disagree."""

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


def _ood_parts_together(estimator, sizes):
    has = vars(estimator)
    legacy = ("ood_location_", "ood_precision_")
    present = [name for name in legacy if name in has]
    if len(present) == 1:
        other = legacy[1 - legacy.index(present[0])]
        raise _Problem(f"is set without {other}; they go together", present[0])
    if present and "ood_density_" in has:
        raise _Problem("is set beside ood_density_, which replaced it", present[0])
    has_density = "ood_density_" in has or bool(present)
    if ("ood_threshold_" in has) != has_density:
        raise _Problem(
            "is set without the other half of the out-of-distribution score "
            "(ood_threshold_ and ood_density_ go together)",
            "ood_threshold_" if "ood_threshold_" in has else "ood_density_",
        )


def _profile_fields_together(estimator, sizes):
    density = getattr(estimator, "ood_density_", None)
    if density is None:
        return
    profile = sorted(name for name in density if name.startswith("profile_"))
    if profile and len(profile) != 4:
        raise _Problem(
            f"holds {profile} of the four profile_ arrays, which go together",
            "ood_density_",
        )
    expected = 2 if profile else 1
    if len(density["scale"]) != expected:
        kind = "with" if profile else "without"
        raise _Problem(
            f"has {len(density['scale'])} values; {kind} a profile density "
            f"it has {expected}",
            "ood_density_['scale']",
        )


def _proportion_classes(estimator, sizes):
    try:
        severity, column_to_class = estimator._check_classes()
    except ValueError as exc:
        raise _Problem(str(exc), "classes_") from None
    if estimator.classes_.tolist() != severity.tolist():
        raise _Problem(
            f"is {estimator.classes_.tolist()}; severity_order says "
            f"{severity.tolist()}",
            "classes_",
        )
    if estimator._column_to_class.tolist() != column_to_class.tolist():
        raise _Problem(
            f"is {estimator._column_to_class.tolist()}; columns and "
            f"severity_order say {column_to_class.tolist()}",
            "_column_to_class",
        )
    if estimator.thresholds_[0] != 0:
        raise _Problem(
            f"starts with {estimator.thresholds_[0]!r}; the least severe class's "
            "threshold is 0",
            "thresholds_",
        )


def _same_classes_as_estimator(estimator, sizes):
    inner = getattr(estimator.estimator_, "classes_", None)
    if np.asarray(inner).tolist() != estimator.classes_.tolist():
        raise _Problem(
            f"is {estimator.classes_.tolist()}; its estimator_ has "
            f"{np.asarray(inner).tolist()}",
            "classes_",
        )


def _coefficient_rows(estimator, sizes):
    n_classes = len(estimator.classes_)
    rows = 1 if n_classes == 2 else n_classes
    if estimator.coef_.shape[0] != rows:
        raise _Problem(
            f"has shape {estimator.coef_.shape}; {n_classes} classes need "
            f"{rows} row(s)",
            "coef_",
        )


def _scaler_statistics(estimator, sizes):
    needed = []
    if estimator.with_mean:
        needed.append("mean_")
    if estimator.with_std:
        needed += ["var_", "scale_"]
    for name in needed:
        if getattr(estimator, name) is None:
            raise _Problem(
                f"is None; with_mean={estimator.with_mean} and "
                f"with_std={estimator.with_std} need it",
                name,
            )


def _stain_targets(estimator, sizes):
    params = estimator.target_params_
    reinhard = estimator.method == "reinhard"
    keys, pairs = (
        (("mean", "std"), {"lab_mean_": "mean", "lab_std_": "std"})
        if reinhard
        else (
            ("stains", "max_concentrations"),
            {"stain_matrix_": "stains", "max_concentrations_": "max_concentrations"},
        )
    )
    if set(params) != set(keys):
        raise _Problem(
            f"has the keys {sorted(params)}; method={estimator.method!r} has "
            f"{sorted(keys)}",
            "target_params_",
        )
    for name in ("lab_mean_", "lab_std_", "stain_matrix_", "max_concentrations_"):
        if name not in pairs and name in vars(estimator):
            raise _Problem(f"is not an attribute of method={estimator.method!r}", name)
    for name, key in pairs.items():
        if name not in vars(estimator):
            raise _Problem(f"is missing; method={estimator.method!r} has it", name)
        if not np.array_equal(getattr(estimator, name), params[key]):
            raise _Problem(f"differs from target_params_[{key!r}]", name)
    if not reinhard:
        norms = np.linalg.norm(params["stains"], axis=1)
        if not np.allclose(norms, 1.0, rtol=0, atol=1e-6):
            raise _Problem(
                f"has rows of length {norms.round(6).tolist()}; stain vectors "
                "are unit vectors",
                "target_params_['stains']",
            )


def _patch_size_fits_depth(estimator, sizes):
    patch_size = getattr(estimator, "patch_size_", None)
    depth = sizes["depth"][0]  # the net's, checked before the rules
    if patch_size is not None and patch_size % 2**depth:
        raise _Problem(
            f"is {patch_size}, not a multiple of 2**depth = {2**depth}", "patch_size_"
        )


def _training_stain_keys(estimator, sizes):
    stain = getattr(estimator, "training_stain_", None)
    if stain is None:
        return
    keys = {
        "none": (),
        "reinhard": ("mean", "std"),
        "macenko": ("stains", "max_concentrations"),
        "vahadane": ("stains", "max_concentrations"),
    }[stain["method"]]
    if set(stain) != {"method", *keys}:
        raise _Problem(
            f"has the keys {sorted(stain)}; method={stain['method']!r} has "
            f"{sorted({'method', *keys})}",
            "training_stain_",
        )


# What estimators make for, and read from, the steps after them in a Pipeline.


def _segmenter_features(seg, widths):
    return _module_param(seg.net_, "module__feature_dim")


def _columns_in(estimator, widths):
    return estimator.n_features_in_


def _profile_of_features(selector, widths):
    from ..graph._confidence import PROFILE_QUANTILES

    features = widths.get("features")
    return None if features is None else len(PROFILE_QUANTILES) * features[0]


def _gcn_profile(gcn, widths):
    density = getattr(gcn, "ood_density_", None) or {}
    profile = density.get("profile_mean")
    return None if profile is None else len(profile)


_FLOAT_VECTOR = Array(("features",))
_DENSITY = Fields(
    {
        "node_location": _FLOAT_VECTOR,
        "node_precision": Array(("features", "features")),
        "profile_mean": Array(("profile",)),
        "profile_scale": Array(("profile",), low=0, low_open=True),
        "profile_location": Array(("profile",)),
        "profile_precision": Array(("profile", "profile")),
        "scale": Array(("distances",), low=0, low_open=True),
    },
    required=("node_location", "node_precision", "scale"),
)
_NOTHING = _Schema()

# Every class of the allowlist (``_format.allowed_estimators``), by the name
# a model file gives it.
FITTED = {
    "sklearn.pipeline.Pipeline": _NOTHING,
    "sklearn.frozen.FrozenEstimator": _NOTHING,
    "sklearn.linear_model.LogisticRegression": _Schema(
        required={
            "classes_": Labels(minimum=2),
            "n_features_in_": Count(size="features"),
            "coef_": Array(("rows", "features")),
            "intercept_": Array(("rows",)),
            "n_iter_": Array((None,), kinds="iu", low=0),
        },
        optional={"feature_names_in_": Names()},
        rules=(_coefficient_rows,),
        reads={"columns": _columns_in},
    ),
    "sklearn.preprocessing.StandardScaler": _Schema(
        required={
            "n_features_in_": Count(size="features"),
            "n_samples_seen_": Either(
                Number(low=0), Array(("features",), kinds="iu", low=0)
            ),
            "mean_": Maybe(_FLOAT_VECTOR),
            "var_": Maybe(Array(("features",), low=0)),
            "scale_": Maybe(Array(("features",), low=0, low_open=True)),
        },
        optional={"feature_names_in_": Names()},
        rules=(_scaler_statistics,),
        reads={"columns": _columns_in},
        makes={"columns": _columns_in},
    ),
    "sklearn_gastric.StainNormalizer": _Schema(
        required={
            "target_params_": Fields(
                {
                    "stains": Array((2, 3)),
                    "max_concentrations": Array((2,), low=0, low_open=True),
                    "mean": Array((3,)),
                    "std": Array((3,), low=0),
                }
            )
        },
        optional={
            "stain_matrix_": Array((2, 3)),
            "max_concentrations_": Array((2,), low=0, low_open=True),
            "lab_mean_": Array((3,)),
            "lab_std_": Array((3,), low=0),
        },
        rules=(_stain_targets,),
    ),
    "sklearn_gastric.Tiler": _NOTHING,
    "sklearn_gastric.OtsuFilter": _NOTHING,
    "sklearn_gastric.PatchSegmenter": _Schema(
        required={
            "classes_": Labels(minimum=1),
            "n_classes_": Count(size="classes"),
            "net_": Net(
                {
                    "module__n_classes": "classes",
                    "module__feature_dim": "features",
                    "module__depth": "depth",
                }
            ),
        },
        # Not in models saved before they were recorded.
        optional={
            "patch_size_": Count(size="patch_size"),
            "training_stain_": Maybe(
                Fields(
                    {
                        "method": Choice(("none", "macenko", "vahadane", "reinhard")),
                        "stains": Array((2, 3)),
                        "max_concentrations": Array((2,), low=0, low_open=True),
                        "mean": Array((3,)),
                        "std": Array((3,), low=0),
                    },
                    required=("method",),
                )
            ),
        },
        rules=(_patch_size_fits_depth, _training_stain_keys),
        makes={
            "features": _segmenter_features,
            "patch_proba": lambda seg, widths: seg.n_classes_,
        },
    ),
    "sklearn_gastric.TopKSelector": _Schema(makes={"profile": _profile_of_features}),
    "sklearn_gastric.PearsonGraphBuilder": _NOTHING,
    "sklearn_gastric.GCNSlideClassifier": _Schema(
        required={
            "classes_": Labels(minimum=2),
            "n_node_features_": Count(size="features"),
            "feature_mean_": _FLOAT_VECTOR,
            "feature_scale_": Array(("features",), low=0, low_open=True),
            "net_": Net(
                {"module__in_features": "features", "module__n_classes": "classes"}
            ),
        },
        optional={
            # Absent from models saved before calibration.
            "temperature_": Number(low=0, low_open=True),
            "ood_threshold_": Number(low=0),
            "ood_density_": _DENSITY,
            # Models saved before the profile density.
            "ood_location_": _FLOAT_VECTOR,
            "ood_precision_": Array(("features", "features")),
        },
        rules=(_ood_parts_together, _profile_fields_together),
        reads={
            "features": lambda gcn, widths: gcn.n_node_features_,
            "profile": _gcn_profile,
        },
    ),
    "sklearn_gastric.ProportionThresholdClassifier": _Schema(
        required={
            "classes_": Labels(minimum=2),
            "thresholds_": Array(("classes",), low=0, high=1, allow_inf=True),
            "_column_to_class": Array(("columns",), kinds="iu", low=0),
        },
        rules=(_proportion_classes,),
        reads={"patch_proba": lambda clf, widths: len(clf._column_to_class)},
    ),
    "sklearn_gastric.PooledFeatureClassifier": _Schema(
        required={
            "n_tile_features_": Count(size="features"),
            "estimator_": FittedClassifier(),
            "classes_": Labels(minimum=2),
        },
        rules=(_same_classes_as_estimator,),
        reads={"features": lambda clf, widths: clf.n_tile_features_},
    ),
}


def unknown_attributes(name, keys):
    """The fitted attributes among ``keys`` that the class ``name`` never has,
    and the message that refuses them (None if there are none)."""
    known = FITTED[name].attributes
    unknown = sorted(set(keys) - set(known))
    if not unknown:
        return None
    listed = ", ".join(known) if known else "none: it learns nothing"
    return (
        f"{unknown[0]!r} is not a fitted attribute a model file may set on "
        f"{name.rsplit('.', 1)[-1]} (its fitted attributes: {listed})."
    )


def check_fitted(estimator, name, where):
    """Check the fitted attributes of ``estimator`` (of the allowlisted class
    ``name``, at ``where`` in the model) against ``FITTED``.

    Raises
    ------
    FittedValueError
        Naming the attribute (``where.attribute``) and what is wrong.
    """
    schema = FITTED[name]
    present = [key for key in schema.attributes if key in vars(estimator)]
    if not present:
        return  # not fitted: nothing to check
    missing = [key for key in schema.required if key not in present]
    if missing:
        raise FittedValueError(
            f"{where}: a fitted {name.rsplit('.', 1)[-1]} has {missing} beside "
            f"{present}; the file has only the latter."
        )
    context = _Context(estimator)
    try:
        for attribute in present:
            context.attribute = attribute
            schema.attributes[attribute].check(getattr(estimator, attribute), context)
        context.attribute = None
        for rule in schema.rules:
            rule(estimator, context.sizes)
    except _Problem as problem:
        raise FittedValueError(
            f"{where}.{problem.attribute or context.attribute} {problem}."
        ) from None


def check_pipeline(pipeline, where):
    """Check that each fitted step of ``pipeline`` reads what the fitted
    steps before it make: a classifier the features of the segmenter's
    width, the tile-proportion baseline one column per segmenter class.

    Raises
    ------
    FittedValueError
        Naming both steps and the widths.
    """
    from sklearn.frozen import FrozenEstimator

    from ._format import allowed_estimators

    names = {cls: name for name, cls in allowed_estimators().items()}
    widths = {}
    for index, (_, step) in enumerate(pipeline.steps):
        place = f"{where}.steps[{index}][1]"
        if isinstance(step, FrozenEstimator):
            step, place = step.estimator, f"{place}.estimator"
        name = names.get(type(step))
        if name is None or not _is_fitted(step, name):
            continue
        schema = FITTED[name]
        for channel, read in schema.reads.items():
            width = read(step, widths)
            if width is not None and channel in widths and widths[channel][0] != width:
                made, maker = widths[channel]
                raise FittedValueError(
                    f"{place} was fitted on {_CHANNELS[channel]} of width {width}, "
                    f"but {maker} before it makes them of width {made}."
                )
        for channel, make in schema.makes.items():
            width = make(step, widths)
            if width is not None:
                widths[channel] = (int(width), place)


_CHANNELS = {
    "columns": "feature columns",
    "features": "tile features",
    "patch_proba": "patch class probabilities",
    "profile": "slide profiles",
}


def _is_fitted(estimator, name):
    """Whether ``estimator`` has its fitted attributes (a class with none to
    learn always has)."""
    attributes = FITTED[name].attributes
    return not attributes or any(key in vars(estimator) for key in attributes)
