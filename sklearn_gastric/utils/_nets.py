"""skorch nets built, saved and loaded: the one place a net becomes storable
state and back, and the one fallback for a net trained on a device absent here.

Each torch-backed estimator builds its net in one method,
``_make_net(**overrides)`` (through :func:`build_net`), which its ``fit``
calls and which the archive reader calls again with the stored net
parameters: what a net is made of (module, criterion, optimiser classes) is
written once, in the estimator.
"""

import io
import pickle
import warnings

import torch

__all__ = [
    "NetPayload",
    "PicklesNetByContent",
    "available_device",
    "build_net",
    "estimator_net",
    "fit_seeded",
    "held_out_settings",
    "is_stored_net_param",
    "load_weights",
    "net_module_name",
    "net_state",
]

# The parameters of a skorch net that a model file keeps; the rest (module,
# criterion, optimizer and collate classes, callbacks) comes from the
# estimator's ``_make_net``.
_NET_SCALAR_PARAMS = {
    "lr",
    "max_epochs",
    "batch_size",
    "verbose",
    "device",
    "predict_nonlinearity",
    "warm_start",
    "iterator_train__shuffle",
}
_NET_PARAM_PREFIXES = ("module__", "criterion__", "optimizer__")


def build_net(net_class, estimator, params, overrides):
    """An untrained ``net_class`` as a torch-backed estimator's ``_make_net``
    builds it.

    Every net of this library trains with Adam, on shuffled batches, with no
    validation split unless told, and takes ``lr``, ``max_epochs``,
    ``batch_size``, ``device`` and ``verbose`` from the estimator's
    parameters of those names; ``params`` (the module, the criterion and
    their settings) and then ``overrides`` add to or replace these.
    """
    shared = {
        "optimizer": torch.optim.Adam,
        "lr": estimator.lr,
        "max_epochs": estimator.max_epochs,
        "batch_size": estimator.batch_size,
        "iterator_train__shuffle": True,
        "train_split": None,
        "device": estimator.device,
        "verbose": estimator.verbose,
    }
    return net_class(**{**shared, **params, **overrides})


def held_out_settings(train_split, patience, callbacks=()):
    """The ``train_split`` and ``callbacks`` of a net that holds data out.

    ``callbacks`` (name, callback) pairs, then, unless ``patience`` is None,
    early stopping on ``valid_loss`` that restores the best epoch's weights.
    """
    from skorch.callbacks import EarlyStopping

    callbacks = list(callbacks)
    if patience is not None:
        stopping = EarlyStopping(
            monitor="valid_loss", patience=patience, load_best=True
        )
        callbacks.append(("early_stopping", stopping))
    return {"train_split": train_split, "callbacks": callbacks}


def fit_seeded(net, dataset, seed):
    """Train ``net`` on ``dataset`` from the seed ``seed``, leaving torch's
    global random state as it was; return it in eval mode.

    In eval mode, inference changes nothing in the estimator, so its
    ``joblib.hash`` stays the same and ``Pipeline(memory=...)`` hits.
    """
    device = torch.device(net.device)
    forked = []
    if device.type == "cuda":
        forked = [
            device.index if device.index is not None else torch.cuda.current_device()
        ]
    with torch.random.fork_rng(devices=forked):
        torch.manual_seed(seed)
        net.fit(dataset, None)
    net.module_.eval()
    net.criterion_.eval()
    return net


def is_stored_net_param(key):
    """Whether a model file keeps the net parameter ``key``."""
    return key in _NET_SCALAR_PARAMS or key.startswith(_NET_PARAM_PREFIXES)


def net_module_name(owner, net, where):
    """The name a model file gives ``net``: its module class's.

    Raises TypeError unless ``net`` is the kind of net that ``owner``, an
    estimator of this library, builds (and so can rebuild on load).
    """
    blueprint = estimator_net(owner)
    if (
        blueprint is None
        or type(net) is not type(blueprint)
        or type(net.module_) is not blueprint.module
    ):
        raise TypeError(
            f"{where} is a {type(net).__name__} of a "
            f"{type(net.module_).__name__} module; a model file stores this "
            "library's networks only."
        )
    return type(net.module_).__name__


def net_state(owner, net, where):
    """``(module_name, params, weights, history)``: what a model file keeps of
    a trained net, as plain values and tensors."""
    module_name = net_module_name(owner, net, where)
    params = {
        key: value
        for key, value in net.get_params().items()
        if is_stored_net_param(key)
    }
    return module_name, params, net.module_.state_dict(), net.history_.to_list()


def estimator_net(owner, **params):
    """The untrained net the estimator ``owner`` builds (as its ``fit`` does)
    with ``params`` replacing its own settings; None if it builds none."""
    build = getattr(owner, "_make_net", None)
    return None if build is None else build(**params)


