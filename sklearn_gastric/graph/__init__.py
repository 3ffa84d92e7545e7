"""Steps 6-8: top-K tiles, the Pearson slide graph, and the GCN classifier.

The names that need torch (the GCN estimator, its module and helpers) are
imported on first use, so that importing this package (or
:mod:`sklearn_gastric`) does not import torch.
"""

from .._lazy import lazy_exports
from ._confidence import tile_profile
from ._pearson import PearsonGraphBuilder, pearson_adjacency
from ._slide_graph import SlideGraph
from ._topk import TopKSelector

__all__ = [
    "GCN",
    "GCNSlideClassifier",
    "GraphConv",
    "PearsonGraphBuilder",
    "SlideGraph",
    "TopKSelector",
    "collate_graphs",
    "normalize_adjacency",
    "pearson_adjacency",
    "tile_profile",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "GCN": "._gcn",
        "GCNSlideClassifier": "._classifier",
        "GraphConv": "._gcn",
        "collate_graphs": "._gcn",
        "normalize_adjacency": "._gcn",
    },
    globals(),
)
