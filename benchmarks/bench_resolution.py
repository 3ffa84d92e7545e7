"""Benchmark of resolution end to end: one model, the same tissue at 20x and 40x.

The demo's quick model (trained on synthetic slides at 0.5 µm/px) predicts
a held-out synthetic cohort (seeds the demo never trained on, the demo's
slide size, the four classes in equal numbers) stored twice as pyramidal
TIFFs (``write_pyramidal_tiff``, resolution in the file, checked with
``open_slide(path).mpp``):

- ``0.5``: each slide as rendered, at 0.5 µm/px (a 20x scan);
- ``0.25``: each slide upsampled 2x (``np.repeat`` along both axes: nearest,
  exactly the same tissue), at 0.25 µm/px (a 40x scan).

Each set is predicted (``predict_slides``) two ways:

- ``before``: the pipeline's ``Tiler`` at ``mpp=None``, tiles of level-0
  pixels whatever the slide's resolution (what models saved before the
  resolution was recorded do);
- ``after``: the ``Tiler`` at ``mpp=0.5`` with the model's ``tile_size``
  (the model as it is when its ``Tiler`` already has an ``mpp``).

Per set and way: slides right out of n, balanced accuracy, the rate of
slides flagged out of distribution, the lesion map's IoU with the true
lesion masks (lesion slides), seconds. Per way, the 0.25 copy against the
0.5 one: mean and largest per-slide max-over-classes |Δp|, agreement of the
predicted classes, whether every tissue tile's (and the top tiles')
level-0 coordinates are exactly twice the 0.5 copy's, and the IoU of the
thresholded lesion maps (both maps at one physical grid: ``--map-downsample``
level-0 pixels of the 0.5 copy per map pixel, twice that of the 0.25 copy;
two empty maps agree, IoU 1). Prints a table and writes
``benchmarks/results/bench_resolution.json`` (``_large`` with ``--large``)
with every figure, per slide, the command, the model, the load averages and
the wall times.

Run::

    python benchmarks/bench_resolution.py                # trains the demo model
    python benchmarks/bench_resolution.py --model DIR/model.sgm
    python benchmarks/bench_resolution.py --model DIR/model.sgm --large
    python benchmarks/bench_resolution.py --work-dir /tmp/res   # keep the files

Without ``--model`` the demo's quick model is trained first, as
``sklearn-gastric demo --quick --out WORK_DIR/demo`` in a subprocess (a few
minutes on 2 cores); ``--work-dir`` keeps it for later runs with
``--model``.
"""

import argparse
import copy
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

# The demo renders its training cohorts with seeds random_state (0 by
# default) and random_state + 1; this one is far from both.
HELD_OUT_SEED = 2026
SCAN_MPP = {"0.5": 0.5, "0.25": 0.25}
MODEL_MPP = 0.5  # the demo's synthetic slides
WAYS = ("before", "after")
SETS = tuple(SCAN_MPP)


