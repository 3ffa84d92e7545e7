"""A 2D V-Net-like encoder-decoder with a patch-classification branch."""

import torch
from torch import nn

__all__ = ["VNet"]


def _conv_block(in_channels, out_channels):
    """Two 3x3 convolutions, each followed by batch norm and PReLU (V-Net's)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.PReLU(out_channels),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.PReLU(out_channels),
    )


class VNet(nn.Module):
    """2D V-Net-like segmentation network with a classification branch.

    The network of step 5 of the method (patent CN 112990339 A, figure 2):

    - **encoder**: at level ``i`` a block of two 3x3 convolutions with
      ``base_channels * 2**i`` filters; its output is concatenated with the
      block's input, and a stride-2 2x2 convolution halves the resolution;
    - **bottleneck**: the same block at level ``depth``;
    - **classification branch**: the bottleneck map, average- and
      max-pooled over space (side by side), goes through fully-connected
      layers to the patch feature vector (``feature_dim``) and then to the
      patch class logits;
    - **decoder**: at each level a 2x2 transposed convolution doubles the
      resolution; the block sees the upsampled map concatenated with the
      same-size encoder map, and its output is concatenated with the
      upsampled map (its input) and the encoder map;
    - **head**: a 1x1 convolution to one logit per pixel (``sigmoid`` of it is
      the probability of "positive", i.e. lesion).

    Parameters
    ----------
    n_classes : int, default=2
        Number of patch classes of the classification branch.
    base_channels : int, default=16
        Filters of the first encoder block; level ``i`` has
        ``base_channels * 2**i``.
    depth : int, default=4
        Number of downsamplings. Inputs must have height and width divisible
        by ``2**depth``.
    feature_dim : int, default=128
        Length of the patch feature vector.

    Examples
    --------
    >>> import torch
    >>> from sklearn_gastric.segmentation import VNet
    >>> net = VNet(n_classes=4, base_channels=4, depth=2, feature_dim=8).eval()
    >>> seg_logits, class_logits, features = net(torch.zeros(2, 3, 16, 16))
    >>> tuple(seg_logits.shape), tuple(class_logits.shape), tuple(features.shape)
    ((2, 16, 16), (2, 4), (2, 8))
    """

    def __init__(self, n_classes=2, base_channels=16, depth=4, feature_dim=128):
        super().__init__()
        self.n_classes = n_classes
        self.base_channels = base_channels
        self.depth = depth
        self.feature_dim = feature_dim

        widths = [base_channels * 2**i for i in range(depth + 1)]
        self.stem = nn.Conv2d(3, base_channels, 3, padding=1)
        self.encoder = nn.ModuleList()
        self.down = nn.ModuleList()
        in_channels = base_channels
        encoder_channels = []
        for level in range(depth):
            self.encoder.append(_conv_block(in_channels, widths[level]))
            concat = widths[level] + in_channels
            encoder_channels.append(concat)
            self.down.append(nn.Conv2d(concat, widths[level + 1], 2, stride=2))
            in_channels = widths[level + 1]
        self.bottleneck = _conv_block(in_channels, widths[depth])
        below = widths[depth] + in_channels

        # Mean and max over space, side by side: a lesion covering a small
        # part of the patch shows in the max where the mean dilutes it.
        self.classifier_features = nn.Sequential(
            nn.Linear(2 * below, max(feature_dim, below)),
            nn.ReLU(inplace=True),
            nn.Linear(max(feature_dim, below), feature_dim),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(feature_dim, n_classes)

        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for level in reversed(range(depth)):
            self.up.append(nn.ConvTranspose2d(below, widths[level], 2, stride=2))
            block_in = widths[level] + encoder_channels[level]
            self.decoder.append(_conv_block(block_in, widths[level]))
            below = widths[level] + block_in
        self.head = nn.Conv2d(below, 1, 1)

    def forward(self, x):
        """Segment and classify a batch of patches.

        Parameters
        ----------
        x : torch.Tensor of shape (n, 3, height, width)
            Patches scaled to [0, 1].

        Returns
        -------
        seg_logits : torch.Tensor of shape (n, height, width)
            Per-pixel logit of "positive".
        class_logits : torch.Tensor of shape (n, n_classes)
            Patch class logits.
        features : torch.Tensor of shape (n, feature_dim)
            Patch feature vectors.
        """
        x = self.stem(x)
        skips = []
        for block, down in zip(self.encoder, self.down):
            x = torch.cat([block(x), x], dim=1)
            skips.append(x)
            x = down(x)
        x = torch.cat([self.bottleneck(x), x], dim=1)

        pooled = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)
        features = self.classifier_features(pooled)
        class_logits = self.classifier(features)

        for up, block, skip in zip(self.up, self.decoder, reversed(skips)):
            upsampled = up(x)
            block_input = torch.cat([upsampled, skip], dim=1)
            x = torch.cat([block(block_input), block_input], dim=1)
        seg_logits = self.head(x)[:, 0]
        return seg_logits, class_logits, features
