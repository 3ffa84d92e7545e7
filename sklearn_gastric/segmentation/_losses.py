"""The segmenter's training losses (patent CN 112990339 A, figure 5)."""

from numbers import Real

import torch
import torch.nn.functional as F
from torch import nn

from ..utils._sklearn_compat import Interval, StrOptions, validate_params

__all__ = ["SegmentationLoss", "dice_loss", "euclidean_loss"]


@validate_params(
    {
        "proba": [torch.Tensor],
        "target": [torch.Tensor],
        "eps": [Interval(Real, 0, None, closed="left")],
        "reduction": [StrOptions({"patch", "batch"})],
    },
    prefer_skip_nested_validation=True,
)
def dice_loss(proba, target, *, eps=1.0, reduction="patch"):
    """Dice loss ``1 - (2 Σ p q + eps) / (Σ (p² + q²) + eps)``.

    With ``reduction="patch"`` the sums run over the pixels of each patch
    and the loss of a batch is the mean of its patches' losses; with
    ``"batch"`` they run over every pixel of the batch (one Dice of the
    batch, as nnU-Net's "batch Dice").

    Parameters
    ----------
    proba : torch.Tensor of shape (n, height, width)
        Predicted probability of "positive" per pixel, in [0, 1].
    target : torch.Tensor of shape (n, height, width)
        Ground-truth mask, in [0, 1].
    eps : float, default=1.0
        Smoothing term added to numerator and denominator. It defines the
        empty-mask case: a patch whose mask and prediction are both empty has
        loss 0, and a patch with an empty mask has loss
        ``Σ p² / (Σ p² + eps)``, which grows with the falsely predicted
        area. On a 64x64 patch, ``eps=1`` is negligible whenever the mask
        is not empty.
    reduction : {"patch", "batch"}, default="patch"
        Per-patch Dice averaged over the batch, or one Dice over the whole
        batch. Per patch, every patch without lesion whose prediction has a
        few false pixels costs nearly 1, as much as a missed lesion, which
        pulls the network towards predicting nothing where lesions are
        sparse; over the batch, false pixels cost in proportion to their
        number.

    Returns
    -------
    loss : torch.Tensor
        A scalar in [0, 1].

    Examples
    --------
    >>> import torch
    >>> from sklearn_gastric.segmentation import dice_loss
    >>> p = torch.tensor([[[1.0, 0.5], [0.0, 0.0]]])
    >>> q = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    >>> round(float(dice_loss(p, q, eps=0.0)), 4)  # 1 - 2 * 1.5 / 3.25
    0.0769
    """
    dims = tuple(range(1, proba.ndim)) if reduction == "patch" else None
    proba = proba.float()
    target = target.float()
    intersection = (proba * target).sum(dim=dims)
    denominator = (proba * proba).sum(dim=dims) + (target * target).sum(dim=dims)
    return (1.0 - (2.0 * intersection + eps) / (denominator + eps)).mean()


def _weighted_mean(values, labels, class_weight):
    if class_weight is None:
        return values.mean()
    weights = torch.as_tensor(class_weight, dtype=values.dtype, device=values.device)
    weights = weights[labels.long()]
    return (weights * values).sum() / weights.sum()


@validate_params(
    {
        "logits": [torch.Tensor],
        "labels": [torch.Tensor],
        "class_weight": ["array-like", None],
    },
    prefer_skip_nested_validation=True,
)
def euclidean_loss(logits, labels, class_weight=None):
    """Euclidean distance between one-hot labels and predicted class probabilities.

    The patent's classification loss: ``|| onehot(y) - softmax(logits) ||₂``
    per patch, averaged over patches.

    Parameters
    ----------
    logits : torch.Tensor of shape (n, n_classes)
        Patch class logits.
    labels : torch.Tensor of shape (n,)
        Integer class of each patch.
    class_weight : sequence of float of length n_classes, default=None
        Weight of each class in the mean over patches; None weighs every
        patch alike.

    Returns
    -------
    loss : torch.Tensor
        A scalar in [0, sqrt(2)].

    Examples
    --------
    >>> import torch
    >>> from sklearn_gastric.segmentation import euclidean_loss
    >>> logits = torch.log(torch.tensor([[0.6, 0.4]]))
    >>> round(float(euclidean_loss(logits, torch.tensor([0]))), 4)  # √(.4² + .4²)
    0.5657
    """
    proba = torch.softmax(logits.float(), dim=1)
    onehot = F.one_hot(labels.long(), num_classes=logits.shape[1]).to(proba.dtype)
    distance = torch.linalg.vector_norm(onehot - proba, dim=1)
    return _weighted_mean(distance, labels, class_weight)


