"""PatchSegmenter: training, transform, errors, persistence, pipelines."""

import copy
import pickle
import warnings

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import InvalidParameterError
from skorch.exceptions import DeviceWarning

from sklearn_gastric.preprocessing import TileBag
from sklearn_gastric.segmentation import PatchSegmenter, VNet

TINY = dict(base_channels=4, depth=2, feature_dim=6, batch_size=4)


def _random_patches(n=12, size=16, seed=0):
    rng = np.random.default_rng(seed)
    patches = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    masks = (patches[..., 0] > 160).astype(np.float32)
    return patches, masks


@pytest.fixture(scope="module")
def data():
    patches, masks = _random_patches()
    labels = np.array(["negative", "LGIN", "HGIN", "carcinoma"] * 3)
    return patches, masks, labels


@pytest.fixture(scope="module")
def fitted(data):
    patches, masks, labels = data
    seg = PatchSegmenter(max_epochs=2, random_state=0, validation_fraction=0.25, **TINY)
    return seg.fit(patches, masks, labels)


@pytest.fixture(scope="module")
def bags():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    first = TileBag(image, [[0, 0], [16, 0], [48, 32], [32, 16], [0, 32]], 16)
    second = TileBag(image[::-1].copy(), [[16, 16]], 16)
    empty = TileBag(image, np.zeros((0, 2)), 16)
    return [first, empty, second]


def test_fit_sets_attributes(fitted):
    assert fitted.classes_.tolist() == ["HGIN", "LGIN", "carcinoma", "negative"]
    assert fitted.n_classes_ == 4
    assert isinstance(fitted.net_.module_, VNet)
    assert fitted.net_.module_.n_classes == 4
    assert len(fitted.net_.history) == 2
    assert "valid_loss" in fitted.net_.history[-1]
    assert not fitted.net_.module_.training


@pytest.mark.parametrize("reduction", ["batch", "patch"])
def test_the_loss_reduces_the_dice_as_the_segmenter_says(data, reduction):
    patches, masks, labels = data
    segmenter = PatchSegmenter(dice_reduction=reduction, max_epochs=1, **TINY)
    segmenter.fit(patches, masks, labels)
    assert segmenter.net_.criterion_.dice_reduction == reduction


def test_predict_proba_maps_shape_and_range(fitted, data):
    proba = fitted.predict_proba_maps(data[0][:5])
    assert proba.shape == (5, 16, 16) and proba.dtype == np.float32
    assert (proba >= 0).all() and (proba <= 1).all()
    # Batching does not change the values.
    np.testing.assert_allclose(
        fitted.predict_proba_maps(data[0][:1]), proba[:1], rtol=1e-5, atol=1e-6
    )


def test_transform_fills_the_columns(fitted, bags):
    out = fitted.transform(bags)
    assert len(out) == len(bags)
    for before, after in zip(bags, out):
        assert after is not before and after.name == before.name
        np.testing.assert_array_equal(after.coords, before.coords)
        n = len(before)
        assert after.features.shape == (n, 6) and after.features.dtype == np.float32
        assert after.scores.shape == (n,) and after.scores.dtype == np.float32
        assert after.patch_proba.shape == (n, 4)
        assert after.prob_maps.shape == (n, 2, 2)  # 16 // map_downsample(8)
        assert before.features is None  # the input is left untouched
    first = out[0]
    np.testing.assert_allclose(first.patch_proba.sum(axis=1), 1, rtol=1e-5)
    tiles = np.stack([bags[0].read_tile(i) for i in range(len(bags[0]))])
    full = fitted.predict_proba_maps(tiles)
    np.testing.assert_allclose(first.scores, full.sum(axis=(1, 2)), rtol=1e-4)
    pooled = full.reshape(5, 2, 8, 2, 8).mean(axis=(2, 4))
    np.testing.assert_allclose(first.prob_maps, pooled, rtol=1e-4, atol=1e-6)
    assert (first.scores > 0).all() and (first.scores <= 256).all()


