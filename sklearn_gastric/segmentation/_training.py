"""What PatchSegmenter trains on and with: the patch dataset, its seeded
validation split, the class weights of its loss, and the skorch net (which
runs bfloat16 autocast and channels-last on CUDA)."""

from contextlib import nullcontext
from functools import partial

import numpy as np
import torch
from sklearn.utils.class_weight import compute_class_weight
from skorch import NeuralNet
from skorch.utils import to_tensor
from torch.utils.data import Dataset

from ..utils._nets import held_out_settings
from ..utils._validation import check_labels, stratified_split
from ._augment import augment_patch
from ._callbacks import ValidationScores


def encode_patch_labels(masks, labels, owner):
    """The classes and each patch's class index: the given ``labels``, or,
    without them, whether the patch's mask has a lesion pixel (>= 0.5)."""
    if labels is None:
        encoded = (masks >= 0.5).any(axis=(1, 2)).astype(np.int64)
        return np.array([0, 1]), encoded
    labels = check_labels(labels, len(masks), owner, unit="patch")
    classes, encoded = np.unique(labels, return_inverse=True)
    return classes, encoded.astype(np.int64)


def training_setup(segmenter, patches, masks, classes, encoded, seed):
    """The dataset a :class:`PatchSegmenter` trains on (augmented as its
    parameters say) and the net settings its parameters imply: the number
    of classes, the class weights of the loss, the validation split and
    early stopping."""
    augment = None
    if segmenter.augment:
        augment = partial(augment_patch, hed=float(segmenter.hed_jitter))
    dataset = _PatchDataset(patches, masks, encoded, augment=augment, seed=seed)
    settings = _validation(
        segmenter.validation_fraction, segmenter.patience, seed, len(patches)
    )
    settings["module__n_classes"] = len(classes)
    settings["criterion__class_weight"] = _class_weights(
        segmenter.class_weight, encoded, len(classes)
    )
    return dataset, settings


def _validation(fraction, patience, seed, n_patches):
    """The ``train_split`` and ``callbacks`` of a net holding out ``fraction``
    of the ``n_patches`` patches: validation scores, and early stopping
    unless ``patience`` is None. No split at all when ``fraction`` is 0."""
    if fraction == 0:
        return {}
    if round(fraction * n_patches) >= n_patches:
        raise ValueError(
            f"validation_fraction={fraction} leaves no training patch out of "
            f"{n_patches}."
        )
    return held_out_settings(
        _TrainValidSplit(fraction, seed),
        patience,
        [("validation_scores", ValidationScores())],
    )


def _class_weights(class_weight, encoded, n_classes):
    """The classification loss's weight of each of ``n_classes`` classes for
    the patches of classes ``encoded``: None, or ``"balanced"`` weights."""
    if class_weight is None:
        return None
    present = np.unique(encoded)
    weights = np.ones(n_classes)
    weights[present] = compute_class_weight("balanced", classes=present, y=encoded)
    return weights.tolist()


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
        image = _as_input(torch.from_numpy(np.ascontiguousarray(patch)))
        return image, {
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


def _as_input(pixels):
    """uint8 ``(..., height, width, 3)`` pixels as the network's float input,
    ``(..., 3, height, width)`` in [0, 1]: a view, channels-last in memory."""
    return pixels.movedim(-1, -3).float().div_(255.0)
