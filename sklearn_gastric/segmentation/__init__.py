"""Step 5: the V-Net patch segmenter, its losses and its augmentation."""

from ._augment import augment_patch
from ._losses import SegmentationLoss, dice_loss, euclidean_loss
from ._segmenter import PatchSegmenter
from ._vnet import VNet

__all__ = [
    "PatchSegmenter",
    "SegmentationLoss",
    "VNet",
    "augment_patch",
    "dice_loss",
    "euclidean_loss",
]
