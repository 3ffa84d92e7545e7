"""Internal utilities shared by the subpackages."""

from ._files import atomic_output, file_lock, save_figure, write_text_atomic
from ._parallel import map_slides

__all__ = [
    "atomic_output",
    "file_lock",
    "map_slides",
    "save_figure",
    "write_text_atomic",
]
