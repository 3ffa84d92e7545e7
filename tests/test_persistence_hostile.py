"""Model files that parse into too much memory, or load values that would
mislead at predict time.

The manifest is parsed only within bounds checked on its bytes, and the
worst manifest within them is measured in a fresh process against the bound
``load_model`` documents. Every fitted attribute of every estimator a file
holds is checked when it loads, and so is each Pipeline step against the
steps before it: a tampered value is a ModelFileError naming the file and
the attribute, not a numpy error at predict time that blames a slide.
"""

import io
import json
import os
import re
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_support import assert_user_error, run_cli
from hostile_models import find, read_members, traced_peak
from instance_generator import TARGET_IMAGE, estimator_instances
from sklearn.base import BaseEstimator
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from skorch import NeuralNet

from sklearn_gastric import (
    GCNSlideClassifier,
    OtsuFilter,
    PatchSegmenter,
    PearsonGraphBuilder,
    PooledFeatureClassifier,
    ProportionThresholdClassifier,
    SlideGraph,
    StainNormalizer,
    TileBag,
    Tiler,
    TopKSelector,
)
from sklearn_gastric._persistence import ModelFileError, load_model, save_model
from sklearn_gastric._persistence._fitted import FITTED
from sklearn_gastric._persistence._format import (
    MAX_MANIFEST_BYTES,
    MAX_MANIFEST_DEPTH,
    MAX_MANIFEST_ITEMS,
    allowed_estimators,
    manifest_problem,
)

TILE = 32
# What load_model's docstring promises beyond the file's own size.
LOADING_OVERHEAD = 64 * 2**20

GCN = "model.steps[6][1]"
SEGMENTER = "model.steps[3][1].estimator"
STAIN = "model.steps[0][1]"


def _tiny_gcn(**params):
    return GCNSlideClassifier(
        **{"hidden_units": 8, "max_epochs": 10, "random_state": 0, **params}
    )


@pytest.fixture(scope="module")
def fitted_pipeline(tiny_segmenter, cohort):
    pipe = Pipeline(
        [
            ("stain", StainNormalizer(target=TARGET_IMAGE)),
            ("tile", Tiler(tile_size=TILE)),
            ("tissue", OtsuFilter(min_tissue=0.5)),
            ("seg", FrozenEstimator(tiny_segmenter)),
            ("topk", TopKSelector(k=4)),
            ("graph", PearsonGraphBuilder(threshold=0.5)),
            ("gcn", _tiny_gcn(calibration="temperature", calibration_cv=2)),
        ]
    )
    return pipe.fit(*cohort)