def test_transform_empty_bag_has_empty_columns(fitted, bags):
    empty = fitted.transform([bags[1]])[0]
    assert empty.features.shape == (0, 6)
    assert empty.scores.shape == (0,)
    assert empty.patch_proba.shape == (0, 4)
    assert empty.prob_maps.shape == (0, 2, 2)


def test_transform_with_reader_threads_and_map_downsample(fitted, bags):
    reference = fitted.transform(bags)
    threaded = clone(fitted).set_params(reader_threads=2, batch_size=3)
    threaded.net_, threaded.classes_, threaded.n_classes_ = (
        fitted.net_,
        fitted.classes_,
        fitted.n_classes_,
    )
    for a, b in zip(reference, threaded.transform(bags)):
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)
        np.testing.assert_allclose(a.features, b.features, rtol=1e-5, atol=1e-6)
    threaded.set_params(map_downsample=4)
    assert threaded.transform(bags)[0].prob_maps.shape == (5, 4, 4)


def test_verbose_transform_shows_progress(fitted, bags, capsys):
    noisy = pickle.loads(pickle.dumps(fitted)).set_params(verbose=1)
    noisy.transform(bags)
    assert "Segmenting tiles" in capsys.readouterr().err
    fitted.transform(bags)
    assert "Segmenting tiles" not in capsys.readouterr().err


def test_transform_real_slide(fitted, cmu_slide_path):
    bag = TileBag(cmu_slide_path, [[0, 0], [1000, 1200], [2000, 2800]], 32)
    out = fitted.transform([bag])[0]
    assert out.name == bag.name
    assert out.prob_maps.shape == (3, 4, 4)
    assert np.isfinite(out.features).all()


def test_labels_none_trains_lesion_presence(data):
    patches, masks, _ = data
    masks = masks.copy()
    masks[:4] = 0  # four patches without lesion
    seg = PatchSegmenter(max_epochs=1, validation_fraction=0, random_state=0, **TINY)
    seg.fit(patches, masks.astype(bool))
    assert seg.classes_.tolist() == [0, 1]
    assert seg.net_.module_.n_classes == 2
    assert "valid_loss" not in seg.net_.history[-1]


@pytest.mark.parametrize("classification_loss", ["euclidean", "cross_entropy"])
def test_same_seed_same_weights(data, classification_loss):
    patches, masks, labels = data
    params = dict(max_epochs=2, classification_loss=classification_loss, **TINY)

    def weights(seed):
        seg = PatchSegmenter(random_state=seed, **params).fit(patches, masks, labels)
        return seg.net_.module_.state_dict()

    first, second, other = weights(3), weights(3), weights(4)
    for name in first:
        torch.testing.assert_close(first[name], second[name], rtol=0, atol=0)
    assert any(not torch.equal(first[k], other[k]) for k in first if "weight" in k)


def test_fit_does_not_touch_the_global_torch_rng(data):
    patches, masks, labels = data
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    PatchSegmenter(max_epochs=1, random_state=0, **TINY).fit(patches, masks, labels)
    torch.testing.assert_close(torch.rand(3), expected)


def test_early_stopping_restores_the_best_epoch(data):
    patches, masks, labels = data
    seg = PatchSegmenter(
        max_epochs=30, lr=0.5, patience=1, validation_fraction=0.5, random_state=0,
        augment=False, **TINY,
    ).fit(patches, masks, labels)  # fmt: skip
    history = seg.net_.history
    assert len(history) < 30
    losses = history[:, "valid_loss"]
    assert np.argmin(losses) == len(losses) - 2  # stopped one epoch after the best


def test_joblib_round_trip_and_stable_hash(fitted, bags, data, tmp_path):
    expected_hash = joblib.hash(fitted)
    expected = fitted.transform(bags)
    assert joblib.hash(fitted) == expected_hash
    fitted.predict_proba_maps(data[0][:2])
    assert joblib.hash(fitted) == expected_hash
    path = tmp_path / "seg.joblib"
    joblib.dump(fitted, path)
    loaded = joblib.load(path)
    assert joblib.hash(loaded) == expected_hash
    for a, b in zip(expected, loaded.transform(bags)):
        np.testing.assert_array_equal(a.features, b.features)
        np.testing.assert_array_equal(a.scores, b.scores)
        np.testing.assert_array_equal(a.prob_maps, b.prob_maps)
    assert joblib.hash(loaded) == expected_hash
    assert joblib.hash(pickle.loads(pickle.dumps(loaded))) == expected_hash


