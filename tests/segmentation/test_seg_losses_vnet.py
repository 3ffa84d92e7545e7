"""VNet shapes and the losses against hand-computed values."""

import math

import pytest
import torch
import torch.nn.functional as F

from sklearn_gastric.segmentation import (
    SegmentationLoss,
    VNet,
    dice_loss,
    euclidean_loss,
)


@pytest.mark.parametrize(
    "depth, base_channels, size", [(1, 2, (8, 8)), (2, 4, (16, 32)), (3, 3, (24, 16))]
)
def test_vnet_output_shapes(depth, base_channels, size):
    torch.manual_seed(0)
    net = VNet(n_classes=3, base_channels=base_channels, depth=depth, feature_dim=5)
    seg, logits, features = net.eval()(torch.rand(2, 3, *size))
    assert seg.shape == (2, *size)
    assert logits.shape == (2, 3)
    assert features.shape == (2, 5)
    # Features come out of a ReLU.
    assert (features >= 0).all()


def test_vnet_widths_follow_base_channels_and_depth():
    net = VNet(base_channels=4, depth=2)
    assert [block[0].out_channels for block in net.encoder] == [4, 8]
    assert net.bottleneck[0].out_channels == 16
    # Encoder blocks concatenate output and input: 4 + 4 channels at level 0.
    assert net.down[0].in_channels == 8
    # Decoder at level 0: upsampled (4) + encoder map (8) in, then + block (4).
    assert net.decoder[-1][0].in_channels == 12
    assert net.head.in_channels == 16


def test_dice_loss_hand_computed():
    p = torch.tensor([[[1.0, 0.5], [0.25, 0.0]]])
    q = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    # Σpq = 1.5, Σp² = 1 + .25 + .0625 = 1.3125, Σq² = 2.
    assert dice_loss(p, q, eps=0.0).item() == pytest.approx(1 - 3 / 3.3125)
    assert dice_loss(p, q, eps=1.0).item() == pytest.approx(1 - 4 / 4.3125)
    assert dice_loss(q, q, eps=0.0).item() == pytest.approx(0.0)
    assert dice_loss(q, 1 - q, eps=0.0).item() == pytest.approx(1.0)


def test_dice_loss_is_the_mean_over_patches():
    p = torch.tensor([[[1.0, 0.0]], [[0.5, 0.5]]])
    q = torch.tensor([[[1.0, 0.0]], [[1.0, 0.0]]])
    # Patch 1: 0. Patch 2: 1 - 2 * .5 / (.5 + 1) = 1/3.
    assert dice_loss(p, q, eps=0.0).item() == pytest.approx((0 + 1 / 3) / 2)


def test_dice_loss_empty_mask():
    empty = torch.zeros(1, 4, 4)
    assert dice_loss(empty, empty).item() == 0.0
    p = torch.zeros(1, 4, 4)
    p[0, 0, :2] = 1.0  # Σp² = 2: loss = 2 / (2 + 1)
    assert dice_loss(p, empty).item() == pytest.approx(2 / 3)


def test_batch_dice_sums_over_the_whole_batch():
    """Two patches: a lesion found exactly, and an empty mask with two false
    pixels. Per patch that is (0 + 2/3) / 2; over the batch, one Dice of
    1 - (2 * 4 + 1) / (4 + 2 + 4 + 1)."""
    proba = torch.zeros(2, 4, 4)
    target = torch.zeros(2, 4, 4)
    proba[0, :2, :2] = target[0, :2, :2] = 1.0
    proba[1, 0, :2] = 1.0
    assert dice_loss(proba, target).item() == pytest.approx(1 / 3)
    batch = dice_loss(proba, target, reduction="batch").item()
    assert batch == pytest.approx(1 - 9 / 11)


