"""Is the segmenter's training stable? Per-patch against batch Dice.

Trains ``PatchSegmenter`` with ``dice_reduction="patch"`` (the mean of
per-patch Dice losses, the default) and ``"batch"`` (one Dice over the
batch) on the same patches and prints, for each, the held-out patches'
Dice (and, on a cohort, patch balanced accuracy) and the validation Dice of
every epoch (issue 30, item 5).

Two data sets:

- ``test``: the patches of ``test_learns_make_patch_dataset`` (320 synthetic
  patches of 64 px, 15 epochs, no early stopping: the last epoch is kept);
- ``real`` / ``synthetic``: the accuracy benchmark's annotated cohort and
  segmenter for one seed (``bench_accuracy.py``: 768 patches of 128 px
  through the stain normaliser, a fifth of the slides held out, 12 epochs,
  early stopping on the validation loss).

Run::

    python benchmarks/bench_segmenter_stability.py --data test
    python benchmarks/bench_segmenter_stability.py --data real --seed 0
"""

import argparse
import json
import os
import platform
import sys
import time
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

VARIANTS = ("patch", "batch")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=["test", "real", "synthetic"], default="test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.out is None:
        name = f"bench_segmenter_stability_{args.data}"
        if args.data != "test":
            name += f"_seed{args.seed}"
        args.out = HERE / "results" / f"{name}.json"
    return args


def dice(proba, masks):
    predicted, truth = proba > 0.5, masks >= 0.5
    return float(2 * (predicted & truth).sum() / (predicted.sum() + truth.sum()))


def run_test_patches(reduction):
    from sklearn_gastric import PatchSegmenter
    from sklearn_gastric.datasets import make_patch_dataset

    patches, masks, labels = make_patch_dataset(320, tile_size=64, random_state=0)
    train, test = slice(0, 256), slice(256, None)
    segmenter = PatchSegmenter(
        base_channels=8,
        depth=3,
        feature_dim=16,
        max_epochs=15,
        lr=1e-3,
        batch_size=16,
        patience=None,
        random_state=0,
        dice_reduction=reduction,
    )
    segmenter.fit(patches[train], masks[train], labels[train])
    return segmenter, {
        "dice": dice(segmenter.predict_proba_maps(patches[test]), masks[test])
    }


@lru_cache(maxsize=1)
def load_cohort(data, seed):
    """The accuracy benchmark's options, annotated cohort and fitted stain
    normaliser for one seed."""
    import bench_accuracy

    from sklearn_gastric.preprocessing import StainNormalizer

    options = bench_accuracy.parse_args(["--tissue", data, "--seeds", str(seed)])
    labs = bench_accuracy.make_labs(seed)
    base = 100 * (seed + 1)
    part = "upper" if data == "real" else "all"
    annotated = bench_accuracy.render(
        options, options.n_annotated, labs["train"], base + 1, "ann", part
    )
    train = bench_accuracy.render(
        options, options.n_train, labs["train"], base + 2, "train", part
    )
    return options, annotated, StainNormalizer().fit(train[0])


def run_cohort(args, reduction):
    import bench_accuracy

    options, annotated, normalizer = load_cohort(args.data, args.seed)
    options.dice_reduction = reduction
    return bench_accuracy.train_segmenter(options, annotated, normalizer, args.seed)


def main(argv=None):
    args = parse_args(argv)
    import torch

    torch.set_num_threads(1)
    rows = []
    started = time.perf_counter()
    for reduction in VARIANTS:
        begin = time.perf_counter()
        if args.data == "test":
            segmenter, scores = run_test_patches(reduction)
        else:
            segmenter, scores = run_cohort(args, reduction)
        curve = [round(float(v), 2) for v in segmenter.net_.history[:, "valid_dice"]]
        rows.append(
            {
                "dice_reduction": reduction,
                **scores,
                "valid_dice_per_epoch": curve,
                "seconds": time.perf_counter() - begin,
            }
        )
        print(
            f"{reduction:>6s} Dice: "
            + ", ".join(f"{k} {v:.3f}" for k, v in scores.items() if k != "n_patches")
            + f"; validation Dice per epoch {curve}",
            flush=True,
        )
    record = {
        "benchmark": "bench_segmenter_stability",
        "command": "python benchmarks/bench_segmenter_stability.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "rows": rows,
        "total_seconds": time.perf_counter() - started,
        "load_average": os.getloadavg(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
