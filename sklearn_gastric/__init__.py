"""sklearn-gastric: scikit-learn estimators for gastric whole-slide images."""

from ._version import __version__
from .io import Slide, open_slide
from .preprocessing import TileBag

__all__ = ["Slide", "TileBag", "__version__", "open_slide"]
