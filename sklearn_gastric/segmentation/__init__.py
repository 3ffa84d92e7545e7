"""Step 5: the V-Net patch segmenter, its losses, its augmentation, and the
sampling of its training patches from annotated slides.

The names that need torch are imported on first use, so that importing
this package (or :mod:`sklearn_gastric`) does not import torch.
"""

from .._lazy import lazy_exports
from ._provenance import StainedPatches
from ._sampling import sample_patches

__all__ = [
    "PatchSegmenter",
    "SegmentationLoss",
    "StainedPatches",
    "VNet",
    "augment_patch",
    "dice_loss",
    "euclidean_loss",
    "sample_patches",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "PatchSegmenter": "._segmenter",
        "SegmentationLoss": "._losses",
        "VNet": "._vnet",
        "augment_patch": "._augment",
        "dice_loss": "._losses",
        "euclidean_loss": "._losses",
    },
    globals(),
)
