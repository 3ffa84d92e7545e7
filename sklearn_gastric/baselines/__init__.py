"""Baselines: the background-art proportion thresholds and feature pooling."""

from ._pooled import PooledFeatureClassifier
from ._proportion import ProportionThresholdClassifier

__all__ = ["PooledFeatureClassifier", "ProportionThresholdClassifier"]
