"""PatchSegmenter: the V-Net segmenter of step 5, trained through skorch."""

import warnings
from functools import partial
from numbers import Integral, Real

import joblib
import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import TransformerTags, check_random_state
from sklearn.utils.validation import check_is_fitted, check_memory

from ..preprocessing import UnreadableTileWarning
from ..utils._nets import (
    NetPayload,
    PicklesNetByContent,
    build_net,
    fit_seeded,
    rebuild_tensor,
)
from ..utils._parallel import map_slides
from ..utils._sklearn_compat import (
    HasMethods,
    Hidden,
    Interval,
    StrOptions,
    _fit_context,
)
from ..utils._validation import (
    N_JOBS,
    check_device,
    check_divisible_by_depth,
    check_masks,
    check_patches,
    check_tile_bags,
)
from ._compat import RenamedParameters
from ._inference import (
    _batch_size,
    _segment_tiles,
    cpu_policy,
    infer_batch,
    inference_session,
    pixel_cap,
)
from ._losses import SegmentationLoss
from ._options import ENGINES, PRECISIONS
from ._provenance import patches_stain, warn_if_other_stain
from ._training import (
    _SegmenterNet,
    _TrainValidSplit,  # noqa: F401 (see the end of the module)
    encode_patch_labels,
    training_setup,
)
from ._vnet import VNet

__all__ = ["PatchSegmenter"]


