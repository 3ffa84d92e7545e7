"""Data: synthetic gastric slides and patches, and the real CMU test slide."""

from ._fetch import fetch_cmu_small_region, fetch_he_target, get_data_home
from ._synthetic import GASTRIC_CLASSES

__all__ = [
    "GASTRIC_CLASSES",
    "fetch_cmu_small_region",
    "fetch_he_target",
    "get_data_home",
]
