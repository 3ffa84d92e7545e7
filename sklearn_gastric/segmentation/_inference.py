"""Running a trained segmenter over tiles: batches capped in pixels, and the
outputs of a bag's tiles filled in place."""

import numpy as np
import torch.nn.functional as F

_INFERENCE_PIXELS = 2**20


def _batch_size(batch_size, pixels_per_tile):
    """Tiles per inference batch: at most ``batch_size``, and at most
    ``2**20`` pixels (but at least one tile)."""
    # Activations grow with batch x pixels: 16 tiles of 512 px take about
    # 4.4 GB with the default network on the CPU, 4 tiles about 1.1 GB.
    return max(1, min(batch_size, _INFERENCE_PIXELS // pixels_per_tile))


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