def parse_args(argv=None):
    from sklearn_gastric._demo import QUICK

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="a .sgm model (default: train the demo's)",
    )
    parser.add_argument(
        "--n-slides", type=int, default=8, help="held-out slides (balanced classes)"
    )
    parser.add_argument(
        "--large", action="store_true", help="48 held-out slides (--n-slides 48)"
    )
    parser.add_argument(
        "--size", type=int, default=QUICK.slide_size, help="slide side at 0.5 µm/px"
    )
    parser.add_argument("--seed", type=int, default=HELD_OUT_SEED, help="cohort seed")
    parser.add_argument(
        "--compression",
        choices=("jpeg", "deflate"),
        default="jpeg",
        help="TIFF tiles: jpeg as scanners write (each copy has its own JPEG "
        "error), deflate for exactly the same pixels",
    )
    parser.add_argument(
        "--threshold", type=float, default=0.5, help="lesion-map threshold"
    )
    parser.add_argument(
        "--map-downsample",
        type=int,
        default=8,
        help="level-0 px of the 0.5 copy per lesion-map pixel (x2 for 0.25)",
    )
    parser.add_argument(
        "--demo-random-state", type=int, default=0, help="seed of the demo model"
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="keep the demo model and TIFFs here (default: a temporary folder)",
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON path")
    args = parser.parse_args(argv)
    if args.large:
        args.n_slides = 48
    if args.out is None:
        suffix = "_large" if args.large else ""
        args.out = HERE / "results" / f"bench_resolution{suffix}.json"
    return args


def command_line(args):
    words = ["python", "benchmarks/bench_resolution.py"]
    if args.model is not None:
        words += ["--model", str(args.model)]
    if args.large:
        words.append("--large")
    else:
        words += ["--n-slides", str(args.n_slides)]
    words += ["--size", str(args.size), "--seed", str(args.seed)]
    words += ["--compression", args.compression]
    words += ["--map-downsample", str(args.map_downsample)]
    if args.model is None:
        words += ["--demo-random-state", str(args.demo_random_state)]
    return " ".join(shlex.quote(w) for w in words)


def get_model(args, work_dir):
    """The fitted pipeline, where it came from, and the demo's figures."""
    from sklearn_gastric import load_model

    info = {"trained_by_benchmark": args.model is None}
    path = args.model
    if path is None:
        out = work_dir / "demo"
        command = [sys.executable, "-m", "sklearn_gastric.cli", "demo", "--quick"]
        command += ["--out", str(out)]
        command += ["--random-state", str(args.demo_random_state)]
        log = work_dir / "demo.log"
        print(f"training the demo's quick model: {' '.join(command[1:])}", flush=True)
        start = time.perf_counter()
        with open(log, "w") as stream:
            done = subprocess.run(command, stdout=stream, stderr=subprocess.STDOUT)
        info["demo_seconds"] = round(time.perf_counter() - start, 1)
        info["demo_command"] = "sklearn-gastric " + " ".join(command[3:])
        if done.returncode != 0:
            tail = log.read_text(errors="replace")[-3000:]
            raise SystemExit(f"the demo failed ({done.returncode}):\n{tail}")
        print(f"  trained in {info['demo_seconds']:.0f} s ({log})", flush=True)
        path = out / "model.sgm"
        summary = json.loads((out / "summary.json").read_text())
        info["demo_cv_balanced_accuracy"] = summary.get("cv_balanced_accuracy")
        info["demo_config"] = summary.get("config")
    info["path"] = str(path)
    return load_model(path), info


def write_cohort(args, folder):
    """The held-out cohort as two sets of TIFFs; labels and true masks."""
    from sklearn_gastric.datasets import make_gastric_slides
    from sklearn_gastric.io import open_slide, write_pyramidal_tiff

    images, labels, masks = make_gastric_slides(
        args.n_slides, size=args.size, random_state=args.seed
    )
    paths = {name: [] for name in SETS}
    geometry = {name: [] for name in SETS}
    for i, image in enumerate(images):
        for name, mpp in SCAN_MPP.items():
            factor = round(MODEL_MPP / mpp)
            pixels = np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
            path = folder / name / f"slide_{i:03d}.tiff"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_pyramidal_tiff(pixels, path, mpp=mpp, compression=args.compression)
            slide = open_slide(path)
            if not np.allclose(slide.mpp, (mpp, mpp), rtol=1e-6):
                raise SystemExit(
                    f"{path}: written at {mpp} µm/px, read back as {slide.mpp}"
                )
            paths[name].append(path)
            geometry[name].append(
                {
                    "mpp_read_back": list(slide.mpp),
                    "level_dimensions": [list(d) for d in slide.level_dimensions],
                }
            )
    return paths, np.asarray(labels, dtype=object), masks, geometry


def pipelines(model):
    """The "before" and "after" pipelines, and what their Tilers are."""
    from sklearn_gastric import Tiler
    from sklearn_gastric.pipeline import find_step

    tiler = find_step(model, Tiler)
    if tiler is None:
        raise SystemExit("the model has no Tiler step")
    model_tiler = tiler.get_params()
    before = copy.deepcopy(model)
    find_step(before, Tiler).set_params(mpp=None)
    if tiler.mpp is not None:
        after = model
    else:
        after = copy.deepcopy(model)
        find_step(after, Tiler).set_params(mpp=MODEL_MPP, level=0)
    return (
        {"before": before, "after": after},
        model_tiler,
        {
            way: find_step(pipe, Tiler).get_params()
            for way, pipe in (("before", before), ("after", after))
        },
    )


def predict(pipe, paths, threshold, downsample):
    from sklearn_gastric.pipeline import predict_slides

    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predictions = predict_slides(
            pipe, [str(p) for p in paths], threshold=threshold, downsample=downsample
        )
    seconds = time.perf_counter() - start
    messages = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    return predictions, seconds, messages


def truth_on_grid(mask, downsample, shape):
    """The true lesion mask of a 0.5 slide on the lesion map's grid: map
    pixels at least half lesion."""
    h, w = shape
    padded = np.zeros((h * downsample, w * downsample), dtype=np.float32)
    padded[: mask.shape[0], : mask.shape[1]] = mask
    blocks = padded.reshape(h, downsample, w, downsample).mean(axis=(1, 3))
    return blocks >= 0.5


def iou(a, b):
    union = np.count_nonzero(a | b)
    if union == 0:
        return 1.0
    return np.count_nonzero(a & b) / union


def set_metrics(predictions, labels, masks, downsample):
    from sklearn.metrics import balanced_accuracy_score

    predicted = np.array([str(p.predicted_class) for p in predictions], dtype=object)
    flags = [p.out_of_distribution for p in predictions]
    truth_iou = []
    for p, mask, label in zip(predictions, masks, labels):
        if label == "negative":
            continue
        truth = truth_on_grid(mask, downsample, p.lesion_map.mask.shape)
        truth_iou.append(iou(p.lesion_map.mask, truth))
    known = [f for f in flags if f is not None]
    return {
        "n_right": int(np.sum(predicted == labels)),
        "n": len(labels),
        "balanced_accuracy": float(balanced_accuracy_score(labels, predicted)),
        "ood_flag_rate": float(np.mean(known)) if known else None,
        "lesion_iou_vs_truth_mean": float(np.mean(truth_iou)) if truth_iou else None,
        "mean_tissue_tiles": float(np.mean([len(p.bag) for p in predictions])),
        "tile_level": sorted({int(p.bag.level) for p in predictions}),
        "tile_read_size": sorted({int(p.bag.read_size) for p in predictions}),
        "tile_footprint_level0": sorted({int(p.bag.footprint) for p in predictions}),
        "per_slide": [
            {
                "predicted": str(p.predicted_class),
                "proba": [float(v) for v in p.proba],
                "ood_score": p.ood_score,
                "out_of_distribution": p.out_of_distribution,
                "n_tissue_tiles": len(p.bag),
                "n_lesion_regions": len(p.lesion_map.regions),
                "lesion_pixels": int(np.count_nonzero(p.lesion_map.mask)),
            }
            for p in predictions
        ],
    }


def compare_copies(fine, coarse):
    """The 0.25 copy's predictions (``fine``) against the 0.5 copy's."""
    delta = [float(np.max(np.abs(f.proba - c.proba))) for f, c in zip(fine, coarse)]
    same_class = [f.predicted_class == c.predicted_class for f, c in zip(fine, coarse)]
    coords_x2, top_x2, top_set_x2, map_iou, map_delta = [], [], [], [], []
    for f, c in zip(fine, coarse):
        coords_x2.append(
            f.bag.coords.shape == c.bag.coords.shape
            and bool(np.array_equal(f.bag.coords, 2 * c.bag.coords))
        )
        top_f, top_c = f.top_coords, 2 * c.top_coords
        top_x2.append(top_f.shape == top_c.shape and bool(np.array_equal(top_f, top_c)))
        top_set_x2.append({tuple(v) for v in top_f} == {tuple(v) for v in top_c})
        a, b = f.lesion_map, c.lesion_map
        h = min(a.mask.shape[0], b.mask.shape[0])
        w = min(a.mask.shape[1], b.mask.shape[1])
        map_iou.append(iou(a.mask[:h, :w], b.mask[:h, :w]))
        covered = a.coverage[:h, :w] | b.coverage[:h, :w]
        diff = np.abs(a.probability[:h, :w] - b.probability[:h, :w])[covered]
        map_delta.append(float(diff.mean()) if diff.size else 0.0)
    return {
        "mean_max_abs_delta_p": float(np.mean(delta)),
        "max_max_abs_delta_p": float(np.max(delta)),
        "class_agreement": int(np.sum(same_class)),
        "n": len(delta),
        "tile_coords_exactly_x2": int(np.sum(coords_x2)),
        "top_coords_exactly_x2_in_order": int(np.sum(top_x2)),
        "top_coords_x2_as_sets": int(np.sum(top_set_x2)),
        "lesion_map_iou_mean": float(np.mean(map_iou)),
        "lesion_map_iou_min": float(np.min(map_iou)),
        "lesion_map_mean_abs_delta_prob": float(np.mean(map_delta)),
        "per_slide": [
            {
                "max_abs_delta_p": d,
                "same_class": bool(s),
                "tile_coords_exactly_x2": bool(x),
                "top_coords_exactly_x2": bool(t),
                "lesion_map_iou": float(m),
            }
            for d, s, x, t, m in zip(delta, same_class, coords_x2, top_x2, map_iou)
        ],
    }


def print_table(results, comparisons, labels, load):
    def fmt(value, spec):
        return "-" if value is None else format(value, spec)

    print()
    print(
        f"{'way':<7}{'set':>5} {'right':>6} {'bal.acc':>8} {'OOD':>5} "
        f"{'IoU truth':>9} {'tiles':>6} {'s':>6} | {'vs 0.5 copy:':<12} "
        f"{'mean|Δp|':>8} {'max|Δp|':>8} {'agree':>6} {'coords x2':>9} "
        f"{'map IoU':>7}"
    )
    for way in WAYS:
        for name in SETS:
            r = results[way][name]
            if "error" in r:
                print(f"{way:<7}{name:>5} failed: {r['error']}")
                continue
            row = (
                f"{way:<7}{name:>5} {r['n_right']:>3}/{r['n']:<2} "
                f"{r['balanced_accuracy']:>8.3f} {fmt(r['ood_flag_rate'], '.2f'):>5} "
                f"{fmt(r['lesion_iou_vs_truth_mean'], '.3f'):>9} "
                f"{r['mean_tissue_tiles']:>6.0f} {r['seconds']:>6.1f} |"
            )
            c = comparisons.get(way)
            if name != SETS[0] and c is not None:
                row += (
                    f" {'':<12} {c['mean_max_abs_delta_p']:>8.3f} "
                    f"{c['max_max_abs_delta_p']:>8.3f} "
                    f"{c['class_agreement']:>3}/{c['n']:<2} "
                    f"{c['tile_coords_exactly_x2']:>5}/{c['n']:<3} "
                    f"{c['lesion_map_iou_mean']:>7.3f}"
                )
            print(row)
    if len(labels) <= 16 and all(
        "error" not in results[w][s] for w in WAYS for s in SETS
    ):
        print()
        header = f"{'slide':<6}{'true':>10}"
        for way in WAYS:
            for name in SETS:
                header += f" {way + '@' + name:>12}"
        print(header + f" {'max|Δp| after':>14}")
        for i, label in enumerate(labels):
            line = f"{i:<6}{label:>10}"
            for way in WAYS:
                for name in SETS:
                    line += f" {results[way][name]['per_slide'][i]['predicted']:>12}"
            delta = comparisons["after"]["per_slide"][i]["max_abs_delta_p"]
            print(line + f" {delta:>14.3f}")
    print(f"\nload average (1, 5, 15 min): {', '.join(f'{v:.2f}' for v in load)}")


def main(argv=None):
    import sklearn_gastric

    args = parse_args(argv)
    started = time.perf_counter()
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_resolution_") as scratch:
        work_dir = Path(scratch) if args.work_dir is None else args.work_dir
        work_dir.mkdir(parents=True, exist_ok=True)
        model, model_info = get_model(args, work_dir)
        load_after_model = os.getloadavg()
        ways, model_tiler, tilers = pipelines(model)
        print(f"model: {model_info['path']}; its Tiler: {model_tiler}")

        start = time.perf_counter()
        paths, labels, masks, geometry = write_cohort(args, work_dir / "slides")
        cohort_seconds = time.perf_counter() - start
        print(
            f"wrote {args.n_slides} slides twice ({args.size} px at 0.5 µm/px, "
            f"{2 * args.size} px at 0.25 µm/px, {args.compression}) in "
            f"{cohort_seconds:.1f} s",
            flush=True,
        )

        results = {way: {} for way in WAYS}
        predictions = {way: {} for way in WAYS}
        for way, pipe in ways.items():
            for name, mpp in SCAN_MPP.items():
                downsample = args.map_downsample * MODEL_MPP / mpp
                try:
                    preds, seconds, caught = predict(
                        pipe, paths[name], args.threshold, downsample
                    )
                except Exception as exc:  # report what broke, go on
                    results[way][name] = {"error": f"{type(exc).__name__}: {exc}"}
                    print(f"{way}@{name}: {results[way][name]['error']}", flush=True)
                    continue
                predictions[way][name] = preds
                metrics = set_metrics(preds, labels, masks, args.map_downsample)
                metrics["seconds"] = round(seconds, 2)
                metrics["warnings"] = caught
                results[way][name] = metrics
                print(
                    f"{way}@{name}: {metrics['n_right']}/{metrics['n']} right in "
                    f"{seconds:.1f} s",
                    flush=True,
                )
    comparisons = {}
    for way in WAYS:
        if all(name in predictions[way] for name in SETS):
            comparisons[way] = compare_copies(
                predictions[way]["0.25"], predictions[way]["0.5"]
            )
    sanity = None
    if all("0.5" in predictions[way] for way in WAYS):
        # At 0.5 µm/px both ways read the same tiles: the same predictions.
        sanity = float(
            max(
                np.max(np.abs(a.proba - b.proba))
                for a, b in zip(
                    predictions["before"]["0.5"], predictions["after"]["0.5"]
                )
            )
        )
    load_end = os.getloadavg()
    print_table(results, comparisons, labels, load_end)
    if sanity is not None:
        print(f"before@0.5 vs after@0.5: max |Δp| {sanity:.2g} (same tiles)")

    report = {
        "command": command_line(args),
        "sklearn_gastric": sklearn_gastric.__version__,
        "sklearn_gastric_path": str(Path(sklearn_gastric.__file__).parent),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_start": list(load_start),
            "load_average_after_model": list(load_after_model),
            "load_average_end": list(load_end),
        },
        "model": {**model_info, "tiler": model_tiler},
        "tilers": tilers,
        "cohort": {
            "n_slides": args.n_slides,
            "size_at_0.5": args.size,
            "seed": args.seed,
            "compression": args.compression,
            "labels": [str(v) for v in labels],
            "geometry": geometry,
        },
        "threshold": args.threshold,
        "map_downsample_at_0.5": args.map_downsample,
        "results": results,
        "copies_compared": comparisons,
        "before_vs_after_at_0.5_max_abs_delta_p": sanity,
        "seconds": {
            "cohort": round(cohort_seconds, 1),
            "total": round(time.perf_counter() - started, 1),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=_json_default) + "\n")
    print(f"\nwrote {args.out}")


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON: {type(value).__name__}")


if __name__ == "__main__":
    main()
