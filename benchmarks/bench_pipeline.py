"""Benchmark: a slide's tissue tiles from file to segmented bag, and a
cohort's slide classes, with today's inference path and the new ones.

Two parts, each comparing the paths in one run:

1. **Speed on 512 px tiles.** A synthetic slide (``make_gastric_slides``)
   is written as a JPEG pyramidal TIFF; it is stain-normalised (Macenko,
   fitted on the shipped H&E target when available, else on the slide),
   tiled at 512 px and Otsu-filtered. A briefly trained segmenter (by
   default the library's default width, 4 base channels and depth 3;
   ``--base-channels 16 --depth 4`` is the network issue 14 measured) then
   segments its tissue tiles:

   - ``transform``: ``PatchSegmenter.transform`` of the bag, reading the
     tiles from the file and applying the stain transform in its reader
     thread while the network runs (what a user runs);
   - ``network``: the same network on the same tiles, already read and
     normalised, in memory (the network's own time).

   Their ratio is the cost of reading not hidden behind compute (target
   <= 1.15). The paths: ``reference`` (the training network on batches of
   2**20 pixels, as before issue 14), ``torch_fp32`` (the default),
   ``torch_bf16``, ``openvino_bf16`` (if installed). From the best
   end-to-end rate comes the projected time of a 2,500-tile slide.

2. **Slide classes.** The demo's small pipeline is fitted (float32) on a
   synthetic cohort; the held-out slides are then predicted with each path:
   the share of slides whose class is unchanged and the largest change of
   a class probability against float32.

Run::

    python benchmarks/bench_pipeline.py
    python benchmarks/bench_pipeline.py --slide-size 4096 --rounds 3

Prints two tables and writes ``benchmarks/results/bench_pipeline.json``.
"""

import argparse
import copy
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
PATHS = ["reference", "torch_fp32", "torch_bf16"]
if importlib.util.find_spec("openvino"):
    PATHS.append("openvino_bf16")
SETTINGS = {
    "torch_fp32": {"engine": "torch", "precision": "float32"},
    "torch_bf16": {"engine": "torch", "precision": "bfloat16"},
    "openvino_fp32": {"engine": "openvino", "precision": "float32"},
    "openvino_bf16": {"engine": "openvino", "precision": "bfloat16"},
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slide-size", type=int, default=3584)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--paths", nargs="+", default=PATHS)
    parser.add_argument("--cohort", type=int, default=36, help="cohort slides")
    parser.add_argument(
        "--base-channels", type=int, default=4, help="the default network: 4 x 3"
    )
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument(
        "--out", type=Path, default=HERE / "results" / "bench_pipeline.json"
    )
    return parser.parse_args(argv)


# -- the paths ----------------------------------------------------------------


