"""Lesion maps, their display over the slide, and GeoJSON export (claim 7)."""

from ._display import LesionMapDisplay
from ._gallery import SlideGraphDisplay, TileGalleryDisplay
from ._geojson import export_geojson, lesion_features
from ._lesion_map import LesionMap, LesionRegion, lesion_map
from ._reliability import ReliabilityDiagramDisplay

__all__ = [
    "LesionMap",
    "LesionMapDisplay",
    "LesionRegion",
    "ReliabilityDiagramDisplay",
    "SlideGraphDisplay",
    "TileGalleryDisplay",
    "export_geojson",
    "lesion_features",
    "lesion_map",
]
