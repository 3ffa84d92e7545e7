import numpy as np
import pytest
import torch

from sklearn_gastric.graph import GCN, GraphConv, collate_graphs, normalize_adjacency

PATENT_A = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=np.float64)


def dense_normalized(a):
    """D^-1/2 (A + I) D^-1/2 in numpy."""
    a_hat = a + np.eye(len(a))
    d_inv_sqrt = np.diag(1.0 / np.sqrt(a_hat.sum(axis=1)))
    return d_inv_sqrt @ a_hat @ d_inv_sqrt


def test_normalize_patent_graph_by_hand():
    # Degrees of A + I are 2, 3, 2.
    expected = np.array(
        [
            [1 / 2, 1 / np.sqrt(6), 0],
            [1 / np.sqrt(6), 1 / 3, 1 / np.sqrt(6)],
            [0, 1 / np.sqrt(6), 1 / 2],
        ]
    )
    np.testing.assert_allclose(dense_normalized(PATENT_A), expected, atol=1e-15)
    got = normalize_adjacency(torch.tensor(PATENT_A, dtype=torch.uint8))
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-7)


def test_normalize_padded_batch_keeps_padding_zero():
    adj = torch.zeros(2, 4, 4)
    adj[0, :3, :3] = torch.tensor(PATENT_A)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)
    got = normalize_adjacency(adj, mask).numpy()
    np.testing.assert_allclose(got[0, :3, :3], dense_normalized(PATENT_A), atol=1e-7)
    np.testing.assert_array_equal(got[1, :2, :2], np.eye(2))
    assert not got[0, 3].any() and not got[0, :, 3].any()
    assert not got[1, 2:].any() and not got[1, :, 2:].any()


def test_graph_convolution_matches_dense_numpy():
    rng = np.random.default_rng(0)
    h = rng.normal(size=(3, 4))
    torch.manual_seed(0)
    conv = GraphConv(4, 2)
    with torch.no_grad():
        conv.bias.copy_(torch.tensor([0.5, -1.0]))
        out = conv(
            torch.tensor(h, dtype=torch.float32),
            normalize_adjacency(torch.tensor(PATENT_A)),
        )
    w = conv.linear.weight.detach().numpy().T.astype(np.float64)
    expected = dense_normalized(PATENT_A) @ h @ w + np.array([0.5, -1.0])
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_two_layer_gcn_matches_dense_numpy():
    rng = np.random.default_rng(1)
    h = rng.normal(size=(3, 5))
    torch.manual_seed(1)
    gcn = GCN(in_features=5, n_classes=3, hidden_units=4, n_layers=2, readout="mean")
    with torch.no_grad():
        logits = gcn(torch.tensor(h, dtype=torch.float32), torch.tensor(PATENT_A))
    a_norm = dense_normalized(PATENT_A)
    for conv in gcn.convs:
        w = conv.linear.weight.detach().numpy().T.astype(np.float64)
        h = np.maximum(a_norm @ h @ w + conv.bias.detach().numpy(), 0)
    out_w = gcn.output.weight.detach().numpy().astype(np.float64)
    expected = out_w @ h.mean(axis=0) + gcn.output.bias.detach().numpy()
    np.testing.assert_allclose(logits.numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("readout", ["mean", "max", "sum", "mean_max"])
def test_padding_does_not_change_a_graph_output(readout):
    rng = np.random.default_rng(2)
    sizes = [3, 7, 1]
    graphs = []
    for k in sizes:
        a = np.triu(rng.random((k, k)) < 0.4, 1)
        graphs.append((rng.normal(size=(k, 6)).astype(np.float32), a + a.T, 0))
    torch.manual_seed(2)
    gcn = GCN(6, 4, hidden_units=8, n_layers=3, readout=readout).eval()
    X, _ = collate_graphs(graphs)
    with torch.no_grad():
        batched = gcn(**X)
        alone = [gcn(torch.from_numpy(f), torch.tensor(a)) for f, a, _ in graphs]
    assert batched.shape == (3, 4)
    np.testing.assert_allclose(batched.numpy(), torch.stack(alone).numpy(), atol=1e-5)


def test_collate_pads_to_the_largest_graph():
    one = (np.full((1, 2), 7, np.float32), np.zeros((1, 1), np.uint8), 3)
    three = (np.ones((3, 2), np.float32), PATENT_A.astype(np.uint8), 1)
    X, y = collate_graphs([one, three])
    assert X["x"].shape == (2, 3, 2) and X["adj"].shape == (2, 3, 3)
    assert X["x"].dtype == torch.float32 and X["mask"].dtype == torch.bool
    np.testing.assert_array_equal(X["x"][0].numpy(), [[7, 7], [0, 0], [0, 0]])
    np.testing.assert_array_equal(X["adj"][1].numpy(), PATENT_A)
    assert not X["adj"][0].any()
    assert X["mask"].tolist() == [[True, False, False], [True, True, True]]
    assert y.tolist() == [3, 1] and y.dtype == torch.int64


def test_unknown_readout_rejected():
    with pytest.raises(ValueError, match="readout"):
        GCN(4, 2, readout="median")
