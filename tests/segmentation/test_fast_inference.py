"""The inference networks (folded, buffered, bfloat16, OpenVINO) against the
training network, and the CPU policy (threads, freed memory)."""

import copy
import importlib.util

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_gastric.preprocessing import TileBag
from sklearn_gastric.segmentation import VNet
from sklearn_gastric.segmentation._engines import built_networks
from sklearn_gastric.segmentation._fast_vnet import InferenceVNet
from sklearn_gastric.segmentation._training import _as_input
from sklearn_gastric.utils import _cpu

needs_openvino = pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None, reason="needs openvino"
)


def _vnet_with_statistics(seed, **params):
    """A VNet whose BatchNorm layers hold non-trivial running statistics, as
    after training (a fresh one's are 0 and 1, which folding gets right by
    luck)."""
    torch.manual_seed(seed)
    vnet = VNet(**params)
    for module in vnet.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.3, 3.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.3, 0.3)
    return vnet.eval()


def _batch(n, size, seed=0):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    return _as_input(torch.from_numpy(pixels))


@pytest.mark.parametrize(
    "params",
    [
        {"n_classes": 4, "base_channels": 4, "depth": 2, "feature_dim": 8},
        {"n_classes": 2, "base_channels": 6, "depth": 3, "feature_dim": 16},
    ],
)
def test_float32_inference_network_matches_the_training_network(params):
    vnet = _vnet_with_statistics(0, **params)
    before = copy.deepcopy(vnet.state_dict())
    fast = InferenceVNet(vnet)
    # Changing batch sizes and tile sizes reuse and replace the buffers.
    for n, size in [(3, 32), (1, 32), (3, 32), (2, 64)]:
        x = _batch(n, size, seed=n * size)
        x_before = x.clone()
        with torch.inference_mode():
            expected = vnet(x)
            got = fast(x)
        torch.testing.assert_close(x, x_before, rtol=0, atol=0)
        for value, reference in zip(got, expected):
            assert value.dtype == torch.float32
            assert value.shape == reference.shape
            torch.testing.assert_close(value, reference, rtol=0, atol=1e-5)
    # The training network is left as it was.
    for name, tensor in vnet.state_dict().items():
        torch.testing.assert_close(tensor, before[name], rtol=0, atol=0)


def test_outputs_do_not_alias_the_reused_buffers():
    vnet = _vnet_with_statistics(1, base_channels=4, depth=2, feature_dim=8)
    fast = InferenceVNet(vnet)
    with torch.inference_mode():
        first = [t.clone() for t in fast(_batch(2, 32, seed=1))]
        kept = fast(_batch(2, 32, seed=1))
        fast(_batch(2, 32, seed=2))
    for value, reference in zip(kept, first):
        torch.testing.assert_close(value, reference, rtol=0, atol=0)


def test_bfloat16_inference_network_is_close_and_really_low_precision():
    vnet = _vnet_with_statistics(2, base_channels=4, depth=2, feature_dim=8)
    x = _batch(2, 32, seed=3)
    with torch.inference_mode():
        expected = vnet(x)
        got = InferenceVNet(vnet, "bfloat16")(x)
    assert InferenceVNet(vnet, "bfloat16").convolutional["stem"].weight.dtype == (
        torch.bfloat16
    )
    for value, reference in zip(got, expected):
        assert value.dtype == torch.float32
        assert not torch.equal(value, reference)
        torch.testing.assert_close(value, reference, rtol=0.05, atol=0.05)


def test_bad_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of"):
        InferenceVNet(VNet(base_channels=2, depth=1, feature_dim=2), "float16")


def _dice(a, b):
    return 2 * (a & b).sum() / max(1, a.sum() + b.sum())


def test_trained_segmenter_bfloat16_maps_agree_with_float32(tiny_segmenter):
    from sklearn_gastric.datasets import make_patch_dataset

    patches, _, _ = make_patch_dataset(24, tile_size=64, random_state=5)
    seg = copy.deepcopy(tiny_segmenter)
    maps32 = seg.set_params(precision="float32").predict_proba_maps(patches)
    maps16 = seg.set_params(precision="bfloat16").predict_proba_maps(patches)
    assert (maps32 > 0.5).sum() > 0
    assert _dice(maps16 > 0.5, maps32 > 0.5) >= 0.99


def test_transform_matches_the_training_network(tiny_segmenter):
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, size=(128, 128, 3), dtype=np.uint8)
    bag = TileBag(image, [[0, 0], [64, 0], [0, 64], [64, 64]], 64)
    seg = copy.deepcopy(tiny_segmenter).set_params(precision="float32")
    (out,) = seg.transform([bag])
    tiles = np.stack([image[y : y + 64, x : x + 64] for x, y in bag.coords])
    with torch.inference_mode():
        seg_logits, class_logits, features = seg.net_.module_(
            _as_input(torch.from_numpy(tiles))
        )
    np.testing.assert_allclose(
        out.scores, torch.sigmoid(seg_logits).sum(dim=(1, 2)), rtol=1e-5
    )
    np.testing.assert_allclose(
        out.patch_proba, torch.softmax(class_logits, 1), rtol=0, atol=1e-6
    )
    np.testing.assert_allclose(out.features, features, rtol=0, atol=1e-5)
    # The buffers are freed once the call ends.
    networks = built_networks(seg.net_.module_).values()
    assert networks and all(not net._concat_buffers._buffers for net in networks)


def test_inference_settings_are_validated_at_transform(tiny_segmenter):
    from sklearn.utils._param_validation import InvalidParameterError

    seg = copy.deepcopy(tiny_segmenter).set_params(engine="tensorrt")
    bag = TileBag(np.zeros((64, 64, 3), np.uint8), [[0, 0]], 64)
    with pytest.raises(InvalidParameterError, match="'engine' parameter"):
        seg.transform([bag])


