"""A stored network's size, checked before the network is built."""

import math

import torch

__all__ = ["check_network_size"]


def check_network_size(net, state):
    """Build the module of ``net`` on the ``meta`` device (no memory) and
    compare it with the stored weights ``state`` (manifest nodes) before the
    real one is built; a ValueError saying what disagrees.

    Parameters
    ----------
    net : skorch.NeuralNet
        The uninitialised net, with the stored module parameters.
    state : dict
        The manifest's ``__tensor__`` nodes of the module's state dict.
    """
    stored = {key: _stored_shape(value) for key, value in state.items()}
    if any(shape is None for shape in stored.values()):
        raise ValueError("malformed network weights.")
    n_stored = sum(math.prod(shape) for shape in stored.values())
    module_kwargs = net.get_params_for("module")
    # Every size parameter of our networks (channels, depth, layers,
    # features, classes) makes at least that many weights: one larger
    # than the weights stored would only make building the probe slow.
    for key, value in module_kwargs.items():
        if isinstance(value, int) and value > max(n_stored, 1):
            raise ValueError(
                f"module__{key}={value} describes a network larger "
                f"than its {n_stored} stored weights."
            )
    try:
        with torch.device("meta"):
            probe = net.module(**module_kwargs)
        expected = {
            key: list(tensor.shape) for key, tensor in probe.state_dict().items()
        }
    except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
        raise ValueError(
            "the network cannot be built from its parameters "
            f"({type(exc).__name__}: {exc})."
        ) from exc
    if expected != stored:
        different = sorted(set(expected) ^ set(stored)) or sorted(
            key for key in expected if expected[key] != stored[key]
        )
        raise ValueError(
            "the stored weights do not fit the network its "
            f"parameters describe (first difference: {different[0]!r})."
        )


def _stored_shape(value):
    """The shape a ``__tensor__`` node of the manifest declares, or None."""
    if isinstance(value, dict) and len(value) == 1 and "__tensor__" in value:
        content = value["__tensor__"]
        if isinstance(content, list) and len(content) == 4:
            shape = content[2]
            if isinstance(shape, list) and all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
            ):
                return shape
    return None
