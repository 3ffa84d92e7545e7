"""sklearn_gastric.datasets"""

__all__ = []
