"""The inference form of a trained :class:`VNet`: the same function, computed
with fewer memory passes and, optionally, in bfloat16.

What makes the training form slow on a CPU is not arithmetic but memory:
every ``torch.cat`` of the V-Net's skip connections allocates a fresh tensor
of up to 64 channels at the tile's full resolution, and the allocator hands
tensors that large back to the operating system when they are freed, so
every batch pays the page faults of hundreds of megabytes again. Here:

- BatchNorm is folded into the convolution before it (inference only:
  ``torch.nn.utils.fusion.fuse_conv_bn_eval``);
- weights and activations are channels-last, oneDNN's native layout;
- the concatenations are copies into channel slices of buffers allocated
  once per input shape and reused from batch to batch (:class:`_ConcatBuffers`).
"""

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ._options import NETWORK_PRECISIONS

__all__ = ["InferenceVNet"]


def _folded_block(block):
    """A ``_conv_block`` (conv, BN, PReLU, conv, BN, PReLU) with each BN
    folded into its convolution: (conv, PReLU, conv, PReLU)."""
    conv1, bn1, prelu1, conv2, bn2, prelu2 = block
    return nn.Sequential(
        fuse_conv_bn_eval(conv1, bn1),
        prelu1,
        fuse_conv_bn_eval(conv2, bn2),
        prelu2,
    )


class _ConcatBuffers:
    """Concatenation buffers, one per (name, shape), reused across calls."""

    def __init__(self):
        self._buffers = {}

    def concat(self, name, parts):
        """``torch.cat(parts, dim=1)``, written into the reused buffer ``name``."""
        first = parts[0]
        shape = (
            first.shape[0],
            sum(part.shape[1] for part in parts),
            *first.shape[2:],
        )
        key = (name, shape, first.dtype, first.device)
        out = self._buffers.get(key)
        if out is None:
            # One shape per name is kept: a new batch size replaces the old.
            self._buffers = {k: v for k, v in self._buffers.items() if k[0] != name}
            out = torch.empty(
                shape,
                dtype=first.dtype,
                device=first.device,
                memory_format=torch.channels_last,
            )
            self._buffers[key] = out
        start = 0
        for part in parts:
            out[:, start : start + part.shape[1]].copy_(part)
            start += part.shape[1]
        return out

    def clear(self):
        self._buffers = {}


class InferenceVNet(nn.Module):
    """A trained :class:`VNet` made for inference: same outputs, fewer passes.

    Built from a trained network (which it does not modify), it computes the
    same three outputs with BatchNorm folded into the convolutions,
    channels-last weights and activations, and the skip concatenations
    written into buffers reused from call to call. In ``float32`` its
    outputs agree with the network's to about 1e-6; in ``bfloat16``
    (weights and activations; pooling, the classification branch and the
    outputs stay ``float32``) to about 1e-2 on the logits.

    Parameters
    ----------
    vnet : VNet
        The trained network.
    precision : {"float32", "bfloat16"}, default="float32"
        Arithmetic of the convolutions.

    Notes
    -----
    The buffers make a call not re-entrant: use one instance per thread.
    :meth:`clear_buffers` frees them (they hold about 1.5x the
    concatenations of one batch: ~250 MB per 512 px tile of the default
    network).
    """

    def __init__(self, vnet, precision="float32"):
        super().__init__()
        if precision not in NETWORK_PRECISIONS:
            raise ValueError(
                f"precision must be one of {NETWORK_PRECISIONS}; got {precision!r}."
            )
        vnet = copy.deepcopy(vnet).eval()
        self.precision = precision
        self.depth = vnet.depth
        self.feature_dim = vnet.feature_dim
        self.n_classes = vnet.n_classes
        self.dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
        convolutional = nn.ModuleDict(
            {
                "stem": vnet.stem,
                "encoder": nn.ModuleList(_folded_block(b) for b in vnet.encoder),
                "down": vnet.down,
                "bottleneck": _folded_block(vnet.bottleneck),
                "up": vnet.up,
                "decoder": nn.ModuleList(_folded_block(b) for b in vnet.decoder),
                "head": vnet.head,
            }
        )
        self.convolutional = convolutional.to(
            dtype=self.dtype, memory_format=torch.channels_last
        )
        self.classifier_features = vnet.classifier_features
        self.classifier = vnet.classifier
        self._concat_buffers = _ConcatBuffers()

    def clear_buffers(self):
        """Free the concatenation buffers (they come back at the next call)."""
        self._concat_buffers.clear()

    def forward(self, x):
        """Segment and classify a batch of patches, as :meth:`VNet.forward`."""
        net = self.convolutional
        concat = self._concat_buffers.concat
        x = x.to(self.dtype).contiguous(memory_format=torch.channels_last)
        x = net["stem"](x)
        skips = []
        for level, (block, down) in enumerate(zip(net["encoder"], net["down"])):
            x = concat(f"skip{level}", [block(x), x])
            skips.append(x)
            x = down(x)
        x = concat("bottom", [net["bottleneck"](x), x])

        pooled = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)
        features = self.classifier_features(pooled.float())
        class_logits = self.classifier(features)

        levels = range(self.depth - 1, -1, -1)
        for level, up, block, skip in zip(
            levels, net["up"], net["decoder"], reversed(skips)
        ):
            block_input = concat(f"in{level}", [up(x), skip])
            x = concat(f"out{level}", [block(block_input), block_input])
        seg_logits = net["head"](x)[:, 0]
        return seg_logits.float(), class_logits, features
