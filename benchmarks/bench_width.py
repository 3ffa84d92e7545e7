"""Benchmark: the segmenter's width and depth against accuracy and speed.

For each (base channels, depth) the accuracy benchmark's whole method runs
on the same cohorts (``bench_accuracy.py``, its ``norm`` setting: stain
normalisation, patches sampled from annotated slides, the segmenter, the
patent's top-K / Pearson graph / GCN head tuned by inner CV): held-out patch
Dice and patch balanced accuracy of the segmenter, and slide balanced
accuracy on new slides of the training labs (``held_out``) and of unseen
labs (``unseen``). Beside them, the network's inference speed on 512 px
tiles (float32, the default ``engine="torch"``, one thread, tiles in
memory), and its FLOPs per tile.

Run::

    python benchmarks/bench_width.py                   # the committed table
    python benchmarks/bench_width.py --configs 8x3 16x4 --seeds 0

Prints a table (with the Pareto front marked) and writes
``benchmarks/results/bench_width.json``.
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_accuracy  # noqa: E402

DEFAULT_CONFIGS = ["4x3", "8x3", "8x4", "16x4"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--accuracy-args",
        default="--size 768 --tile-size 64 --n-annotated 64 --patches-per-slide 12 "
        "--n-train 48 --n-test 24 --seg-epochs 12 --gcn-epochs 100",
        help="options of bench_accuracy.py for the cohorts and training",
    )
    parser.add_argument("--speed-tiles", type=int, default=4)
    parser.add_argument(
        "--out", type=Path, default=HERE / "results" / "bench_width.json"
    )
    return parser.parse_args(argv)


def tiles_per_second(module, n_tiles, tile_size=512):
    """Float32 inference rate of ``module`` on the default torch engine."""
    import torch

    from sklearn_gastric.segmentation._engines import inference_network
    from sklearn_gastric.segmentation._training import _as_input
    from sklearn_gastric.utils._cpu import keep_freed_memory

    network = inference_network(
        module, engine="torch", precision="float32", device="cpu"
    )
    rng = np.random.default_rng(0)
    tiles = rng.integers(
        0, 256, size=(n_tiles, tile_size, tile_size, 3), dtype=np.uint8
    )
    x = _as_input(torch.from_numpy(tiles))
    best = float("inf")
    with torch.inference_mode(), keep_freed_memory():
        network(x[:1])
        for _ in range(2):
            start = time.perf_counter()
            for i in range(n_tiles):
                network(x[i : i + 1])
            best = min(best, time.perf_counter() - start)
    network.clear_buffers()
    return n_tiles / best


def gflop_per_tile(module, tile_size=512):
    """Multiply-adds x 2 of the convolutions for one tile."""
    from torch import nn

    flops = 0
    for name, layer in module.named_modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            side = tile_size // 2 ** _level(name, module.depth)
            if isinstance(layer, nn.ConvTranspose2d):
                side //= layer.stride[0]  # each input pixel makes k x k outputs
            kernel = layer.kernel_size[0] * layer.kernel_size[1]
            flops += 2 * layer.in_channels * layer.out_channels * kernel * side**2
    return flops / 1e9


def _level(name, depth):
    """The resolution level (0 = full) a layer's output lives at."""
    parts = name.split(".")
    if parts[0] in ("stem", "head"):
        return 0
    if parts[0] == "bottleneck":
        return depth
    index = int(parts[1])
    if parts[0] == "encoder":
        return index
    if parts[0] == "down":
        return index + 1
    # up and decoder run from the deepest level back: up[i] outputs level
    # depth - 1 - i, and decoder[i] runs there too.
    return depth - 1 - index


def run_config(config, accuracy_args, cohorts_by_seed, speed_tiles):
    base, depth = (int(v) for v in config.split("x"))
    args = bench_accuracy.parse_args(
        [*accuracy_args, "--seg-base-channels", str(base), "--seg-depth", str(depth)]
    )
    per_seed = []
    for seed, cohorts in cohorts_by_seed.items():
        timings = {}
        entry = bench_accuracy.run_setting(args, seed, cohorts, "norm", timings)
        patent = entry["heads"]["patent"]
        per_seed.append(
            {
                "seed": seed,
                "patch_dice": entry["segmenter"]["dice"],
                "patch_balanced_accuracy": entry["segmenter"]["balanced_accuracy"],
                "slide_bacc_held_out": patent["held_out"]["balanced_accuracy"],
                "slide_bacc_unseen": patent["unseen"]["balanced_accuracy"],
                "train_segmenter_seconds": timings["train_segmenter_norm"],
            }
        )
    from sklearn_gastric.segmentation import VNet

    module = VNet(n_classes=4, base_channels=base, depth=depth, feature_dim=32).eval()
    row = {"config": config, "base_channels": base, "depth": depth}
    for key in per_seed[0]:
        if key != "seed":
            row[key] = float(np.mean([s[key] for s in per_seed]))
    row["tiles_per_second_512"] = tiles_per_second(module, speed_tiles)
    row["gflop_per_tile_512"] = gflop_per_tile(module)
    row["per_seed"] = per_seed
    return row


def pareto(rows, quality="slide_bacc_held_out", speed="tiles_per_second_512"):
    """Mark the rows no other row beats on both quality and speed."""
    for row in rows:
        row["pareto"] = not any(
            other[quality] >= row[quality]
            and other[speed] >= row[speed]
            and (other[quality] > row[quality] or other[speed] > row[speed])
            for other in rows
        )
    return rows


def main(argv=None):
    import torch

    args = parse_args(argv)
    torch.set_num_threads(1)
    accuracy_args = args.accuracy_args.split()
    base_args = bench_accuracy.parse_args(accuracy_args)
    load_before = os.getloadavg()
    started = time.perf_counter()
    cohorts_by_seed = {
        seed: bench_accuracy.make_cohorts(base_args, seed) for seed in args.seeds
    }
    rows = []
    for config in args.configs:
        rows.append(
            run_config(config, accuracy_args, cohorts_by_seed, args.speed_tiles)
        )
        summary = {k: v for k, v in rows[-1].items() if k != "per_seed"}
        print(f"  {config}: {json.dumps(summary)}", flush=True)
    pareto(rows)
    record = {
        "benchmark": "bench_width",
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "accuracy_args": args.accuracy_args,
        "seeds": args.seeds,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "total_seconds": time.perf_counter() - started,
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count()},
        "rows": rows,
    }
    print_table(record)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


def print_table(record):
    print(
        f"\nseeds {record['seeds']}, bench_accuracy {record['accuracy_args']}; "
        f"load average {record['load_average_before'][0]:.2f} before, "
        f"{record['load_average_after'][0]:.2f} after"
    )
    header = (
        f"{'width x depth':<13} {'patch Dice':>10} {'patch bacc':>10} "
        f"{'slide bacc (held-out)':>21} {'(unseen)':>8} {'tiles/s':>8} "
        f"{'GFLOP':>6} {'Pareto':>6}"
    )
    print(header)
    print("-" * len(header))
    for row in record["rows"]:
        print(
            f"{row['config']:<13} {row['patch_dice']:>10.3f} "
            f"{row['patch_balanced_accuracy']:>10.3f} "
            f"{row['slide_bacc_held_out']:>21.3f} {row['slide_bacc_unseen']:>8.3f} "
            f"{row['tiles_per_second_512']:>8.2f} {row['gflop_per_tile_512']:>6.1f} "
            f"{'*' if row['pareto'] else '':>6}"
        )


if __name__ == "__main__":
    main()