class SegmentationLoss(nn.Module):
    """``dice_weight`` x Dice loss + (1 - ``dice_weight``) x classification loss.

    The criterion of :class:`PatchSegmenter`, for the output of :class:`VNet`.

    Parameters
    ----------
    dice_weight : float, default=0.5
        Weight of the Dice loss, in [0, 1].
    classification_loss : {"euclidean", "cross_entropy"}, default="euclidean"
        ``"euclidean"`` is the patent's :func:`euclidean_loss`;
        ``"cross_entropy"`` is the usual negative log-likelihood.
    eps : float, default=1.0
        Smoothing of the Dice loss (see :func:`dice_loss`).
    class_weight : sequence of float, default=None
        Weight of each patch class in the classification loss (e.g.
        inversely proportional to the class frequencies); None weighs every
        patch alike.
    dice_reduction : {"patch", "batch"}, default="patch"
        The Dice loss per patch or over the whole batch (see
        :func:`dice_loss`).

    Examples
    --------
    >>> import torch
    >>> from sklearn_gastric.segmentation import SegmentationLoss
    >>> criterion = SegmentationLoss(dice_weight=1.0)
    >>> y_pred = (torch.full((1, 2, 2), 50.0), torch.zeros(1, 2), torch.zeros(1, 3))
    >>> y_true = {"mask": torch.ones(1, 2, 2), "label": torch.tensor([1])}
    >>> float(criterion(y_pred, y_true))
    0.0
    """

    def __init__(
        self,
        dice_weight=0.5,
        classification_loss="euclidean",
        eps=1.0,
        class_weight=None,
        dice_reduction="patch",
    ):
        super().__init__()
        self.dice_weight = dice_weight
        self.dice_reduction = dice_reduction
        self.classification_loss = classification_loss
        self.eps = eps
        # Plain floats, not a tensor: a tensor attribute would pickle its
        # storage address and change the estimator's joblib hash on reload.
        self.class_weight = (
            None if class_weight is None else tuple(float(w) for w in class_weight)
        )

    def forward(self, y_pred, y_true):
        """The loss of a batch.

        Parameters
        ----------
        y_pred : tuple of torch.Tensor
            ``(seg_logits, class_logits, ...)`` as :class:`VNet` returns.
        y_true : dict
            ``{"mask": (n, h, w) in [0, 1], "label": (n,) int}``.

        Returns
        -------
        loss : torch.Tensor
        """
        seg_logits, class_logits = y_pred[0], y_pred[1]
        segmentation = dice_loss(
            torch.sigmoid(seg_logits.float()),
            y_true["mask"],
            eps=self.eps,
            reduction=self.dice_reduction,
        )
        labels = y_true["label"]
        if self.classification_loss == "euclidean":
            classification = euclidean_loss(class_logits, labels, self.class_weight)
        elif self.classification_loss == "cross_entropy":
            per_patch = F.cross_entropy(
                class_logits.float(), labels.long(), reduction="none"
            )
            classification = _weighted_mean(per_patch, labels, self.class_weight)
        else:
            raise ValueError(
                "classification_loss must be 'euclidean' or 'cross_entropy'; "
                f"got {self.classification_loss!r}."
            )
        return (
            self.dice_weight * segmentation + (1.0 - self.dice_weight) * classification
        )
