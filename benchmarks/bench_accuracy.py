"""Accuracy benchmark: does the patent's pipeline classify slides of labs it never saw?

Two generators (``--tissue``): ``synthetic`` (``make_gastric_slides``,
2048 px) and ``real`` (``make_real_tissue_slides``: real H&E tissue with
painted lesions, 1024 px; the annotated and training cohorts come from the
upper half of the real slide, the test cohorts from the lower half).

Per seed, four simulated laboratories (``make_stain_profile``): two train
labs and two unseen labs. From the train labs come an *annotated* cohort
(slides with lesion masks, for the segmenter's patches) and the *training*
cohort (slide labels only, for the slide heads); the test cohorts are
``held_out`` (new slides of the train labs: within-lab accuracy) and
``unseen`` (slides of the two unseen labs). Every cohort has the four
classes in equal numbers.

Two settings run the whole method:

- ``norm``: a ``StainNormalizer`` is fitted on the training cohort (its
  target is "the standard colour used in training"); the segmenter's patches
  are sampled from the annotated slides *through it*
  (``sample_patches(normalizer=...)``), and every slide is normalised with
  its own estimated stains before tiling;
- ``raw``: the same without normalisation (segmenter trained on raw
  patches).

Per setting each slide is tiled, Otsu-filtered and segmented once; then
every head is fitted on the training bags and scored on the test bags:

- ``patent``: ``TopKSelector`` -> ``PearsonGraphBuilder`` ->
  ``GCNSlideClassifier``, with k, the graph threshold and the GCN's weight
  decay chosen by ``GridSearchCV`` (inner stratified CV on the training
  cohort only, ``Pipeline(memory=...)`` caching the graph steps);
- ``topk_mean``: the same top-K tiles, the graph replaced by a mean and a
  logistic regression; k chosen by the same inner CV;
- ``patent_temperature``: the pipeline the ``patent`` search chose, refitted
  with ``GCNSlideClassifier(calibration="temperature")`` (its ECE is the one
  to read for calibration);
- ``proportion``: ``ProportionThresholdClassifier`` on every tissue tile
  (the background art);
- ``pooled_mean`` / ``pooled_max``: ``PooledFeatureClassifier`` on every
  tissue tile.

Metrics per test cohort: balanced accuracy, macro one-vs-rest ROC AUC,
per-class recall and the expected calibration error (top label, 10 equal
bins), and for the two graph heads the fraction of slides flagged out of
distribution (on ``held_out`` that is the false-alarm rate); mean and
standard deviation over seeds. Diagnostics per seed: the segmenter's
held-out patch Dice and balanced accuracy, and how often the top-K tiles hit
the true lesion. Prints a table, writes a JSON file and a plot.

Run::

    python benchmarks/bench_accuracy.py --quick          # smoke run, a few minutes
    python benchmarks/bench_accuracy.py --tissue real    # the real-tissue cohort
    python benchmarks/bench_accuracy.py --seeds 0 1 2 --n-jobs 2

or one process per seed, then merge (what produced the committed results)::

    for s in 0 1 2; do
        python benchmarks/bench_accuracy.py --seeds $s \\
            --out benchmarks/results/bench_accuracy_seed$s.json
    done
    python benchmarks/bench_accuracy.py --merge \\
        benchmarks/results/bench_accuracy_seed*.json
"""

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

