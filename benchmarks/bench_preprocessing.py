"""Benchmark of tissue-tile selection and tile reading.

1. Tissue-tile selection: ``OtsuFilter(mode="slide")`` (one Otsu threshold on
   a low-resolution view) against the naive way, reading every
   full-resolution tile with OpenSlide and running Otsu on it; also
   ``OtsuFilter(mode="tile")`` (the same naive work, inside the library).
2. Tile reading: ``TileBag.iter_batches`` on one and two threads against a
   bare OpenSlide ``read_region`` loop over the same tiles.

Both on the real CMU-1-Small-Region slide and on a large synthetic pyramidal
TIFF written tile by tile (memory stays small). Prints a table and writes
``benchmarks/results/bench_preprocessing.json``.

Run::

    python benchmarks/bench_preprocessing.py                # 16384x16384
    python benchmarks/bench_preprocessing.py --size 8192 --repeats 2
"""

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import openslide
from skimage.filters import threshold_otsu

from sklearn_gastric.io import open_slide, write_pyramidal_tiff
from sklearn_gastric.preprocessing import (
    OtsuFilter,
    Tiler,
    low_resolution_view,
    tissue_fraction,
    tissue_mask,
)
from sklearn_gastric.preprocessing._otsu import _MASK_PIXELS_PER_TILE, _MAX_VIEW_SIDE

TILE = 512
CMU_CANDIDATES = (
    os.environ.get("SKLEARN_GASTRIC_CMU", ""),
    "/work/shared/data/cmu_small_region.svs",
)


class SyntheticTissue:
    """A lazily generated H&E-looking image: tissue blobs with textured stain
    on glass. Supports ``image[y0:y1, x0:x1]`` so the TIFF writer pulls it
    block by block; nothing is held but a 64x64 field and a noise tile."""

    def __init__(self, size, seed=0):
        rng = np.random.RandomState(seed)
        self.shape = (size, size, 3)
        self.dtype = np.dtype(np.uint8)
        field = rng.rand(64, 64)
        for _ in range(4):  # smooth the field so tissue comes in blobs
            field = (
                field
                + np.roll(field, 1, 0)
                + np.roll(field, -1, 0)
                + np.roll(field, 1, 1)
                + np.roll(field, -1, 1)
            ) / 5
        self.field = field > np.quantile(field, 0.55)
        self.cell = size / 64
        self.noise = rng.randint(-25, 26, size=(256, 256, 3)).astype(np.int16)
        self.nuclei = rng.rand(256, 256) < 0.08

    def __getitem__(self, index):
        ys, xs = index[:2]
        y = np.arange(ys.start, min(ys.stop, self.shape[0]))
        x = np.arange(xs.start, min(xs.stop, self.shape[1]))
        tissue = self.field[
            (y / self.cell).astype(int)[:, None], (x / self.cell).astype(int)[None, :]
        ]
        out = np.empty((len(y), len(x), 3), dtype=np.int16)
        out[:] = (238, 236, 240)
        out[tissue] = (222, 140, 190)
        nuclei = self.nuclei[(y % 256)[:, None], (x % 256)[None, :]] & tissue
        out[nuclei] = (110, 60, 150)
        out += self.noise[(y % 256)[:, None], (x % 256)[None, :]] // (
            1 + 3 * (~tissue)[..., None]
        )
        return np.clip(out, 0, 255).astype(np.uint8)


def timed(func, repeats):
    times = []
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times), result


def naive_selection(path, coords, min_tissue=0.7):
    """Read every full-resolution tile and threshold it with Otsu."""
    handle = openslide.OpenSlide(str(path))
    keep = []
    for x, y in coords:
        rgb = np.asarray(handle.read_region((int(x), int(y)), 0, (TILE, TILE)))[..., :3]
        gray = rgb @ np.array([0.2125, 0.7154, 0.0721])
        fraction = (gray <= threshold_otsu(gray)).mean()
        keep.append(fraction >= min_tissue)
    handle.close()
    return int(np.sum(keep))


def bare_reads(path, coords):
    handle = openslide.OpenSlide(str(path))
    total = 0
    for x, y in coords:
        rgb = np.asarray(handle.read_region((int(x), int(y)), 0, (TILE, TILE)))
        total += rgb[..., :3].shape[0]
    handle.close()
    return total


def library_reads(path, coords, n_jobs):
    (bag,) = Tiler(TILE).fit_transform([open_slide(path)])
    bag = bag.replace(coords=coords)
    total = 0
    for batch in bag.iter_batches(batch_size=32, n_jobs=n_jobs):
        total += len(batch)
    return total