class _Holder:
    """A stand-in for a net: any object with a ``device`` attribute."""


def test_persistence_bytes_depend_on_content_only():
    from sklearn_gastric.utils._nets import NetPayload

    def payload(names, tensor):
        holder = _Holder()
        holder.names = set(names)
        holder.weights = {"w": torch.nn.Parameter(tensor.clone()), "k": str(0)}
        holder.device = "cpu"
        return NetPayload(holder)

    names = [f"module__{i}" for i in range(50)]
    first = payload(names, torch.arange(6.0))
    second = payload(names[::-1], torch.arange(6.0))
    assert first.data == second.data
    loaded = first.load()
    assert isinstance(loaded.weights["w"], torch.nn.Parameter)
    torch.testing.assert_close(loaded.weights["w"].data, torch.arange(6.0))
    assert loaded.names == set(names)
    assert payload(names, torch.ones(6)).data != first.data


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_gpu_trained_model_loads_on_cpu(fitted, data):
    # Stand-in for a model trained on a GPU: its net says device="cuda".
    gpu = pickle.loads(pickle.dumps(fitted))
    gpu.set_params(device="cuda")
    gpu.net_.device = "cuda"
    payload = pickle.dumps(gpu)
    with pytest.warns(DeviceWarning):
        loaded = pickle.loads(payload)
    assert loaded.net_.device == "cpu"
    np.testing.assert_array_equal(
        loaded.predict_proba_maps(data[0][:3]), fitted.predict_proba_maps(data[0][:3])
    )


def test_frozen_in_cached_pipeline(fitted, bags, tmp_path, monkeypatch):
    calls = []
    transform = PatchSegmenter.transform

    def counting_transform(self, tile_bags):
        calls.append(len(tile_bags))
        return transform(self, tile_bags)

    monkeypatch.setattr(PatchSegmenter, "transform", counting_transform)
    frozen = FrozenEstimator(fitted)
    assert clone(frozen).estimator.net_ is fitted.net_
    X = [bags[0], bags[2], bags[0], bags[2]]
    y = [0, 1, 0, 1]
    pipe = Pipeline(
        [("seg", frozen), ("clf", _MaxScoreClassifier())], memory=str(tmp_path)
    )
    pipe.fit(X, y)
    pipe.set_params(clf__offset=1.0).fit(X, y)
    assert calls == [4]  # the second fit reads the cached TileBags
    search = GridSearchCV(pipe, {"clf__offset": [0.0, 1.0]}, cv=2).fit(X, y)
    # Cache hits hand back an unpickled copy of the segmenter: the same model.
    best = search.best_estimator_.named_steps["seg"].estimator
    assert joblib.hash(best) == joblib.hash(fitted)
    # Both folds train on the same two bags: one miss, then hits (the refit
    # on all four bags hits too); the other four calls are the predictions
    # of 2 candidates x 2 folds, which a Pipeline never caches.
    assert calls == [4] + [2] * 5


class _MaxScoreClassifier(ClassifierMixin, BaseEstimator):
    """Predicts class 1 when a bag's highest score beats the training median."""

    def __init__(self, offset=0.0):
        self.offset = offset

    def fit(self, bags, y):
        self.classes_ = np.unique(y)
        self.threshold_ = np.median([b.scores.max() for b in bags]) + self.offset
        return self

    def predict(self, bags):
        return np.array([int(b.scores.max() > self.threshold_) for b in bags])


def test_transform_before_fit():
    with pytest.raises(NotFittedError):
        PatchSegmenter().transform([])
    with pytest.raises(NotFittedError):
        PatchSegmenter().predict_proba_maps(np.zeros((1, 16, 16, 3), np.uint8))