@needs_openvino
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_openvino_engine_matches_the_training_network(tiny_segmenter, precision):
    from sklearn_gastric.datasets import make_patch_dataset

    patches, _, _ = make_patch_dataset(6, tile_size=64, random_state=6)
    seg = copy.deepcopy(tiny_segmenter)
    reference = seg.set_params(precision="float32").predict_proba_maps(patches)
    seg.set_params(engine="openvino", precision=precision)
    maps = seg.predict_proba_maps(patches)
    tolerance = 1e-4 if precision == "float32" else 0.05
    np.testing.assert_allclose(maps, reference, rtol=0, atol=tolerance)


def test_openvino_engine_is_cpu_only(tiny_segmenter):
    from sklearn_gastric.segmentation._engines import inference_network

    with pytest.raises(ValueError, match="engine='openvino' runs on the CPU"):
        inference_network(
            tiny_segmenter.net_.module_,
            engine="openvino",
            precision="float32",
            device="cuda",
        )


# -- the CPU policy -----------------------------------------------------------


@pytest.mark.parametrize(
    ("cores", "readers", "expected"),
    [(1, 1, 1), (2, 1, 1), (2, 0, 1), (4, 1, 3), (16, 4, 12), (8, 20, 1)],
)
def test_default_torch_threads(monkeypatch, cores, readers, expected):
    monkeypatch.setattr(_cpu, "available_cores", lambda: cores)
    assert _cpu.default_torch_threads(readers) == expected


@pytest.mark.parametrize(
    ("reader_threads", "expected"), [(0, 4), (None, 3), (1, 3), (2, 2), (-1, 1)]
)
def test_cpu_policy_counts_the_readers(monkeypatch, reader_threads, expected):
    # No reader (fit, plain patches) leaves torch every core; None is one
    # reader and -1 one per core, as TileBag.read_batches counts them.
    from sklearn_gastric.segmentation._inference import cpu_policy

    monkeypatch.setattr(_cpu, "available_cores", lambda: 4)
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    before = torch.get_num_threads()
    with cpu_policy(None, reader_threads):
        assert torch.get_num_threads() == expected
    assert torch.get_num_threads() == before


def test_transform_runs_on_the_policy_threads_and_restores(tiny_segmenter, monkeypatch):
    from sklearn_gastric.segmentation import PatchSegmenter

    seen = []
    infer = PatchSegmenter._infer

    def recording(self, batch):
        seen.append(torch.get_num_threads())
        return infer(self, batch)

    monkeypatch.setattr(PatchSegmenter, "_infer", recording)
    monkeypatch.setattr(_cpu, "available_cores", lambda: 2)
    bag = TileBag(np.zeros((64, 64, 3), np.uint8), [[0, 0]], 64)
    before = torch.get_num_threads()
    seg = copy.deepcopy(tiny_segmenter)
    seg.transform([bag])
    assert seen == [1] and torch.get_num_threads() == before
    seg.set_params(torch_threads=3).transform([bag])
    assert seen == [1, 3] and torch.get_num_threads() == before


class _FakeLibc:
    def __init__(self):
        self.calls = []

    def mallopt(self, parameter, value):
        self.calls.append(("mallopt", parameter, value))
        return 1

    def malloc_trim(self, pad):
        self.calls.append(("malloc_trim", pad))
        return 1


def test_keep_freed_memory_sets_then_trims_once_when_nested(monkeypatch):
    libc = _FakeLibc()
    monkeypatch.setattr(_cpu, "_glibc", lambda: libc)
    with _cpu.keep_freed_memory():
        with _cpu.keep_freed_memory():
            pass
        assert libc.calls == [
            ("mallopt", -3, 32 * 2**20),
            ("mallopt", -1, 2**30),
        ]
    assert libc.calls[2:] == [("mallopt", -1, 64 * 2**20), ("malloc_trim", 0)]


@pytest.mark.parametrize(
    "environment",
    [
        {"SKLEARN_GASTRIC_KEEP_FREED_MEMORY": "0"},
        {"MALLOC_TRIM_THRESHOLD_": "100000"},
        {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1"},
        {"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"},
    ],
)
def test_keep_freed_memory_leaves_a_tuned_allocator_alone(monkeypatch, environment):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert _cpu._glibc() is None


def test_glibc_is_found_on_linux(monkeypatch):
    for name in (
        "LD_PRELOAD",
        "SKLEARN_GASTRIC_KEEP_FREED_MEMORY",
        *_cpu._ALLOCATOR_SETTINGS,
    ):
        monkeypatch.delenv(name, raising=False)
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc only")
    assert _cpu._glibc() is not None


def test_threads_variable_sets_the_policy(monkeypatch):
    monkeypatch.setattr(_cpu, "available_cores", lambda: 2)
    monkeypatch.setenv(_cpu.THREADS_VARIABLE, "3")
    assert _cpu.default_torch_threads(reader_threads=1) == 3
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(_cpu.THREADS_VARIABLE, bad)
        with pytest.raises(ValueError, match="SKLEARN_GASTRIC_TORCH_THREADS must"):
            _cpu.default_torch_threads()


def test_cli_torch_threads_reach_the_segmenter(monkeypatch):
    import torch

    from sklearn_gastric.cli._common import set_torch_threads

    monkeypatch.setattr(_cpu, "available_cores", lambda: 2)
    set_torch_threads(None)
    assert torch.get_num_threads() == 1
    set_torch_threads(2)
    assert torch.get_num_threads() == 2
    assert _cpu.default_torch_threads(reader_threads=1) == 2
