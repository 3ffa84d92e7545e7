"""Internal utilities shared by the subpackages."""

from ._parallel import map_slides

__all__ = ["map_slides"]
