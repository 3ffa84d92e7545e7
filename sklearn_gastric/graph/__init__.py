"""sklearn_gastric.graph"""

__all__ = []
