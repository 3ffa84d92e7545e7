"""save_model / load_model: round trips, and files that must be refused."""

import json
import os
import pickle
import re
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import SVC
from skorch.exceptions import DeviceWarning

from sklearn_gastric import (
    GCNSlideClassifier,
    OtsuFilter,
    PatchSegmenter,
    PearsonGraphBuilder,
    PooledFeatureClassifier,
    ProportionThresholdClassifier,
    Slide,
    SlideGraph,
    StainNormalizer,
    TileBag,
    Tiler,
    TopKSelector,
    __version__,
)
from sklearn_gastric._persistence import ModelFileError, load_model, save_model
from sklearn_gastric.datasets import make_gastric_slides, make_patch_dataset

TILE = 32


@pytest.fixture(scope="module")
def segmenter():
    patches, masks, labels = make_patch_dataset(32, tile_size=TILE, random_state=0)
    return PatchSegmenter(
        base_channels=4,
        depth=2,
        feature_dim=8,
        max_epochs=1,
        batch_size=16,
        validation_fraction=0,
        random_state=0,
    ).fit(patches, masks, labels)


@pytest.fixture(scope="module")
def cohort():
    arrays, labels, _ = make_gastric_slides(
        6, size=256, classes=["negative", "carcinoma"], random_state=0
    )
    return [Slide(a, name=f"slide-{i}") for i, a in enumerate(arrays)], labels


@pytest.fixture(scope="module")
def fitted_pipeline(segmenter, cohort, he_target_path):
    pipe = Pipeline(
        [
            ("stain", StainNormalizer(target=Path(he_target_path))),
            ("tile", Tiler(tile_size=TILE)),
            ("tissue", OtsuFilter(min_tissue=0.5)),
            ("seg", FrozenEstimator(segmenter)),
            ("topk", TopKSelector(k=4)),
            ("graph", PearsonGraphBuilder(threshold=0.5)),
            (
                "gcn",
                GCNSlideClassifier(
                    hidden_units=8,
                    max_epochs=10,
                    class_weight="balanced",
                    random_state=0,
                ),
            ),
        ]
    )
    return pipe.fit(*cohort)


@pytest.fixture
def model_file(fitted_pipeline, tmp_path):
    return save_model(fitted_pipeline, tmp_path / "model.sgm")


