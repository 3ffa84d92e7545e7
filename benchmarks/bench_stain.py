"""Benchmark of stain normalisation: the per-tile transform and the per-slide estimate.

1. Per-tile cost on the reading path: 512x512 tissue tiles (``OtsuFilter``'s
   70% rule) of the CMU-1-Small-Region slide and of synthetic slides
   (``make_gastric_slides``, several labs), each normalised to the real H&E
   target by

   - ``before``: the transform's arithmetic before the fast paths, one step
     at a time (``tests/preprocessing/stain_reference.py``, the reference
     the tests hold the fast paths to);
   - ``ours``: ``StainTransform``, what a normalised ``Slide`` applies;
   - ``torchstain``: torchstain's numpy backend fitted to the same target,
     ``MacenkoNormalizer(backend="numpy").normalize(I=tile, stains=False)``
     and ``ReinhardNormalizer(backend="numpy").normalize(tile)``. Both
     estimate the tile's own stains on every call: that is how torchstain
     normalises a tile.

   All runs are interleaved (each repeat runs every method on every tile, in
   a rotating order) and each figure is the best repeat, so that the ratios
   come from the same moments of a shared machine.
2. Background tiles (white, black, glass, uniform grey) through each method:
   an exception or a floating-point warning counts as a failure.
3. The per-slide estimate on the CMU slide: before (every tissue pixel of a
   view read from the whole level) and ours (a bounded read), the time and
   how far the estimates are apart.

Prints a table and writes ``benchmarks/results/bench_stain.json``. Needs
``torchstain`` (pure Python; its numpy backend needs only numpy).

Run::

    python benchmarks/bench_stain.py
    python benchmarks/bench_stain.py --repeats 3 --synthetic 1   # quicker
    python benchmarks/bench_stain.py --blas-threads 1  # torchstain on 1 thread
"""

import argparse
import json
import os
import platform
import sys
import time
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "preprocessing"))

TILE = 512
BACKGROUNDS = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "glass": (242, 240, 244),
    "grey": (128, 128, 128),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="best of this many")
    parser.add_argument("--synthetic", type=int, default=3, help="synthetic slides")
    parser.add_argument("--synthetic-size", type=int, default=2048)
    parser.add_argument("--tiles-per-slide", type=int, default=8)
    parser.add_argument(
        "--blas-threads",
        type=int,
        default=None,
        help="limit BLAS threads (threadpoolctl); torchstain's products use them",
    )
    parser.add_argument(
        "--out", default=str(HERE / "results" / "bench_stain.json"), type=Path
    )
    return parser.parse_args(argv)


# -- data ----------------------------------------------------------------------


def load_slides(n_synthetic, size):
    """``[(name, slide)]``: the CMU slide, and synthetic slides of several labs."""
    from sklearn_gastric.datasets import (
        fetch_cmu_small_region,
        make_gastric_slides,
        make_stain_profile,
    )
    from sklearn_gastric.io import Slide, open_slide

    home = os.environ.get("SKLEARN_GASTRIC_DATA")
    slides = [("CMU-1-Small-Region", open_slide(fetch_cmu_small_region(home)))]
    for seed in range(n_synthetic):
        lab = None if seed == 0 else make_stain_profile(seed)
        (rgb,), _, _ = make_gastric_slides(1, size=size, lab=lab, random_state=seed)
        name = "synthetic, reference lab" if seed == 0 else f"synthetic, lab {seed}"
        slides.append((name, Slide(rgb, name=name)))
    return slides


def tissue_tiles(slide, limit):
    """Up to ``limit`` raw 512x512 tiles with at least 70% tissue, spread
    over the slide."""
    from sklearn_gastric.preprocessing import OtsuFilter, Tiler

    (bag,) = OtsuFilter(min_tissue=0.7).fit_transform(
        Tiler(TILE).fit_transform([slide])
    )
    keep = np.unique(np.linspace(0, len(bag) - 1, min(limit, len(bag))).astype(int))
    return [slide.read_region(tuple(xy), 0, (TILE, TILE)) for xy in bag.coords[keep]]


