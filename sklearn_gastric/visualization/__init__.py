"""Lesion maps, their display over the slide, and GeoJSON export (claim 7)."""

from ._display import LesionMapDisplay
from ._geojson import export_geojson, lesion_features
from ._lesion_map import LesionMap, LesionRegion, lesion_map

__all__ = [
    "LesionMap",
    "LesionMapDisplay",
    "LesionRegion",
    "export_geojson",
    "lesion_features",
    "lesion_map",
]
