"""sklearn_gastric.visualization"""

__all__ = []
