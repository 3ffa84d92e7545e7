"""What PatchSegmenter trains on and with: the patch dataset, its seeded
validation split, the class weights of its loss, and the skorch net (which
runs bfloat16 autocast and channels-last on CUDA)."""

from contextlib import nullcontext

import numpy as np
import torch
from sklearn.utils.class_weight import compute_class_weight
from skorch import NeuralNet
from skorch.utils import to_tensor
from torch.utils.data import Dataset

from ..utils._nets import held_out_settings
from ..utils._validation import stratified_split
from ._callbacks import ValidationScores


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

    def predict_batch(self, batch):
        """Probability maps, class probabilities and features of a uint8 batch
        of shape (n, height, width, 3)."""
        self.module_.eval()
        x = _as_input(torch.from_numpy(np.ascontiguousarray(batch)).to(self.device))
        with torch.inference_mode():
            seg_logits, class_logits, features = self.infer(x)
            return (
                torch.sigmoid(seg_logits.float()),
                torch.softmax(class_logits.float(), dim=1),
                features.float(),
            )


def _as_input(pixels):
    """uint8 ``(..., height, width, 3)`` pixels as the network's float input,
    ``(..., 3, height, width)`` in [0, 1]: a view, channels-last in memory."""
    return pixels.movedim(-1, -3).float().div_(255.0)