CLASSES = ("negative", "LGIN", "HGIN", "carcinoma")
HEADS = (
    "patent",
    "patent_temperature",
    "topk_mean",
    "proportion",
    "pooled_mean",
    "pooled_max",
)
# The heads whose last step is a GCNSlideClassifier: they also flag slides
# out of distribution.
GRAPH_HEADS = ("patent", "patent_temperature")
SETTINGS = ("norm", "raw")
TEST_COHORTS = ("unseen", "held_out")
HERE = Path(__file__).resolve().parent


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--n-annotated", type=int, default=64, help="annotated slides (segmenter)"
    )
    parser.add_argument("--n-train", type=int, default=96, help="training slides")
    parser.add_argument("--n-test", type=int, default=48, help="slides per test cohort")
    parser.add_argument(
        "--tissue",
        default="synthetic",
        choices=["synthetic", "real"],
        help="the generator: fully synthetic slides (make_gastric_slides) or real "
        "H&E tissue with painted lesions (make_real_tissue_slides; annotated and "
        "training cohorts on one half of the real slide, test cohorts on the other)",
    )
    parser.add_argument(
        "--size",
        type=int,
        default=None,
        help="slide side (px); 2048 synthetic, 1024 real tissue",
    )
    parser.add_argument("--tile-size", type=int, default=128)
    parser.add_argument("--lesion-fraction", type=float, default=0.05)
    parser.add_argument("--stain-jitter", type=float, default=0.1)
    parser.add_argument(
        "--stain-method", default="macenko", choices=["macenko", "reinhard", "vahadane"]
    )
    parser.add_argument(
        "--patches-per-slide",
        type=int,
        default=12,
        help="segmenter patches per annotated slide (many slides, few patches "
        "each: lesions differ more between slides than within one)",
    )
    parser.add_argument("--seg-epochs", type=int, default=12)
    parser.add_argument("--seg-base-channels", type=int, default=8)
    parser.add_argument("--seg-depth", type=int, default=3)
    parser.add_argument("--seg-feature-dim", type=int, default=32)
    parser.add_argument(
        "--dice-reduction",
        default="patch",
        choices=["patch", "batch"],
        help="the segmenter's Dice loss: per patch (the default) or over the batch",
    )
    parser.add_argument(
        "--classification-loss",
        default="cross_entropy",
        choices=["euclidean", "cross_entropy"],
        help="the segmenter's patch-classification loss (the patent's: euclidean)",
    )
    parser.add_argument("--gcn-epochs", type=int, default=200)
    parser.add_argument(
        "--settings",
        nargs="+",
        default=list(SETTINGS),
        choices=SETTINGS,
        help="which of the two settings to run (both by default)",
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
    if args.size is None:
        args.size = 2048 if args.tissue == "synthetic" else 1024
    if args.quick:
        args.seeds = args.seeds[:1]
        args.n_annotated, args.n_train, args.n_test = 8, 16, 8
        args.size = 768 if args.tissue == "synthetic" else 512
        args.tile_size = 64
        args.patches_per_slide = 24
        args.seg_epochs = 3
        args.gcn_epochs = 30
    suffix = ("_real" if args.tissue == "real" else "") + (
        "_quick" if args.quick else ""
    )
    if args.out is None:
        args.out = HERE / "results" / f"bench_accuracy{suffix}.json"
    if args.plot is None:
        args.plot = HERE.parent / "docs" / "images" / f"bench_accuracy{suffix}.png"
    return args


def make_labs(seed):
    """Two train labs and two unseen labs, different for every seed."""
    from sklearn_gastric.datasets import make_stain_profile

    seeds = np.random.RandomState(seed).randint(0, 2**31 - 1, size=4)
    return {
        "train": [
            make_stain_profile(int(s), name=f"train-{i}")
            for i, s in enumerate(seeds[:2])
        ],
        "unseen": [
            make_stain_profile(int(s), name=f"unseen-{i}")
            for i, s in enumerate(seeds[2:])
        ],
    }


def render(args, n_slides, labs, seed, prefix, part="all"):
    """``n_slides`` slides, split evenly over ``labs``, four balanced classes;
    real-tissue slides from ``part`` of the real slide."""
    from functools import partial

    from sklearn_gastric.datasets import make_gastric_slides, make_real_tissue_slides
    from sklearn_gastric.io import Slide

    generate = make_gastric_slides
    if args.tissue == "real":
        generate = partial(make_real_tissue_slides, part=part)
    slides, labels, masks = [], [], []
    for index, lab in enumerate(labs):
        part_slides, y, m = generate(
            n_slides // len(labs),
            size=args.size,
            lesion_fraction=args.lesion_fraction,
            stain_jitter=args.stain_jitter,
            lab=lab,
            random_state=seed * 1000 + index,
        )
        slides += [
            Slide(a, name=f"{prefix}-{lab.name}-{i:03d}")
            for i, a in enumerate(part_slides)
        ]
        labels += list(y)
        masks += m
    return slides, np.asarray(labels, dtype=object), masks


def make_cohorts(args, seed):
    labs = make_labs(seed)
    base = 100 * (seed + 1)
    return {
        "annotated": render(
            args, args.n_annotated, labs["train"], base + 1, "ann", "upper"
        ),
        "train": render(args, args.n_train, labs["train"], base + 2, "train", "upper"),
        "held_out": render(args, args.n_test, labs["train"], base + 3, "held", "lower"),
        "unseen": render(
            args, args.n_test, labs["unseen"], base + 4, "unseen", "lower"
        ),
    }


def train_segmenter(args, cohort, normalizer, seed):
    """Sample patches from the annotated slides (through the normaliser) and
    train the segmenter; a fifth of the annotated slides score it."""
    from sklearn_gastric.segmentation import PatchSegmenter, sample_patches

    slides, labels, masks = cohort
    patches, patch_masks, patch_labels, groups = sample_patches(
        slides,
        masks,
        labels,
        tile_size=args.tile_size,
        n_patches=args.patches_per_slide,
        normalizer=normalizer,
        random_state=seed,
    )
    # A fifth of the slides of each class score the segmenter.
    held_slides = [
        index
        for name in CLASSES
        for index in np.flatnonzero(labels == name)[
            : max(1, np.sum(labels == name) // 5)
        ]
    ]
    held = np.isin(groups, held_slides)
    segmenter = PatchSegmenter(
        base_channels=args.seg_base_channels,
        depth=args.seg_depth,
        feature_dim=args.seg_feature_dim,
        max_epochs=args.seg_epochs,
        lr=3e-3,
        classification_loss=args.classification_loss,
        dice_reduction=args.dice_reduction,
        class_weight="balanced",
        patience=6,
        random_state=seed,
    ).fit(patches[~held], patch_masks[~held], patch_labels[~held])
    return segmenter, patch_scores(
        segmenter, patches[held], patch_masks[held], patch_labels[held]
    )


def patch_scores(segmenter, patches, masks, labels):
    from sklearn.metrics import balanced_accuracy_score

    predicted = segmenter.predict_proba_maps(patches) >= 0.5
    truth = masks >= 0.5
    classes = segmenter.classes_[segmenter.predict_patch_proba(patches).argmax(1)]
    return {
        "dice": float(2 * (predicted & truth).sum() / (predicted.sum() + truth.sum())),
        "balanced_accuracy": float(balanced_accuracy_score(labels, classes)),
        "n_patches": int(len(patches)),
    }


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
    mean fraction of top-K tiles that hit and the fraction of lesion slides
    with at least one hit.
    """
    fractions, any_hit = [], []
    for bag, mask, label in zip(bags, masks, labels):
        if label == "negative":
            continue
        t = bag.tile_size
        lesion = np.array([mask[y : y + t, x : x + t].mean() for x, y in bag.coords])
        order = np.argsort(-bag.scores, kind="stable")[:k]
        hits = lesion[order] >= 0.1
        fractions.append(hits.mean())
        any_hit.append(hits.any())
    return {
        "topk_hit_fraction": float(np.mean(fractions)),
        "slides_with_a_hit": float(np.mean(any_hit)),
    }


def _inner_cv(seed):
    from sklearn.model_selection import StratifiedKFold

    return StratifiedKFold(3, shuffle=True, random_state=seed)


def make_heads(args, segmenter, seed, cache):
    """Every head, unfitted; the two top-K heads tune by inner CV.

    ``patent_temperature`` is a function of the heads fitted before it.
    """
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline, make_pipeline
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

    patent = Pipeline(
        [
            ("topk", TopKSelector()),
            ("graph", PearsonGraphBuilder()),
            (
                "gcn",
                GCNSlideClassifier(
                    max_epochs=args.gcn_epochs,
                    class_weight="balanced",
                    dropout=0.2,
                    validation_fraction=0.2,
                    patience=20,
                    random_state=seed,
                ),
            ),
        ],
        memory=cache,
    )
    topk_mean = Pipeline(
        [
            ("topk", TopKSelector()),
            ("pool", PooledFeatureClassifier(pooling="mean", estimator=logistic())),
        ],
        memory=cache,
    )

    def calibrated(fitted):
        # The search's choice, refitted with a temperature: calibrating
        # every candidate of the grid would cost six GCN fits each.
        return clone(fitted["patent"].best_estimator_).set_params(
            gcn__calibration="temperature"
        )

    ks = [5, 10, 20]
    return {
        "patent_temperature": calibrated,
        "patent": GridSearchCV(
            patent,
            {
                "topk__k": ks,
                "graph__threshold": [0.3, 0.6],
                "gcn__weight_decay": [1e-4, 1e-2],
            },
            scoring="balanced_accuracy",
            cv=_inner_cv(seed),
        ),
        "topk_mean": GridSearchCV(
            topk_mean,
            {"topk__k": ks},
            scoring="balanced_accuracy",
            cv=_inner_cv(seed),
        ),
        "proportion": ProportionThresholdClassifier(
            columns=segmenter.classes_.tolist()
        ),
        "pooled_mean": PooledFeatureClassifier(pooling="mean", estimator=logistic()),
        "pooled_max": PooledFeatureClassifier(pooling="max", estimator=logistic()),
    }


def scores(y_true, proba, classes):
    from sklearn.metrics import balanced_accuracy_score, recall_score, roc_auc_score

    from sklearn_gastric.metrics import expected_calibration_error

    classes = np.asarray(classes)
    predicted = classes[np.argmax(proba, axis=1)]
    order = np.argsort(classes)  # roc_auc_score wants sorted labels
    sorted_classes, sorted_proba = classes[order], proba[:, order]
    recall = recall_score(y_true, predicted, labels=list(CLASSES), average=None)
    return {
        "balanced_accuracy": float(balanced_accuracy_score(y_true, predicted)),
        "macro_auc": float(
            roc_auc_score(
                y_true,
                sorted_proba,
                multi_class="ovr",
                average="macro",
                labels=sorted_classes,
            )
        ),
        "ece": expected_calibration_error(y_true, proba, labels=classes),
        "recall": dict(zip(CLASSES, map(float, recall))),
    }


def ood_flags(head, bags):
    """The fraction of slides the graph head flags out of distribution."""
    pipeline = getattr(head, "best_estimator_", head)
    flagged = pipeline[-1].is_out_of_distribution(pipeline[:-1].transform(bags))
    return {"ood_flagged": float(np.mean(flagged))}


def _progress(seed, message):
    print(f"[seed {seed} {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_setting(args, seed, cohorts, setting, timings):
    from sklearn_gastric.preprocessing import StainNormalizer

    start = time.perf_counter()
    normalizer = None
    if setting == "norm":
        normalizer = StainNormalizer(method=args.stain_method).fit(cohorts["train"][0])
    segmenter, patch = train_segmenter(args, cohorts["annotated"], normalizer, seed)
    timings[f"train_segmenter_{setting}"] = time.perf_counter() - start
    _progress(seed, f"{setting}: segmenter trained, held-out patches {patch}")

    start = time.perf_counter()
    bags = {
        name: segment(cohorts[name][0], segmenter, args, normalizer)
        for name in ("train", *TEST_COHORTS)
    }
    timings[f"segment_{setting}"] = time.perf_counter() - start
    _progress(seed, f"{setting}: slides segmented")

    y_train = cohorts["train"][1]
    entry = {"segmenter": patch, "heads": {}}
    with tempfile.TemporaryDirectory(prefix="bench_accuracy_") as cache:
        heads, fitted = make_heads(args, segmenter, seed, cache), {}
        for name in HEADS:
            head = heads[name]
            if not hasattr(head, "fit"):
                head = head(fitted)
            start = time.perf_counter()
            fitted[name] = head.fit(bags["train"], y_train)
            metrics = {"fit_seconds": time.perf_counter() - start}
            if hasattr(head, "best_params_"):
                metrics["best_params"] = head.best_params_
                metrics["inner_cv_balanced_accuracy"] = float(head.best_score_)
            for cohort in TEST_COHORTS:
                metrics[cohort] = scores(
                    cohorts[cohort][1],
                    head.predict_proba(bags[cohort]),
                    head.classes_,
                )
                if name in GRAPH_HEADS:
                    metrics[cohort].update(ood_flags(head, bags[cohort]))
            if name == "patent_temperature":
                metrics["temperature"] = float(head[-1].temperature_)
            entry["heads"][name] = metrics
    k = entry["heads"]["patent"]["best_params"]["topk__k"]
    for cohort in TEST_COHORTS:
        _, y, masks = cohorts[cohort]
        entry[f"topk_hits_{cohort}"] = topk_hits(bags[cohort], masks, y, k)
        entry[f"n_tiles_{cohort}"] = float(np.mean([len(b) for b in bags[cohort]]))
    return entry


def run_seed(args, seed):
    import torch

    torch.set_num_threads(1)
    timings = {}
    start = time.perf_counter()
    cohorts = make_cohorts(args, seed)
    timings["render_slides"] = time.perf_counter() - start
    _progress(seed, "slides rendered")
    result = {"seed": seed, "settings": {}}
    for setting in args.settings:
        result["settings"][setting] = run_setting(args, seed, cohorts, setting, timings)
    result["timings"] = timings
    return result


def _spread(values):
    values = np.asarray(values, dtype=float)
    return {"mean": float(values.mean()), "std": float(values.std())}


def aggregate(per_seed):
    """Mean and standard deviation over seeds, per head, setting and cohort."""
    summary = {}
    settings = [s for s in SETTINGS if s in per_seed[0]["settings"]]
    for setting in settings:
        for head in HEADS:
            runs = [r["settings"][setting]["heads"].get(head) for r in per_seed]
            if None in runs:  # runs from before the head existed
                continue
            row = {}
            for cohort in TEST_COHORTS:
                metrics = ["balanced_accuracy", "macro_auc", "ece"]
                if "ood_flagged" in runs[0][cohort]:
                    metrics.append("ood_flagged")
                row[cohort] = {
                    metric: _spread([run[cohort][metric] for run in runs])
                    for metric in metrics
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
        f"\nTest cohorts, mean ± std over {len(per_seed)} seed(s); unseen = slides "
        "of two labs never seen in training, held-out = new slides of the "
        "training labs"
    )
    header = (
        f"{'method':<25}{'bal.acc. unseen':>17}{'AUC unseen':>15}{'ECE unseen':>15}"
        + "".join(f"{'rec. ' + c:>16}" for c in CLASSES)
        + f"{'bal.acc. held':>15}{'ECE held':>15}"
    )
    print(header)
    print("-" * len(header))
    for key, row in summary.items():
        u, h = row["unseen"], row["held_out"]
        print(
            f"{key:<25}{_cell(u['balanced_accuracy']):>17}{_cell(u['macro_auc']):>15}"
            f"{_cell(u['ece']):>15}"
            + "".join(f"{_cell(u['recall'][c]):>16}" for c in CLASSES)
            + f"{_cell(h['balanced_accuracy']):>15}{_cell(h['ece']):>15}"
        )
    for key, row in summary.items():
        if "ood_flagged" in row["held_out"]:
            print(
                f"{key}: flagged out of distribution: held out (false alarms) "
                f"{_cell(row['held_out']['ood_flagged'])}, unseen labs "
                f"{_cell(row['unseen']['ood_flagged'])}"
            )
    for r in per_seed:
        for s, entry in r["settings"].items():
            seg = entry["segmenter"]
            params = entry["heads"]["patent"]["best_params"]
            hits = "; ".join(
                f"{c} {entry[f'topk_hits_{c}']['topk_hit_fraction']:.2f}"
                for c in TEST_COHORTS
            )
            print(
                f"seed {r['seed']} {s}: held-out patches Dice {seg['dice']:.2f}, "
                f"balanced accuracy {seg['balanced_accuracy']:.2f}; patent's "
                f"params {params}; top-K tiles hitting a lesion: {hits}"
            )


def plot(summary, per_seed, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(summary)
    x = np.arange(len(keys))
    bars = (
        ("unseen", "balanced_accuracy", "balanced accuracy, unseen labs"),
        ("unseen", "macro_auc", "macro OvR AUC, unseen labs"),
        ("held_out", "balanced_accuracy", "balanced accuracy, training labs"),
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
        stats = [summary[k]["unseen"]["recall"][c] for k in keys]
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
    axes[1].set_title("Per-class recall, unseen labs")
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
        "load_average": os.getloadavg(),
        "versions": {
            "sklearn_gastric": __version__,
            "scikit-learn": sklearn.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2, default=str))
    plot(summary, per_seed, args.plot)
    print(f"\nwrote {args.out} and {args.plot} in {record['total_seconds']:.0f} s")


if __name__ == "__main__":
    main()
