"""Running a trained segmenter over tiles: its inference network under the
CPU policy, batches capped in pixels, and the outputs of a bag's tiles
filled in place."""

from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F

from ..preprocessing._tile_bag import _effective_threads
from ..utils._cpu import default_torch_threads, keep_freed_memory, torch_threads
from ._engines import built_networks, inference_network, resolve_precision
from ._training import _as_input

_INFERENCE_PIXELS = 2**20
# The torch engine on a CPU runs one 512 px tile at a time: its activations
# then stay below the size glibc maps afresh for every allocation.
_CPU_TORCH_PIXELS = 2**18


def _batch_size(batch_size, pixels_per_tile, pixel_cap=_INFERENCE_PIXELS):
    """Tiles per inference batch: at most ``batch_size``, and at most
    ``pixel_cap`` pixels (but at least one tile)."""
    # Activations grow with batch x pixels: 16 tiles of 512 px take about
    # 4.4 GB with the default network on the CPU, 4 tiles about 1.1 GB.
    return max(1, min(batch_size, pixel_cap // pixels_per_tile))


def pixel_cap(engine, device):
    """The pixels of one inference batch for ``engine`` on ``device``."""
    on_cpu = torch.device(device).type == "cpu"
    return _CPU_TORCH_PIXELS if engine == "torch" and on_cpu else _INFERENCE_PIXELS


@contextmanager
def cpu_policy(n_threads, reader_threads):
    """Torch on ``n_threads`` threads (None: the policy's count for
    ``reader_threads`` readers) and freed activations kept for the next
    batch, for the duration of the block."""
    if n_threads is None:
        # None is one reader, -1 one per core (TileBag.read_batches's rule).
        readers = 0 if reader_threads == 0 else _effective_threads(reader_threads)
        n_threads = default_torch_threads(readers)
    with torch_threads(n_threads), keep_freed_memory():
        yield


@contextmanager
def inference_session(segmenter, reader_threads):
    """A fitted segmenter's inference: under the CPU policy, its inference
    networks' buffers freed at the end."""
    try:
        with cpu_policy(segmenter.torch_threads, reader_threads):
            yield
    finally:
        release_buffers(segmenter.net_.module_)


def infer_batch(vnet, batch, *, engine, precision, device):
    """Probability maps, class probabilities and features of a uint8 batch
    (n, height, width, 3), computed by ``engine`` at ``precision``."""
    network = inference_network(
        vnet,
        engine=engine,
        precision=resolve_precision(precision, device),
        device=device,
    )
    x = _as_input(torch.from_numpy(np.ascontiguousarray(batch)).to(device))
    with torch.inference_mode():
        seg_logits, class_logits, features = network(x)
    return (
        torch.sigmoid(seg_logits.float()),
        torch.softmax(class_logits.float(), dim=1),
        features.float(),
    )


def release_buffers(vnet):
    """Free the reused buffers of the inference networks of ``vnet``."""
    for network in built_networks(vnet).values():
        if hasattr(network, "clear_buffers"):
            network.clear_buffers()


def _segment_tiles(
    bag, infer, *, batch_size, map_side, widths, reader_threads, on_error
):
    """The bag with the network's outputs per tile, and the messages of the
    tiles that could not be read (left out of it).

    Parameters
    ----------
    bag : TileBag
    infer : callable
        uint8 batch -> (probability maps, class probabilities, features),
        as ``PatchSegmenter._infer``.
    batch_size : int
        Tiles per batch.
    map_side : int
        Side of the stored ``prob_maps`` (average-pooled).
    widths : (int, int)
        Length of a tile's feature vector, number of patch classes.
    reader_threads : int or None
        Threads reading the tiles' pixels.
    on_error : {"raise", "skip"}
        What an unreadable tile does.
    """
    n_tiles = len(bag)
    feature_dim, n_classes = widths
    # The outputs are filled in place, batch by batch: on a slide of tens
    # of thousands of tiles, stacking per-batch pieces at the end would
    # hold every column twice at once.
    columns = {
        "features": np.empty((n_tiles, feature_dim), dtype=np.float32),
        "scores": np.empty(n_tiles, dtype=np.float32),
        "patch_proba": np.empty((n_tiles, n_classes), dtype=np.float32),
        "prob_maps": np.empty((n_tiles, map_side, map_side), dtype=np.float32),
    }
    read, skipped = [], []
    for indices, batch, failures in bag.read_batches(
        batch_size, n_jobs=reader_threads, on_error=on_error
    ):
        skipped.extend(failures)
        if not len(indices):
            continue
        read.append(indices)
        proba, class_proba, feats = infer(batch)
        columns["scores"][indices] = proba.sum(dim=(1, 2)).cpu().numpy()
        columns["prob_maps"][indices] = (
            F.adaptive_avg_pool2d(proba[:, None], map_side)[:, 0].cpu().numpy()
        )
        columns["patch_proba"][indices] = class_proba.cpu().numpy()
        columns["features"][indices] = feats.cpu().numpy()
    if skipped:
        kept = np.concatenate(read) if read else np.zeros(0, dtype=np.intp)
        bag = bag.subset(kept)
        columns = {name: values[kept] for name, values in columns.items()}
    return bag.replace(**columns), skipped
