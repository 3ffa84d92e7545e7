"""Data: synthetic gastric slides and patches of simulated labs, slides of real
H&E tissue with painted lesions, and the real CMU test slide."""

from ._fetch import fetch_cmu_small_region, fetch_he_target, get_data_home
from ._labs import REFERENCE_LAB, StainProfile, make_stain_profile
from ._real_tissue import make_real_tissue_slides
from ._synthetic import (
    GASTRIC_CLASSES,
    SYNTHETIC_MPP,
    make_gastric_slides,
    make_patch_dataset,
)

__all__ = [
    "GASTRIC_CLASSES",
    "REFERENCE_LAB",
    "SYNTHETIC_MPP",
    "StainProfile",
    "fetch_cmu_small_region",
    "fetch_he_target",
    "get_data_home",
    "make_gastric_slides",
    "make_patch_dataset",
    "make_real_tissue_slides",
    "make_stain_profile",
]
