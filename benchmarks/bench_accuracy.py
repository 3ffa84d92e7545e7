"""Accuracy benchmark: does the patent's method beat the simpler ones?

Synthetic cohorts from two "laboratories": the segmenter's training patches
and the training slides come from lab A (``make_gastric_slides`` and
``make_patch_dataset`` with ``--train-jitter``); the test slides come from
lab B: a larger per-slide stain jitter (``--test-jitter``) *and* a fixed
colour shift of the whole cohort, a per-channel gain in optical density
(``--lab-shift``), i.e. stains of another hue and strength, applied by
Beer-Lambert to the rendered RGB (the generator's jitter is centred on one
reference stain, so it cannot move the centre by itself).

Per seed, the expensive parts run once: one ``PatchSegmenter`` is trained;
every slide is tiled, Otsu-filtered and segmented once per stain setting
(raw, and stain-normalised by ``StainNormalizer()`` whose target is learnt
from the pooled training slides of lab A, "the standard colour used in
training"). Then every head is fitted on the training bags and scored on
the test bags:

- ``patent``: ``TopKSelector`` -> ``PearsonGraphBuilder`` -> ``GCNSlideClassifier``;
- ``topk_mean``: ``TopKSelector`` -> ``PooledFeatureClassifier(pooling="mean")``,
  the same top-K tiles with the graph replaced by a plain mean;
- ``proportion``: ``ProportionThresholdClassifier`` on every tissue tile
  (the background art);
- ``pooled_mean`` / ``pooled_max``: ``PooledFeatureClassifier`` on every
  tissue tile.

Each head runs on both stain settings (``raw`` / ``norm``). Metrics on the
test cohort: balanced accuracy, macro one-vs-rest ROC AUC, per-class recall;
mean and standard deviation over seeds. A diagnostic per seed: how often the
top-K tiles hit the true lesion mask of the test slides. Prints a table,
writes a JSON file and a plot.

Run::

    python benchmarks/bench_accuracy.py --quick          # smoke run, < 2 min
    python benchmarks/bench_accuracy.py --seeds 0 1 2 --n-jobs 2

or one process per seed, then merge (what produced the committed results)::

    for s in 0 1 2; do
        python benchmarks/bench_accuracy.py --seeds $s \\
            --out benchmarks/results/bench_accuracy_seed$s.json &
    done; wait
    python benchmarks/bench_accuracy.py --merge \\
        benchmarks/results/bench_accuracy_seed*.json
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

CLASSES = ("negative", "LGIN", "HGIN", "carcinoma")
HEADS = ("patent", "topk_mean", "proportion", "pooled_mean", "pooled_max")
SETTINGS = ("norm", "raw")
TEST_COHORTS = ("lab_b", "lab_a")
HERE = Path(__file__).resolve().parent


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-train", type=int, default=48, help="training slides")
    parser.add_argument("--n-test", type=int, default=48, help="test slides")
    parser.add_argument("--size", type=int, default=1024, help="slide side (px)")
    parser.add_argument("--tile-size", type=int, default=64)
    parser.add_argument("--lesion-fraction", type=float, default=0.05)
    parser.add_argument("--train-jitter", type=float, default=0.05)
    parser.add_argument("--test-jitter", type=float, default=0.15)
    parser.add_argument(
        "--lab-shift",
        type=float,
        nargs=3,
        default=[1.3, 0.85, 1.1],
        help="lab B's optical-density gain per RGB channel",
    )
    parser.add_argument(
        "--stain-method", default="macenko", choices=["macenko", "reinhard", "vahadane"]
    )
    parser.add_argument("--n-patches", type=int, default=384)
    parser.add_argument("--seg-epochs", type=int, default=10)
    parser.add_argument(
        "--classification-loss",
        default="euclidean",
        choices=["euclidean", "cross_entropy"],
        help="the segmenter's patch-classification loss (the patent's: euclidean)",
    )
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--gcn-epochs", type=int, default=200)
    parser.add_argument(
        "--tune",
        action="store_true",
        help="choose k, threshold and GCN epochs by inner CV on the training "
        "cohort (never on the test cohort)",
    )
    parser.add_argument(
        "--n-jobs", type=int, default=1, help="seeds run in parallel processes"
    )
    parser.add_argument("--quick", action="store_true", help="tiny smoke setting")
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        default=None,
        help="aggregate the per-seed results of earlier runs' JSON files "
        "(e.g. one process per seed) instead of running",
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON path")
    parser.add_argument("--plot", type=Path, default=None, help="PNG path")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds = args.seeds[:1]
        args.n_train = args.n_test = 12
        args.size = 512
        args.n_patches = 96
        args.seg_epochs = 2
        args.gcn_epochs = 30
        args.k = 5
    suffix = "_quick" if args.quick else ""
    if args.out is None:
        args.out = HERE / "results" / f"bench_accuracy{suffix}.json"
    if args.plot is None:
        args.plot = HERE.parent / "docs" / "images" / f"bench_accuracy{suffix}.png"
    return args


def lab_shift(image, gains):
    """Recolour an RGB uint8 image as if stained in another lab.

    Beer-Lambert: the optical density ``-log(I / I0)`` of each channel is
    scaled by a fixed gain, which changes the stains' colour (hue) and
    strength while leaving the white background white.
    """
    od = -np.log((image.astype(np.float32) + 1.0) / 256.0)
    shifted = 256.0 * np.exp(-od * np.asarray(gains, np.float32)) - 1.0
    return np.clip(np.rint(shifted), 0, 255).astype(np.uint8)


def train_segmenter(args, seed):
    from sklearn_gastric.datasets import make_patch_dataset
    from sklearn_gastric.segmentation import PatchSegmenter

    patches, masks, labels = make_patch_dataset(
        args.n_patches + 64,
        tile_size=args.tile_size,
        stain_jitter=args.train_jitter,
        random_state=seed,
    )
    fit, held = slice(0, args.n_patches), slice(args.n_patches, None)
    segmenter = PatchSegmenter(
        base_channels=8,
        depth=3,
        feature_dim=32,
        max_epochs=args.seg_epochs,
        lr=3e-3,
        batch_size=16,
        classification_loss=args.classification_loss,
        patience=4,
        random_state=seed,
    ).fit(patches[fit], masks[fit], labels[fit])

    def dice(images):
        predicted = segmenter.predict_proba_maps(images) > 0.5
        truth = masks[held] >= 0.5
        return float(2 * (predicted & truth).sum() / (predicted.sum() + truth.sum()))

    shifted = np.stack([lab_shift(p, args.lab_shift) for p in patches[held]])
    return segmenter, {"lab_a": dice(patches[held]), "lab_b": dice(shifted)}


def make_cohorts(args, seed):
    """Training slides (lab A) and two test cohorts: lab B and lab A."""
    from sklearn_gastric.datasets import make_gastric_slides
    from sklearn_gastric.io import Slide

    common = {"size": args.size, "lesion_fraction": args.lesion_fraction}
    train, y_train, _ = make_gastric_slides(
        args.n_train,
        stain_jitter=args.train_jitter,
        random_state=10_000 + seed,
        **common,
    )
    cohorts = {
        "train": (
            [Slide(a, name=f"A-{seed}-{i:03d}") for i, a in enumerate(train)],
            np.asarray(y_train),
            None,
        )
    }
    test, y_test, masks = make_gastric_slides(
        args.n_test,
        stain_jitter=args.test_jitter,
        random_state=20_000 + seed,
        **common,
    )
    cohorts["lab_b"] = (
        [
            Slide(lab_shift(a, args.lab_shift), name=f"B-{seed}-{i:03d}")
            for i, a in enumerate(test)
        ],
        np.asarray(y_test),
        masks,
    )
    test, y_test, masks = make_gastric_slides(
        args.n_test,
        stain_jitter=args.train_jitter,
        random_state=30_000 + seed,
        **common,
    )
    cohorts["lab_a"] = (
        [Slide(a, name=f"A2-{seed}-{i:03d}") for i, a in enumerate(test)],
        np.asarray(y_test),
        masks,
    )
    return cohorts


def segment(slides, segmenter, args, normalizer=None):
    """Slides -> segmented TileBags of their tissue tiles (the shared part)."""
    from sklearn_gastric.preprocessing import OtsuFilter, Tiler

    if normalizer is not None:
        slides = normalizer.transform(slides)
    bags = Tiler(tile_size=args.tile_size).fit_transform(slides)
    bags = OtsuFilter(min_tissue=0.7).fit_transform(bags)
    return segmenter.transform(bags)


def topk_hits(bags, masks, labels, k):
    """How the top-K tiles of lesion slides meet the true lesion mask.

    A tile "hits" when at least 10 % of its pixels are lesion. Returns the
    mean fraction of top-K tiles that hit, the fraction of lesion slides
    with at least one hit, and the mean number of tissue tiles that hit
    (what the top-K could have found).
    """
    fractions, any_hit, available = [], [], []
    for bag, mask, label in zip(bags, masks, labels):
        if label == "negative":
            continue
        t = bag.tile_size
        lesion = np.array([mask[y : y + t, x : x + t].mean() for x, y in bag.coords])
        order = np.argsort(-bag.scores, kind="stable")[:k]
        hits = lesion[order] >= 0.1
        fractions.append(hits.mean())
        any_hit.append(hits.any())
        available.append(int((lesion >= 0.1).sum()))
    return {
        "topk_hit_fraction": float(np.mean(fractions)),
        "slides_with_a_hit": float(np.mean(any_hit)),
        "lesion_tiles_available": float(np.mean(available)),
    }


def make_heads(args, segmenter, seed, params):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from sklearn_gastric.baselines import (
        PooledFeatureClassifier,
        ProportionThresholdClassifier,
    )
    from sklearn_gastric.graph import (
        GCNSlideClassifier,
        PearsonGraphBuilder,
        TopKSelector,
    )

    def logistic():
        return make_pipeline(
            StandardScaler(),
            LogisticRegression(max_iter=2000, class_weight="balanced"),
        )

    return {
        "patent": make_pipeline(
            TopKSelector(k=params["k"]),
            PearsonGraphBuilder(threshold=params["threshold"]),
            GCNSlideClassifier(
                max_epochs=params["gcn_epochs"],
                class_weight="balanced",
                random_state=seed,
            ),
        ),
        "topk_mean": make_pipeline(
            TopKSelector(k=params["k"]),
            PooledFeatureClassifier(pooling="mean", estimator=logistic()),
        ),
        "proportion": ProportionThresholdClassifier(
            columns=segmenter.classes_.tolist()
        ),
        "pooled_mean": PooledFeatureClassifier(pooling="mean", estimator=logistic()),
        "pooled_max": PooledFeatureClassifier(pooling="max", estimator=logistic()),
    }


def tune_patent(bags, y, seed, args):
    """Inner 3-fold CV on the training bags only: k, threshold, GCN epochs."""
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import Pipeline

    from sklearn_gastric.graph import (
        GCNSlideClassifier,
        PearsonGraphBuilder,
        TopKSelector,
    )

    pipe = Pipeline(
        [
            ("topk", TopKSelector()),
            ("graph", PearsonGraphBuilder()),
            ("gcn", GCNSlideClassifier(class_weight="balanced", random_state=seed)),
        ]
    )
    grid = GridSearchCV(
        pipe,
        {
            "topk__k": [5, 10, 15],
            "graph__threshold": [0.3, 0.7],
            "gcn__max_epochs": [100, args.gcn_epochs],
        },
        scoring="balanced_accuracy",
        cv=StratifiedKFold(3, shuffle=True, random_state=seed),
    ).fit(bags, y)
    best = grid.best_params_
    return {
        "k": best["topk__k"],
        "threshold": best["graph__threshold"],
        "gcn_epochs": best["gcn__max_epochs"],
        "inner_cv_balanced_accuracy": float(grid.best_score_),
    }


def scores(y_true, proba, classes):
    from sklearn.metrics import balanced_accuracy_score, recall_score, roc_auc_score

    classes = np.asarray(classes)
    predicted = classes[np.argmax(proba, axis=1)]
    order = np.argsort(classes)  # roc_auc_score wants sorted labels
    classes, proba = classes[order], proba[:, order]
    recall = recall_score(y_true, predicted, labels=list(CLASSES), average=None)
    return {
        "balanced_accuracy": float(balanced_accuracy_score(y_true, predicted)),
        "macro_auc": float(
            roc_auc_score(
                y_true, proba, multi_class="ovr", average="macro", labels=classes
            )
        ),
        "recall": dict(zip(CLASSES, map(float, recall))),
    }


def run_seed(args, seed):
    import torch

    from sklearn_gastric.preprocessing import StainNormalizer

    torch.set_num_threads(1)
    timings = {}
    start = time.perf_counter()
    segmenter, dice = train_segmenter(args, seed)
    timings["train_segmenter"] = time.perf_counter() - start

    start = time.perf_counter()
    cohorts = make_cohorts(args, seed)
    y_train = cohorts["train"][1]
    timings["render_slides"] = time.perf_counter() - start

    start = time.perf_counter()
    normalizer = StainNormalizer(method=args.stain_method).fit(cohorts["train"][0])
    bags = {
        setting: {
            name: segment(
                slides, segmenter, args, normalizer if setting == "norm" else None
            )
            for name, (slides, _, _) in cohorts.items()
        }
        for setting in SETTINGS
    }
    timings["segment_slides"] = time.perf_counter() - start

    result = {"seed": seed, "segmenter_dice": dice, "settings": {}}
    for setting in SETTINGS:
        train_bags = bags[setting]["train"]
        params = {"k": args.k, "threshold": args.threshold}
        params["gcn_epochs"] = args.gcn_epochs
        if args.tune:
            start = time.perf_counter()
            params = tune_patent(train_bags, y_train, seed, args)
            timings[f"tune_{setting}"] = time.perf_counter() - start
        entry = {"patent_params": params, "heads": {}}
        for cohort in TEST_COHORTS:
            _, y, masks = cohorts[cohort]
            entry[f"topk_hits_{cohort}"] = topk_hits(
                bags[setting][cohort], masks, y, params["k"]
            )
            entry[f"n_tiles_{cohort}"] = float(
                np.mean([len(b) for b in bags[setting][cohort]])
            )
        for name, head in make_heads(args, segmenter, seed, params).items():
            start = time.perf_counter()
            head.fit(train_bags, y_train)
            metrics = {"fit_seconds": time.perf_counter() - start}
            for cohort in ("train", *TEST_COHORTS):
                metrics[cohort] = scores(
                    cohorts[cohort][1],
                    head.predict_proba(bags[setting][cohort]),
                    head.classes_,
                )
            entry["heads"][name] = metrics
        result["settings"][setting] = entry
    result["timings"] = timings
    return result


def _spread(values):
    values = np.asarray(values, dtype=float)
    return {"mean": float(values.mean()), "std": float(values.std())}


def aggregate(per_seed):
    """Mean and standard deviation over seeds, per head, setting and cohort."""
    summary = {}
    for setting in SETTINGS:
        for head in HEADS:
            runs = [r["settings"][setting]["heads"][head] for r in per_seed]
            row = {}
            for cohort in ("train", *TEST_COHORTS):
                row[cohort] = {
                    metric: _spread([run[cohort][metric] for run in runs])
                    for metric in ("balanced_accuracy", "macro_auc")
                }
                row[cohort]["recall"] = {
                    c: _spread([run[cohort]["recall"][c] for run in runs])
                    for c in CLASSES
                }
            summary[f"{head}/{setting}"] = row
    return summary


def _cell(stat):
    return f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def print_table(summary, per_seed):
    print(
        f"\nTest cohorts, mean ± std over {len(per_seed)} seed(s); "
        "lab B = another lab (the target), lab A = held-out slides of the "
        "training lab"
    )
    header = (
        f"{'method':<22}{'bal.acc. B':>15}{'AUC B':>15}"
        + "".join(f"{'rec. ' + c:>16}" for c in CLASSES)
        + f"{'bal.acc. A':>15}{'AUC A':>15}"
    )
    print(header)
    print("-" * len(header))
    for key, row in summary.items():
        b, a = row["lab_b"], row["lab_a"]
        print(
            f"{key:<22}{_cell(b['balanced_accuracy']):>15}{_cell(b['macro_auc']):>15}"
            + "".join(f"{_cell(b['recall'][c]):>16}" for c in CLASSES)
            + f"{_cell(a['balanced_accuracy']):>15}{_cell(a['macro_auc']):>15}"
        )
    for r in per_seed:
        dice = r["segmenter_dice"]
        print(
            f"seed {r['seed']}: segmenter Dice lab A {dice['lab_a']:.2f}, "
            f"lab B {dice['lab_b']:.2f}; top-K tiles hitting a lesion (fraction; "
            "slides with a hit): "
            + "; ".join(
                f"{s}/{c} {h['topk_hit_fraction']:.2f}, {h['slides_with_a_hit']:.2f}"
                for s in SETTINGS
                for c in TEST_COHORTS
                for h in [r["settings"][s][f"topk_hits_{c}"]]
            )
        )


def plot(summary, per_seed, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(summary)
    x = np.arange(len(keys))
    bars = (
        ("lab_b", "balanced_accuracy", "balanced accuracy, lab B"),
        ("lab_b", "macro_auc", "macro OvR AUC, lab B"),
        ("lab_a", "balanced_accuracy", "balanced accuracy, lab A (same lab)"),
    )
    fig, axes = plt.subplots(2, 1, figsize=(12, 8.5), constrained_layout=True)
    width = 0.8 / len(bars)
    for j, (cohort, metric, label) in enumerate(bars):
        offset = -0.4 + width * (j + 0.5)
        stats = [summary[k][cohort][metric] for k in keys]
        axes[0].bar(
            x + offset,
            [s["mean"] for s in stats],
            width,
            yerr=[s["std"] for s in stats],
            capsize=2,
            label=label,
        )
        for i, key in enumerate(keys):
            head, setting = key.split("/")
            values = [
                r["settings"][setting]["heads"][head][cohort][metric] for r in per_seed
            ]
            axes[0].plot(np.full(len(values), x[i] + offset), values, "k.", ms=3)
    axes[0].axhline(0.9, color="grey", linestyle="--", linewidth=1)
    axes[0].axhline(0.25, color="grey", linestyle=":", linewidth=1)
    axes[0].set_ylim(0, 1.15)
    axes[0].set_xticks(x, keys, rotation=20)
    axes[0].set_title(
        f"{len(per_seed)} seed(s): mean ± std, dots = seeds; dashed 0.90 target, "
        "dotted chance"
    )
    axes[0].legend(loc="upper center", ncols=3, fontsize=8)
    width = 0.8 / len(CLASSES)
    for j, c in enumerate(CLASSES):
        stats = [summary[k]["lab_b"]["recall"][c] for k in keys]
        axes[1].bar(
            x - 0.4 + width * (j + 0.5),
            [s["mean"] for s in stats],
            width,
            yerr=[s["std"] for s in stats],
            capsize=2,
            label=c,
        )
    axes[1].set_ylim(0, 1.15)
    axes[1].set_xticks(x, keys, rotation=20)
    axes[1].set_title("Per-class recall, lab B")
    axes[1].legend(loc="upper center", ncols=4, fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import sklearn
    import torch
    from joblib import Parallel, delayed

    from sklearn_gastric._version import __version__

    started = time.perf_counter()
    if args.merge:
        records = [json.loads(path.read_text()) for path in args.merge]
        per_seed = [r for record in records for r in record["per_seed"]]
        config = dict(records[0]["config"], seeds=[r["seed"] for r in per_seed])
        config["merged_from"] = [str(path) for path in args.merge]
        config.update(out=str(args.out), plot=str(args.plot), merge=None)
    else:
        per_seed = Parallel(n_jobs=args.n_jobs)(
            delayed(run_seed)(args, seed) for seed in args.seeds
        )
        config = {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
        }
    summary = aggregate(per_seed)
    print_table(summary, per_seed)
    record = {
        "benchmark": "bench_accuracy",
        "config": config,
        "summary": summary,
        "per_seed": per_seed,
        "total_seconds": (
            sum(r["total_seconds"] for r in records)
            if args.merge
            else time.perf_counter() - started
        ),
        "versions": {
            "sklearn_gastric": __version__,
            "scikit-learn": sklearn.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2))
    plot(summary, per_seed, args.plot)
    print(f"\nwrote {args.out} and {args.plot} in {record['total_seconds']:.0f} s")


if __name__ == "__main__":
    main()
