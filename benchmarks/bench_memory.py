"""Benchmark: peak memory of the whole fitted pipeline on huge slides.

A synthetic pyramidal TIFF of ``size x size`` pixels (100,000 x 100,000 and
smaller) is written with :func:`~sklearn_gastric.io.write_pyramidal_tiff`
from a lazily composed source: a handful of pre-rendered synthetic tissue
blocks (:func:`~sklearn_gastric.datasets.make_patch_dataset`, 1024 px) laid
over a low-resolution mask of irregular tissue blobs (about 40% of the
slide), glass elsewhere. No full-resolution level ever exists in memory.

Then a fitted pipeline (stain normalisation, tiling, Otsu tissue filter, a
small trained :class:`~sklearn_gastric.segmentation.PatchSegmenter`, top-K,
Pearson graph, GCN) runs on the slide stage by stage
(``step.transform`` for each step, then ``predict_proba``), measuring for
each stage its wall time and its peak resident memory, sampled from
``/proc/self/status`` every 20 ms (``VmRSS``, split into ``RssAnon``,
the process's own memory, and ``RssFile``, mapped file pages). The overall
peak is also read from ``getrusage(RUSAGE_SELF).ru_maxrss``. The writer and
the pipeline run in fresh processes, one per size, so that each peak
belongs to one size and one job only.

The segmenter is tiny (4 base channels, depth 3) and trained on 128 px
patches for a few epochs: it is fully convolutional, so it runs on the
pipeline's 512 px tiles; its accuracy is not the point here, its memory is.

Prints a table and writes ``benchmarks/results/bench_memory.json``.

Run::

    python benchmarks/bench_memory.py                        # 25k and 50k
    python benchmarks/bench_memory.py --sizes 100000 --keep-tiff --scratch /big
    python benchmarks/bench_memory.py --sizes 100000 --cnn-max-size 0
        # the stages before the CNN only (the CNN's CPU time grows with size)
    python benchmarks/bench_memory.py --sizes 25000 --tile-repeat 16
        # the CNN and what follows on the tile count of a 100,000 px slide
"""

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

BLOCK = 1024  # side of a pre-rendered tissue block
N_BLOCKS = 8
BACKGROUND = (243, 242, 245)  # the glass of the synthetic renderer
MPP = 0.5
CLASSES = ("negative", "LGIN", "HGIN", "carcinoma")
DEFAULT_OUTPUT = Path(__file__).parent / "results" / "bench_memory.json"


# -- the synthetic huge slide --------------------------------------------------


