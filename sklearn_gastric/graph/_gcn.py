"""The graph convolutional network (step 8) and the batching of graphs."""

import numpy as np
import torch
from torch import nn

from ..utils._sklearn_compat import validate_params

__all__ = ["GCN", "GraphConv", "collate_graphs", "normalize_adjacency"]

READOUTS = ("mean", "max", "sum", "mean_max")


@validate_params(
    {"adjacency": [torch.Tensor], "mask": [torch.Tensor, None]},
    prefer_skip_nested_validation=True,
)
def normalize_adjacency(adjacency, mask=None):
    """Kipf & Welling's symmetric normalisation ``D^-1/2 (A + I) D^-1/2``.

    Parameters
    ----------
    adjacency : torch.Tensor of shape (..., n_nodes, n_nodes)
        0/1 adjacency, zero outside the real nodes of a padded batch.
    mask : torch.Tensor of shape (..., n_nodes), default=None
        True for real nodes, False for padding; None means all real. Self
        loops are added to real nodes only, so padding rows stay zero.

    Returns
    -------
    normalized : torch.Tensor of shape (..., n_nodes, n_nodes), float32
        ``D`` is the degree matrix of ``A + I``.

    Examples
    --------
    >>> import torch
    >>> from sklearn_gastric.graph import normalize_adjacency
    >>> normalize_adjacency(torch.tensor([[0, 1], [1, 0]]))
    tensor([[0.5000, 0.5000],
            [0.5000, 0.5000]])
    """
    adjacency = adjacency.to(torch.float32)
    if mask is None:
        mask = torch.ones(adjacency.shape[:-1], device=adjacency.device)
    with_loops = adjacency + torch.diag_embed(mask.to(torch.float32))
    degree = with_loops.sum(dim=-1)
    inv_sqrt = torch.where(
        degree > 0, degree.clamp(min=1e-12).rsqrt(), torch.zeros_like(degree)
    )
    return inv_sqrt.unsqueeze(-1) * with_loops * inv_sqrt.unsqueeze(-2)


class GraphConv(nn.Module):
    """One graph convolution: ``A_norm @ H @ W + b``.

    Parameters
    ----------
    in_features : int
        Node feature length in.
    out_features : int
        Node feature length out.

    Examples
    --------
    >>> import torch
    >>> from sklearn_gastric.graph import GraphConv, normalize_adjacency
    >>> _ = torch.manual_seed(0)
    >>> conv = GraphConv(4, 2)
    >>> a_norm = normalize_adjacency(torch.tensor([[0, 1], [1, 0]]))
    >>> conv(torch.ones(2, 4), a_norm).shape
    torch.Size([2, 2])
    """

    def __init__(self, in_features, out_features):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_features))

    def forward(self, h, a_norm):
        return a_norm @ self.linear(h) + self.bias


