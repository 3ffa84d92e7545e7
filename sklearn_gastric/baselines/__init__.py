"""sklearn_gastric.baselines"""

__all__ = []
