"""Calibration and out-of-distribution benchmark of the slide classifier.

The demo's recipe (``sklearn-gastric demo --quick``: a segmenter trained on
normalised patches of 64 annotated slides, 64-pixel tiles, k=8) on a
training cohort and a held-out cohort of new slides of the same
distribution, plus two kinds of slide the training cohort never had: the
real CMU-1-Small-Region slide (skin) and all-stroma synthetic slides (no
gland at all; tissue over the whole field, or over an irregular piece
shaped like the cohort's). Each slide is segmented once; then, for several
GCN seeds, ``GCNSlideClassifier`` is fitted without and with
``calibration="temperature"`` and scored on the held-out cohort:

- balanced accuracy, top-label expected calibration error (10 equal-width
  bins), multi-class Brier score, negative log-likelihood, the
  temperature;
- the out-of-distribution flag: its false-alarm rate on the held-out
  cohort (target <= 5 %), and whether it flags the CMU slide and the
  all-stroma slides of each kind.

Prints a table (mean and range over seeds), writes JSON.

Run::

    python benchmarks/bench_calibration.py                 # about 12 min on 2 cores
    python benchmarks/bench_calibration.py --gcn-seeds 0 1 --n-held-out 48
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-train", type=int, default=96)
    # 480 held-out slides: a 10-bin ECE and a 5 % false-alarm rate measured
    # on 96 have a sampling spread of several hundredths.
    parser.add_argument("--n-held-out", type=int, default=480)
    parser.add_argument("--n-stroma", type=int, default=20)
    parser.add_argument("--size", type=int, default=768)
    parser.add_argument("--gcn-seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--calibration-cv", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="seed of the data")
    parser.add_argument(
        "--out", type=Path, default=HERE / "results" / "bench_calibration.json"
    )
    return parser.parse_args(argv)


def metrics(y_true, proba, classes):
    from sklearn.metrics import balanced_accuracy_score, log_loss

    from sklearn_gastric.metrics import expected_calibration_error

    y_true = np.asarray(y_true)
    onehot = (y_true[:, None] == np.asarray(classes)[None, :]).astype(float)
    return {
        "balanced_accuracy": float(
            balanced_accuracy_score(y_true, classes[proba.argmax(axis=1)])
        ),
        "ece": expected_calibration_error(y_true, proba, labels=classes),
        "brier": float(((proba - onehot) ** 2).sum(axis=1).mean()),
        "nll": float(log_loss(y_true, proba, labels=classes)),
    }


def main(argv=None):
    import torch

    from sklearn_gastric._demo import QUICK, _train_segmenter
    from sklearn_gastric.datasets import (
        fetch_cmu_small_region,
        fetch_he_target,
        make_gastric_slides,
    )
    from sklearn_gastric.datasets._synthetic import stroma_only_slides
    from sklearn_gastric.graph import GCNSlideClassifier
    from sklearn_gastric.io import Slide, open_slide
    from sklearn_gastric.pipeline import make_gastric_pipeline

    args = parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()

    def say(message):
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", flush=True)

    target = fetch_he_target()
    segmenter = _train_segmenter(QUICK, target, args.seed, say, False)
    say("rendering the cohorts")
    train, y_train, _ = make_gastric_slides(
        args.n_train, size=args.size, random_state=args.seed
    )
    held, y_held, _ = make_gastric_slides(
        args.n_held_out, size=args.size, random_state=args.seed + 1000
    )
    # Seeds 2000-2019 and 7000-7019 were looked at while the profile was
    # designed; these were not.
    stroma = stroma_only_slides(
        args.n_stroma, args.size, args.seed + 5000, whole_field=True
    )
    stroma_piece = stroma_only_slides(args.n_stroma, args.size, args.seed + 6000)
    front = make_gastric_pipeline(
        segmenter, tile_size=QUICK.tile_size, target=target, k=QUICK.k
    )[:-1].fit([])

    def graphs(images, prefix):
        slides = [Slide(a, name=f"{prefix}-{i}") for i, a in enumerate(images)]
        return front.transform(slides)

    say("segmenting")
    g_train, g_held = graphs(train, "train"), graphs(held, "held")
    g_stroma = graphs(stroma, "stroma")
    g_stroma_piece = graphs(stroma_piece, "stroma-piece")
    g_cmu = front.transform([open_slide(fetch_cmu_small_region())])
    rows = []
    for calibration in (None, "temperature"):
        for seed in args.gcn_seeds:
            clf = GCNSlideClassifier(
                max_epochs=QUICK.gcn_epochs,
                class_weight="balanced",
                random_state=seed,
                calibration=calibration,
                calibration_cv=args.calibration_cv,
            ).fit(g_train, y_train)
            held_scores = clf.ood_score(g_held)
            cmu_score = float(clf.ood_score(g_cmu)[0])
            stroma_scores = clf.ood_score(g_stroma)
            piece_scores = clf.ood_score(g_stroma_piece)
            threshold = clf.ood_threshold_
            row = {
                "calibration": calibration,
                "gcn_seed": seed,
                "temperature": clf.temperature_,
                **metrics(y_held, clf.predict_proba(g_held), clf.classes_),
                "ood_threshold": threshold,
                "ood_false_alarm_rate": float((held_scores > threshold).mean()),
                "ood_score_held_out_median": float(np.median(held_scores)),
                "ood_score_held_out_max": float(held_scores.max()),
                "ood_score_cmu": cmu_score,
                "cmu_flagged": cmu_score > threshold,
                "ood_score_stroma": stroma_scores.tolist(),
                "stroma_flagged": float((stroma_scores > threshold).mean()),
                "ood_score_stroma_piece": piece_scores.tolist(),
                "stroma_piece_flagged": float((piece_scores > threshold).mean()),
                "cmu_max_probability": float(clf.predict_proba(g_cmu).max()),
            }
            rows.append(row)
            say(
                f"{calibration or 'none':>11} seed {seed}: ECE {row['ece']:.3f} "
                f"bacc {row['balanced_accuracy']:.3f} T {row['temperature']:.2f}"
            )
    table = summarise(rows)
    print_table(table)
    document = {
        "args": {
            k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
        },
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "load_average_end": list(os.getloadavg()),
        },
        "seconds": round(time.perf_counter() - started, 1),
        "summary": table,
        "runs": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2))
    print(f"wrote {args.out}")


KEYS = (
    "balanced_accuracy",
    "ece",
    "brier",
    "nll",
    "temperature",
    "ood_false_alarm_rate",
    "cmu_flagged",
    "stroma_flagged",
    "stroma_piece_flagged",
    "cmu_max_probability",
)


def summarise(rows):
    table = {}
    for calibration in ("none", "temperature"):
        chosen = [r for r in rows if (r["calibration"] or "none") == calibration]
        table[calibration] = {
            key: {
                "mean": float(np.mean([float(r[key]) for r in chosen])),
                "min": float(np.min([float(r[key]) for r in chosen])),
                "max": float(np.max([float(r[key]) for r in chosen])),
            }
            for key in KEYS
        }
    return table


def print_table(table):
    print(f"\n{'metric':<22}" + "".join(f"{name:>26}" for name in table))
    for key in KEYS:
        cells = "".join(
            f"{s['mean']:>10.3f} [{s['min']:.3f}, {s['max']:.3f}]"
            for s in (table[name][key] for name in table)
        )
        print(f"{key:<22}{cells}")


if __name__ == "__main__":
    main()