class GCN(nn.Module):
    """Graph convolutional network classifying whole graphs.

    ``n_layers`` graph convolutions (ReLU after each), a readout over the
    real nodes of each graph, and a linear layer to class logits (the
    softmax is applied by the loss and by ``predict_proba``).

    Parameters
    ----------
    in_features : int
        Node feature length.
    n_classes : int
        Number of classes.
    hidden_units, n_layers, dropout, readout
        The architecture, as the parameters of the same names of
        :class:`GCNSlideClassifier` (which builds this module).

    Examples
    --------
    >>> import torch
    >>> from sklearn_gastric.graph import GCN
    >>> _ = torch.manual_seed(0)
    >>> gcn = GCN(in_features=8, n_classes=4, hidden_units=16)
    >>> x = torch.randn(2, 5, 8)  # 2 graphs padded to 5 nodes
    >>> adj = torch.zeros(2, 5, 5)
    >>> mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    >>> gcn(x, adj, mask).shape
    torch.Size([2, 4])
    """

    def __init__(
        self,
        in_features,
        n_classes,
        hidden_units=64,
        n_layers=2,
        dropout=0.0,
        readout="mean_max",
    ):
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}; got {readout!r}.")
        self.readout = readout
        widths = [in_features] + [hidden_units] * n_layers
        self.convs = nn.ModuleList(
            GraphConv(n_in, n_out) for n_in, n_out in zip(widths[:-1], widths[1:])
        )
        self.dropout = nn.Dropout(dropout)
        out_in = 2 * hidden_units if readout == "mean_max" else hidden_units
        self.output = nn.Linear(out_in, n_classes)

    def forward(self, x, adj, mask=None):
        """Class logits of a batch of graphs.

        Parameters
        ----------
        x : torch.Tensor of shape (batch, n_nodes, in_features)
            Node features, zero-padded to the batch's largest graph (or one
            graph, ``(n_nodes, in_features)``).
        adj : torch.Tensor of shape (batch, n_nodes, n_nodes)
            0/1 adjacency, zero on padding (or ``(n_nodes, n_nodes)``).
        mask : torch.Tensor of shape (batch, n_nodes), default=None
            True for real nodes (or ``(n_nodes,)``); None means all nodes
            are real.

        Returns
        -------
        logits : torch.Tensor of shape (batch, n_classes) or (n_classes,)
        """
        single = x.dim() == 2
        if single:
            x, adj = x.unsqueeze(0), adj.unsqueeze(0)
            mask = None if mask is None else mask.unsqueeze(0)
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        mask = mask.to(torch.bool)
        a_norm = normalize_adjacency(adj, mask)
        h = x
        for conv in self.convs:
            h = torch.relu(conv(self.dropout(h), a_norm))
        logits = self.output(self.dropout(self._readout(h, mask)))
        return logits[0] if single else logits

    def _readout(self, h, mask):
        weights = mask.unsqueeze(-1).to(h.dtype)
        total = (h * weights).sum(dim=1)
        if self.readout == "sum":
            return total
        mean = total / weights.sum(dim=1).clamp(min=1.0)
        if self.readout == "mean":
            return mean
        largest = h.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(dim=1)
        if self.readout == "max":
            return largest
        return torch.cat([mean, largest], dim=-1)


class GraphDataset(torch.utils.data.Dataset):
    """Graphs as ``(features, adjacency, label)`` items for :func:`collate_graphs`.

    ``labels`` is None at prediction time (the items then carry ``-1``).
    """

    def __init__(self, features, adjacencies, labels=None):
        self.features = features
        self.adjacencies = adjacencies
        self.labels = labels

    def __len__(self):
        return len(self.features)

    def __getitem__(self, i):
        label = -1 if self.labels is None else int(self.labels[i])
        return self.features[i], self.adjacencies[i], label


@validate_params({"batch": [list, tuple]}, prefer_skip_nested_validation=True)
def collate_graphs(batch):
    """Pad a list of graphs to the largest one and stack them.

    Parameters
    ----------
    batch : list of (features, adjacency, label)
        ``features`` (n_nodes, d) float32 arrays, ``adjacency`` (n_nodes,
        n_nodes) 0/1 arrays, integer labels.

    Returns
    -------
    X : dict
        ``x`` (batch, max_nodes, d) float32, ``adj`` (batch, max_nodes,
        max_nodes) float32 and ``mask`` (batch, max_nodes) bool tensors,
        the keyword arguments of :meth:`GCN.forward`.
    y : torch.Tensor of shape (batch,), int64

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gastric.graph import collate_graphs
    >>> one = (np.ones((1, 3), np.float32), np.zeros((1, 1), np.uint8), 0)
    >>> two = (np.ones((2, 3), np.float32), np.array([[0, 1], [1, 0]]), 1)
    >>> X, y = collate_graphs([one, two])
    >>> X["x"].shape, X["mask"].tolist(), y.tolist()
    (torch.Size([2, 2, 3]), [[True, False], [True, True]], [0, 1])
    """
    n_nodes = [len(features) for features, _, _ in batch]
    largest = max(n_nodes)
    n_features = batch[0][0].shape[1]
    x = np.zeros((len(batch), largest, n_features), dtype=np.float32)
    adj = np.zeros((len(batch), largest, largest), dtype=np.float32)
    mask = np.zeros((len(batch), largest), dtype=bool)
    for i, ((features, adjacency, _), k) in enumerate(zip(batch, n_nodes)):
        x[i, :k] = features
        adj[i, :k, :k] = adjacency
        mask[i, :k] = True
    y = torch.as_tensor([label for _, _, label in batch], dtype=torch.int64)
    X = {
        "x": torch.from_numpy(x),
        "adj": torch.from_numpy(adj),
        "mask": torch.from_numpy(mask),
    }
    return X, y
