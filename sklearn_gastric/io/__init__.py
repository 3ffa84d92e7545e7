"""Slide I/O: one read interface over OpenSlide files and arrays, TIFF writing."""

from ._slide import Slide, SlideError, open_slide
from ._tiff import write_pyramidal_tiff

__all__ = ["Slide", "SlideError", "open_slide", "write_pyramidal_tiff"]