@pytest.fixture(scope="module")
def model_file(fitted_pipeline, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile_models")
    return save_model(fitted_pipeline, folder / "model.sgm")


def _bags(rng, n_features=3):
    """Six bags of ten tiles, three slides of each class."""
    bags = []
    for n_lesion in (0, 1, 2, 5, 6, 8):
        proba = np.tile([0.9, 0.1], (10, 1))
        proba[:n_lesion] = [0.2, 0.8]
        bags.append(
            TileBag(
                np.zeros((8, 8, 3), np.uint8),
                np.zeros((10, 2), int),
                tile_size=8,
                patch_proba=proba,
                features=rng.normal(n_lesion, 1.0, size=(10, n_features)),
            )
        )
    return bags, np.array(["negative"] * 3 + ["carcinoma"] * 3, dtype=object)


@pytest.fixture(scope="module")
def baselines():
    """Fitted baselines, their bags and the folder they are saved in."""
    rng = np.random.default_rng(0)
    bags, y = _bags(rng)
    proportion = ProportionThresholdClassifier(
        columns=["negative", "carcinoma"],
        severity_order=["negative", "HGIN", "carcinoma"],
    )
    pooled = PooledFeatureClassifier(
        estimator=Pipeline([("scale", StandardScaler()), ("lr", LogisticRegression())])
    )
    return {
        "proportion": proportion.fit(bags, y),
        "pooled": PooledFeatureClassifier().fit(bags, y),
        "pooled-pipeline": pooled.fit(bags, y),
    }


# -- manifest bounds -------------------------------------------------------------


def _with_manifest(path, text, name):
    """A copy of the model file at ``path`` with ``text`` (bytes) as its
    manifest, deflated as save_model deflates it."""
    contents = read_members(path)
    contents["manifest.json"] = text
    out = Path(path).with_name(name)
    with zipfile.ZipFile(out, "w") as archive:
        for member, content in contents.items():
            deflated = member == "manifest.json"
            kind = zipfile.ZIP_DEFLATED if deflated else zipfile.ZIP_STORED
            archive.writestr(member, content, compress_type=kind)
    return out


def _manifest_with(path, junk, key="metadata"):
    """The manifest of ``path`` with the JSON text ``junk`` (bytes) under
    ``key`` at its top level."""
    data = json.loads(read_members(path)["manifest.json"])
    data[key] = "@JUNK@"
    return json.dumps(data).encode().replace(b'"@JUNK@"', junk)


def test_the_reported_inflated_manifest_is_refused_unread(model_file):
    # A 128 KB file whose manifest inflates to just under 16 MiB of "[],"
    # under an extra key: it used to load, growing the process by ~970 MiB.
    n = (16 * 2**20 - 50_000) // 3
    text = _manifest_with(model_file, b"[" + b"[]," * n + b"[]]", key="padding")
    inflated = _with_manifest(model_file, text, "inflated.sgm")
    assert os.path.getsize(inflated) < 256 * 2**10
    with pytest.raises(
        ModelFileError,
        match=rf"inflated\.sgm': manifest\.json would take {len(text)} bytes once "
        rf"decompressed, more than the {MAX_MANIFEST_BYTES} a model file's",
    ):
        load_model(inflated)


def _nested(depth):
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    "junk, key, match",
    [
        (
            b"[" + b"[]," * (MAX_MANIFEST_ITEMS // 3) + b"[]]",
            "metadata",
            rf"holds more than {MAX_MANIFEST_ITEMS} JSON items",
        ),
        (
            b'{"a": ' + _nested(MAX_MANIFEST_DEPTH) + b"}",
            "metadata",
            rf"is nested more than {MAX_MANIFEST_DEPTH} deep",
        ),
        ('"caf\u00e9"'.encode(), "metadata", "holds non-ASCII bytes"),
        (b"[]", "padding", r"unknown key\(s\) \['padding'\]"),
        (b"[1, NaN]", "metadata", "NaN is not JSON"),
        (b"[-Infinity]", "metadata", "-Infinity is not JSON"),
        (b"1e999", "metadata", r"the number 1e999 is beyond a float's range"),
        (b"9" * 5000, "metadata", r"not valid JSON \(Exceeds the limit \(4300"),
        (b"[]]]]]]", "metadata", "a bracket closes nothing"),
    ],
    ids=[
        "items",
        "depth",
        "non-ascii",
        "unknown-key",
        "nan",
        "infinity",
        "huge-float",
        "huge-int",
        "unbalanced",
    ],
)
def test_an_inflated_or_non_json_manifest_is_refused(model_file, junk, key, match):
    text = _manifest_with(model_file, junk, key=key)
    assert len(text) < MAX_MANIFEST_BYTES
    with pytest.raises(ModelFileError, match=rf"junk\.sgm': manifest\.json .*{match}"):
        load_model(_with_manifest(model_file, text, "junk.sgm"))


def test_save_refuses_a_manifest_load_would_refuse(tmp_path):
    deep = {}
    for _ in range(MAX_MANIFEST_DEPTH):
        deep = {"a": deep}
    with pytest.raises(
        ValueError,
        match=r"Cannot save the model: its manifest\.json is nested more than 64",
    ):
        save_model(TopKSelector(), tmp_path / "m.sgm", metadata=deep)
    with pytest.raises(ValueError, match="holds more than 262144 JSON items"):
        save_model(TopKSelector(), tmp_path / "m.sgm", metadata={"a": [[]] * 10**5})
    assert not list(tmp_path.iterdir())


def _worst_manifest(path):
    """The manifest within every bound whose parsing and decoding take the
    most memory: lists nested 50 deep (the most objects per item), inside
    the training history (decoded into a second copy, and kept), then one
    string with an escaped emoji filling the bytes left (4 bytes of memory
    per character)."""
    data = json.loads(read_members(path)["manifest.json"])
    net = data["model"]["__estimator__"][2]["net_"]["__skorch_net__"]
    epoch = net[3][0]["__dict__"]
    epoch["junk"] = epoch["text"] = "@JUNK@"
    base = json.dumps(data, separators=(",", ":")).encode()
    nested = _nested(50)
    base_items = MAX_MANIFEST_ITEMS - 10 - sum(base.count(c) for c in b'[]{},:"')
    lists = b"[" + b",".join([nested] * (base_items // (len(nested) + 1))) + b"]"
    room = MAX_MANIFEST_BYTES - len(base) - len(lists) - 64
    text = b'"\\ud83d\\ude00' + b"a" * (room - 14) + b'"'
    return base.replace(b'"@JUNK@"', lists, 1).replace(b'"@JUNK@"', text, 1)


_MEASURE = textwrap.dedent(
    """
    import gc, sys
    from sklearn_gastric._persistence import load_model

    def status(field):
        with open("/proc/self/status") as file:
            for line in file:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024

    load_model(sys.argv[1])  # imports and first-use caches: not counted
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as file:
            file.write("5")  # VmHWM starts again from the current RSS
    except OSError:
        pass  # then the growth below counts any earlier peak too
    before = status("VmRSS:")
    model = load_model(sys.argv[2])
    print(status("VmHWM:") - before)
    """
)


@pytest.mark.skipif(
    not os.path.exists("/proc/self/status"), reason="measures with /proc (Linux)"
)
def test_the_worst_manifest_within_the_bounds_loads_within_the_documented_memory(
    tmp_path,
):
    rng = np.random.default_rng(0)
    y = ["negative", "HGIN"] * 4
    graphs = [SlideGraph(rng.normal(size=(3, 2)), np.zeros((3, 3))) for _ in y]
    base = save_model(_tiny_gcn(max_epochs=2).fit(graphs, y), tmp_path / "base.sgm")
    text = _worst_manifest(base)
    assert manifest_problem(text) is None
    assert len(text) > MAX_MANIFEST_BYTES - 256
    worst = _with_manifest(base, text, "worst.sgm")
    # It loads (a refusal would end the child with a traceback).
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(base), str(worst)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    growth = int(result.stdout.split()[-1])
    # Measured 43 MiB (Python 3.11, glibc): the file is a few KB.
    assert growth < os.path.getsize(worst) + LOADING_OVERHEAD, growth / 2**20


def test_network_weights_are_read_into_the_network_in_place(tmp_path):
    rng = np.random.default_rng(0)
    y = ["negative", "HGIN"] * 4
    graphs = [SlideGraph(rng.normal(size=(3, 2)), np.zeros((3, 3))) for _ in y]
    gcn = _tiny_gcn(hidden_units=1024, max_epochs=1).fit(graphs, y)
    path = save_model(gcn, tmp_path / "wide.sgm")
    weights = sum(t.nbytes for t in gcn.net_.module_.state_dict().values())
    assert weights > 4 * 2**20
    load_model(path)  # the reader's modules imported, not counted below
    loaded = []
    # Arrays read with numpy are traced, torch's own memory is not: reading
    # the weights into fresh arrays, then copying them, traced twice their
    # size.
    assert traced_peak(lambda: loaded.append(load_model(path))) < weights / 4
    for key, value in gcn.net_.module_.state_dict().items():
        assert torch.equal(loaded[0].net_.module_.state_dict()[key], value), key


# -- fitted values -----------------------------------------------------------------


def _fitted(data, name):
    """The fitted attributes (manifest nodes) of the first estimator of class
    ``name`` in the manifest that has some (or of the first one, for a class
    with nothing to learn)."""
    qualified = name if "." in name else f"sklearn_gastric.{name}"
    learns = bool(FITTED[qualified].attributes)

    def fitted(node):
        estimator = node.get("__estimator__", [None, None, {}])
        return estimator[0] == qualified and (bool(estimator[2]) or not learns)

    return find(data, fitted)["__estimator__"][2]


def _tampered(path, edit, name="tampered.sgm"):
    """A copy of ``path`` after ``edit(manifest, members)``."""
    contents = read_members(path)
    data = json.loads(contents["manifest.json"])
    edit(data, contents)
    contents["manifest.json"] = json.dumps(data).encode()
    return _with_manifest_members(path, contents, name)


def _with_manifest_members(path, contents, name):
    out = Path(path).with_name(name)
    with zipfile.ZipFile(out, "w") as archive:
        for member, content in contents.items():
            archive.writestr(member, content)
    return out


def _put(contents, holder, key, array):
    """Make ``holder[key]`` an array node of ``array``, in a member of its
    own (the member it had, if any, goes)."""
    old = holder.get(key)
    if isinstance(old, dict) and "__array__" in old:
        del contents[old["__array__"][0]]
    member = next(
        name
        for name in (f"arrays/{n:05d}.npy" for n in range(90000, 99999))
        if name not in contents
    )
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    contents[member] = buffer.getvalue()
    holder[key] = {"__array__": [member, array.dtype.str, list(array.shape)]}


def _array_of(contents, node):
    member = node["__array__"][0]
    return np.load(io.BytesIO(contents[member]))


def _set(name, key, value):
    def edit(data, contents):
        _fitted(data, name)[key] = value

    return edit


def _scaled(name, key, factor, index=0):
    """Multiply one value of the array ``key`` of ``name`` by ``factor``."""

    def edit(data, contents):
        fitted = _fitted(data, name)
        array = _array_of(contents, fitted[key]).astype(np.float64)
        array.reshape(-1)[index] *= factor
        _put(contents, fitted, key, array)

    return edit


def _density_edit(key, change):
    def edit(data, contents):
        density = _fitted(data, "GCNSlideClassifier")["ood_density_"]["__dict__"]
        if change == "drop":
            del density[key]
        else:
            _put(contents, density, key, change(_array_of(contents, density[key])))

    return edit


def _classes(name, labels):
    return _set(name, "classes_", {"__object_array__": [[len(labels)], labels]})


def _drop(name, key):
    def edit(data, contents):
        del _fitted(data, name)[key]

    return edit


def _stain_scaled(data, contents):
    fitted = _fitted(data, "StainNormalizer")
    params = fitted["target_params_"]["__dict__"]
    stains = 2 * _array_of(contents, params["stains"])
    _put(contents, params, "stains", stains)
    _put(contents, fitted, "stain_matrix_", stains)


def _stain_swapped(data, contents):
    fitted = _fitted(data, "StainNormalizer")
    stains = _array_of(contents, fitted["stain_matrix_"])
    _put(contents, fitted, "stain_matrix_", stains[::-1].copy())


_NAN = {"__float__": "nan"}

TAMPERED = {
    "temperature-nan": (
        _set("GCNSlideClassifier", "temperature_", _NAN),
        f"{GCN}.temperature_ is nan; it must be finite and > 0",
    ),
    "temperature-zero": (
        _set("GCNSlideClassifier", "temperature_", 0.0),
        f"{GCN}.temperature_ is 0.0; it must be finite and > 0",
    ),
    "temperature-negative": (
        _set("GCNSlideClassifier", "temperature_", -1.5),
        f"{GCN}.temperature_ is -1.5; it must be finite and > 0",
    ),
    "temperature-text": (
        _set("GCNSlideClassifier", "temperature_", "abc"),
        f"{GCN}.temperature_ is str 'abc'; it must be a number",
    ),
    "threshold-nan": (
        _set("GCNSlideClassifier", "ood_threshold_", _NAN),
        f"{GCN}.ood_threshold_ is nan; it must be finite and >= 0",
    ),
    "threshold-infinite": (
        _set("GCNSlideClassifier", "ood_threshold_", {"__float__": "inf"}),
        f"{GCN}.ood_threshold_ is inf; it must be finite and >= 0",
    ),
    "duplicate-classes": (
        _classes("GCNSlideClassifier", ["negative", "negative"]),
        f"{GCN}.classes_ holds the label 'negative' twice",
    ),
    "classes-for-another-network": (
        _classes("GCNSlideClassifier", [f"class-{i}" for i in range(10_000)]),
        f"{GCN}.net_ has module__n_classes=2, but classes_ holds 10000 classes",
    ),
    "net-is-a-number": (
        _set("GCNSlideClassifier", "net_", 5),
        f"{GCN}.net_ is int 5; it must be the trained NeuralNet of a GCN",
    ),
    "node-features-count": (
        _set("GCNSlideClassifier", "n_node_features_", 9),
        f"{GCN}.feature_mean_ has shape (8,), but n_node_features_ is 9",
    ),
    "feature-scale-zero": (
        _scaled("GCNSlideClassifier", "feature_scale_", 0.0, index=3),
        f"{GCN}.feature_scale_ holds 0.0; its values must be finite and > 0",
    ),
    "density-length": (
        _density_edit("node_location", lambda a: np.append(a, 0.0)),
        f"{GCN}.ood_density_['node_location'] has shape (9,), but "
        "n_node_features_ is 8",
    ),
    "profile-length": (
        _density_edit("profile_scale", lambda a: a[:-1]),
        f"{GCN}.ood_density_['profile_scale'] has shape (23,), but "
        "ood_density_['profile_mean'] has shape (24,)",
    ),
    "density-nan": (
        _density_edit("node_precision", lambda a: a * np.nan),
        f"{GCN}.ood_density_['node_precision'] holds nan",
    ),
    "density-without-scale": (
        _density_edit("scale", "drop"),
        f"{GCN}.ood_density_ has the keys",
    ),
    "threshold-without-density": (
        _drop("GCNSlideClassifier", "ood_density_"),
        f"{GCN}.ood_threshold_ is set without the other half",
    ),
    "unknown-attribute": (
        _set("GCNSlideClassifier", "calibrator_", 1.0),
        f"{GCN}: 'calibrator_' is not a fitted attribute a model file may set "
        "on GCNSlideClassifier",
    ),
    "missing-network": (
        _drop("GCNSlideClassifier", "net_"),
        f"{GCN}: a fitted GCNSlideClassifier has ['net_'] beside",
    ),
    "segmenter-class-count": (
        _set("PatchSegmenter", "n_classes_", 3),
        f"{SEGMENTER}.n_classes_ is 3, but classes_ holds 4 classes",
    ),
    "segmenter-classes-for-another-network": (
        _classes("PatchSegmenter", ["a", "b"]),
        f"{SEGMENTER}.n_classes_ is 4, but classes_ holds 2 classes",
    ),
    "segmenter-net-is-text": (
        _set("PatchSegmenter", "net_", "net"),
        f"{SEGMENTER}.net_ is str 'net'; it must be the trained _SegmenterNet",
    ),
    "patch-size-and-depth": (
        _set("PatchSegmenter", "patch_size_", 30),
        f"{SEGMENTER}.patch_size_ is 30, not a multiple of 2**depth = 4",
    ),
    "stains-not-unit": (
        _stain_scaled,
        f"{STAIN}.target_params_['stains'] has rows of length [2.0, 2.0]",
    ),
    "stains-disagree": (
        _stain_swapped,
        f"{STAIN}.stain_matrix_ differs from target_params_['stains']",
    ),
    "stain-concentration-nan": (
        _scaled("StainNormalizer", "max_concentrations_", np.nan),
        f"{STAIN}.max_concentrations_ holds nan; its values must be finite and > 0",
    ),
    "stateless-step-attribute": (
        _set("TopKSelector", "k_", 3),
        "model.steps[4][1]: 'k_' is not a fitted attribute a model file may set "
        "on TopKSelector (its fitted attributes: none: it learns nothing)",
    ),
}


@pytest.mark.parametrize("case", TAMPERED)
def test_a_tampered_fitted_value_is_refused_naming_it(model_file, case):
    edit, message = TAMPERED[case]
    with pytest.raises(ModelFileError, match=rf"tampered\.sgm': {re.escape(message)}"):
        load_model(_tampered(model_file, edit))


def _baseline_file(baselines, name, folder):
    return save_model(baselines[name], Path(folder) / f"{name}.sgm")


def _swap_classes(data, contents):
    fitted = _fitted(data, "PooledFeatureClassifier")
    classes = fitted["classes_"]["__object_array__"][1]
    classes.reverse()


BASELINES_TAMPERED = {
    "proportion-threshold-nan": (
        "proportion",
        _scaled("ProportionThresholdClassifier", "thresholds_", np.nan, index=1),
        "model.thresholds_ holds nan; its values must be not NaN and >= 0 and "
        "<= 1, or inf",
    ),
    "proportion-threshold-negative": (
        "proportion",
        _scaled("ProportionThresholdClassifier", "thresholds_", -1.0, index=1),
        "model.thresholds_ holds -",
    ),
    "proportion-columns": (
        "proportion",
        lambda data, contents: _put(
            contents,
            _fitted(data, "ProportionThresholdClassifier"),
            "_column_to_class",
            np.array([2, 0]),
        ),
        "model._column_to_class is [2, 0]; columns and severity_order say [0, 2]",
    ),
    "proportion-classes": (
        "proportion",
        lambda data, contents: _put(
            contents,
            _fitted(data, "ProportionThresholdClassifier"),
            "classes_",
            np.array(["negative", "carcinoma", "HGIN"]),
        ),
        "model.classes_ is ['negative', 'carcinoma', 'HGIN']; severity_order "
        "says ['negative', 'HGIN', 'carcinoma']",
    ),
    "pooled-classes": (
        "pooled",
        _swap_classes,
        "model.classes_ is ['negative', 'carcinoma']; its estimator_ has "
        "['carcinoma', 'negative']",
    ),
    "pooled-width": (
        "pooled",
        _set("PooledFeatureClassifier", "n_tile_features_", 4),
        "model.estimator_ was fitted on 3 features, but n_tile_features_ is 4",
    ),
    "pooled-unfitted-estimator": (
        "pooled",
        lambda data, contents: _fitted(data, "PooledFeatureClassifier")["estimator_"][
            "__estimator__"
        ].__setitem__(2, {}),
        "model.estimator_ is a classifier that was never fitted",
    ),
    "logistic-coefficients": (
        "pooled",
        lambda data, contents: _put(
            contents,
            _fitted(data, "sklearn.linear_model.LogisticRegression"),
            "coef_",
            np.zeros((1, 4)),
        ),
        "model.estimator_.coef_ has shape (1, 4), but n_features_in_ is 3",
    ),
    "logistic-intercept-nan": (
        "pooled",
        _scaled("sklearn.linear_model.LogisticRegression", "intercept_", np.nan),
        "model.estimator_.intercept_ holds nan; its values must be finite",
    ),
    "scaler-scale-zero": (
        "pooled-pipeline",
        _scaled("sklearn.preprocessing.StandardScaler", "scale_", 0.0),
        "model.estimator_.steps[0][1].scale_ holds 0.0; its values must be "
        "finite and > 0",
    ),
    "scaler-without-mean": (
        "pooled-pipeline",
        _set("sklearn.preprocessing.StandardScaler", "mean_", None),
        "model.estimator_.steps[0][1].mean_ is None; with_mean=True and "
        "with_std=True need it",
    ),
}


@pytest.mark.parametrize("case", BASELINES_TAMPERED)
def test_a_tampered_baseline_is_refused_naming_the_attribute(baselines, tmp_path, case):
    name, edit, message = BASELINES_TAMPERED[case]
    path = _baseline_file(baselines, name, tmp_path)
    with pytest.raises(ModelFileError, match=rf"tampered\.sgm': {re.escape(message)}"):
        load_model(_tampered(path, edit))


# -- a pipeline's steps against each other ----------------------------------------


def _graphs(n_features, profile_length=None, n=8):
    rng = np.random.default_rng(0)
    return [
        SlideGraph(
            rng.normal(size=(3, n_features)),
            np.zeros((3, 3)),
            profile=None if profile_length is None else rng.normal(size=profile_length),
        )
        for _ in range(n)
    ]


def _assembled(tiny_segmenter, classifier):
    """A pipeline around the tiny segmenter ending in ``classifier``, fitted
    apart (as a user may assemble one)."""
    steps = [("tile", Tiler(tile_size=TILE)), ("tissue", OtsuFilter(min_tissue=0.5))]
    steps.append(("seg", FrozenEstimator(tiny_segmenter)))
    if isinstance(classifier, GCNSlideClassifier):
        steps += [("topk", TopKSelector(k=4)), ("graph", PearsonGraphBuilder())]
    return Pipeline([*steps, ("clf", classifier)])


def _mismatched(kind):
    y = ["negative", "carcinoma"] * 4
    if kind == "gcn-features":
        return _tiny_gcn(max_epochs=1).fit(_graphs(5), y)
    if kind == "gcn-profile":
        return _tiny_gcn(max_epochs=1).fit(_graphs(8, profile_length=6), y)
    bags, labels = _bags(np.random.default_rng(0))
    if kind == "proportion":
        columns = ["negative", "carcinoma"]
        return ProportionThresholdClassifier(columns=columns).fit(bags, labels)
    return PooledFeatureClassifier().fit(bags, labels)


@pytest.mark.parametrize(
    "kind, message",
    [
        (
            "gcn-features",
            "model.steps[5][1] was fitted on tile features of width 5, but "
            "model.steps[2][1].estimator before it makes them of width 8",
        ),
        (
            "gcn-profile",
            "model.steps[5][1] was fitted on slide profiles of width 6, but "
            "model.steps[3][1] before it makes them of width 24",
        ),
        (
            "proportion",
            "model.steps[3][1] was fitted on patch class probabilities of width "
            "2, but model.steps[2][1].estimator before it makes them of width 4",
        ),
        (
            "pooled",
            "model.steps[3][1] was fitted on tile features of width 3, but "
            "model.steps[2][1].estimator before it makes them of width 8",
        ),
    ],
)
def test_a_step_fitted_on_what_the_steps_before_it_do_not_make_is_refused(
    tiny_segmenter, tmp_path, kind, message
):
    pipe = _assembled(tiny_segmenter, _mismatched(kind))
    path = save_model(pipe, tmp_path / "assembled.sgm")
    with pytest.raises(ModelFileError, match=rf"assembled\.sgm': {re.escape(message)}"):
        load_model(path)


def test_sklearn_steps_of_other_widths_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    y = [0, 1] * 5
    scaler = StandardScaler().fit(rng.normal(size=(10, 3)))
    logistic = LogisticRegression().fit(rng.normal(size=(10, 4)), y)
    pipe = Pipeline([("scale", scaler), ("lr", logistic)])
    with pytest.raises(
        ModelFileError,
        match=re.escape(
            "model.steps[1][1] was fitted on feature columns of width 4, but "
            "model.steps[0][1] before it makes them of width 3"
        ),
    ):
        load_model(save_model(pipe, tmp_path / "columns.sgm"))


# -- what our own code writes, loaded unchanged ------------------------------------


def _assert_same(original, loaded, where="model"):
    """The same class, parameters and fitted state, networks by weights."""
    assert type(loaded) is type(original), where
    if isinstance(original, NeuralNet):
        weights = original.module_.state_dict()
        copy = loaded.module_.state_dict()
        assert copy.keys() == weights.keys(), where
        for key, value in weights.items():
            assert torch.equal(copy[key], value), f"{where}.{key}"
        assert len(loaded.history) == len(original.history), where
    elif isinstance(original, BaseEstimator):
        assert vars(loaded).keys() == vars(original).keys(), where
        for key, value in vars(original).items():
            _assert_same(value, getattr(loaded, key), f"{where}.{key}")
    elif isinstance(original, np.ndarray):
        assert loaded.dtype == original.dtype, where
        assert loaded.tolist() == original.tolist(), where
    elif isinstance(original, dict):
        assert loaded.keys() == original.keys(), where
        for key, value in original.items():
            _assert_same(value, loaded[key], f"{where}[{key!r}]")
    elif isinstance(original, list | tuple):
        assert len(loaded) == len(original), where
        for i, (value, copy) in enumerate(zip(original, loaded)):
            _assert_same(value, copy, f"{where}[{i}]")
    else:
        assert loaded == original, where


@pytest.fixture(scope="module")
def every_kind(fitted_pipeline, tiny_segmenter, cohort, baselines, patch_dataset):
    """A fitted (or unfitted) model of every kind our code writes, by name."""
    slides, labels = cohort
    graphs = _graphs(4)
    y = ["negative", "LGIN", "HGIN", "carcinoma"] * 2
    patches, masks, _ = patch_dataset
    unlabelled = PatchSegmenter(
        base_channels=4, depth=2, feature_dim=8, max_epochs=1,
        validation_fraction=0, random_state=0,
    ).fit(patches[:8], masks[:8])  # fmt: skip
    columns = list(tiny_segmenter.classes_)
    proportion = ProportionThresholdClassifier(columns=columns)
    pooled_scaled = PooledFeatureClassifier(
        estimator=Pipeline(
            [("scale", StandardScaler(with_mean=False)), ("lr", LogisticRegression())]
        )
    )
    models = {
        "pipeline": fitted_pipeline,
        "proportion-pipeline": _assembled(tiny_segmenter, proportion),
        "pooled-pipeline": _assembled(tiny_segmenter, pooled_scaled),
        "segmenter": tiny_segmenter,
        "segmenter-unlabelled": unlabelled,
        "gcn-without-profiles": _tiny_gcn(max_epochs=2).fit(graphs, y),
        **{
            f"stain-{m}": StainNormalizer(method=m, target=TARGET_IMAGE, random_state=0)
            for m in ("macenko", "reinhard", "vahadane")
        },  # fmt: skip
        **{f"baseline-{name}": model for name, model in baselines.items()},
    }
    for name in ("proportion-pipeline", "pooled-pipeline"):
        models[name].fit(slides, labels)
    for name in ("stain-macenko", "stain-reinhard", "stain-vahadane"):
        models[name].fit()
    for estimator in estimator_instances():
        models[f"unfitted-{type(estimator).__name__}"] = estimator
    return models


def test_every_allowlisted_class_declares_its_fitted_attributes():
    assert set(FITTED) == set(allowed_estimators())


@pytest.mark.parametrize(
    "name",
    [
        "pipeline",
        "proportion-pipeline",
        "pooled-pipeline",
        "segmenter",
        "segmenter-unlabelled",
        "gcn-without-profiles",
        "stain-macenko",
        "stain-reinhard",
        "stain-vahadane",
        "baseline-proportion",
        "baseline-pooled",
        "baseline-pooled-pipeline",
        "unfitted",
    ],
)
def test_every_kind_of_model_our_code_writes_loads_unchanged(
    every_kind, tmp_path, name
):
    chosen = {
        key: model
        for key, model in every_kind.items()
        if key == name or (name == "unfitted" and key.startswith("unfitted-"))
    }
    for key, model in chosen.items():
        _assert_same(model, load_model(save_model(model, tmp_path / f"{key}.sgm")))


def test_a_pipeline_loads_to_the_same_predictions(fitted_pipeline, cohort, model_file):
    slides = cohort[0][:2]
    np.testing.assert_array_equal(
        load_model(model_file).predict_proba(slides),
        fitted_pipeline.predict_proba(slides),
    )


# -- the command line ----------------------------------------------------------------


def test_predict_with_a_tampered_model_is_a_named_user_error(model_file, tmp_path):
    from PIL import Image

    slide = tmp_path / "slide.png"
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(slide)
    edit, message = TAMPERED["temperature-nan"]
    tampered = _tampered(model_file, edit, name=f"{tmp_path.name}.sgm")
    result = run_cli("predict", tampered, slide, "--out", tmp_path / "out")
    assert_user_error(result, "predict", f"{tmp_path.name}.sgm': {message}")
    assert not (tmp_path / "out").exists()


def test_weights_of_another_dtype_than_the_network_are_refused(model_file):
    # Consistent in the manifest and the .npy, but read into a float32
    # network they would take their size twice.
    def as_float64(data, contents):
        net = _fitted(data, "PatchSegmenter")["net_"]["__skorch_net__"]
        key, node = next(iter(net[2].items()))
        member, _, shape, grad = node["__tensor__"]
        array = np.load(io.BytesIO(contents[member])).astype(np.float64)
        buffer = io.BytesIO()
        np.save(buffer, array)
        contents[member] = buffer.getvalue()
        net[2][key] = {"__tensor__": [member, "float64", shape, grad]}

    with pytest.raises(
        ModelFileError,
        match=rf"{re.escape(SEGMENTER)}\.net_\.module_\.\S+: 'arrays/\d+\.npy' "
        r"holds <f8; the network is <f4",
    ):
        load_model(_tampered(model_file, as_float64))
