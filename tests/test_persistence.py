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
from hostile_models import (
    Payload,
    declare_array,
    find,
    read_members,
    rewrite,
    traced_peak,
    zip_bomb,
)
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
from sklearn_gastric._persistence._format import MAX_MANIFEST_BYTES
from sklearn_gastric.datasets import make_patch_dataset

TILE = 32


@pytest.fixture(scope="module")
def fitted_pipeline(tiny_segmenter, cohort, he_target_path):
    pipe = Pipeline(
        [
            ("stain", StainNormalizer(target=Path(he_target_path))),
            ("tile", Tiler(tile_size=TILE)),
            ("tissue", OtsuFilter(min_tissue=0.5)),
            ("seg", FrozenEstimator(tiny_segmenter)),
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


def _estimator_node(data, name):
    return find(
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


def test_cache_locations_are_not_stored(tiny_segmenter, tmp_path):
    cached = PatchSegmenter(memory=str(tmp_path / "cache"))
    pipe = Pipeline([("tile", Tiler()), ("seg", FrozenEstimator(cached))])
    pipe.set_params(memory=joblib.Memory(tmp_path / "pipe-cache", verbose=0))
    loaded = load_model(save_model(pipe, tmp_path / "cached.sgm"))
    assert loaded.memory is None
    assert loaded.named_steps["seg"].estimator.memory is None


def _loss_of(net, y_pred, y_true):
    return float(net.criterion_(y_pred, y_true))


def test_the_segmenter_loss_set_in_fit_round_trips(tmp_path):
    patches, masks, labels = make_patch_dataset(24, tile_size=TILE, random_state=0)
    labels = np.where(np.arange(len(labels)) < 18, "negative", "HGIN")
    seg = PatchSegmenter(
        base_channels=4, depth=2, feature_dim=8, max_epochs=1, dice_weight=0.3,
        classification_loss="euclidean", class_weight="balanced",
        validation_fraction=0, random_state=0,
    ).fit(patches, masks, labels)  # fmt: skip
    loaded = load_model(save_model(seg, tmp_path / "seg.sgm"))
    criterion, copy = seg.net_.criterion_, loaded.net_.criterion_
    assert type(loaded.net_) is type(seg.net_)
    assert type(copy) is type(criterion)
    assert (copy.dice_weight, copy.classification_loss) == (0.3, "euclidean")
    assert copy.class_weight == criterion.class_weight == (2.0, 2 / 3)
    assert copy.eps == criterion.eps
    y_pred = (torch.randn(3, 8, 8), torch.randn(3, 2), torch.zeros(3, 8))
    y_true = {"mask": torch.rand(3, 8, 8), "label": torch.tensor([0, 1, 1])}
    assert _loss_of(loaded.net_, y_pred, y_true) == _loss_of(seg.net_, y_pred, y_true)


def test_the_gcn_loss_and_module_set_in_fit_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    y = ["negative"] * 6 + ["HGIN"] * 2
    graphs = [SlideGraph(rng.normal(size=(3, 2)), np.zeros((3, 3))) for _ in y]
    gcn = GCNSlideClassifier(
        hidden_units=4, n_layers=1, readout="max", class_weight="balanced",
        weight_decay=0.01, max_epochs=2, random_state=0,
    ).fit(graphs, y)  # fmt: skip
    loaded = load_model(save_model(gcn, tmp_path / "gcn.sgm"))
    assert type(loaded.net_.criterion_) is torch.nn.CrossEntropyLoss
    torch.testing.assert_close(
        loaded.net_.criterion_.weight, torch.tensor([2.0, 2 / 3]), rtol=0, atol=0
    )
    assert loaded.net_.module_.readout == "max"
    assert len(loaded.net_.module_.convs) == 1
    assert loaded.net_.optimizer__weight_decay == 0.01
    logits, target = torch.randn(4, 2), torch.tensor([0, 1, 1, 0])
    assert _loss_of(loaded.net_, logits, target) == _loss_of(gcn.net_, logits, target)


def test_the_loader_builds_each_net_as_fit_does(tiny_segmenter, tmp_path, monkeypatch):
    # What fit's net-building method says, and the file does not, still
    # reaches the loaded net: both go through the one method.
    path = save_model(tiny_segmenter, tmp_path / "seg.sgm")
    make_net = PatchSegmenter._make_net

    def with_eps(self, **overrides):
        return make_net(self, **{"criterion__eps": 0.25, **overrides})

    monkeypatch.setattr(PatchSegmenter, "_make_net", with_eps)
    assert load_model(path).net_.criterion_.eps == 0.25


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("kind", ["PatchSegmenter", "GCNSlideClassifier"])
def test_pickled_gpu_nets_load_on_cpu_without_cuda(
    tiny_segmenter, fitted_pipeline, kind
):
    model = tiny_segmenter if kind == "PatchSegmenter" else fitted_pipeline[-1]
    gpu = pickle.loads(pickle.dumps(model))
    gpu.net_.device = "cuda"
    with pytest.warns(DeviceWarning, match=rf"This {kind} was trained on 'cuda'"):
        loaded = pickle.loads(pickle.dumps(gpu))
    assert loaded.net_.device == "cpu"
    assert joblib.hash(pickle.loads(pickle.dumps(model))) == joblib.hash(model)
    for name, value in model.net_.module_.state_dict().items():
        assert torch.equal(loaded.net_.module_.state_dict()[name], value), name


def test_gpu_model_loads_on_cpu_without_cuda(tiny_segmenter, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available: the CPU fallback does not apply.")
    path = save_model(tiny_segmenter, tmp_path / "seg.sgm")

    def on_cuda(data):
        net = data["model"]["__estimator__"][2]["net_"]["__skorch_net__"]
        net[1]["device"] = "cuda"

    with pytest.warns(DeviceWarning, match="'cuda', which is not available"):
        loaded = load_model(rewrite(path, manifest=on_cuda))
    patches = make_patch_dataset(2, tile_size=TILE, random_state=1)[0]
    np.testing.assert_array_equal(
        loaded.predict_proba_maps(patches), tiny_segmenter.predict_proba_maps(patches)
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
        load_model(rewrite(model_file, manifest=newer))

    def newer_format(data):
        data["format_version"] += 1

    with pytest.raises(ModelFileError, match="upgrade sklearn-gastric"):
        load_model(rewrite(model_file, manifest=newer_format))


def test_refuses_a_pickle_without_unpickling_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.joblib"
    joblib.dump(Payload(marker), path)
    with pytest.raises(ModelFileError, match=r"model\.joblib.*can only be a pickle"):
        load_model(path)
    assert not marker.exists()
    # The payload is live: unpickling it does create the marker.
    joblib.load(path)
    assert marker.exists()


def test_refuses_a_torch_save_archive(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    torch.save({"payload": Payload(marker)}, path)
    with pytest.raises(ModelFileError, match=r"model\.pt': no manifest\.json"):
        load_model(path)
    assert not marker.exists()


def test_refuses_an_extra_pickle_member(model_file, tmp_path):
    marker = tmp_path / "pwned"
    tampered = rewrite(
        model_file, members={"payload.pkl": pickle.dumps(Payload(marker))}
    )
    with pytest.raises(ModelFileError, match=r"tampered\.sgm.*'payload\.pkl'"):
        load_model(tampered)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["pickle", "object-npy"])
def test_refuses_a_pickle_in_place_of_an_array(model_file, tmp_path, kind):
    marker = tmp_path / "pwned"
    payload = np.array([Payload(marker)], dtype=object)
    if kind == "pickle":
        content = pickle.dumps(payload)
    else:
        buffer = __import__("io").BytesIO()
        np.save(buffer, payload, allow_pickle=True)
        content = buffer.getvalue()
    tampered = rewrite(model_file, members={"arrays/00000.npy": content})
    # Refused from the .npy header, before any byte of the payload is read.
    expected = "is not a plain" if kind == "pickle" else "dtype object is not allowed"
    with pytest.raises(ModelFileError, match=expected):
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
        load_model(rewrite(model_file, manifest=swap_class))
    assert not marker.exists()


def _shape_edit(data):
    find(data, lambda node: "__array__" in node)["__array__"][2] = [7]


def _dtype_edit(data):
    find(data, lambda node: "__tensor__" in node)["__tensor__"][1] = "float64"


def _network_size_edit(data):
    net = _estimator_node(data, "PatchSegmenter")[2]["net_"]["__skorch_net__"]
    net[1]["module__feature_dim"] = 9


def _attribute_edit(data):
    _estimator_node(data, "TopKSelector")[2]["transform"] = "nothing"


def _dunder_edit(data):
    _estimator_node(data, "TopKSelector")[2]["__class__"] = "nothing"


def _memory_edit(data):
    data["model"]["__estimator__"][1]["memory"] = "/tmp/elsewhere"


def _parameter_edit(data):
    _estimator_node(data, "TopKSelector")[1]["k"] = -5


def _tag_edit(data):
    _estimator_node(data, "TopKSelector")[1]["k"] = {"__import__": "os"}


@pytest.mark.parametrize(
    "edit, match",
    [
        (_shape_edit, r"holds <f8 \[2, 3\]; the manifest says <f8 \[7\]"),
        (_dtype_edit, r"the manifest says <f8"),
        (_network_size_edit, "stored weights do not fit the network"),
        (_attribute_edit, "'transform' is not a fitted attribute"),
        (_dunder_edit, "'__class__' is not a fitted attribute"),
        (_memory_edit, "never sets a cache location"),
        (_tag_edit, "unknown tag '__import__'"),
        (_parameter_edit, "The 'k' parameter of TopKSelector must be an int"),
    ],
    ids=["shape", "dtype", "network", "method", "dunder", "memory", "tag", "param"],
)
def test_refuses_a_manifest_that_disagrees(model_file, edit, match):
    with pytest.raises(ModelFileError, match=match):
        load_model(rewrite(model_file, manifest=edit))


def test_refuses_missing_and_unreferenced_arrays(model_file):
    with pytest.raises(ModelFileError, match=r"names 'arrays/00000\.npy', which"):
        load_model(rewrite(model_file, drop=["arrays/00000.npy"]))
    buffer = __import__("io").BytesIO()
    np.save(buffer, np.zeros(3))
    extra = {"arrays/99999.npy": buffer.getvalue()}
    with pytest.raises(
        ModelFileError,
        match=r"1 member\(s\) are not referenced by the manifest \(arrays/99999\.npy\)",
    ):
        load_model(rewrite(model_file, members=extra))


def test_refuses_non_model_files(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a model")
    with pytest.raises(ModelFileError, match=r"notes\.txt.*can only be a pickle"):
        load_model(text)
    other_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("manifest.json", json.dumps({"format": "something-else"}))
    with pytest.raises(ModelFileError, match="does not declare the format"):
        load_model(other_zip)
    with pytest.raises(FileNotFoundError, match="missing.sgm"):
        load_model(tmp_path / "missing.sgm")


# Hostile files: never code, bounded memory, clear messages


@pytest.mark.parametrize("name", ["evil.sgm", "EVIL.SGM", "evil.Sgm", "m.joblib.sgm"])
def test_a_file_named_sgm_is_never_unpickled(tmp_path, name):
    marker = tmp_path / "pwned"
    path = tmp_path / name
    joblib.dump(Payload(marker), path)
    for trust in (False, True):
        with pytest.raises(ModelFileError, match="is named .sgm but is not"):
            load_model(path, trust_pickle=trust)
    assert not marker.exists()


def test_pickles_are_written_and_read_only_on_request(
    fitted_pipeline, cohort, tmp_path
):
    path = save_model(fitted_pipeline, tmp_path / "model.pkl", metadata={"run": 1})
    envelope = joblib.load(path)
    assert envelope["format"] == "sklearn-gastric-model"
    assert envelope["metadata"] == {"run": 1}
    with pytest.raises(ModelFileError, match=r"model\.pkl.*trust_pickle=True"):
        load_model(path)
    loaded = load_model(path, trust_pickle=True)
    np.testing.assert_array_equal(
        loaded.predict_proba(cohort[0]), fitted_pipeline.predict_proba(cohort[0])
    )
    # A plain joblib.dump of an estimator loads too, when trusted.
    joblib.dump(TopKSelector(k=3), tmp_path / "plain.joblib")
    assert load_model(tmp_path / "plain.joblib", trust_pickle=True).k == 3
    # A pickle-free file loads whatever its name, trust or not.
    renamed = tmp_path / "model.joblib"
    os.replace(save_model(fitted_pipeline, tmp_path / "m.sgm"), renamed)
    assert isinstance(load_model(renamed), Pipeline)


def test_metadata_is_kept_in_the_manifest(model_file, fitted_pipeline, tmp_path):
    path = save_model(fitted_pipeline, tmp_path / "m.sgm", metadata={"slides": 6})
    with zipfile.ZipFile(path) as archive:
        assert json.loads(archive.read("manifest.json"))["metadata"] == {"slides": 6}
    with pytest.raises(TypeError, match="metadata must hold JSON values only"):
        save_model(fitted_pipeline, tmp_path / "x.sgm", metadata={"f": print})
    assert not (tmp_path / "x.sgm").exists()


@pytest.mark.parametrize("manifest_agrees", [True, False])
def test_an_array_declaring_terabytes_is_refused_before_allocating(
    model_file, manifest_agrees
):
    tampered = declare_array(model_file, (10**6, 10**6), in_manifest=manifest_agrees)
    match = "but holds" if manifest_agrees else "the manifest says"

    def load():
        with pytest.raises(ModelFileError, match=match):
            load_model(tampered)

    assert traced_peak(load) < 64 * 2**20


def test_a_zip_bomb_is_refused_before_it_is_inflated(model_file, tmp_path):
    bomb = zip_bomb(model_file)
    contents = read_members(model_file)
    limit = MAX_MANIFEST_BYTES

    def load():
        with pytest.raises(ModelFileError, match=f"more than the {limit} a model"):
            load_model(bomb)

    assert traced_peak(load) < 16 * 2**20
    # An array member compressed (a bomb of zeros, say) is refused as such.
    member = next(name for name in contents if name.startswith("arrays/"))
    with zipfile.ZipFile(bomb, "w") as archive:
        for name, content in contents.items():
            kind = zipfile.ZIP_DEFLATED if name == member else zipfile.ZIP_STORED
            archive.writestr(name, content, compress_type=kind)
    with pytest.raises(ModelFileError, match=rf"'{member}' is compressed"):
        load_model(bomb)


def test_a_network_larger_than_its_weights_is_never_built(model_file):
    def inflate(data):
        net = _estimator_node(data, "PatchSegmenter")[2]["net_"]["__skorch_net__"]
        net[1]["module__base_channels"] = 10**6

    def load():
        with pytest.raises(ModelFileError, match="module__base_channels=1000000"):
            load_model(rewrite(model_file, manifest=inflate))

    assert traced_peak(load) < 64 * 2**20


def test_a_fitted_attribute_may_not_shadow_a_parameter(model_file):
    def shadow(data):
        _estimator_node(data, "TopKSelector")[2]["k"] = 10**9

    with pytest.raises(ModelFileError, match="'k' is a parameter of sklearn_gastric"):
        load_model(rewrite(model_file, manifest=shadow))


def test_truncated_files_and_folders_are_named_as_such(model_file, tmp_path):
    cut = tmp_path / "cut.sgm"
    cut.write_bytes(Path(model_file).read_bytes()[:1000])
    with pytest.raises(ModelFileError, match=r"cut\.sgm' is truncated or damaged"):
        load_model(cut)
    with pytest.raises(ModelFileError, match="is a folder, not a model file"):
        load_model(tmp_path)
    (tmp_path / "empty.sgm").write_bytes(b"")
    with pytest.raises(ModelFileError, match=r"empty\.sgm' is empty"):
        load_model(tmp_path / "empty.sgm")
    if os.path.exists("/dev/null"):
        with pytest.raises(ModelFileError, match="is not a regular file"):
            load_model("/dev/null")


def test_a_failed_save_keeps_the_previous_file(
    fitted_pipeline, model_file, monkeypatch
):
    model_file = Path(model_file)
    before = model_file.read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np.lib.format, "write_array", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_model(fitted_pipeline, model_file)
    assert model_file.read_bytes() == before
    assert sorted(p.name for p in model_file.parent.iterdir()) == [model_file.name]