@pytest.mark.parametrize(
    "patches, match",
    [
        (np.zeros((2, 16, 16, 3), np.float32), "RGB uint8"),
        (np.zeros((2, 16, 16), np.uint8), "RGB uint8"),
        (np.zeros((2, 16, 16, 4), np.uint8), "RGB uint8"),
        (np.zeros((0, 16, 16, 3), np.uint8), "empty"),
        (
            np.zeros((2, 18, 18, 3), np.uint8),
            r"18x18 is not divisible by 2\*\*depth",
        ),
    ],
)
def test_fit_rejects_bad_patches(patches, match):
    masks = np.zeros(patches.shape[:3])
    with pytest.raises(ValueError, match=match):
        PatchSegmenter(**TINY).fit(patches, masks)


@pytest.mark.parametrize(
    "masks, match",
    [
        (np.zeros((2, 8, 8)), r"masks must have shape \(2, 16, 16\)"),
        (np.zeros((3, 16, 16)), "masks must have shape"),
        (np.full((2, 16, 16), 2.0), r"values in \[0, 1\]"),
        (np.full((2, 16, 16), np.nan), r"values in \[0, 1\]"),
        (np.full((2, 16, 16), "a"), "float or bool"),
    ],
)
def test_fit_rejects_bad_masks(masks, match):
    with pytest.raises(ValueError, match=match):
        PatchSegmenter(**TINY).fit(np.zeros((2, 16, 16, 3), np.uint8), masks)


def test_fit_rejects_bad_labels_and_settings(data):
    patches, masks, labels = data
    with pytest.raises(
        ValueError, match=r"PatchSegmenter: X has 12 patches but y has 5 labels"
    ):
        PatchSegmenter(**TINY).fit(patches, masks, labels[:5])
    with pytest.raises(ValueError, match="at least two classes"):
        PatchSegmenter(**TINY).fit(patches, masks, ["LGIN"] * 12)
    with pytest.raises(ValueError, match="leaves no training patch"):
        PatchSegmenter(validation_fraction=0.99, **TINY).fit(patches, masks)
    with pytest.raises(InvalidParameterError, match="dice_weight"):
        PatchSegmenter(dice_weight=1.5).fit(patches, masks)
    with pytest.raises(InvalidParameterError, match="classification_loss"):
        PatchSegmenter(classification_loss="l1").fit(patches, masks)
    with pytest.raises(InvalidParameterError, match="dice_reduction"):
        PatchSegmenter(dice_reduction="pixel").fit(patches, masks)
    with pytest.raises(TypeError, match="wrap it in sklearn.frozen.FrozenEstimator"):
        PatchSegmenter(**TINY).fit([TileBag(patches[0], [[0, 0]], 16)], None)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_fit_on_missing_cuda_is_a_clear_error(data):
    with pytest.raises(ValueError, match="CUDA is not available"):
        PatchSegmenter(device="cuda", **TINY).fit(*data)


def test_transform_rejects_bad_bags(fitted, bags):
    odd = TileBag(np.zeros((40, 40, 3), np.uint8), [[0, 0]], 18)
    with pytest.raises(ValueError, match=r"Slide 'array\(40x40\)': tile size 18x18"):
        fitted.transform([bags[0], odd])
    with pytest.raises(TypeError, match="item 1 is a ndarray"):
        fitted.transform([bags[0], np.zeros((16, 16, 3), np.uint8)])
    with pytest.raises(ValueError, match="RGB uint8"):
        fitted.predict_proba_maps(np.zeros((1, 16, 16, 3)))