def load_weights(net, weights, history):
    """Give an initialised net built by :func:`estimator_net` its trained
    weights and history, ready to predict; RuntimeError if the weights do
    not fit it."""
    from skorch.history import History

    net.module_.load_state_dict(weights, strict=True)
    net.module_.eval()
    net.criterion_.eval()
    net.history_ = History(history)
    return net


def available_device(device, what, stacklevel=2):
    """``device``, or ``"cpu"`` (with skorch's ``DeviceWarning``) when it is a
    CUDA device and this machine has none.

    Parameters
    ----------
    device : str or torch.device
        The device a net was trained on.
    what : str
        What was trained there, for the warning.
    stacklevel : int, default=2
        Of the warning, counted from the caller.

    Returns
    -------
    device : str or torch.device

    Examples
    --------
    >>> from sklearn_gastric.utils._nets import available_device
    >>> available_device("cpu", "The net")
    'cpu'
    """
    from skorch.exceptions import DeviceWarning

    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        warnings.warn(
            f"{what} was trained on {device!r}, which is not available: loading "
            "it on 'cpu'.",
            DeviceWarning,
            stacklevel=stacklevel + 1,
        )
        return "cpu"
    return device


class PicklesNetByContent:
    """Mixin of the torch-backed estimators: their fitted ``net_`` pickles as
    a :class:`NetPayload`.

    So an estimator pickles (and ``joblib.hash``-es) the same after every
    load, which ``Pipeline(memory=...)`` needs to hit its cache, and one
    trained on a GPU unpickles on the CPU where CUDA is absent.
    """

    def __getstate__(self):
        # object.__getstate__ returns the instance's own __dict__: copy it.
        state = dict(super().__getstate__())
        if "net_" in state:
            state["net_"] = NetPayload(state["net_"])
        return state

    def __setstate__(self, state):
        if isinstance(state.get("net_"), NetPayload):
            net = state["net_"].load(f"This {type(self).__name__}")
            state = dict(state, net_=net)
        super().__setstate__(state)


class NetPayload:
    """A trained skorch net as bytes that depend on its content only.

    Pickling a torch tensor embeds the memory address of its storage, so the
    same weights pickle (and ``joblib.hash``) differently after every load,
    and ``Pipeline(memory=...)`` would never hit its cache. Here tensors are
    pickled as numpy arrays instead. On load, tensors go back to the net's
    device, or to the CPU (with skorch's ``DeviceWarning``) where CUDA is
    absent.
    """

    def __init__(self, net):
        buffer = io.BytesIO()
        _TensorPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(
            (type(net), net.__dict__)
        )
        self.data = buffer.getvalue()

    def load(self, what="The network"):
        """The net, on its device or on the CPU; ``what`` names it in the
        warning."""
        net_class, state = pickle.loads(self.data)
        state["device"] = available_device(state["device"], what, stacklevel=3)
        if torch.device(state["device"]).type != "cpu":
            _to_device(state, state["device"])
        net = net_class.__new__(net_class)
        net.__dict__.update(state)
        return net


class _TensorPickler(pickle._Pickler):
    """Pickles tensors as numpy arrays, strings and bytes by value, sets sorted.

    The pure-Python pickler is used because it lets strings and bytes skip
    the memo: the memo depends on object identity, which unpickling changes
    (one-character strings come back as shared singletons). Sets are written
    in sorted order, as their iteration order depends on insertion history.
    """

    def memoize(self, obj):
        if type(obj) not in (str, bytes):
            super().memoize(obj)

    def reducer_override(self, obj):
        if type(obj) in (set, frozenset):
            return type(obj), (sorted(obj, key=_sort_key),)
        if isinstance(obj, torch.Tensor):
            tensor = obj.detach().cpu().contiguous()
            if tensor.dtype == torch.bfloat16:
                array, dtype = tensor.view(torch.int16).numpy(), "bfloat16"
            else:
                array, dtype = tensor.numpy(), None
            is_parameter = isinstance(obj, torch.nn.Parameter)
            return rebuild_tensor, (array, dtype, obj.requires_grad, is_parameter)
        return NotImplemented


def _sort_key(item):
    return type(item).__name__, repr(item)


def rebuild_tensor(array, dtype, requires_grad, is_parameter):
    """The tensor (or parameter) :class:`_TensorPickler` pickled."""
    tensor = torch.from_numpy(array)
    if dtype is not None:
        tensor = tensor.view(getattr(torch, dtype))
    if is_parameter:
        return torch.nn.Parameter(tensor, requires_grad=requires_grad)
    return tensor.requires_grad_(requires_grad)


def _to_device(state, device):
    """Move the net's modules and optimiser state to ``device`` (a GPU load)."""
    for value in state.values():
        if isinstance(value, torch.nn.Module):
            value.to(device)
        elif isinstance(value, torch.optim.Optimizer):
            for param_state in value.state.values():
                for key, item in param_state.items():
                    if isinstance(item, torch.Tensor) and key != "step":
                        param_state[key] = item.to(device)