def bench_slide(label, path, repeats):
    rows = []
    (bag,) = Tiler(TILE).fit_transform([path])
    n_tiles = len(bag)

    def ours():
        (grid,) = Tiler(TILE).fit_transform([open_slide(path)])
        (kept,) = OtsuFilter(mode="slide").fit_transform([grid])
        return kept

    def ours_without_thumbnail():
        # What mode="slide" does, with the file's stored thumbnail disallowed.
        (grid,) = Tiler(TILE).fit_transform([open_slide(path)])
        downsample = max(
            1.0,
            TILE / _MASK_PIXELS_PER_TILE,
            max(grid.slide.dimensions) / _MAX_VIEW_SIDE,
        )
        view, actual = low_resolution_view(grid.slide, downsample, use_thumbnail=False)
        fractions = tissue_fraction(tissue_mask(view), actual, grid.coords, TILE)
        return int((fractions >= 0.7).sum())

    def ours_tile():
        (grid,) = Tiler(TILE).fit_transform([open_slide(path)])
        (kept,) = OtsuFilter(mode="tile").fit_transform([grid])
        return len(kept)

    # Side by side, interleaved, so that load from other processes hits both.
    best_ours, med_ours, kept = timed(ours, repeats)
    best_naive, med_naive, n_naive = timed(
        lambda: naive_selection(path, bag.coords), max(1, repeats - 1)
    )
    best_tile, med_tile, n_tile = timed(ours_tile, max(1, repeats - 1))
    best_nothumb, _, n_nothumb = timed(ours_without_thumbnail, repeats)
    rows.append(
        {
            "slide": label,
            "task": "tissue selection",
            "tiles": n_tiles,
            "kept_slide_mode": len(kept),
            "kept_naive": n_naive,
            "kept_tile_mode": n_tile,
            "slide_mode_s": best_ours,
            "naive_full_res_otsu_s": best_naive,
            "tile_mode_s": best_tile,
            "slide_mode_without_stored_thumbnail_s": best_nothumb,
            "kept_slide_mode_without_stored_thumbnail": n_nothumb,
            "speedup_vs_naive_without_stored_thumbnail": best_naive / best_nothumb,
            "speedup_vs_naive": best_naive / best_ours,
            "median_slide_mode_s": med_ours,
            "median_naive_s": med_naive,
        }
    )

    # The kept tiles; all grid tiles when too few are kept to time reads.
    tile_set = "kept" if len(kept) >= 32 else "all grid tiles"
    coords = kept.coords if tile_set == "kept" else bag.coords
    timings = {"bare": [], "n_jobs=1": [], "n_jobs=2": []}
    for _ in range(repeats):
        for key, func in (
            ("bare", lambda: bare_reads(path, coords)),
            ("n_jobs=1", lambda: library_reads(path, coords, 1)),
            ("n_jobs=2", lambda: library_reads(path, coords, 2)),
        ):
            start = time.perf_counter()
            func()
            timings[key].append(time.perf_counter() - start)
    bare = min(timings["bare"])
    rows.append(
        {
            "slide": label,
            "task": "tile reads",
            "tiles": len(coords),
            "tile_set": tile_set,
            "bare_openslide_s": bare,
            "iter_batches_1_thread_s": min(timings["n_jobs=1"]),
            "iter_batches_2_threads_s": min(timings["n_jobs=2"]),
            "throughput_ratio_1_thread": bare / min(timings["n_jobs=1"]),
            "throughput_ratio_2_threads": bare / min(timings["n_jobs=2"]),
        }
    )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=16384)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cmu", default=None, help="path of CMU-1-Small-Region")
    parser.add_argument(
        "--out",
        default=str(Path(__file__).parent / "results" / "bench_preprocessing.json"),
    )
    args = parser.parse_args()

    rows = []
    cmu = args.cmu or next((p for p in CMU_CANDIDATES if p and Path(p).exists()), None)
    if cmu is None:
        from sklearn_gastric.datasets import fetch_cmu_small_region

        cmu = fetch_cmu_small_region()
    rows += bench_slide("CMU-1-Small-Region (2220x2967, 1 level)", cmu, args.repeats)

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "synthetic.tiff"
        start = time.perf_counter()
        write_pyramidal_tiff(SyntheticTissue(args.size), path, tile_size=256)
        write_s = time.perf_counter() - start
        levels = open_slide(path).level_dimensions
        print(f"wrote {args.size}x{args.size} pyramid {levels} in {write_s:.1f} s")
        rows += bench_slide(
            f"synthetic {args.size}x{args.size} pyramidal TIFF", path, args.repeats
        )

    print()
    print(f"{'slide':<44} {'task':<17} {'tiles':>5}  result")
    for row in rows:
        if row["task"] == "tissue selection":
            result = (
                f"slide mode {row['slide_mode_s']:.3f} s, naive "
                f"{row['naive_full_res_otsu_s']:.3f} s "
                f"(x{row['speedup_vs_naive']:.1f}), tile mode "
                f"{row['tile_mode_s']:.3f} s; no stored thumbnail "
                f"{row['slide_mode_without_stored_thumbnail_s']:.3f} s "
                f"(x{row['speedup_vs_naive_without_stored_thumbnail']:.1f}); kept "
                f"{row['kept_slide_mode']}/{row['kept_naive']}/{row['kept_tile_mode']}"
            )
        else:
            result = (
                f"bare {row['bare_openslide_s']:.3f} s, 1 thread "
                f"x{row['throughput_ratio_1_thread']:.2f}, 2 threads "
                f"x{row['throughput_ratio_2_threads']:.2f}"
            )
        print(f"{row['slide']:<44} {row['task']:<17} {row['tiles']:>5}  {result}")

    report = {
        "command": "python benchmarks/bench_preprocessing.py "
        f"--size {args.size} --repeats {args.repeats}",
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "openslide": openslide.__library_version__,
            "load_average_at_end": os.getloadavg(),
        },
        "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