def test_tags(fitted):
    tags = fitted.__sklearn_tags__()
    assert not tags.input_tags.two_d_array
    assert tags.requires_fit


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param(
            "cuda",
            marks=pytest.mark.skipif(
                not torch.cuda.is_available(), reason="needs CUDA"
            ),
        ),
    ],
)
def test_bf16_inference_path_is_close_to_float32(fitted, data, bags, device):
    # precision="bfloat16" runs every inference path (predict_proba_maps,
    # predict_patch_proba, transform) in bfloat16: the values move, and stay
    # close to float32's.
    patches = data[0]
    segmenter = copy.deepcopy(fitted)
    if device == "cuda":
        segmenter = clone(fitted).set_params(device="cuda").fit(*data)

    def outputs(precision):
        segmenter.set_params(precision=precision)
        return (
            segmenter.predict_proba_maps(patches),
            segmenter.predict_patch_proba(patches),
            segmenter.transform(bags),
        )

    maps32, proba32, bags32 = outputs("float32")
    maps16, proba16, bags16 = outputs("bfloat16")
    assert not np.array_equal(maps16, maps32)
    for low, reference in [(maps16, maps32), (proba16, proba32)]:
        assert low.dtype == np.float32
        np.testing.assert_allclose(low, reference, atol=0.02)
    for low, reference in zip(bags16, bags32):
        np.testing.assert_array_equal(low.coords, reference.coords)
        for column in ("features", "patch_proba", "prob_maps"):
            np.testing.assert_allclose(
                getattr(low, column), getattr(reference, column), atol=0.02
            )
        np.testing.assert_allclose(low.scores, reference.scores, rtol=0.02)
    auto = segmenter.set_params(precision="auto").predict_proba_maps(patches)
    np.testing.assert_array_equal(auto, maps16 if device == "cuda" else maps32)


@pytest.mark.slow
def test_learns_make_patch_dataset():
    from sklearn_gastric.datasets import make_patch_dataset

    patches, masks, labels = make_patch_dataset(320, tile_size=64, random_state=0)
    train, test = slice(0, 256), slice(256, None)
    # A steady schedule to the end: at lr 3e-3, restoring the best epoch of
    # 51 validation patches picked an epoch of Dice 0.49 on one machine's
    # numerics and one above 0.7 on another's.
    seg = PatchSegmenter(
        base_channels=8, depth=3, feature_dim=16, max_epochs=15, lr=1e-3,
        batch_size=16, patience=None, random_state=0,
    ).fit(patches[train], masks[train], labels[train])  # fmt: skip
    proba = seg.predict_proba_maps(patches[test])
    predicted, truth = proba > 0.5, masks[test] >= 0.5
    dice = 2 * (predicted & truth).sum() / (predicted.sum() + truth.sum())
    assert dice >= 0.7
    assert seg.classes_.tolist() == ["HGIN", "LGIN", "carcinoma", "negative"]


def test_inference_batches_are_capped_in_pixels(fitted, monkeypatch):
    # 16 tiles of 512 px would take about 4.4 GB with the default network on
    # a CPU: the torch engine on a CPU holds at most 2**18 pixels per batch
    # (one 512 px tile), other engines and devices 2**20 (four).
    from sklearn_gastric.segmentation._inference import pixel_cap

    sizes = []
    infer = PatchSegmenter._infer

    def recording(self, batch):
        sizes.append(len(batch))
        return infer(self, batch)

    monkeypatch.setattr(PatchSegmenter, "_infer", recording)
    seg = pickle.loads(pickle.dumps(fitted)).set_params(batch_size=16)
    seg.predict_proba_maps(np.zeros((10, 256, 256, 3), np.uint8))
    assert sizes == [4, 4, 2]
    sizes.clear()
    seg.predict_proba_maps(np.zeros((20, 64, 64, 3), np.uint8))
    assert sizes == [16, 4]
    sizes.clear()
    bag = TileBag(np.zeros((512, 2560, 3), np.uint8), [[0, 0]] * 3, 512)
    (out,) = seg.transform([bag])
    assert sizes == [1, 1, 1] and out.scores.shape == (3,)
    assert pixel_cap("torch", "cpu") == 2**18
    assert pixel_cap("openvino", "cpu") == pixel_cap("torch", "cuda") == 2**20


