"""PatchSegmenter: the V-Net segmenter of step 5, trained through skorch."""

import io
import pickle
import warnings
from contextlib import nullcontext
from functools import partial
from numbers import Integral, Real

import joblib
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator
from sklearn.utils import TransformerTags, check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import check_is_fitted, check_memory
from skorch import NeuralNet
from skorch.callbacks import EarlyStopping
from skorch.exceptions import DeviceWarning
from skorch.utils import to_tensor
from torch.utils.data import Dataset

from ..preprocessing import TileBag, UnreadableTileWarning
from ..utils._parallel import map_slides
from ..utils._sklearn_compat import HasMethods, Interval, StrOptions, _fit_context
from ..utils._validation import (
    N_JOBS,
    check_device,
    check_labels,
    stratified_split,
)
from ._augment import augment_patch
from ._callbacks import ValidationScores
from ._losses import SegmentationLoss
from ._vnet import VNet

__all__ = ["PatchSegmenter"]

_INFERENCE_PIXELS = 2**20


class PatchSegmenter(BaseEstimator):
    """V-Net patch segmenter and classifier (step 5 of the method).

    Trained on patches with pixel masks (and optionally patch labels), it
    turns each tile of a :class:`~sklearn_gastric.preprocessing.TileBag` into
    a feature vector, a per-pixel probability map of "positive" (lesion), the
    tile's score (the sum of that map, the patent's target probability) and
    patch class probabilities. The network is :class:`VNet`; training runs
    through skorch's :class:`~skorch.NeuralNet` (``net_`` after fit) with
    :class:`SegmentationLoss`.

    A trained segmenter goes into a :class:`~sklearn.pipeline.Pipeline` as
    ``FrozenEstimator(segmenter)``, so that ``clone``, grid searches and
    ``Pipeline(memory=...)`` keep it and never retrain it.

    Parameters
    ----------
    base_channels : int, default=16
        Filters of the first encoder block (doubled at each level).
    depth : int, default=4
        Number of downsamplings; patch and tile sizes must be divisible by
        ``2**depth``.
    feature_dim : int, default=128
        Length of the patch feature vector.
    max_epochs : int, default=30
        Maximum number of training epochs.
    lr : float, default=1e-3
        Learning rate of the Adam optimiser.
    batch_size : int, default=16
        Patches per training batch and tiles per inference batch. Inference
        batches are also capped at ``2**20`` pixels (16 tiles of 256 px, 4 of
        512 px), which keeps the default network's CPU memory near 1 GB
        whatever the tile size.
    dice_weight : float, default=0.5
        Loss = ``dice_weight`` x Dice loss + (1 - ``dice_weight``) x
        classification loss.
    classification_loss : {"cross_entropy", "euclidean"}, default="cross_entropy"
        ``"cross_entropy"``: the usual negative log-likelihood;
        ``"euclidean"``: the patent's Euclidean distance between the one-hot
        label and the predicted class probabilities, kept for the patent's
        recipe. Its gradient vanishes when a patch is confidently wrong, and
        on held-out patches it trained to 0.46 balanced accuracy of the
        patch classes against 0.58 for the defaults (same patches and
        epochs, ``benchmarks/bench_patch_classifier.py``).
    class_weight : "balanced" or None, default="balanced"
        ``"balanced"`` weights each patch's classification loss by
        ``n_patches / (n_classes * n_patches_of_its_class)``, so that rare
        lesion classes count as much as the frequent negative one; None
        weighs every patch alike.
    augment : bool, default=True
        Augment training patches with :func:`augment_patch` (flips, 90°
        rotations, stretches on patch and mask; brightness, contrast,
        saturation and hue jitter on the patch). Validation patches are never
        augmented.
    hed_jitter : float, default=0.0
        With ``augment``, also jitter the stains in HED space (Tellez et al.,
        2019; see :func:`augment_patch`): 0.05 is their "light", 0.2 their
        "strong" setting. 0 keeps the patent's augmentation only.
    validation_fraction : float, default=0.1
        Fraction of the patches held out (stratified by label when possible)
        to compute, each epoch, ``valid_loss`` and, beside it, the
        validation patches' ``valid_dice`` (segmentation) and ``valid_bacc``
        (balanced accuracy of the patch classes), in ``net_.history`` and
        in the training log. 0 trains on all patches with no early stopping.
    patience : int or None, default=5
        Stop when ``valid_loss`` has not improved for ``patience`` epochs and
        restore the best weights (skorch's
        :class:`~skorch.callbacks.EarlyStopping`). None disables it.
    map_downsample : int, default=8
        ``prob_maps`` are stored average-pooled to ``tile_size //
        map_downsample`` pixels a side (at least 1), so memory stays small
        on large slides. Scores are summed over the full-resolution map.
    device : str, default="cpu"
        Torch device, e.g. ``"cuda"``. On a CUDA device, inference and
        training run with bfloat16 autocast and channels-last tensors. A
        segmenter trained on a GPU and unpickled where CUDA is absent moves
        its weights to the CPU (with skorch's ``DeviceWarning``).
    n_jobs : int, default=None
        Threads reading tile pixels in :meth:`transform` (reads overlap
        with compute). ``None`` means 1, ``-1`` all cores.
    on_error : {"raise", "skip"}, default="raise"
        A tile that cannot be read in :meth:`transform` (a corrupt tile in
        the file): ``"raise"`` the :class:`~sklearn_gastric.io.SlideError`
        naming the slide and the tile, or ``"skip"`` it: it is left out of
        the output bag, with a
        :class:`~sklearn_gastric.preprocessing.UnreadableTileWarning` naming
        the slide and the tile's coordinates.
    verbose : int, default=0
        Print skorch's training log and show a progress bar over slides in
        :meth:`transform`.
    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation, the batch order, the validation
        split and the augmentation. With an int, CPU training is
        reproducible.
    memory : str, joblib.Memory or None, default=None
        Cache of per-slide results of :meth:`transform`. With a cache, a bag
        already segmented by a network with the same weights is read back
        instead of being segmented again: in grid searches, cross-validation
        (where ``Pipeline(memory=...)`` caches only fits, not the
        transforms that scoring runs) and repeated predictions. The key is
        the network's weights and inference settings, and the bag (its
        slide's path, size and modification time or its pixels, the stain
        transform, the tile coordinates).

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The trained network (``net_.module_`` is the :class:`VNet`,
        ``net_.history`` the training log).
    classes_ : ndarray of shape (n_classes,)
        Patch classes; the columns of ``patch_proba`` follow them. Without
        ``labels`` in :meth:`fit`, ``[0, 1]``: lesion absent / present.
    n_classes_ : int
        Number of patch classes.

    See Also
    --------
    VNet : The network.
    SegmentationLoss : The training loss.
    augment_patch : The training augmentation.

    Notes
    -----
    Without ``labels``, the classification branch learns whether the patch
    contains a lesion: a patch is of class 1 when any pixel of its mask is
    >= 0.5.

    :meth:`fit` takes patches, :meth:`transform` takes TileBags, so the
    segmenter has no ``fit_transform``: a Pipeline must hold a trained one
    wrapped in :class:`~sklearn.frozen.FrozenEstimator`.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gastric.preprocessing import TileBag
    >>> from sklearn_gastric.segmentation import PatchSegmenter
    >>> rng = np.random.default_rng(0)
    >>> patches = rng.integers(0, 256, size=(8, 16, 16, 3), dtype=np.uint8)
    >>> masks = (patches[..., 0] > 128).astype(np.float32)
    >>> seg = PatchSegmenter(base_channels=4, depth=2, feature_dim=8, max_epochs=1,
    ...                      validation_fraction=0, random_state=0)
    >>> seg = seg.fit(patches, masks)
    >>> seg.predict_proba_maps(patches[:2]).shape
    (2, 16, 16)
    >>> bag = TileBag(np.zeros((32, 32, 3), np.uint8), [[0, 0], [16, 16]], 16)
    >>> out, = seg.transform([bag])
    >>> out.features.shape, out.scores.shape, out.patch_proba.shape
    ((2, 8), (2,), (2, 2))
    >>> out.prob_maps.shape
    (2, 2, 2)
    """

    _parameter_constraints: dict = {
        "base_channels": [Interval(Integral, 1, None, closed="left")],
        "depth": [Interval(Integral, 1, None, closed="left")],
        "feature_dim": [Interval(Integral, 1, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "dice_weight": [Interval(Real, 0, 1, closed="both")],
        "classification_loss": [StrOptions({"euclidean", "cross_entropy"})],
        "class_weight": [StrOptions({"balanced"}), None],
        "hed_jitter": [Interval(Real, 0, 1, closed="both")],
        "augment": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "patience": [Interval(Integral, 1, None, closed="left"), None],
        "map_downsample": [Interval(Integral, 1, None, closed="left")],
        "device": [str],
        "n_jobs": N_JOBS,
        "on_error": [StrOptions({"raise", "skip"})],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
        "memory": [None, str, HasMethods(["cache"])],
    }

    def __init__(
        self,
        *,
        base_channels=16,
        depth=4,
        feature_dim=128,
        max_epochs=30,
        lr=1e-3,
        batch_size=16,
        dice_weight=0.5,
        classification_loss="cross_entropy",
        class_weight="balanced",
        augment=True,
        hed_jitter=0.0,
        validation_fraction=0.1,
        patience=5,
        map_downsample=8,
        device="cpu",
        n_jobs=None,
        on_error="raise",
        verbose=0,
        random_state=None,
        memory=None,
    ):
        self.base_channels = base_channels
        self.depth = depth
        self.feature_dim = feature_dim
        self.max_epochs = max_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.dice_weight = dice_weight
        self.classification_loss = classification_loss
        self.class_weight = class_weight
        self.augment = augment
        self.hed_jitter = hed_jitter
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.map_downsample = map_downsample
        self.device = device
        self.n_jobs = n_jobs
        self.on_error = on_error
        self.verbose = verbose
        self.random_state = random_state
        self.memory = memory

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, patches, masks, labels=None):
        """Train the network on patches with pixel masks.

        Parameters
        ----------
        patches : ndarray of shape (n_patches, tile_size, tile_size, 3), uint8
            RGB patches; the size must be divisible by ``2**depth``.
        masks : array-like of shape (n_patches, tile_size, tile_size)
            Lesion masks in [0, 1] (float or bool).
        labels : array-like of shape (n_patches,), default=None
            Patch classes (any labels, e.g. strings). None trains the
            classification branch on "lesion present in the patch".

        Returns
        -------
        self : PatchSegmenter
            The trained segmenter.
        """
        device = check_device(self.device, type(self).__name__)
        patches = self._check_patches(patches, "fit", self.depth)
        masks = _check_masks(masks, patches.shape[:3])
        if labels is None:
            classes = np.array([0, 1])
            encoded = (masks >= 0.5).any(axis=(1, 2)).astype(np.int64)
        else:
            labels = check_labels(
                labels, len(patches), type(self).__name__, unit="patch"
            )
            classes, encoded = np.unique(labels, return_inverse=True)

        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        augment = (
            partial(augment_patch, hed=float(self.hed_jitter)) if self.augment else None
        )
        dataset = _PatchDataset(
            patches, masks, encoded.astype(np.int64), augment=augment, seed=seed
        )
        callbacks = []
        train_split = None
        if self.validation_fraction > 0:
            if round(self.validation_fraction * len(patches)) >= len(patches):
                raise ValueError(
                    f"validation_fraction={self.validation_fraction} leaves no "
                    f"training patch out of {len(patches)}."
                )
            train_split = _TrainValidSplit(self.validation_fraction, seed)
            callbacks.append(("validation_scores", ValidationScores()))
            if self.patience is not None:
                callbacks.append(
                    (
                        "early_stopping",
                        EarlyStopping(
                            monitor="valid_loss", patience=self.patience, load_best=True
                        ),
                    )
                )
        net = _SegmenterNet(
            module=VNet,
            module__n_classes=len(classes),
            module__base_channels=self.base_channels,
            module__depth=self.depth,
            module__feature_dim=self.feature_dim,
            criterion=SegmentationLoss,
            criterion__dice_weight=self.dice_weight,
            criterion__classification_loss=self.classification_loss,
            criterion__class_weight=self._class_weights(encoded, len(classes)),
            optimizer=torch.optim.Adam,
            lr=self.lr,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            iterator_train__shuffle=True,
            train_split=train_split,
            callbacks=callbacks,
            device=self.device,
            verbose=self.verbose,
        )
        fork_devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=fork_devices):
            torch.manual_seed(seed)
            net.fit(dataset, None)
        # Leave the module in eval mode so that inference changes nothing in
        # the estimator: joblib.hash stays the same and Pipeline caching hits.
        net.module_.eval()
        net.criterion_.eval()
        self.classes_ = classes
        self.n_classes_ = len(classes)
        self.net_ = net
        return self

    def _class_weights(self, encoded, n_classes):
        """The classification loss's weight of each class, or None."""
        if self.class_weight is None:
            return None
        present = np.unique(encoded)
        weights = np.ones(n_classes)
        weights[present] = compute_class_weight("balanced", classes=present, y=encoded)
        return weights.tolist()

    def transform(self, tile_bags):
        """Segment and classify every tile of every bag.

        Tiles are read ``batch_size`` at a time (at most ``2**20`` pixels) by
        ``n_jobs`` threads while the previous batch is on the network.

        Parameters
        ----------
        tile_bags : list of TileBag
            The tiles; their ``tile_size`` must be divisible by ``2**depth``.

        Returns
        -------
        tile_bags : list of TileBag
            One new bag per input, in order, with ``features`` (n, feature_dim),
            ``scores`` (n,), ``patch_proba`` (n, n_classes) and ``prob_maps``
            (n, tile_size // map_downsample, tile_size // map_downsample).
            With ``on_error="skip"``, the unreadable tiles are not in it.
        """
        check_is_fitted(self)
        if self.on_error not in ("raise", "skip"):
            raise ValueError(
                f"on_error must be 'raise' or 'skip'; got {self.on_error!r}."
            )
        depth = self.net_.module_.depth
        tile_bags = list(tile_bags)
        for index, bag in enumerate(tile_bags):
            if not isinstance(bag, TileBag):
                raise TypeError(
                    f"PatchSegmenter.transform expects TileBags; item {index} is "
                    f"a {type(bag).__name__}."
                )
            _check_size(bag.tile_size, bag.tile_size, depth, f"Slide {bag.name!r}")
        memory = check_memory(self.memory)
        if memory.location is None:
            segment = self._segment_bag
        else:
            # One hash of the trained network per call; joblib then keys each
            # bag's result on it, never re-hashing the weights per slide.
            cached = memory.cache(_segment_bag_cached, ignore=["segmenter"])
            segment = partial(cached, self, joblib.hash(self))
        results = map_slides(
            segment,
            tile_bags,
            verbose=self.verbose,
            desc="Segmenting tiles",
        )
        # Warnings are raised here, not in the workers, so that they reach
        # the caller whatever the joblib backend.
        for _, failures in results:
            for message in failures:
                warnings.warn(message, UnreadableTileWarning, stacklevel=2)
        return [bag for bag, _ in results]

    def predict_proba_maps(self, patches):
        """Per-pixel probability of "positive" for plain patches.

        Parameters
        ----------
        patches : ndarray of shape (n_patches, height, width, 3), uint8
            RGB patches; height and width divisible by ``2**depth``.

        Returns
        -------
        proba : ndarray of shape (n_patches, height, width), float32
        """
        return self._predict_patches(patches, "predict_proba_maps", output=0)

    def predict_patch_proba(self, patches):
        """Class probabilities of plain patches (the classification branch).

        Parameters
        ----------
        patches : ndarray of shape (n_patches, height, width, 3), uint8
            RGB patches; height and width divisible by ``2**depth``.

        Returns
        -------
        proba : ndarray of shape (n_patches, n_classes), float32
            Columns in the order of ``classes_``.
        """
        return self._predict_patches(patches, "predict_patch_proba", output=1)

    def _predict_patches(self, patches, method, output):
        """One of :meth:`_infer`'s outputs for plain patches, batch by batch."""
        check_is_fitted(self)
        patches = self._check_patches(patches, method, self.net_.module_.depth)
        step = self._inference_batch_size(patches.shape[1] * patches.shape[2])
        parts = [
            self._infer(patches[start : start + step])[output].cpu().numpy()
            for start in range(0, len(patches), step)
        ]
        return np.concatenate(parts).astype(np.float32, copy=False)

    def _inference_batch_size(self, pixels_per_tile):
        # Activations grow with batch x pixels: 16 tiles of 512 px take about
        # 4.4 GB with the default network on the CPU, 4 tiles about 1.1 GB.
        return max(1, min(self.batch_size, _INFERENCE_PIXELS // pixels_per_tile))

    def _segment_bag(self, bag):
        """The segmented bag and the messages of the tiles skipped."""
        side = max(1, bag.tile_size // self.map_downsample)
        n_tiles = len(bag)
        # The outputs are filled in place, batch by batch: on a slide of tens
        # of thousands of tiles, stacking per-batch pieces at the end would
        # hold every column twice at once.
        columns = {
            "features": np.empty(
                (n_tiles, self.net_.module_.feature_dim), dtype=np.float32
            ),
            "scores": np.empty(n_tiles, dtype=np.float32),
            "patch_proba": np.empty((n_tiles, self.n_classes_), dtype=np.float32),
            "prob_maps": np.empty((n_tiles, side, side), dtype=np.float32),
        }
        read, skipped = [], []
        for indices, batch, failures in bag._read_batches(
            self._inference_batch_size(bag.tile_size**2),
            n_jobs=self.n_jobs,
            on_error=self.on_error,
        ):
            skipped.extend(failures)
            if not len(indices):
                continue
            read.append(indices)
            proba, class_proba, feats = self._infer(batch)
            columns["scores"][indices] = proba.sum(dim=(1, 2)).cpu().numpy()
            columns["prob_maps"][indices] = (
                F.adaptive_avg_pool2d(proba[:, None], side)[:, 0].cpu().numpy()
            )
            columns["patch_proba"][indices] = class_proba.cpu().numpy()
            columns["features"][indices] = feats.cpu().numpy()
        if skipped:
            kept = np.concatenate(read) if read else np.zeros(0, dtype=np.intp)
            bag = bag.subset(kept)
            columns = {name: values[kept] for name, values in columns.items()}
        return bag.replace(**columns), skipped

    def _infer(self, batch):
        """Probability maps, class probabilities and features of a uint8 batch."""
        net = self.net_
        net.module_.eval()
        x = torch.from_numpy(np.ascontiguousarray(batch)).to(net.device)
        # NHWC -> NCHW view: already channels-last in memory.
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        with torch.inference_mode():
            seg_logits, class_logits, features = net.infer(x)
            return (
                torch.sigmoid(seg_logits.float()),
                torch.softmax(class_logits.float(), dim=1),
                features.float(),
            )

    def _check_patches(self, patches, method, depth):
        if (
            isinstance(patches, list | tuple)
            and patches
            and isinstance(patches[0], TileBag)
        ):
            raise TypeError(
                f"PatchSegmenter.{method} takes an array of patches, not TileBags. "
                "To use a trained segmenter in a Pipeline, wrap it in "
                "sklearn.frozen.FrozenEstimator."
            )
        patches = np.asarray(patches)
        if patches.ndim != 4 or patches.shape[-1] != 3 or patches.dtype != np.uint8:
            raise ValueError(
                "patches must be RGB uint8 of shape (n_patches, height, width, 3); "
                f"got {patches.dtype} of shape {patches.shape}."
            )
        if len(patches) == 0:
            raise ValueError("patches is empty; at least one patch is required.")
        _check_size(patches.shape[1], patches.shape[2], depth, "patches")
        return patches

    def __getstate__(self):
        # object.__getstate__ returns the instance's own __dict__: copy it.
        state = dict(super().__getstate__())
        if "net_" in state:
            state["net_"] = _NetPayload(state["net_"])
        return state

    def __setstate__(self, state):
        if isinstance(state.get("net_"), _NetPayload):
            state = dict(state, net_=state["net_"].load())
        super().__setstate__(state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.transformer_tags = TransformerTags(preserves_dtype=[])
        tags.non_deterministic = self.device != "cpu"
        return tags


def _check_size(height, width, depth, what):
    factor = 2**depth
    if height % factor or width % factor:
        raise ValueError(
            f"{what}: tile size {height}x{width} is not divisible by "
            f"2**depth = {factor}."
        )


def _check_masks(masks, shape):
    masks = np.asarray(masks)
    if masks.shape != shape:
        raise ValueError(
            f"masks must have shape {shape}, one per patch and as large; "
            f"got {masks.shape}."
        )
    if masks.dtype != bool and masks.dtype.kind not in "fiu":
        raise ValueError(f"masks must be float or bool; got {masks.dtype}.")
    masks = masks.astype(np.float32)
    if not np.isfinite(masks).all() or masks.min() < 0 or masks.max() > 1:
        raise ValueError("masks must hold values in [0, 1] (no NaN).")
    return masks


class _PatchDataset(Dataset):
    """Patches, masks and labels as ``(image, {"mask": ..., "label": ...})``."""

    def __init__(self, patches, masks, labels, *, augment, seed):
        self.patches = patches
        self.masks = masks
        self.labels = labels
        self.augment = augment
        self.seed = seed
        self._rng = np.random.RandomState(seed)

    def __len__(self):
        return len(self.patches)

    def __getitem__(self, index):
        patch, mask = self.patches[index], self.masks[index]
        if self.augment is not None:
            patch, mask = self.augment(patch, mask, random_state=self._rng)
        image = torch.from_numpy(np.ascontiguousarray(patch)).permute(2, 0, 1)
        return image.float().div_(255.0), {
            "mask": torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32)),
            "label": torch.tensor(self.labels[index]),
        }

    def subset(self, indices, *, augment):
        return _PatchDataset(
            self.patches[indices],
            self.masks[indices],
            self.labels[indices],
            augment=augment,
            seed=self.seed,
        )


class _TrainValidSplit:
    """skorch ``train_split``: a seeded split that never augments validation."""

    def __init__(self, fraction, seed):
        self.fraction = fraction
        self.seed = seed

    def __call__(self, dataset, y=None, **fit_params):
        train, valid = stratified_split(dataset.labels, self.fraction, self.seed)
        return (
            dataset.subset(train, augment=dataset.augment),
            dataset.subset(valid, augment=None),
        )


class _SegmenterNet(NeuralNet):
    """skorch net running bfloat16 autocast and channels-last on CUDA."""

    def _on_cuda(self):
        return torch.device(self.device).type == "cuda"

    def initialize_module(self):
        super().initialize_module()
        if self._on_cuda():
            self.module_ = self.module_.to(memory_format=torch.channels_last)
        return self

    def infer(self, x, **fit_params):
        x = to_tensor(x, device=self.device)
        if self._on_cuda():
            x = x.contiguous(memory_format=torch.channels_last)
            context = torch.autocast("cuda", dtype=torch.bfloat16)
        else:
            context = nullcontext()
        with context:
            return self.module_(x, **fit_params)


class _NetPayload:
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

    def load(self):
        net_class, state = pickle.loads(self.data)
        device = torch.device(state["device"])
        if device.type == "cuda" and not torch.cuda.is_available():
            warnings.warn(
                f"The segmenter was trained on {state['device']!r}, which is not "
                "available: loading it on 'cpu'.",
                DeviceWarning,
                stacklevel=3,
            )
            state["device"] = "cpu"
        elif device.type != "cpu":
            state = _to_device(state, state["device"])
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
            return _rebuild_tensor, (array, dtype, obj.requires_grad, is_parameter)
        return NotImplemented


def _sort_key(item):
    return type(item).__name__, repr(item)


def _rebuild_tensor(array, dtype, requires_grad, is_parameter):
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
    return state


def _segment_bag_cached(segmenter, network_hash, bag):
    """What ``memory`` caches: ``segmenter`` is ignored in the key, which is
    ``network_hash`` (the trained network and its settings) and the bag."""
    return segmenter._segment_bag(bag)