def target_image():
    from sklearn_gastric.datasets import fetch_he_target
    from sklearn_gastric.io import open_slide

    target = open_slide(fetch_he_target(os.environ.get("SKLEARN_GASTRIC_DATA")))
    return target.read_region((0, 0), 0, target.dimensions)


# -- methods -------------------------------------------------------------------


def build_methods(slides, target):
    """``{name: [callable per slide]}``: what normalises a tile of each slide."""
    import torchstain
    from stain_reference import ReferenceTransform

    from sklearn_gastric.preprocessing import StainNormalizer

    methods = {}
    for method in ("macenko", "reinhard"):
        normalizer = StainNormalizer(method, target=target, random_state=0).fit()
        transforms = [s.transform for s in normalizer.transform([s for _, s in slides])]
        methods[f"{method}: before"] = [
            ReferenceTransform(method, t.source, t.target) for t in transforms
        ]
        methods[f"{method}: ours"] = transforms
    macenko = torchstain.normalizers.MacenkoNormalizer(backend="numpy")
    macenko.fit(target)
    reinhard = torchstain.normalizers.ReinhardNormalizer(backend="numpy")
    reinhard.fit(target)
    methods["macenko: torchstain"] = [
        lambda tile: macenko.normalize(I=tile, stains=False)[0]
    ] * len(slides)
    methods["reinhard: torchstain"] = [reinhard.normalize] * len(slides)
    return methods


# -- measurements --------------------------------------------------------------


def time_methods(methods, tiles_by_slide, repeats):
    """Best seconds per tile of each method, interleaved over repeats."""
    names = list(methods)
    best = dict.fromkeys(names, np.inf)
    n_tiles = sum(len(tiles) for tiles in tiles_by_slide)
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            for apply, tiles in zip(methods[name], tiles_by_slide):
                for tile in tiles:
                    apply(tile)
            best[name] = min(best[name], (time.perf_counter() - start) / n_tiles)
    return best


def largest_difference(methods, tiles_by_slide, method):
    """Largest grey-level difference between ours and before on any tile."""
    ours, before = methods[f"{method}: ours"], methods[f"{method}: before"]
    return max(
        int(np.abs(new(tile).astype(np.int16) - old(tile)).max())
        for new, old, tiles in zip(ours, before, tiles_by_slide)
        for tile in tiles
    )


def background_failures(methods):
    """``{method: [failed backgrounds]}``: an exception, or a division by
    zero, an overflow or an invalid value (NaN) in numpy (underflow is fine)."""
    failures = {}
    for name, applies in methods.items():
        failed = []
        for background, value in BACKGROUNDS.items():
            tile = np.full((TILE, TILE, 3), value, np.uint8)
            try:
                with (
                    warnings.catch_warnings(),
                    np.errstate(divide="raise", over="raise", invalid="raise"),
                ):
                    warnings.simplefilter("error", RuntimeWarning)
                    applies[0](tile)
            except Exception as exc:  # any failure counts
                failed.append(f"{background}: {type(exc).__name__}: {exc}"[:90])
        failures[name] = failed
    return failures


def time_estimates(cmu_path, repeats):
    """The CMU slide's Macenko estimate, before and ours, from a freshly
    opened slide each time; and how far the two estimates are apart."""
    from stain_reference import reference_slide_tissue_pixels

    from sklearn_gastric.io import open_slide
    from sklearn_gastric.preprocessing import estimate_stains
    from sklearn_gastric.preprocessing._stain import _slide_tissue_pixels

    ways = {"before": reference_slide_tissue_pixels, "ours": _slide_tissue_pixels}
    best, estimates = dict.fromkeys(ways, np.inf), {}
    for repeat in range(repeats):
        for name in list(ways)[repeat % 2 :] + list(ways)[: repeat % 2]:
            slide = open_slide(cmu_path)
            start = time.perf_counter()
            estimates[name] = estimate_stains(ways[name](slide))
            best[name] = min(best[name], time.perf_counter() - start)
    before, ours = estimates["before"], estimates["ours"]
    cosines = np.sum(before["stains"] * ours["stains"], axis=1)
    return {
        "before_s": best["before"],
        "ours_s": best["ours"],
        "speedup": best["before"] / best["ours"],
        "stain_angle_deg": np.degrees(np.arccos(np.clip(cosines, -1, 1))).tolist(),
        "max_concentration_ratio": (
            ours["max_concentrations"] / before["max_concentrations"]
        ).tolist(),
    }


