"""What runs a trained V-Net at inference: the engine and its precision.

``engine="torch"`` runs :class:`~._fast_vnet.InferenceVNet`, the network with
BatchNorm folded and its concatenations in reused buffers; ``"openvino"``
runs the network compiled by OpenVINO (the ``openvino`` extra). Either is
built once per trained network, precision and thread, and kept while the
network lives.
"""

import threading
import warnings
import weakref

import torch

from ._fast_vnet import InferenceVNet

__all__ = ["built_networks", "inference_network", "resolve_precision"]

# Per thread, as the torch engine's buffers make a call not re-entrant.
_built = threading.local()


def resolve_precision(precision, device):
    """``"auto"``: bfloat16 on CUDA (tensor cores), float32 elsewhere."""
    if precision != "auto":
        return precision
    return "bfloat16" if torch.device(device).type == "cuda" else "float32"


def inference_network(vnet, *, engine, precision, device):
    """The callable running ``vnet`` on a float batch (n, 3, h, w) in [0, 1],
    returning ``(seg_logits, class_logits, features)`` as float32 tensors."""
    per_network = built_networks(vnet)
    # OpenVINO fixes its thread count when it compiles.
    threads = torch.get_num_threads() if engine == "openvino" else None
    key = (engine, precision, str(device), threads)
    if key not in per_network:
        per_network[key] = _build(vnet, engine, precision, device)
    return per_network[key]


def built_networks(vnet):
    """The inference networks this thread built for ``vnet``, by settings."""
    cache = getattr(_built, "networks", None)
    if cache is None:
        cache = _built.networks = weakref.WeakKeyDictionary()
    return cache.setdefault(vnet, {})


def _build(vnet, engine, precision, device):
    if engine == "openvino":
        if torch.device(device).type != "cpu":
            raise ValueError(
                f"engine='openvino' runs on the CPU; got device={device!r}."
            )
        return _OpenVINONetwork(vnet, precision)
    return InferenceVNet(vnet, precision).to(device)


class _OpenVINONetwork:
    """The V-Net converted to OpenVINO and compiled for this CPU."""

    _PRECISION_HINTS = {"float32": "f32", "bfloat16": "bf16"}

    def __init__(self, vnet, precision):
        try:
            import openvino
        except ImportError as exc:
            raise ImportError(
                "engine='openvino' needs OpenVINO: pip install "
                "'sklearn-gastric[openvino]'."
            ) from exc
        example = torch.zeros(1, 3, 2**vnet.depth, 2**vnet.depth)
        with warnings.catch_warnings():
            # OpenVINO converts through torch.jit.trace, deprecated in torch.
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            model = openvino.convert_model(
                vnet.eval(), example_input=example, input=[-1, 3, -1, -1]
            )
        # Threads are fixed at compile time: the torch count of the policy.
        config = {
            "INFERENCE_PRECISION_HINT": self._PRECISION_HINTS[precision],
            "INFERENCE_NUM_THREADS": torch.get_num_threads(),
            "PERFORMANCE_HINT": "LATENCY",
        }
        self._compiled = openvino.Core().compile_model(model, "CPU", config)
        self._request = self._compiled.create_infer_request()

    def __call__(self, x):
        outputs = self._request.infer({0: x.contiguous().numpy()})
        return tuple(
            torch.from_numpy(outputs[port].copy()).float()
            for port in self._compiled.outputs
        )