class _Payload:
    """Unpickling this creates ``marker``: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def _rewrite(path, *, manifest=None, members=None, drop=()):
    """Copy a model file with an edited manifest and/or replaced members."""
    with zipfile.ZipFile(path) as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(contents["manifest.json"])
    if manifest is not None:
        manifest(data)
    contents["manifest.json"] = json.dumps(data).encode()
    contents.update(members or {})
    for name in drop:
        del contents[name]
    tampered = Path(path).with_name("tampered.sgm")
    with zipfile.ZipFile(tampered, "w") as archive:
        for name, content in contents.items():
            archive.writestr(name, content)
    return tampered


def _find(node, predicate):
    """The first JSON object of the manifest for which ``predicate`` holds."""
    if isinstance(node, dict):
        if predicate(node):
            return node
        children = node.values()
    elif isinstance(node, list):
        children = node
    else:
        return None
    for child in children:
        found = _find(child, predicate)
        if found is not None:
            return found
    return None


def _estimator_node(data, name):
    return _find(
        data,
        lambda node: node.get("__estimator__", [None])[0] == f"sklearn_gastric.{name}",
    )["__estimator__"]


# Round trips


def test_pipeline_round_trip_predicts_identically(fitted_pipeline, cohort, model_file):
    slides, _ = cohort
    loaded = load_model(model_file)
    np.testing.assert_array_equal(
        loaded.predict_proba(slides), fitted_pipeline.predict_proba(slides)
    )
    np.testing.assert_array_equal(
        loaded.predict(slides), fitted_pipeline.predict(slides)
    )
    assert [name for name, _ in loaded.steps] == [
        name for name, _ in fitted_pipeline.steps
    ]
    for (name, original), (_, copy) in zip(fitted_pipeline.steps, loaded.steps):
        assert type(copy) is type(original), name
    # Paths are stored as strings; every other parameter comes back as it was.
    stain = loaded.named_steps["stain"]
    assert stain.target == os.fspath(fitted_pipeline.named_steps["stain"].target)
    for name in ("tile", "tissue", "topk", "graph", "gcn"):
        assert (
            loaded.named_steps[name].get_params()
            == fitted_pipeline.named_steps[name].get_params()
        )


def test_round_trip_keeps_the_fitted_state(fitted_pipeline, model_file):
    loaded = load_model(model_file)
    seg, seg_copy = (p.named_steps["seg"].estimator for p in (fitted_pipeline, loaded))
    assert seg_copy.get_params() == seg.get_params()
    np.testing.assert_array_equal(seg_copy.classes_, seg.classes_)
    assert seg_copy.n_classes_ == seg.n_classes_
    weights = seg.net_.module_.state_dict()
    loaded_weights = seg_copy.net_.module_.state_dict()
    assert loaded_weights.keys() == weights.keys()
    for name, value in weights.items():
        assert torch.equal(loaded_weights[name], value), name
    assert not seg_copy.net_.module_.training
    patches = make_patch_dataset(4, tile_size=TILE, random_state=1)[0]
    np.testing.assert_array_equal(
        seg_copy.predict_proba_maps(patches), seg.predict_proba_maps(patches)
    )
    gcn, gcn_copy = (p.named_steps["gcn"] for p in (fitted_pipeline, loaded))
    for attribute in ("classes_", "feature_mean_", "feature_scale_"):
        np.testing.assert_array_equal(
            getattr(gcn_copy, attribute), getattr(gcn, attribute)
        )
    # class_weight="balanced" puts a tensor among the net's parameters.
    assert torch.equal(gcn_copy.net_.criterion__weight, gcn.net_.criterion__weight)
    assert gcn_copy.net_.history[-1, "train_loss"] == gcn.net_.history[-1, "train_loss"]
    stain, stain_copy = (p.named_steps["stain"] for p in (fitted_pipeline, loaded))
    np.testing.assert_array_equal(stain_copy.stain_matrix_, stain.stain_matrix_)
    np.testing.assert_array_equal(
        stain_copy.target_params_["max_concentrations"],
        stain.target_params_["max_concentrations"],
    )


def test_model_file_holds_only_json_and_npy(model_file):
    with zipfile.ZipFile(model_file) as archive:
        names = archive.namelist()
        manifest = json.loads(archive.read("manifest.json"))
    assert names[0] == "manifest.json"
    assert all(re.fullmatch(r"arrays/\d{5}\.npy", name) for name in names[1:])
    assert manifest["format"] == "sklearn-gastric-model"
    assert manifest["sklearn_gastric_version"] == __version__
    assert manifest["model"]["__estimator__"][0] == "sklearn.pipeline.Pipeline"


def test_loading_leaves_the_global_torch_random_state(model_file):
    state = torch.get_rng_state()
    load_model(model_file)
    assert torch.equal(torch.get_rng_state(), state)


def _bag(n_lesion_tiles, rng):
    proba = np.tile([0.9, 0.1], (10, 1))
    proba[:n_lesion_tiles] = [0.2, 0.8]
    features = rng.normal(n_lesion_tiles, 1.0, size=(10, 3))
    return TileBag(
        np.zeros((8, 8, 3), np.uint8),
        np.zeros((10, 2), int),
        tile_size=8,
        patch_proba=proba,
        features=features,
    )


@pytest.mark.parametrize(
    "classifier",
    [
        ProportionThresholdClassifier(
            columns=["negative", "carcinoma"], severity_order=["negative", "carcinoma"]
        ),
        ProportionThresholdClassifier(
            columns=["negative", "carcinoma"],
            severity_order=["negative", "HGIN", "carcinoma"],
        ),
        PooledFeatureClassifier(),
        PooledFeatureClassifier(
            pooling="max",
            estimator=Pipeline(
                [("scale", StandardScaler()), ("lr", LogisticRegression(C=0.5))]
            ),
        ),
    ],
    ids=["proportion", "proportion-inf", "pooled", "pooled-pipeline"],
)
def test_baselines_round_trip(classifier, tmp_path):
    rng = np.random.default_rng(0)
    bags = [_bag(n, rng) for n in (0, 1, 2, 5, 6, 8)]
    # An object array of labels, as pandas gives.
    y = np.array(["negative"] * 3 + ["carcinoma"] * 3, dtype=object)
    classifier.fit(bags, y)
    loaded = load_model(save_model(classifier, tmp_path / "baseline.sgm"))
    np.testing.assert_array_equal(
        loaded.predict_proba(bags), classifier.predict_proba(bags)
    )
    np.testing.assert_array_equal(loaded.classes_, classifier.classes_)
    assert loaded.classes_.dtype == classifier.classes_.dtype
    if isinstance(classifier, ProportionThresholdClassifier):
        # inf thresholds (a class never predicted) survive JSON.
        np.testing.assert_array_equal(loaded.thresholds_, classifier.thresholds_)
        assert np.isinf(loaded.thresholds_).any() == (
            len(classifier.severity_order) == 3
        )


def test_unfitted_estimator_round_trips_unfitted(tmp_path):
    gcn = GCNSlideClassifier(
        hidden_units=3,
        dropout=0.25,
        random_state=np.random.RandomState(7),
    )
    loaded = load_model(save_model(gcn, tmp_path / "unfitted.sgm"))
    assert loaded.hidden_units == 3 and loaded.dropout == 0.25
    # A RandomState parameter comes back in the same state.
    assert loaded.random_state.randint(1000, size=5).tolist() == (
        np.random.RandomState(7).randint(1000, size=5).tolist()
    )
    with pytest.raises(NotFittedError):
        loaded.predict([SlideGraph(np.ones((2, 2)), np.zeros((2, 2)))])


def test_cache_locations_are_not_stored(segmenter, tmp_path):
    cached = PatchSegmenter(memory=str(tmp_path / "cache"))
    pipe = Pipeline([("tile", Tiler()), ("seg", FrozenEstimator(cached))])
    pipe.set_params(memory=joblib.Memory(tmp_path / "pipe-cache", verbose=0))
    loaded = load_model(save_model(pipe, tmp_path / "cached.sgm"))
    assert loaded.memory is None
    assert loaded.named_steps["seg"].estimator.memory is None


def test_gpu_model_loads_on_cpu_without_cuda(segmenter, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available: the CPU fallback does not apply.")
    path = save_model(segmenter, tmp_path / "seg.sgm")

    def on_cuda(data):
        net = data["model"]["__estimator__"][2]["net_"]["__skorch_net__"]
        net[1]["device"] = "cuda"

    with pytest.warns(DeviceWarning, match="'cuda', which is not available"):
        loaded = load_model(_rewrite(path, manifest=on_cuda))
    patches = make_patch_dataset(2, tile_size=TILE, random_state=1)[0]
    np.testing.assert_array_equal(
        loaded.predict_proba_maps(patches), segmenter.predict_proba_maps(patches)
    )


# What save_model refuses


@pytest.mark.parametrize(
    "model, match",
    [
        (
            PooledFeatureClassifier(estimator=SVC()),
            r"model\.estimator is a sklearn\.svm.*SVC, which is not one of the "
            r"estimators a model file can hold",
        ),
        (
            Pipeline([("f", FunctionTransformer(np.log1p)), ("k", TopKSelector())]),
            r"model\.steps\[0\]\[1\] is a .*FunctionTransformer",
        ),
        (
            StainNormalizer(target=Slide(np.zeros((8, 8, 3), np.uint8))),
            r"model\.target is a sklearn_gastric\.io.*Slide, which a model file "
            r"cannot store without pickle",
        ),
    ],
    ids=["svc", "callable", "slide"],
)
def test_save_refuses_what_json_and_arrays_cannot_hold(model, match, tmp_path):
    with pytest.raises(TypeError, match=match):
        save_model(model, tmp_path / "refused.sgm")
    assert not list(tmp_path.iterdir())


# What load_model refuses, without running anything


def test_refuses_a_newer_major_version(model_file):
    major = int(__version__.split(".")[0])

    def newer(data):
        data["sklearn_gastric_version"] = f"{major + 1}.2.0"

    with pytest.raises(
        ModelFileError,
        match=rf"made by sklearn-gastric {major + 1}\.2 .*this is {major}\.\d+ "
        r".*upgrade",
    ):
        load_model(_rewrite(model_file, manifest=newer))

    def newer_format(data):
        data["format_version"] += 1

    with pytest.raises(ModelFileError, match="upgrade sklearn-gastric"):
        load_model(_rewrite(model_file, manifest=newer_format))


def test_refuses_a_pickle_without_unpickling_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.joblib"
    joblib.dump(_Payload(marker), path)
    with pytest.raises(ModelFileError, match=r"model\.joblib.*not a zip archive"):
        load_model(path)
    assert not marker.exists()
    # The payload is live: unpickling it does create the marker.
    joblib.load(path)
    assert marker.exists()


def test_refuses_a_torch_save_archive(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    torch.save({"payload": _Payload(marker)}, path)
    with pytest.raises(ModelFileError, match=r"model\.pt': no manifest\.json"):
        load_model(path)
    assert not marker.exists()


def test_refuses_an_extra_pickle_member(model_file, tmp_path):
    marker = tmp_path / "pwned"
    tampered = _rewrite(
        model_file, members={"payload.pkl": pickle.dumps(_Payload(marker))}
    )
    with pytest.raises(ModelFileError, match=r"tampered\.sgm.*'payload\.pkl'"):
        load_model(tampered)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["pickle", "object-npy"])
def test_refuses_a_pickle_in_place_of_an_array(model_file, tmp_path, kind):
    marker = tmp_path / "pwned"
    payload = np.array([_Payload(marker)], dtype=object)
    if kind == "pickle":
        content = pickle.dumps(payload)
    else:
        buffer = __import__("io").BytesIO()
        np.save(buffer, payload, allow_pickle=True)
        content = buffer.getvalue()
    tampered = _rewrite(model_file, members={"arrays/00000.npy": content})
    with pytest.raises(ModelFileError, match=r"'arrays/00000\.npy' is not a plain"):
        load_model(tampered)
    assert not marker.exists()


@pytest.mark.parametrize(
    "class_name, params",
    [
        ("os.system", {"command": "touch {marker}"}),
        ("builtins.eval", {"source": "open('{marker}', 'w')"}),
        ("sklearn.preprocessing.FunctionTransformer", {}),
    ],
)
def test_refuses_a_class_outside_the_allowlist(
    model_file, tmp_path, class_name, params
):
    marker = tmp_path / "pwned"
    params = {k: v.format(marker=marker) for k, v in params.items()}

    def swap_class(data):
        step = data["model"]["__estimator__"][1]["steps"][1]["__tuple__"]
        step[1] = {"__estimator__": [class_name, params, {}]}

    with pytest.raises(
        ModelFileError,
        match=rf"class '{re.escape(class_name)}' is not one of the estimators",
    ):
        load_model(_rewrite(model_file, manifest=swap_class))
    assert not marker.exists()


def _shape_edit(data):
    _find(data, lambda node: "__array__" in node)["__array__"][2] = [7]


def _dtype_edit(data):
    _find(data, lambda node: "__tensor__" in node)["__tensor__"][1] = "float64"


def _network_size_edit(data):
    net = _estimator_node(data, "PatchSegmenter")[2]["net_"]["__skorch_net__"]
    net[1]["module__feature_dim"] = 9


def _attribute_edit(data):
    _estimator_node(data, "TopKSelector")[2]["transform"] = "nothing"


def _dunder_edit(data):
    _estimator_node(data, "TopKSelector")[2]["__class__"] = "nothing"


def _memory_edit(data):
    data["model"]["__estimator__"][1]["memory"] = "/tmp/elsewhere"


def _tag_edit(data):
    _estimator_node(data, "TopKSelector")[1]["k"] = {"__import__": "os"}


@pytest.mark.parametrize(
    "edit, match",
    [
        (_shape_edit, r"holds <f8 \[2, 3\]; the manifest says <f8 \[7\]"),
        (_dtype_edit, r"the manifest says <f8"),
        (_network_size_edit, "the weights do not fit the network"),
        (_attribute_edit, "'transform' is not a fitted attribute"),
        (_dunder_edit, "'__class__' is not a fitted attribute"),
        (_memory_edit, "never sets a cache location"),
        (_tag_edit, "unknown tag '__import__'"),
    ],
    ids=["shape", "dtype", "network", "method", "dunder", "memory", "tag"],
)
def test_refuses_a_manifest_that_disagrees(model_file, edit, match):
    with pytest.raises(ModelFileError, match=match):
        load_model(_rewrite(model_file, manifest=edit))


def test_refuses_missing_and_unreferenced_arrays(model_file):
    with pytest.raises(ModelFileError, match=r"names 'arrays/00000\.npy', which"):
        load_model(_rewrite(model_file, drop=["arrays/00000.npy"]))
    buffer = __import__("io").BytesIO()
    np.save(buffer, np.zeros(3))
    extra = {"arrays/99999.npy": buffer.getvalue()}
    with pytest.raises(ModelFileError, match=r"'arrays/99999\.npy'\] are not ref"):
        load_model(_rewrite(model_file, members=extra))


def test_refuses_non_model_files(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a model")
    with pytest.raises(ModelFileError, match=r"notes\.txt.*not a zip archive"):
        load_model(text)
    other_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("manifest.json", json.dumps({"format": "something-else"}))
    with pytest.raises(ModelFileError, match="does not declare the format"):
        load_model(other_zip)
    with pytest.raises(FileNotFoundError, match="missing.sgm"):
        load_model(tmp_path / "missing.sgm")
