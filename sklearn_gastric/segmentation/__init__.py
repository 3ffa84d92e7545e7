"""sklearn_gastric.segmentation"""

__all__ = []