def test_segmentation_loss_reduces_the_dice_as_told():
    gen = torch.Generator().manual_seed(1)
    seg_logits = torch.randn(3, 4, 4, generator=gen)
    mask = (torch.rand(3, 4, 4, generator=gen) > 0.7).float()
    y_pred = (seg_logits, torch.zeros(3, 2))
    y_true = {"mask": mask, "label": torch.tensor([0, 1, 0])}
    for reduction in ("batch", "patch"):
        criterion = SegmentationLoss(1.0, dice_reduction=reduction)
        expected = dice_loss(torch.sigmoid(seg_logits), mask, reduction=reduction)
        assert criterion(y_pred, y_true).item() == pytest.approx(expected.item())
    assert SegmentationLoss().dice_reduction == "patch"


def test_euclidean_loss_hand_computed():
    logits = torch.log(torch.tensor([[0.6, 0.4], [0.1, 0.9]]))
    labels = torch.tensor([1, 1])
    # √(.6² + .6²) and √(.1² + .1²)
    expected = (math.sqrt(0.72) + math.sqrt(0.02)) / 2
    assert euclidean_loss(logits, labels).item() == pytest.approx(expected)
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1]]))
    expected = math.sqrt(0.3**2 + 0.2**2 + 0.1**2)
    assert euclidean_loss(logits, torch.tensor([0])).item() == pytest.approx(expected)


@pytest.mark.parametrize("dice_weight", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("classification_loss", ["euclidean", "cross_entropy"])
def test_segmentation_loss_is_the_weighted_sum(dice_weight, classification_loss):
    gen = torch.Generator().manual_seed(0)
    seg_logits = torch.randn(3, 4, 4, generator=gen)
    class_logits = torch.randn(3, 4, generator=gen)
    mask = (torch.rand(3, 4, 4, generator=gen) > 0.5).float()
    label = torch.tensor([0, 3, 1])
    criterion = SegmentationLoss(dice_weight, classification_loss)
    loss = criterion((seg_logits, class_logits), {"mask": mask, "label": label})
    dice = dice_loss(torch.sigmoid(seg_logits), mask)
    if classification_loss == "euclidean":
        cls = euclidean_loss(class_logits, label)
    else:
        cls = F.cross_entropy(class_logits, label)
    assert loss.item() == pytest.approx(
        dice_weight * dice.item() + (1 - dice_weight) * cls.item()
    )


def test_segmentation_loss_rejects_unknown_classification_loss():
    criterion = SegmentationLoss(classification_loss="hinge")
    y_pred = (torch.zeros(1, 2, 2), torch.zeros(1, 2))
    y_true = {"mask": torch.zeros(1, 2, 2), "label": torch.tensor([0])}
    with pytest.raises(ValueError, match="classification_loss must be"):
        criterion(y_pred, y_true)


@pytest.mark.parametrize("classification_loss", ["euclidean", "cross_entropy"])
def test_class_weight_is_a_weighted_mean_over_patches(classification_loss):
    gen = torch.Generator().manual_seed(1)
    seg_logits = torch.randn(3, 4, 4, generator=gen)
    class_logits = torch.randn(3, 2, generator=gen)
    mask = torch.zeros(3, 4, 4)
    label = torch.tensor([0, 1, 1])
    weighted = SegmentationLoss(0.0, classification_loss, class_weight=[3.0, 1.0])
    loss = weighted((seg_logits, class_logits), {"mask": mask, "label": label})
    if classification_loss == "euclidean":
        proba = torch.softmax(class_logits, 1)
        per_patch = torch.linalg.vector_norm(F.one_hot(label, 2) - proba, dim=1)
    else:
        per_patch = F.cross_entropy(class_logits, label, reduction="none")
    # Weights 3, 1, 1: the lone class-0 patch counts as much as the other two.
    expected = (3 * per_patch[0] + per_patch[1] + per_patch[2]) / 5
    assert loss.item() == pytest.approx(expected.item())
    unweighted = SegmentationLoss(0.0, classification_loss)
    plain = unweighted((seg_logits, class_logits), {"mask": mask, "label": label})
    assert plain.item() == pytest.approx(per_patch.mean().item())