class ComposedSlide:
    """A ``size x size`` RGB image composed on demand, sliced like an array.

    The slide is a grid of ``BLOCK``-pixel cells. A low-resolution mask of
    irregular blobs, the same shape at every size, says which cells hold
    tissue; a tissue cell shows one of the pre-rendered blocks (chosen per
    cell), the others are glass. ``image[y0:y1, x0:x1]`` returns uint8 RGB,
    so :func:`write_pyramidal_tiff` reads it band by band; nothing is held
    but the blocks (24 MB) and the cell grid.
    """

    def __init__(self, size, blocks, *, coverage=0.45, seed=0):
        rng = np.random.default_rng(seed)
        self.shape = (int(size), int(size), 3)
        self.dtype = np.dtype(np.uint8)
        self.blocks = blocks
        n_cells = -(-int(size) // BLOCK)
        field = _blob_field(rng, 64)
        # Nearest sample of the fixed-resolution field at each cell's centre:
        # the layout scales with the slide instead of changing with it.
        centres = ((np.arange(n_cells) + 0.5) * BLOCK / size * field.shape[0]).astype(
            int
        )
        centres = np.minimum(centres, field.shape[0] - 1)
        cells = field[centres[:, None], centres[None, :]]
        self.tissue = cells > np.quantile(field, 1.0 - coverage)
        self.choice = rng.integers(0, len(blocks), size=(n_cells, n_cells))

    def __getitem__(self, index):
        ys, xs = index[:2]
        y0, y1 = ys.start or 0, min(ys.stop, self.shape[0])
        x0, x1 = xs.start or 0, min(xs.stop, self.shape[1])
        out = np.empty((y1 - y0, x1 - x0, 3), dtype=np.uint8)
        out[:] = BACKGROUND
        for cy in range(y0 // BLOCK, -(-y1 // BLOCK)):
            top, bottom = max(y0, cy * BLOCK), min(y1, (cy + 1) * BLOCK)
            for cx in range(x0 // BLOCK, -(-x1 // BLOCK)):
                if not self.tissue[cy, cx]:
                    continue
                left, right = max(x0, cx * BLOCK), min(x1, (cx + 1) * BLOCK)
                block = self.blocks[self.choice[cy, cx]]
                out[top - y0 : bottom - y0, left - x0 : right - x0] = block[
                    top - cy * BLOCK : bottom - cy * BLOCK,
                    left - cx * BLOCK : right - cx * BLOCK,
                ]
        return out


def _blob_field(rng, side):
    """A smooth random field with a central bump: thresholded, a few blobs."""
    from scipy import ndimage as ndi

    field = ndi.gaussian_filter(
        rng.standard_normal((side, side)), side / 8, mode="wrap"
    )
    field /= field.std()
    field += 0.25 * ndi.gaussian_filter(rng.standard_normal((side, side)), 1.5)
    grid = (np.arange(side) - side / 2 + 0.5) / (side / 2)
    field -= 1.5 * (grid[:, None] ** 2 + grid[None, :] ** 2)
    return field


def render_blocks(path, seed=0):
    from sklearn_gastric.datasets import make_patch_dataset

    blocks, _, _ = make_patch_dataset(
        N_BLOCKS, tile_size=BLOCK, positive_fraction=0.5, random_state=seed
    )
    np.save(path, blocks)


# -- memory and time -----------------------------------------------------------


def _proc_status():
    """VmRSS, RssAnon and RssFile of this process, in bytes."""
    values = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                values[key] = int(rest.split()[0]) * 1024
    return values


def _disk_usage(folder):
    """Bytes allocated on disk by the files under ``folder`` (sparse-aware)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(root, name)).st_blocks * 512
    return total


class Meter:
    """Samples memory (and, optionally, a folder's disk use) in a thread."""

    def __init__(self, interval=0.02, watch=None):
        self.interval = interval
        self.watch = watch
        self.stages = []
        self._stage = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.baseline = _proc_status()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        last_disk = 0.0
        while not self._stop.is_set():
            sample = _proc_status()
            now = time.perf_counter()
            if self.watch is not None and now - last_disk > 0.25:
                sample["disk"] = _disk_usage(self.watch)
                last_disk = now
            with self._lock:
                if self._stage is not None:
                    for key, value in sample.items():
                        peak = self._stage["peaks"]
                        peak[key] = max(peak.get(key, 0), value)
            self._stop.wait(self.interval)

    @contextlib.contextmanager
    def stage(self, name):
        record = {"stage": name, "peaks": dict(_proc_status())}
        with self._lock:
            self._stage = record
        start = time.perf_counter()
        try:
            yield record
        finally:
            record["seconds"] = time.perf_counter() - start
            end = _proc_status()
            with self._lock:
                for key, value in end.items():
                    record["peaks"][key] = max(record["peaks"].get(key, 0), value)
                record["rss_after"] = end["VmRSS"]
                self._stage = None
            self.stages.append(record)

    def close(self):
        self._stop.set()
        self._thread.join()


def _max_rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def _mb(value):
    return round(value / 2**20, 1)


def _stage_row(record):
    peaks = record["peaks"]
    row = {
        "stage": record["stage"],
        "seconds": round(record["seconds"], 2),
        "peak_rss_mb": _mb(peaks["VmRSS"]),
        "peak_rss_anon_mb": _mb(peaks.get("RssAnon", 0)),
        "peak_rss_file_mb": _mb(peaks.get("RssFile", 0)),
        "rss_after_mb": _mb(record["rss_after"]),
    }
    if "disk" in peaks:
        row["peak_scratch_disk_mb"] = _mb(peaks["disk"])
    row.update(record.get("info", {}))
    return row


# -- the jobs, each in its own process -----------------------------------------


def write_job(config):
    """Write the huge TIFF; the writer's temporary files go to a watched folder."""
    from sklearn_gastric.io import write_pyramidal_tiff

    blocks = np.load(config["blocks"])
    source = ComposedSlide(config["size"], blocks, coverage=config["coverage"])
    scratch = Path(config["writer_scratch"])
    scratch.mkdir(parents=True, exist_ok=True)
    tempfile.tempdir = str(scratch)  # where the writer's lower-level memmaps go
    meter = Meter(watch=scratch)
    with meter.stage("write_tiff") as record:
        write_pyramidal_tiff(source, config["tiff"], tile_size=256, mpp=MPP)
        record["info"] = {"tiff_mb": _mb(os.path.getsize(config["tiff"]))}
    meter.close()
    return {
        "baseline_rss_mb": _mb(meter.baseline["VmRSS"]),
        "stages": [_stage_row(r) for r in meter.stages],
        "ru_maxrss_mb": _mb(_max_rss()),
        "tissue_cells_fraction": round(float(source.tissue.mean()), 3),
    }


def pipeline_job(config):
    """Run the fitted pipeline on the TIFF, stage by stage."""
    import joblib
    import torch

    torch.set_num_threads(config["threads"])
    pipe = joblib.load(config["pipeline"])
    segmenter = pipe.named_steps["seg"].estimator
    segmenter.set_params(
        batch_size=config["batch_size"], reader_threads=config["readers"]
    )
    run_cnn = config["cnn"]
    meter = Meter()
    Xt = [config["tiff"]]
    names = [name for name, _ in pipe.steps]
    stop = len(names) - 1 if run_cnn else names.index("seg")
    for name, step in pipe.steps[:stop]:
        with meter.stage(name) as record:
            Xt = step.transform(Xt)
            record["info"] = _describe(Xt[0])
        if name == "tissue" and config["tile_repeat"] > 1:
            # The kept tiles, each read tile_repeat times: the segmenter's
            # work and outputs of a slide tile_repeat times as large in area.
            bag, repeat = Xt[0], config["tile_repeat"]
            Xt = [
                bag.replace(
                    coords=np.tile(bag.coords, (repeat, 1)),
                    tissue_fraction=np.tile(bag.tissue_fraction, repeat),
                )
            ]
    proba = None
    if run_cnn:
        with meter.stage("gcn (predict_proba)") as record:
            proba = pipe.steps[-1][1].predict_proba(Xt)[0]
            record["info"] = {"proba": [round(float(p), 3) for p in proba]}
    meter.close()
    return {
        "baseline_rss_mb": _mb(meter.baseline["VmRSS"]),
        "stages": [_stage_row(r) for r in meter.stages],
        "ru_maxrss_mb": _mb(_max_rss()),
    }


def _describe(item):
    from sklearn_gastric.preprocessing import TileBag

    if not isinstance(item, TileBag):
        return {}
    info = {"tiles": len(item)}
    for column in ("features", "prob_maps"):
        values = getattr(item, column)
        if values is not None:
            info[f"{column}_mb"] = _mb(values.nbytes)
    return info


def run_child(job, config, scratch):
    """Run ``job`` in a fresh interpreter; return its JSON result."""
    config_path = Path(scratch) / f"{job}_{config['size']}.json"
    config_path.write_text(json.dumps(config))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    subprocess.run(
        [sys.executable, __file__, "--child", job, str(config_path)],
        check=True,
        env=env,
    )
    return json.loads(config_path.with_suffix(".out.json").read_text())


# -- the fitted pipeline -------------------------------------------------------


def fit_job(config):
    """Render the blocks, train the tiny segmenter and the GCN, dump the pipeline."""
    import joblib
    import torch

    from sklearn_gastric.datasets import make_patch_dataset
    from sklearn_gastric.graph import (
        GCNSlideClassifier,
    )
    from sklearn_gastric.io import write_pyramidal_tiff
    from sklearn_gastric.pipeline import make_gastric_pipeline
    from sklearn_gastric.segmentation import PatchSegmenter

    torch.set_num_threads(config["threads"])
    started = time.perf_counter()
    render_blocks(config["blocks"])
    patches, masks, labels = make_patch_dataset(96, tile_size=128, random_state=0)
    segmenter = PatchSegmenter(
        base_channels=4,
        depth=3,
        feature_dim=16,
        max_epochs=3,
        lr=3e-3,
        batch_size=16,
        validation_fraction=0,
        device=config["device"],
        random_state=0,
    ).fit(patches, masks, labels)
    blocks = np.load(config["blocks"])
    train_dir = Path(config["scratch"]) / "train"
    train_dir.mkdir(exist_ok=True)
    slides, y = [], []
    for i in range(4):
        source = ComposedSlide(
            config["train_size"], blocks, coverage=config["coverage"], seed=100 + i
        )
        slides.append(
            str(write_pyramidal_tiff(source, train_dir / f"train_{i}.tiff", mpp=MPP))
        )
        y.append(CLASSES[i % len(CLASSES)])
    pipe = make_gastric_pipeline(
        segmenter,
        tile_size=config["tile_size"],
        # The stain target: a synthetic block, so no download is needed.
        target=blocks[0],
        k=5,
        classifier=GCNSlideClassifier(hidden_units=16, max_epochs=30, random_state=0),
    )
    pipe.fit(slides, y)
    joblib.dump(pipe, config["pipeline"])
    return {"seconds": time.perf_counter() - started, "torch": torch.__version__}


# -- main ----------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[25_000, 50_000])
    parser.add_argument("--tile-size", type=int, default=512)
    parser.add_argument(
        "--cnn-max-size",
        type=int,
        default=None,
        help="run the segmenter and the steps after it only on slides up to "
        "this size (the CNN's CPU time grows with the slide); larger slides "
        "run the stages before it",
    )
    parser.add_argument(
        "--tile-repeat",
        type=int,
        default=1,
        help="run the segmenter and the steps after it on the kept tiles "
        "repeated this many times: the tile count of a slide this many times "
        "larger in area (16 at 25,000 px: that of 100,000 px) without writing it",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="tiles per CNN batch")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--readers", type=int, default=2, help="tile reader threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--coverage", type=float, default=0.45)
    parser.add_argument("--train-size", type=int, default=3072)
    parser.add_argument("--keep-tiff", action="store_true")
    parser.add_argument(
        "--scratch", default=None, help="folder for the TIFFs (default: a temp dir)"
    )
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT))
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        job, config_path = args.child
        config = json.loads(Path(config_path).read_text())
        result = {"fit": fit_job, "write": write_job, "pipeline": pipeline_job}[job](
            config
        )
        Path(config_path).with_suffix(".out.json").write_text(json.dumps(result))
        return

    if args.scratch is None:
        scratch = tempfile.mkdtemp(prefix="bench_memory_")
        remove_scratch = not args.keep_tiff
    else:
        scratch = args.scratch
        Path(scratch).mkdir(parents=True, exist_ok=True)
        remove_scratch = False
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)

    def save(results):
        output.write_text(json.dumps(results, indent=2) + "\n")

    try:
        results = _run(args, scratch, save)
    finally:
        if remove_scratch:
            shutil.rmtree(scratch, ignore_errors=True)
        elif args.keep_tiff:
            print(f"the TIFFs are in {scratch}")
    _print_table(results)
    print(f"wrote {output}")


def _run(args, scratch, save):
    """Fit once, then write and run each size; ``save`` the results so far
    after each size, so that an interrupted run keeps what it measured."""
    # Every job runs in a child process and this one stays small: a child
    # inherits its parent's peak RSS (ru_maxrss) at fork.
    blocks_path = os.path.join(scratch, "blocks.npy")
    pipeline_path = os.path.join(scratch, "pipeline.joblib")
    fit = run_child(
        "fit",
        {
            "size": "fit",
            "blocks": blocks_path,
            "pipeline": pipeline_path,
            "scratch": scratch,
            "tile_size": args.tile_size,
            "threads": args.threads,
            "device": args.device,
            "coverage": args.coverage,
            "train_size": args.train_size,
        },
        scratch,
    )
    fit_seconds = fit["seconds"]
    print(f"pipeline fitted in {fit_seconds:.1f} s", flush=True)
    rows = []
    results = {
        "command": "python benchmarks/bench_memory.py " + " ".join(sys.argv[1:]),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": fit["torch"],
            "device": args.device,
        },
        "config": {
            "tile_size": args.tile_size,
            "segmenter": "PatchSegmenter(base_channels=4, depth=3, feature_dim=16), "
            "trained 3 epochs on 96 patches of 128 px",
            "segmenter_batch_size": args.batch_size,
            "map_downsample": 8,
            "torch_threads": args.threads,
            "reader_threads": args.readers,
            "k": 5,
            "tile_repeat": args.tile_repeat,
            "tissue_cell_coverage": args.coverage,
            "block_side": BLOCK,
            "pipeline_fit_seconds": round(fit_seconds, 1),
        },
        "sizes": rows,
    }
    for size in args.sizes:
        tiff = os.path.join(scratch, f"slide_{size}.tiff")
        config = {
            "size": size,
            "blocks": blocks_path,
            "coverage": args.coverage,
            "tiff": tiff,
            "writer_scratch": os.path.join(scratch, f"writer_tmp_{size}"),
            "pipeline": pipeline_path,
            "threads": args.threads,
            "batch_size": args.batch_size,
            "readers": args.readers,
            "cnn": args.cnn_max_size is None or size <= args.cnn_max_size,
            "tile_repeat": args.tile_repeat,
        }
        print(f"\n== {size} x {size}: writing the TIFF", flush=True)
        write = run_child("write", config, scratch)
        print(f"== {size} x {size}: running the pipeline", flush=True)
        pipeline = run_child("pipeline", config, scratch)
        if not args.keep_tiff:
            os.remove(tiff)
        rows.append(
            {
                "size": size,
                "cnn_run": config["cnn"],
                "write": write,
                "pipeline": pipeline,
            }
        )
        results["machine"]["load_average"] = list(os.getloadavg())
        save(results)
    return results


def _print_table(results):
    header = (
        f"{'size':>7} {'stage':<22} {'time s':>8} {'peak RSS MB':>11} "
        f"{'anon MB':>8} {'file MB':>8} {'tiles':>7} {'maps MB':>8}"
    )
    print("\n" + header)
    print("-" * len(header))
    for row in results["sizes"]:
        for job in ("write", "pipeline"):
            for stage in row[job]["stages"]:
                print(
                    f"{row['size']:>7} {stage['stage']:<22} {stage['seconds']:>8.1f} "
                    f"{stage['peak_rss_mb']:>11.0f} {stage['peak_rss_anon_mb']:>8.0f} "
                    f"{stage['peak_rss_file_mb']:>8.0f} {stage.get('tiles', ''):>7} "
                    f"{stage.get('prob_maps_mb', ''):>8}"
                )
            print(
                f"{row['size']:>7} {job + ' overall':<22} {'':>8} "
                f"{row[job]['ru_maxrss_mb']:>11.0f}  (ru_maxrss; baseline "
                f"{row[job]['baseline_rss_mb']:.0f} MB)"
            )


if __name__ == "__main__":
    main()
