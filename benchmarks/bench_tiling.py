"""Benchmark of resolution-aware tiling: a 40x slide read at 20x.

A synthetic 40x pyramidal TIFF (0.25 µm/px, JPEG tiles, levels of 2x and 4x
downsample) holds textured tissue on glass. Its tissue tiles (``OtsuFilter``
on the grid of ``Tiler(512, mpp=0.5)``) are read at 20x two ways, side by
side, best of ``--repeats``:

- ``Tiler(512, mpp=0.5)``: the library reads 512x512 pixels of the 2x level;
- level 0: 1024x1024 pixels of level 0 per tile, area-resized to 512 (what
  a 20x tile costs without the pyramid, e.g. ``Tiler(1024)`` and a resize).

Prints a table (pixels read, seconds, the time ratio, the load average) and
writes ``benchmarks/results/bench_tiling.json``.

Run::

    python benchmarks/bench_tiling.py                      # 8192x8192 at 40x
    python benchmarks/bench_tiling.py --size 4096 --repeats 3
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import openslide

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_preprocessing import SyntheticTissue  # noqa: E402

from sklearn_gastric.io import open_slide  # noqa: E402
from sklearn_gastric.io._pixels import block_mean, resize_area  # noqa: E402
from sklearn_gastric.preprocessing import OtsuFilter, Tiler  # noqa: E402

TILE = 512
SCAN_MPP = 0.25  # 40x
TILE_MPP = 0.5  # 20x
FACTORS = (1, 2, 4)


def write_40x_slide(path, size):
    """The synthetic scan, each level the block mean of level 0, JPEG tiles."""
    import tifffile

    pixels = SyntheticTissue(size)[0:size, 0:size]
    resolution = (1e4 / SCAN_MPP, 1e4 / SCAN_MPP)  # pixels per centimetre
    with tifffile.TiffWriter(path, bigtiff=size * size * 3 > 2**31) as tif:
        for i, factor in enumerate(FACTORS):
            tif.write(
                block_mean(pixels, factor),
                tile=(256, 256),
                photometric="rgb",
                compression="jpeg",
                compressionargs={"level": 90},
                subfiletype=0 if i == 0 else 1,
                resolution=resolution if i == 0 else None,
                resolutionunit="CENTIMETER" if i == 0 else None,
                metadata=None,
            )
    return path


def read_with_mpp(bag):
    """The library's path: every tile of the bag, batch by batch."""
    tiles = [batch for batch in bag.iter_batches(batch_size=16)]
    return np.concatenate(tiles)


def read_level0_and_resize(slide, coords, footprint):
    """The same tiles from level 0, area-resized to the tile size."""
    tiles = np.empty((len(coords), TILE, TILE, 3), np.uint8)
    for i, (x, y) in enumerate(coords):
        region = slide.read_region((int(x), int(y)), 0, (footprint, footprint))
        tiles[i] = resize_area(region, TILE, TILE)
    return tiles


def bench(path, repeats):
    slide = open_slide(path)
    (grid,) = Tiler(TILE, mpp=TILE_MPP).fit_transform([slide])
    (bag,) = OtsuFilter().fit_transform([grid])
    if len(bag) == 0:
        raise SystemExit(f"no tissue tile in a {slide.dimensions} slide: use --size")
    footprint = bag.footprint
    times = {"mpp": [], "level0": []}
    # Interleaved, so that load from other processes hits both ways alike.
    for _ in range(repeats):
        start = time.perf_counter()
        ours = read_with_mpp(bag)
        times["mpp"].append(time.perf_counter() - start)
        start = time.perf_counter()
        baseline = read_level0_and_resize(slide, bag.coords, footprint)
        times["level0"].append(time.perf_counter() - start)
    difference = np.abs(ours.astype(int) - baseline.astype(int))
    n_tiles = len(bag)
    return {
        "slide_dimensions": list(slide.dimensions),
        "level_dimensions": [list(d) for d in slide.level_dimensions],
        "slide_mpp": list(slide.mpp),
        "tile_mpp": TILE_MPP,
        "grid_tiles": len(grid),
        "tissue_tiles": n_tiles,
        "level_read_with_mpp": bag.level,
        "read_size_with_mpp": bag.read_size,
        "footprint_level0_px": footprint,
        "pixels_read_with_mpp": n_tiles * bag.read_size**2,
        "pixels_read_level0": n_tiles * footprint**2,
        "best_s_with_mpp": min(times["mpp"]),
        "best_s_level0": min(times["level0"]),
        "times_s_with_mpp": times["mpp"],
        "times_s_level0": times["level0"],
        "time_ratio_level0_over_mpp": min(times["level0"]) / min(times["mpp"]),
        "mean_abs_difference_grey_levels": float(difference.mean()),
        "max_abs_difference_grey_levels": int(difference.max()),
    }


def print_table(row, load):
    print()
    print(f"{'20x tiles of a 40x slide':<34} {'pixels read':>13} {'best s':>8}")
    print(
        f"{'Tiler(512, mpp=0.5): level ' + str(row['level_read_with_mpp']):<34} "
        f"{row['pixels_read_with_mpp']:>13,} {row['best_s_with_mpp']:>8.3f}"
    )
    print(
        f"{'level 0 at 1024 px, resized':<34} "
        f"{row['pixels_read_level0']:>13,} {row['best_s_level0']:>8.3f}"
    )
    ratio = row["pixels_read_level0"] / row["pixels_read_with_mpp"]
    print(
        f"{row['tissue_tiles']} tissue tiles of {row['grid_tiles']}; level 0 reads "
        f"x{ratio:.1f} the pixels and takes x"
        f"{row['time_ratio_level0_over_mpp']:.2f} the time; tiles differ by "
        f"{row['mean_abs_difference_grey_levels']:.2f} grey levels on average "
        "(JPEG of each level)"
    )
    print(f"load average (1, 5, 15 min): {', '.join(f'{v:.2f}' for v in load)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192, help="level-0 side")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(HERE / "results" / "bench_tiling.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "scan40x.tiff"
        start = time.perf_counter()
        write_40x_slide(path, args.size)
        print(
            f"wrote a {args.size}x{args.size} 40x pyramid in "
            f"{time.perf_counter() - start:.1f} s"
        )
        load_before = os.getloadavg()
        row = bench(path, args.repeats)
        load_after = os.getloadavg()
    print_table(row, load_after)

    report = {
        "command": "python benchmarks/bench_tiling.py "
        f"--size {args.size} --repeats {args.repeats}",
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "openslide": openslide.__library_version__,
            "load_average_before": load_before,
            "load_average_after": load_after,
        },
        "result": row,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
