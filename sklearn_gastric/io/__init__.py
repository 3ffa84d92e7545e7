"""Slide I/O: one read interface over OpenSlide files and arrays, bounded
low-resolution views, TIFF writing."""

from ._slide import Slide, SlideError, UnreadableTileWarning, open_slide
from ._tiff import write_pyramidal_tiff
from ._view import low_resolution_view

__all__ = [
    "Slide",
    "SlideError",
    "UnreadableTileWarning",
    "low_resolution_view",
    "open_slide",
    "write_pyramidal_tiff",
]
