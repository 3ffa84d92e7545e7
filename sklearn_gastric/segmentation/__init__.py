"""Step 5: the V-Net patch segmenter, its losses, its augmentation, and the
sampling of its training patches from annotated slides."""

from ._augment import augment_patch
from ._losses import SegmentationLoss, dice_loss, euclidean_loss
from ._sampling import sample_patches
from ._segmenter import PatchSegmenter
from ._vnet import VNet

__all__ = [
    "PatchSegmenter",
    "SegmentationLoss",
    "VNet",
    "augment_patch",
    "dice_loss",
    "euclidean_loss",
    "sample_patches",
]
