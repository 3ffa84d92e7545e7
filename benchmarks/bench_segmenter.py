"""Benchmark: the segmenter's inference paths, side by side, on the same tiles.

The network is by default the one issue 14 measured, a
:class:`~sklearn_gastric.segmentation.VNet` of 16 base channels, depth 4 and
128 features (``--base-channels`` and ``--depth`` change it), trained for a
few epochs on synthetic 64 px patches so that its maps hold both classes (it
is fully convolutional and runs on the 512 px tiles). The tiles are synthetic H&E
tiles (``make_patch_dataset``) held in memory: this measures the network,
not the reading (``bench_pipeline.py`` measures both).

Paths (each in its own fresh process, the processes of all paths
interleaved round by round, so load changes hit every path alike):

- ``reference``: today's path before issue 14, the training network
  (``net_.module_``) in eval mode on batches of 2**20 pixels (4 tiles of
  512 px), the default allocator;
- ``channels_last``: the same with channels-last weights;
- ``folded_buffers``: :class:`InferenceVNet` in float32 (BatchNorm folded,
  channels-last, concatenations in reused buffers), one tile per batch, the
  default allocator;
- ``torch_fp32``: the same with the library's allocator policy
  (``keep_freed_memory``): what ``PatchSegmenter`` runs by default;
- ``torch_bf16``: ``precision="bfloat16"``;
- ``compiled_fp32`` / ``compiled_bf16`` (``--compile``): ``torch.compile``
  of the channels-last network (first call not timed);
- ``openvino_fp32`` / ``openvino_bf16``: ``engine="openvino"`` (if
  installed).

Per path: tiles/s (best of the rounds), the ratio to ``reference``, and the
agreement of its outputs with ``reference``'s: the largest difference of
the probability maps, the Dice of the maps thresholded at 0.5, and the
share of tiles whose patch class is unchanged.

Run::

    python benchmarks/bench_segmenter.py                 # CPU, 1 thread
    python benchmarks/bench_segmenter.py --threads 1 2 --load 1
        # the thread policy: 1 and 2 torch threads with one core kept busy
    python benchmarks/bench_segmenter.py --device cuda --tiles 512 --batch 64 \\
        --compile                                         # a GPU

Prints a table and writes ``benchmarks/results/bench_segmenter.json``.
"""