class PatchSegmenter(RenamedParameters, PicklesNetByContent, BaseEstimator):
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
    base_channels : int, default=4
        Filters of the first encoder block (doubled at each level); with
        depth 3 the fastest width measured, and as accurate (:ref:`speed`).
    depth : int, default=3
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
        batches are also capped in pixels: ``2**18`` (one 512 px tile, 16 of
        128 px) with ``engine="torch"`` on the CPU, ``2**20`` elsewhere, which
        keeps the default network's memory near 1 GB whatever the tile size.
    dice_weight : float, default=0.5
        Loss = ``dice_weight`` x Dice loss + (1 - ``dice_weight``) x
        classification loss.
    dice_reduction : {"patch", "batch"}, default="patch"
        The mean of the patches' Dice losses, or one Dice over every pixel
        of a batch. Per patch, a patch without lesion whose prediction has a
        few false pixels costs as much as a missed lesion; over the batch
        they cost in proportion to their number. ``"batch"`` gave the
        higher held-out Dice and patch balanced accuracy in each of four
        paired trainings with early stopping (three on real tissue, one
        synthetic), and a lower Dice in one training kept at its last epoch
        (``docs/benchmarks.md``). See :func:`dice_loss`.
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
        Torch device, e.g. ``"cuda"``. On a CUDA device, training runs with
        bfloat16 autocast and channels-last tensors. A segmenter trained on a
        GPU and unpickled where CUDA is absent moves its weights to the CPU
        (with skorch's ``DeviceWarning``).
    precision : {"auto", "float32", "bfloat16"}, default="auto"
        Arithmetic of inference: "auto" is bfloat16 on CUDA, float32
        elsewhere (see :ref:`speed`). Changing it needs no refit.
    engine : {"torch", "openvino"}, default="torch"
        What runs the network at inference: "torch", the network with
        BatchNorm folded and reused buffers (maps within 1e-5 of the
        training network's); "openvino", the ``openvino`` extra.
    reader_threads : int, default=None
        Threads reading tile pixels in :meth:`transform` (reads overlap
        with compute). ``None`` means 1, ``-1`` all cores.
    torch_threads : int, default=None
        Torch threads of fit and transform (restored after); None follows
        the library's policy (:ref:`threads`).
    n_jobs : int, default="deprecated"
        The former name of ``reader_threads``; None (its former default) is
        ignored.

        .. deprecated:: 0.1
            ``n_jobs`` was renamed ``reader_threads`` in 0.1 (everywhere
            else ``n_jobs`` counts joblib workers) and will be removed in
            0.3.
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
    patch_size_ : int or None
        Side of the square training patches (None for oblong ones).
        :meth:`transform` warns about tiles of another size: the network
        sees structures at another scale than it learnt.
    training_stain_ : dict or None
        How the training patches were stain-normalised, when they said so
        (the :class:`StainedPatches` that :func:`sample_patches` returns):
        ``{"method": "none"}`` for raw patches, else the normaliser's
        ``"method"`` and its target's parameters (``"stains"`` and
        ``"max_concentrations"``, or ``"mean"`` and ``"std"`` for
        Reinhard). None: unknown (plain arrays). :meth:`transform` warns
        about tiles coloured otherwise: raw where the patches were
        normalised, normalised where they were raw, or to another target.

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
        "dice_reduction": [StrOptions({"patch", "batch"})],
        "classification_loss": [StrOptions({"euclidean", "cross_entropy"})],
        "class_weight": [StrOptions({"balanced"}), None],
        "hed_jitter": [Interval(Real, 0, 1, closed="both")],
        "augment": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "patience": [Interval(Integral, 1, None, closed="left"), None],
        "map_downsample": [Interval(Integral, 1, None, closed="left")],
        "device": [str],
        "precision": [StrOptions(set(PRECISIONS))],
        "engine": [StrOptions(set(ENGINES))],
        "reader_threads": N_JOBS,
        "torch_threads": [Interval(Integral, 1, None, closed="left"), None],
        "n_jobs": [Hidden(StrOptions({"deprecated"})), *N_JOBS],
        "on_error": [StrOptions({"raise", "skip"})],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
        "memory": [None, str, HasMethods(["cache"])],
    }

    def __init__(
        self,
        *,
        base_channels=4,
        depth=3,
        feature_dim=128,
        max_epochs=30,
        lr=1e-3,
        batch_size=16,
        dice_weight=0.5,
        dice_reduction="patch",
        classification_loss="cross_entropy",
        class_weight="balanced",
        augment=True,
        hed_jitter=0.0,
        validation_fraction=0.1,
        patience=5,
        map_downsample=8,
        device="cpu",
        precision="auto",
        engine="torch",
        reader_threads=None,
        torch_threads=None,
        n_jobs="deprecated",
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
        self.dice_reduction = dice_reduction
        self.classification_loss = classification_loss
        self.class_weight = class_weight
        self.augment = augment
        self.hed_jitter = hed_jitter
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.map_downsample = map_downsample
        self.device = device
        self.precision = precision
        self.engine = engine
        self.reader_threads = reader_threads
        self.torch_threads = torch_threads
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
            RGB patches; the size must be divisible by ``2**depth``. Those
            of :func:`sample_patches` (a :class:`StainedPatches`) also say
            how they were stain-normalised: ``training_stain_`` keeps it.
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
        self._warn_if_n_jobs_is_set()
        check_device(self.device, type(self).__name__)
        stain = patches_stain(patches)
        patches = check_patches(patches, "PatchSegmenter.fit", self.depth)
        masks = check_masks(masks, patches.shape[:3], "PatchSegmenter.fit")
        classes, encoded = encode_patch_labels(masks, labels, type(self).__name__)
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        dataset, net_settings = training_setup(
            self, patches, masks, classes, encoded, seed
        )
        net = self._make_net(**net_settings)
        with cpu_policy(self.torch_threads, reader_threads=0):
            net = fit_seeded(net, dataset, seed)
        self.classes_ = classes
        self.n_classes_ = len(classes)
        height, width = patches.shape[1:3]
        self.patch_size_ = int(height) if height == width else None
        self.training_stain_ = stain
        self.net_ = net
        return self

    def _make_net(self, **overrides):
        """The skorch net of this segmenter, untrained: ``fit`` trains it,
        and :func:`~sklearn_gastric.load_model` rebuilds it with the stored
        net parameters as ``overrides``."""
        params = {
            "module": VNet,
            "module__base_channels": self.base_channels,
            "module__depth": self.depth,
            "module__feature_dim": self.feature_dim,
            "criterion": SegmentationLoss,
            "criterion__dice_weight": self.dice_weight,
            "criterion__dice_reduction": self.dice_reduction,
            "criterion__classification_loss": self.classification_loss,
        }
        return build_net(_SegmenterNet, self, params, overrides)

    def transform(self, tile_bags):
        """Segment and classify every tile of every bag.

        Tiles are read ``batch_size`` at a time (at most ``2**20`` pixels) by
        ``reader_threads`` threads while the previous batch is on the network.

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
        self._warn_if_n_jobs_is_set()
        if self.on_error not in ("raise", "skip"):
            raise ValueError(
                f"on_error must be 'raise' or 'skip'; got {self.on_error!r}."
            )
        self._validate_params()  # inference settings may be set after fit
        depth = self.net_.module_.depth
        tile_bags = check_tile_bags(tile_bags, "PatchSegmenter.transform")
        for bag in tile_bags:
            size = bag.tile_size
            check_divisible_by_depth(size, size, depth, f"Slide {bag.name!r}")
        self._warn_if_other_tile_size(tile_bags)
        # Segmenters fitted before training_stain_ existed say nothing.
        warn_if_other_stain(
            getattr(self, "training_stain_", None), tile_bags, stacklevel=2
        )
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

    def _warn_if_other_tile_size(self, tile_bags):
        """One UserWarning per tile size that is not the training patches'
        (segmenters fitted before ``patch_size_`` existed say nothing)."""
        trained = getattr(self, "patch_size_", None)
        if trained is None:
            return
        by_size = {}
        for bag in tile_bags:
            if bag.tile_size != trained:
                by_size.setdefault(bag.tile_size, []).append(bag.name)
        for size, names in by_size.items():
            n_others = len(names) - 1
            plural = "s" if n_others > 1 else ""
            others = f" (and {n_others} other slide{plural})" if n_others else ""
            warnings.warn(
                f"Slide {names[0]!r}{others}: tiles of {size} pixels, but this "
                f"PatchSegmenter was trained on patches of {trained} pixels, so "
                "it sees the tissue at another scale than it learnt: its maps, "
                "scores and features are not those it was trained to give. Cut "
                f"tiles of {trained} pixels (Tiler(tile_size={trained}), with "
                "mpp= at the training patches' resolution).",
                UserWarning,
                stacklevel=3,
            )

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
            As for :meth:`predict_proba_maps`.

        Returns
        -------
        proba : ndarray of shape (n_patches, n_classes), float32
            Columns in the order of ``classes_``.
        """
        return self._predict_patches(patches, "predict_patch_proba", output=1)

    def _predict_patches(self, patches, method, output):
        """One of :meth:`_infer`'s outputs for plain patches, batch by batch."""
        check_is_fitted(self)
        self._validate_params()
        depth = self.net_.module_.depth
        patches = check_patches(patches, f"PatchSegmenter.{method}", depth)
        step = self._inference_batch(patches.shape[1] * patches.shape[2])
        with inference_session(self, reader_threads=0):
            parts = [
                self._infer(patches[start : start + step])[output].cpu().numpy()
                for start in range(0, len(patches), step)
            ]
        return np.concatenate(parts).astype(np.float32, copy=False)

    def _segment_bag(self, bag):
        """The segmented bag and the messages of the tiles skipped."""
        readers = self._reader_threads()
        with inference_session(self, readers):
            return _segment_tiles(
                bag,
                self._infer,
                batch_size=self._inference_batch(bag.tile_size**2),
                map_side=max(1, bag.tile_size // self.map_downsample),
                widths=(self.net_.module_.feature_dim, self.n_classes_),
                reader_threads=readers,
                on_error=self.on_error,
            )

    def _inference_batch(self, pixels_per_tile):
        cap = pixel_cap(self.engine, self.net_.device)
        return _batch_size(self.batch_size, pixels_per_tile, cap)

    def _infer(self, batch):
        """Probability maps, class probabilities and features of a uint8 batch."""
        return infer_batch(
            self.net_.module_,
            batch,
            engine=self.engine,
            precision=self.precision,
            device=self.net_.device,
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.transformer_tags = TransformerTags(preserves_dtype=[])
        tags.non_deterministic = self.device != "cpu"
        return tags


def _segment_bag_cached(segmenter, network_hash, bag):
    """What ``memory`` caches: ``segmenter`` is ignored in the key, which is
    ``network_hash`` (the trained network and its settings) and the bag."""
    return segmenter._segment_bag(bag)


# Where joblib pickles of a fitted PatchSegmenter made before the persistence
# package (0.1.0.dev0) find these names (and _TrainValidSplit, imported above).
_NetPayload, _rebuild_tensor = NetPayload, rebuild_tensor
