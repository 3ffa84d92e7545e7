"""Steps 6-8: top-K tiles, the Pearson slide graph, and the GCN classifier."""

from ._classifier import GCNSlideClassifier
from ._gcn import GCN, GraphConv, collate_graphs, normalize_adjacency
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
]