import argparse
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
CPU_PATHS = [
    "reference",
    "channels_last",
    "folded_buffers",
    "torch_fp32",
    "torch_bf16",
]
CUDA_PATHS = ["reference", "channels_last", "torch_fp32", "torch_bf16"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tile-size", type=int, default=512)
    parser.add_argument("--tiles", type=int, default=8, help="tiles per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument(
        "--load", type=int, default=0, help="busy processes running meanwhile"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--batch", type=int, default=None, help="tiles per batch (default: library's)"
    )
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--paths", nargs="+", default=None)
    parser.add_argument(
        "--base-channels", type=int, default=16, help="16 x 4: the network of issue 14"
    )
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--train-patches", type=int, default=192)
    parser.add_argument("--train-epochs", type=int, default=3)
    parser.add_argument(
        "--out", type=Path, default=HERE / "results" / "bench_segmenter.json"
    )
    parser.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def available_paths(args):
    import importlib.util

    if args.paths:
        return args.paths
    paths = list(CUDA_PATHS if args.device.startswith("cuda") else CPU_PATHS)
    if args.compile:
        paths += ["compiled_fp32", "compiled_bf16"]
    if not args.device.startswith("cuda") and importlib.util.find_spec("openvino"):
        paths += ["openvino_fp32", "openvino_bf16"]
    return paths


# -- the network and the tiles (made once, shared by every worker) ------------


def prepare(args, scratch):
    """Train the default network briefly and render the tiles; save both."""
    import torch

    from sklearn_gastric.datasets import make_patch_dataset
    from sklearn_gastric.segmentation import PatchSegmenter

    torch.set_num_threads(max(args.threads))
    patches, masks, labels = make_patch_dataset(
        args.train_patches, tile_size=64, random_state=0
    )
    start = time.perf_counter()
    segmenter = PatchSegmenter(
        base_channels=args.base_channels,
        depth=args.depth,
        max_epochs=args.train_epochs,
        lr=3e-3,
        validation_fraction=0,
        random_state=0,
    ).fit(patches, masks, labels)
    train_seconds = time.perf_counter() - start
    tiles, _, _ = make_patch_dataset(
        args.tiles, tile_size=args.tile_size, random_state=1
    )
    module = segmenter.net_.module_
    torch.save(
        {
            "state": module.state_dict(),
            "n_classes": module.n_classes,
            "base_channels": module.base_channels,
            "depth": module.depth,
            "tiles": torch.from_numpy(tiles),
        },
        scratch / "network.pt",
    )
    return train_seconds


def run_worker(config_path):
    """One path, one thread count, in this fresh process: time and outputs."""
    import torch

    config = json.loads(Path(config_path).read_text())
    torch.set_num_threads(config["threads"])
    saved = torch.load(config["network"], weights_only=True)
    from sklearn_gastric.segmentation import VNet

    vnet = VNet(
        n_classes=saved["n_classes"],
        base_channels=saved["base_channels"],
        depth=saved["depth"],
    )
    vnet.load_state_dict(saved["state"])
    vnet = vnet.eval().to(config["device"])
    tiles = saved["tiles"]
    infer, batch, context = make_path(config["path"], vnet, config)
    infer(tiles[:batch])  # warm-up: buffers, compilation, OpenVINO's plan
    best, outputs = float("inf"), None
    for _ in range(2):
        start = time.perf_counter()
        outputs = run_tiles(infer, tiles, batch, config["device"], context)
        best = min(best, time.perf_counter() - start)
    maps, classes = outputs
    np.savez(config["outputs"], maps=maps, classes=classes)
    Path(config["result"]).write_text(json.dumps({"seconds": best}))


def make_path(path, vnet, config):
    """``(infer, batch, context)``: a callable from uint8 tiles to (maps,
    patch classes), its tiles per batch, and the context it runs in."""
    import copy
    from contextlib import nullcontext

    import torch

    from sklearn_gastric.segmentation._engines import inference_network
    from sklearn_gastric.segmentation._training import _as_input
    from sklearn_gastric.utils._cpu import keep_freed_memory

    device = config["device"]
    on_cuda = device.startswith("cuda")
    pixels = config["tile_size"] ** 2
    reference_batch = max(1, 2**20 // pixels)
    fast_batch = reference_batch if on_cuda else max(1, 2**18 // pixels)
    batch = config["batch"]
    context = nullcontext
    if path in ("reference", "channels_last") or path.startswith("compiled"):
        network = copy.deepcopy(vnet)
        if path != "reference":
            network = network.to(memory_format=torch.channels_last)
        if path == "compiled_bf16":
            network = network.to(torch.bfloat16)
        if path.startswith("compiled"):
            network = torch.compile(network)
        dtype = torch.bfloat16 if path == "compiled_bf16" else torch.float32
        batch = batch or reference_batch
    else:
        engine, precision = path.split("_")
        if path == "folded_buffers":
            engine, precision = "torch", "fp32"
        else:
            context = keep_freed_memory
        precision = {"fp32": "float32", "bf16": "bfloat16"}[precision]
        network = inference_network(
            vnet, engine=engine, precision=precision, device=device
        )
        dtype = torch.float32
        batch = batch or (reference_batch if engine == "openvino" else fast_batch)

    def infer(uint8_tiles):
        x = _as_input(uint8_tiles.to(device)).to(dtype)
        with torch.inference_mode():
            seg_logits, class_logits, _ = network(x)
            return torch.sigmoid(seg_logits.float()), class_logits.float().argmax(1)

    return infer, batch, context


def run_tiles(infer, tiles, batch, device, context):
    """The tiles through ``infer`` inside ``context`` (as PatchSegmenter
    holds its allocator policy over a whole bag)."""
    import torch

    maps, classes = [], []
    with context():
        for start in range(0, len(tiles), batch):
            proba, cls = infer(tiles[start : start + batch])
            maps.append(proba.cpu().numpy())
            classes.append(cls.cpu().numpy())
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return np.concatenate(maps), np.concatenate(classes)


# -- the driver ---------------------------------------------------------------


def _busy():
    while True:
        pass


def run_all(args, scratch, paths):
    """Every (path, threads) in a fresh process, round by round."""
    seconds = {}
    for round_index in range(args.rounds):
        for threads in args.threads:
            for path in paths:
                key = f"{path}@{threads}"
                config = {
                    "path": path,
                    "threads": threads,
                    "device": args.device,
                    "batch": args.batch,
                    "tile_size": args.tile_size,
                    "network": str(scratch / "network.pt"),
                    "outputs": str(scratch / f"{key}.npz"),
                    "result": str(scratch / f"{key}.json"),
                }
                config_path = scratch / f"{key}.config.json"
                config_path.write_text(json.dumps(config))
                subprocess.run(
                    [sys.executable, __file__, "--worker", str(config_path)],
                    check=True,
                )
                result = json.loads(Path(config["result"]).read_text())
                seconds.setdefault(key, []).append(result["seconds"])
                print(
                    f"  round {round_index + 1}: {key:<20} "
                    f"{args.tiles / result['seconds']:7.2f} tiles/s",
                    flush=True,
                )
    return seconds


def agreement(scratch, key, reference_key):
    out = np.load(scratch / f"{key}.npz")
    ref = np.load(scratch / f"{reference_key}.npz")
    low, high = out["maps"] > 0.5, ref["maps"] > 0.5
    union = low.sum() + high.sum()
    return {
        "max_abs_proba_diff": float(np.abs(out["maps"] - ref["maps"]).max()),
        "dice_vs_reference": float(2 * (low & high).sum() / union) if union else 1.0,
        "same_patch_class": float(np.mean(out["classes"] == ref["classes"])),
        "positive_pixels_reference": float(high.mean()),
    }


def main(argv=None):
    args = parse_args(argv)
    if args.worker is not None:
        run_worker(args.worker)
        return None
    paths = available_paths(args)
    load_before = os.getloadavg()
    busy = [
        multiprocessing.Process(target=_busy, daemon=True) for _ in range(args.load)
    ]
    with tempfile.TemporaryDirectory(prefix="bench_segmenter_") as scratch:
        scratch = Path(scratch)
        train_seconds = prepare(args, scratch)
        for process in busy:
            process.start()
        try:
            seconds = run_all(args, scratch, paths)
        finally:
            for process in busy:
                process.terminate()
        reference_key = f"reference@{args.threads[0]}"
        rows = []
        for key, times in seconds.items():
            best = min(times)
            path, threads = key.split("@")
            rows.append(
                {
                    "path": path,
                    "threads": int(threads),
                    "seconds_best": best,
                    "seconds_all": times,
                    "tiles_per_second": args.tiles / best,
                    "speedup_vs_reference": min(seconds[reference_key]) / best,
                    **agreement(scratch, key, reference_key),
                }
            )
    record = {
        "benchmark": "bench_segmenter",
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "tile_size": args.tile_size,
        "tiles": args.tiles,
        "rounds": args.rounds,
        "device": args.device,
        "network": f"{args.base_channels}x{args.depth}",
        "busy_processes": args.load,
        "train_seconds": train_seconds,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "machine": {
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "processor": platform.processor(),
        },
        "rows": rows,
    }
    print_table(record)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")
    return record


def print_table(record):
    print(
        f"\n{record['network']} network, {record['tiles']} tiles of "
        f"{record['tile_size']} px on "
        f"{record['device']}, best of {record['rounds']} rounds; load average "
        f"{record['load_average_before'][0]:.2f} before, "
        f"{record['load_average_after'][0]:.2f} after; "
        f"{record['busy_processes']} busy process(es)"
    )
    header = (
        f"{'path':<16} {'thr':>3} {'tiles/s':>8} {'vs ref':>7} "
        f"{'max |dp|':>9} {'Dice':>7} {'class =':>8}"
    )
    print(header)
    print("-" * len(header))
    for row in record["rows"]:
        print(
            f"{row['path']:<16} {row['threads']:>3} {row['tiles_per_second']:>8.2f} "
            f"{row['speedup_vs_reference']:>6.2f}x {row['max_abs_proba_diff']:>9.1e} "
            f"{row['dice_vs_reference']:>7.4f} {row['same_patch_class']:>8.3f}"
        )


if __name__ == "__main__":
    main()
