"""Metrics of slide predictions: how well probabilities are calibrated."""

from ._calibration import expected_calibration_error, reliability_curve

__all__ = ["expected_calibration_error", "reliability_curve"]