def reference_segmenter(segmenter):
    """A copy of ``segmenter`` inferring as before issue 14: the training
    network, batches of 2**20 pixels, torch's and the allocator's defaults
    (the thread count is the caller's)."""
    from sklearn_gastric.segmentation import PatchSegmenter

    class ReferenceSegmenter(PatchSegmenter):
        def _segment_bag(self, bag):
            from sklearn_gastric.segmentation._inference import (
                _batch_size,
                _segment_tiles,
            )

            return _segment_tiles(
                bag,
                self._infer,
                batch_size=_batch_size(self.batch_size, bag.tile_size**2, 2**20),
                map_side=max(1, bag.tile_size // self.map_downsample),
                widths=(self.net_.module_.feature_dim, self.n_classes_),
                reader_threads=self._reader_threads(),
                on_error=self.on_error,
            )

        def _infer(self, batch):
            return reference_infer(self.net_.module_, batch)

    reference = copy.deepcopy(segmenter)
    reference.__class__ = ReferenceSegmenter
    return reference


def reference_infer(module, batch):
    import torch

    from sklearn_gastric.segmentation._training import _as_input

    module.eval()
    with torch.inference_mode():
        seg, cls, feats = module(_as_input(torch.from_numpy(batch)))
    return torch.sigmoid(seg), torch.softmax(cls, dim=1), feats


def with_path(segmenter, path):
    if path == "reference":
        return reference_segmenter(segmenter)
    return copy.deepcopy(segmenter).set_params(**SETTINGS[path])


def network_seconds(segmenter, tiles, path):
    """Seconds of the network alone on ``tiles`` (in memory), batched as
    ``transform`` batches them."""
    from sklearn_gastric.segmentation._inference import (
        _batch_size,
        cpu_policy,
        pixel_cap,
        release_buffers,
    )

    cap = 2**20 if path == "reference" else pixel_cap(segmenter.engine, "cpu")
    step = _batch_size(segmenter.batch_size, tiles.shape[1] ** 2, cap)
    start = time.perf_counter()
    if path == "reference":
        for first in range(0, len(tiles), step):
            reference_infer(segmenter.net_.module_, tiles[first : first + step])
    else:
        with cpu_policy(segmenter.torch_threads, 1):
            for first in range(0, len(tiles), step):
                segmenter._infer(tiles[first : first + step])
        release_buffers(segmenter.net_.module_)
    return time.perf_counter() - start


# -- part 1: speed ------------------------------------------------------------


def make_slide(args, scratch):
    """A synthetic slide as a pyramidal TIFF, its normalised tissue bag, and
    the bag's tiles read into memory."""
    from sklearn_gastric.datasets import make_gastric_slides
    from sklearn_gastric.io import write_pyramidal_tiff
    from sklearn_gastric.preprocessing import OtsuFilter, StainNormalizer, Tiler

    (image,), _, _ = make_gastric_slides(
        1, size=args.slide_size, classes=["HGIN"], random_state=0
    )
    path = scratch / "slide.tif"
    write_pyramidal_tiff(image, path, tile_size=256, mpp=0.5)
    target = _target_image(image)
    normalizer = StainNormalizer(method="macenko").fit([target])
    (slide,) = normalizer.transform([str(path)])
    (bag,) = OtsuFilter(min_tissue=0.7).fit_transform(
        Tiler(tile_size=512).fit_transform([slide])
    )
    tiles = np.concatenate([batch for _, batch, _ in bag.read_batches(16)])
    return bag, tiles


def _target_image(fallback):
    try:
        from sklearn_gastric.datasets import fetch_he_target

        return fetch_he_target()
    except Exception:  # no cached copy and no network: the slide itself
        return fallback


def train_segmenter(args):
    from sklearn_gastric.datasets import make_patch_dataset
    from sklearn_gastric.segmentation import PatchSegmenter

    patches, masks, labels = make_patch_dataset(128, tile_size=64, random_state=0)
    return PatchSegmenter(
        base_channels=args.base_channels,
        depth=args.depth,
        max_epochs=2,
        lr=3e-3,
        validation_fraction=0,
        random_state=0,
    ).fit(patches, masks, labels)


def time_speed(args, segmenter, bag, tiles):
    rows = {path: {"transform": [], "network": []} for path in args.paths}
    segmenters = {path: with_path(segmenter, path) for path in args.paths}
    for seg in segmenters.values():  # warm-up: builds, plans, buffers
        seg.transform([bag.subset(np.arange(1))])
    for round_index in range(args.rounds):
        for path, seg in segmenters.items():
            start = time.perf_counter()
            (out,) = seg.transform([bag])
            rows[path]["transform"].append(time.perf_counter() - start)
            rows[path]["network"].append(network_seconds(seg, tiles, path))
            print(
                f"  round {round_index + 1}: {path:<14} transform "
                f"{rows[path]['transform'][-1]:6.1f} s, network "
                f"{rows[path]['network'][-1]:6.1f} s",
                flush=True,
            )
    table = []
    reference = min(rows[args.paths[0]]["transform"])
    for path, times in rows.items():
        transform, network = min(times["transform"]), min(times["network"])
        table.append(
            {
                "path": path,
                "tiles": len(bag),
                "transform_seconds": transform,
                "network_seconds": network,
                "transform_over_network": transform / network,
                "tiles_per_second": len(bag) / transform,
                "speedup_vs_reference": reference / transform,
                "projected_2500_tiles_minutes": 2500 / (len(bag) / transform) / 60,
                "all": times,
            }
        )
    return table


# -- part 2: slide classes ----------------------------------------------------


def slide_classes(args):
    """Fit the demo's small pipeline in float32; predict held-out slides
    with every path."""
    from sklearn_gastric.datasets import make_gastric_slides
    from sklearn_gastric.graph import GCNSlideClassifier
    from sklearn_gastric.pipeline import find_step, make_gastric_pipeline
    from sklearn_gastric.segmentation import PatchSegmenter, sample_patches

    slides, labels, masks = make_gastric_slides(
        args.cohort, size=768, random_state=1, return_tissue=False
    )
    n_train = args.cohort * 2 // 3
    patches, patch_masks, patch_labels, _ = sample_patches(
        slides[:n_train], masks[:n_train], labels[:n_train], tile_size=64,
        n_patches=16, random_state=0,
    )  # fmt: skip
    segmenter = PatchSegmenter(
        base_channels=8, depth=3, feature_dim=32, max_epochs=4, lr=3e-3,
        patience=None, random_state=0,
    ).fit(patches, patch_masks, patch_labels)  # fmt: skip
    pipe = make_gastric_pipeline(
        segmenter,
        tile_size=64,
        k=8,
        classifier=GCNSlideClassifier(
            max_epochs=60, class_weight="balanced", random_state=0
        ),
    ).fit(slides[:n_train], labels[:n_train])
    held_out = slides[n_train:]
    inner = find_step(pipe, PatchSegmenter)
    proba = {}
    for path in ["torch_fp32", *[p for p in args.paths if p != "torch_fp32"]]:
        if path == "reference":
            continue
        inner.set_params(**SETTINGS[path])
        proba[path] = pipe.predict_proba(held_out)
    inner.set_params(**SETTINGS["torch_fp32"])
    base = proba["torch_fp32"]
    return [
        {
            "path": path,
            "slides": len(held_out),
            "same_class": float(np.mean(p.argmax(1) == base.argmax(1))),
            "max_abs_proba_diff": float(np.abs(p - base).max()),
        }
        for path, p in proba.items()
    ]


# -- the driver ---------------------------------------------------------------


def main(argv=None):
    import torch

    args = parse_args(argv)
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_pipeline_") as scratch:
        bag, tiles = make_slide(args, Path(scratch))
        print(f"slide: {args.slide_size} px, {len(bag)} tissue tiles of 512 px")
        segmenter = train_segmenter(args)
        speed = time_speed(args, segmenter, bag, tiles)
    classes = slide_classes(args)
    record = {
        "benchmark": "bench_pipeline",
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "slide_size": args.slide_size,
        "network": f"{args.base_channels}x{args.depth}",
        "rounds": args.rounds,
        "torch_threads": 1,
        "reader_threads": 1,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count()},
        "speed": speed,
        "slide_classes": classes,
    }
    print_tables(record)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")
    return record


