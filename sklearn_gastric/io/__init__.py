"""Slide I/O: one read interface over OpenSlide files and arrays, bounded
low-resolution views, TIFF writing, QuPath GeoJSON annotations."""

from ._errors import SlideError, UnreadableTileWarning
from ._geojson import Annotation, AnnotationError, read_annotations
from ._open import low_resolution_view, open_slide
from ._slide import Slide
from ._tiff import write_pyramidal_tiff
from ._view import SlideView

__all__ = [
    "Annotation",
    "AnnotationError",
    "Slide",
    "SlideError",
    "SlideView",
    "UnreadableTileWarning",
    "low_resolution_view",
    "open_slide",
    "read_annotations",
    "write_pyramidal_tiff",
]