def test_validation_scores_hand_computed():
    from types import SimpleNamespace

    from sklearn_gastric.segmentation._callbacks import ValidationScores

    history = {}
    net = SimpleNamespace(history=SimpleNamespace(record=history.__setitem__))
    callback = ValidationScores()
    callback.on_epoch_begin(net)
    seg_logits = torch.tensor([[[5.0, -5.0], [5.0, 5.0]]])  # 3 pixels >= 0.5
    mask = torch.tensor([[[1.0, 1.0], [0.0, 1.0]]])  # 3 pixels, 2 shared
    class_logits = torch.tensor([[0.0, 2.0, 0.0]])
    target = {"mask": mask, "label": torch.tensor([1])}
    callback.on_batch_end(
        net,
        batch=(None, target),
        training=False,
        y_pred=(seg_logits, class_logits, None),
    )
    # A training batch is not counted.
    callback.on_batch_end(
        net,
        batch=(None, target),
        training=True,
        y_pred=(-seg_logits, class_logits, None),
    )
    target = {"mask": torch.zeros(2, 2, 2), "label": torch.tensor([0, 2])}
    callback.on_batch_end(
        net,
        batch=(None, target),
        training=False,
        y_pred=(
            torch.full((2, 2, 2), -5.0),
            torch.tensor([[1.0, 0, 0], [1.0, 0, 0]]),
            None,
        ),
    )
    callback.on_epoch_end(net)
    assert history["valid_dice"] == pytest.approx(2 * 2 / (3 + 3))
    # Recalls: class 1 right, class 0 right, class 2 wrong.
    assert history["valid_bacc"] == pytest.approx(2 / 3)


def test_history_reports_patch_accuracy_beside_dice(fitted):
    last = fitted.net_.history[-1]
    assert {"valid_loss", "valid_dice", "valid_bacc"} <= set(last)
    assert 0 <= last["valid_dice"] <= 1 and 0 <= last["valid_bacc"] <= 1


def test_predict_patch_proba_matches_transform(fitted, bags):
    (out, _, _) = fitted.transform(bags)
    image = out.slide.read_region((0, 0), 0, out.slide.dimensions)
    patches = np.stack([image[y : y + 16, x : x + 16] for x, y in out.coords])
    proba = fitted.predict_patch_proba(patches)
    assert (
        proba.shape == (len(patches), fitted.n_classes_) and proba.dtype == np.float32
    )
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(proba, out.patch_proba, atol=1e-6)


def test_n_jobs_is_a_deprecated_alias_of_reader_threads(fitted, bags, data):
    assert PatchSegmenter().get_params()["n_jobs"] == "deprecated"
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        expected = fitted.transform(bags)
    old_style = pickle.loads(pickle.dumps(fitted)).set_params(n_jobs=2)
    assert old_style._reader_threads() == 2
    with pytest.warns(FutureWarning, match="n_jobs was renamed reader_threads"):
        out = old_style.transform(bags)
    for a, b in zip(out, expected):
        np.testing.assert_array_equal(a.scores, b.scores)
    new_style = pickle.loads(pickle.dumps(fitted)).set_params(reader_threads=2)
    assert new_style._reader_threads() == 2
    patches, masks, _ = data
    with pytest.warns(FutureWarning, match="set reader_threads instead"):
        PatchSegmenter(n_jobs=1, max_epochs=1, validation_fraction=0, **TINY).fit(
            patches, masks
        )
    with pytest.raises(InvalidParameterError, match="'reader_threads' parameter"):
        PatchSegmenter(reader_threads=0, **TINY).fit(patches, masks)


def test_models_made_before_the_rename_load_and_run_without_warning(fitted, bags):
    # Model files and pickles made before reader_threads existed hold
    # n_jobs=None (its default then) and no reader_threads attribute.
    expected = fitted.transform(bags)
    old = pickle.loads(pickle.dumps(fitted))
    old.n_jobs = None
    del old.reader_threads
    loaded = pickle.loads(pickle.dumps(old))
    assert (loaded.reader_threads, loaded.n_jobs) == (None, None)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        out = loaded.transform(bags)
    for a, b in zip(out, expected):
        np.testing.assert_array_equal(a.prob_maps, b.prob_maps)