def print_tables(record):
    print(
        f"\nSpeed of the {record['network']} network: best of "
        f"{record['rounds']} rounds, 1 torch thread, 1 reader "
        f"thread; load average {record['load_average_before'][0]:.2f} before, "
        f"{record['load_average_after'][0]:.2f} after"
    )
    header = (
        f"{'path':<14} {'tiles':>5} {'transform s':>11} {'network s':>9} "
        f"{'ratio':>6} {'tiles/s':>8} {'vs ref':>7} {'2,500 tiles':>11}"
    )
    print(header)
    print("-" * len(header))
    for row in record["speed"]:
        print(
            f"{row['path']:<14} {row['tiles']:>5} {row['transform_seconds']:>11.1f} "
            f"{row['network_seconds']:>9.1f} {row['transform_over_network']:>6.2f} "
            f"{row['tiles_per_second']:>8.2f} {row['speedup_vs_reference']:>6.2f}x "
            f"{row['projected_2500_tiles_minutes']:>8.1f} min"
        )
    print("\nSlide classes of held-out slides against float32:")
    print(f"{'path':<14} {'slides':>6} {'same class':>10} {'max |dp|':>9}")
    for row in record["slide_classes"]:
        print(
            f"{row['path']:<14} {row['slides']:>6} {row['same_class']:>10.3f} "
            f"{row['max_abs_proba_diff']:>9.1e}"
        )


if __name__ == "__main__":
    main()
