"""Data: synthetic gastric slides and patches, and the real CMU test slide."""

from ._fetch import fetch_cmu_small_region, fetch_he_target, get_data_home
from ._synthetic import GASTRIC_CLASSES, make_gastric_slides, make_patch_dataset

__all__ = [
    "GASTRIC_CLASSES",
    "fetch_cmu_small_region",
    "fetch_he_target",
    "get_data_home",
    "make_gastric_slides",
    "make_patch_dataset",
]
