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

import numpy as np

from ._fitted_specs import (
    Array,
    Choice,
    Context,
    Count,
    Either,
    Fields,
    FittedClassifier,
    FittedValueError,
    Labels,
    Maybe,
    Names,
    Net,
    Number,
    Problem,
    Schema,
    module_param,
)

__all__ = ["FITTED", "FittedValueError", "check_fitted", "check_pipeline"]


def _ood_parts_together(estimator, sizes):
    has = vars(estimator)
    legacy = ("ood_location_", "ood_precision_")
    present = [name for name in legacy if name in has]
    if len(present) == 1:
        other = legacy[1 - legacy.index(present[0])]
        raise Problem(f"is set without {other}; they go together", present[0])
    if present and "ood_density_" in has:
        raise Problem("is set beside ood_density_, which replaced it", present[0])
    has_density = "ood_density_" in has or bool(present)
    if ("ood_threshold_" in has) != has_density:
        raise Problem(
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
        raise Problem(
            f"holds {profile} of the four profile_ arrays, which go together",
            "ood_density_",
        )
    expected = 2 if profile else 1
    if len(density["scale"]) != expected:
        kind = "with" if profile else "without"
        raise Problem(
            f"has {len(density['scale'])} values; {kind} a profile density "
            f"it has {expected}",
            "ood_density_['scale']",
        )


def _proportion_classes(estimator, sizes):
    try:
        severity, column_to_class = estimator._check_classes()
    except ValueError as exc:
        raise Problem(str(exc), "classes_") from None
    if estimator.classes_.tolist() != severity.tolist():
        raise Problem(
            f"is {estimator.classes_.tolist()}; severity_order says "
            f"{severity.tolist()}",
            "classes_",
        )
    if estimator._column_to_class.tolist() != column_to_class.tolist():
        raise Problem(
            f"is {estimator._column_to_class.tolist()}; columns and "
            f"severity_order say {column_to_class.tolist()}",
            "_column_to_class",
        )
    if estimator.thresholds_[0] != 0:
        raise Problem(
            f"starts with {estimator.thresholds_[0]!r}; the least severe class's "
            "threshold is 0",
            "thresholds_",
        )


def _same_classes_as_estimator(estimator, sizes):
    inner = getattr(estimator.estimator_, "classes_", None)
    if np.asarray(inner).tolist() != estimator.classes_.tolist():
        raise Problem(
            f"is {estimator.classes_.tolist()}; its estimator_ has "
            f"{np.asarray(inner).tolist()}",
            "classes_",
        )


def _coefficient_rows(estimator, sizes):
    n_classes = len(estimator.classes_)
    rows = 1 if n_classes == 2 else n_classes
    if estimator.coef_.shape[0] != rows:
        raise Problem(
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
            raise Problem(
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
        raise Problem(
            f"has the keys {sorted(params)}; method={estimator.method!r} has "
            f"{sorted(keys)}",
            "target_params_",
        )
    for name in ("lab_mean_", "lab_std_", "stain_matrix_", "max_concentrations_"):
        if name not in pairs and name in vars(estimator):
            raise Problem(f"is not an attribute of method={estimator.method!r}", name)
    for name, key in pairs.items():
        if name not in vars(estimator):
            raise Problem(f"is missing; method={estimator.method!r} has it", name)
        if not np.array_equal(getattr(estimator, name), params[key]):
            raise Problem(f"differs from target_params_[{key!r}]", name)
    if not reinhard:
        norms = np.linalg.norm(params["stains"], axis=1)
        if not np.allclose(norms, 1.0, rtol=0, atol=1e-6):
            raise Problem(
                f"has rows of length {norms.round(6).tolist()}; stain vectors "
                "are unit vectors",
                "target_params_['stains']",
            )


def _patch_size_fits_depth(estimator, sizes):
    patch_size = getattr(estimator, "patch_size_", None)
    depth = sizes["depth"][0]  # the net's, checked before the rules
    if patch_size is not None and patch_size % 2**depth:
        raise Problem(
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
        raise Problem(
            f"has the keys {sorted(stain)}; method={stain['method']!r} has "
            f"{sorted({'method', *keys})}",
            "training_stain_",
        )


# What estimators make for, and read from, the steps after them in a Pipeline.


def _segmenter_features(seg, widths):
    return module_param(seg.net_, "module__feature_dim")


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
_NOTHING = Schema()

# Every class of the allowlist (``_format.allowed_estimators``), by the name
# a model file gives it.
FITTED = {
    "sklearn.pipeline.Pipeline": _NOTHING,
    "sklearn.frozen.FrozenEstimator": _NOTHING,
    "sklearn.linear_model.LogisticRegression": Schema(
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
    "sklearn.preprocessing.StandardScaler": Schema(
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
    "sklearn_gastric.StainNormalizer": Schema(
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
    "sklearn_gastric.PatchSegmenter": Schema(
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
    "sklearn_gastric.TopKSelector": Schema(makes={"profile": _profile_of_features}),
    "sklearn_gastric.PearsonGraphBuilder": _NOTHING,
    "sklearn_gastric.GCNSlideClassifier": Schema(
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
    "sklearn_gastric.ProportionThresholdClassifier": Schema(
        required={
            "classes_": Labels(minimum=2),
            "thresholds_": Array(("classes",), low=0, high=1, allow_inf=True),
            "_column_to_class": Array(("columns",), kinds="iu", low=0),
        },
        rules=(_proportion_classes,),
        reads={"patch_proba": lambda clf, widths: len(clf._column_to_class)},
    ),
    "sklearn_gastric.PooledFeatureClassifier": Schema(
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
    context = Context(estimator)
    try:
        for attribute in present:
            context.attribute = attribute
            schema.attributes[attribute].check(getattr(estimator, attribute), context)
        context.attribute = None
        for rule in schema.rules:
            rule(estimator, context.sizes)
    except Problem as problem:
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