# -- report --------------------------------------------------------------------


def print_table(seconds, ratios, differences, failures, estimate, n_tiles, load):
    print(f"\n{n_tiles} tissue tiles of {TILE}x{TILE}; best of the repeats")
    print(f"{'method':<22} {'ms/tile':>8} {'tiles/s':>8}  background failures")
    for name, s in seconds.items():
        failed = ", ".join(f.split(":")[0] for f in failures[name]) or "none"
        print(f"{name:<22} {1e3 * s:>8.2f} {1 / s:>8.1f}  {failed}")
    print()
    for name, ratio in ratios.items():
        print(f"{name:<40} x{ratio:.2f}")
    for method, difference in differences.items():
        print(f"{method}: largest |ours - before| over the tiles: {difference}")
    print(
        f"\nCMU estimate (Macenko): before {estimate['before_s']:.3f} s, ours "
        f"{estimate['ours_s']:.3f} s (x{estimate['speedup']:.1f}); stain angles "
        f"{np.round(estimate['stain_angle_deg'], 2).tolist()} deg, max "
        f"concentrations x{np.round(estimate['max_concentration_ratio'], 3).tolist()}"
    )
    print(f"load average before {load[0]}, after {load[1]}")


def main(argv=None):
    args = parse_args(argv)
    # Every BLAS library loaded before the limit, so that it holds for all.
    import scipy.linalg  # noqa: F401
    import sklearn.decomposition  # noqa: F401
    import torchstain  # noqa: F401

    import sklearn_gastric.preprocessing  # noqa: F401

    with threadpool_limits(limits=args.blas_threads, user_api="blas"):
        run(args, argv)


def run(args, argv):
    load_before = os.getloadavg()
    slides = load_slides(args.synthetic, args.synthetic_size)
    tiles_by_slide = [tissue_tiles(slide, args.tiles_per_slide) for _, slide in slides]
    methods = build_methods(slides, target_image())
    seconds = time_methods(methods, tiles_by_slide, args.repeats)
    ratios = {
        "macenko: ours / before": seconds["macenko: before"] / seconds["macenko: ours"],
        "macenko: ours / torchstain": seconds["macenko: torchstain"]
        / seconds["macenko: ours"],
        "reinhard: ours / before": seconds["reinhard: before"]
        / seconds["reinhard: ours"],
        "reinhard: ours / torchstain": seconds["reinhard: torchstain"]
        / seconds["reinhard: ours"],
    }
    differences = {
        method: largest_difference(methods, tiles_by_slide, method)
        for method in ("macenko", "reinhard")
    }
    failures = background_failures(methods)
    estimate = time_estimates(slides[0][1].path, args.repeats)
    load = (load_before, os.getloadavg())
    n_tiles = sum(len(tiles) for tiles in tiles_by_slide)
    print_table(seconds, ratios, differences, failures, estimate, n_tiles, load)

    report = {
        "command": "python benchmarks/bench_stain.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torchstain": version("torchstain"),
            "blas_threads": [
                info["num_threads"]
                for info in threadpool_info()
                if info["user_api"] == "blas"
            ],
            "load_average_before": load[0],
            "load_average_after": load[1],
        },
        "tiles": {name: len(tiles) for (name, _), tiles in zip(slides, tiles_by_slide)},
        "repeats": args.repeats,
        "seconds_per_tile": seconds,
        "tiles_per_second": {name: 1 / s for name, s in seconds.items()},
        "ratios": ratios,
        "largest_grey_level_difference_vs_before": differences,
        "background_failures": failures,
        "cmu_estimate": estimate,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
