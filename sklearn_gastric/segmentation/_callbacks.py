"""skorch callbacks of the segmenter's training."""

import warnings

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score
from skorch.callbacks import Callback

__all__ = ["ValidationScores"]


class ValidationScores(Callback):
    """Record, each epoch, the validation patches' Dice and balanced accuracy.

    The validation loss alone mixes segmentation and classification; this
    reports them apart, as ``valid_dice`` (pixels at probability >= 0.5
    against masks >= 0.5, pooled over the validation patches) and
    ``valid_bacc`` (balanced accuracy of the patch classes), so that the
    training log and ``net_.history`` show both. It reuses the validation
    batches' outputs: no extra forward pass.
    """

    def on_epoch_begin(self, net, **kwargs):
        self._overlap = self._predicted = self._true = 0.0
        self._labels, self._guesses = [], []

    def on_batch_end(self, net, batch=None, training=None, y_pred=None, **kwargs):
        if training or y_pred is None:
            return
        seg_logits, class_logits, _ = y_pred
        target = batch[1]
        predicted = seg_logits.detach() >= 0  # sigmoid >= 0.5
        true = target["mask"].to(predicted.device) >= 0.5
        self._overlap += float((predicted & true).sum())
        self._predicted += float(predicted.sum())
        self._true += float(true.sum())
        self._labels.append(target["label"].cpu().numpy())
        self._guesses.append(torch.argmax(class_logits.detach(), 1).cpu().numpy())

    def on_epoch_end(self, net, **kwargs):
        labels, guesses = self._labels, self._guesses
        # Nothing kept between epochs, nor in the fitted (pickled) net.
        self._labels, self._guesses = [], []
        if not labels:
            return
        total = self._predicted + self._true
        dice = 1.0 if total == 0 else 2.0 * self._overlap / total
        net.history.record("valid_dice", dice)
        with warnings.catch_warnings():
            # A class predicted but absent from a small validation split.
            warnings.simplefilter("ignore", UserWarning)
            bacc = balanced_accuracy_score(
                np.concatenate(labels), np.concatenate(guesses)
            )
        net.history.record("valid_bacc", float(bacc))
