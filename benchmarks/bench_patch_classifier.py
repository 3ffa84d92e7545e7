"""Patch classifier benchmark: which training makes the segmenter's classes right?

The segmenter's classification branch gives ``patch_proba`` and shapes the
tile features the slide heads see. Here it is trained on the same patches,
sampled with ``sample_patches`` from an annotated cohort (lesion masks known,
64 slides of 768 px, 12 patches each), under several settings, and scored on
patches sampled the same way from other slides, and from slides of another
lab:

- ``patent``: the patent's Euclidean classification loss, every patch alike;
- ``cross_entropy``: cross-entropy, every patch alike;
- ``balanced`` (the default): cross-entropy with ``class_weight="balanced"``;
- ``balanced_hed``: the default plus HED stain jitter (Tellez et al., 2019,
  ``hed_jitter=0.05``, their "light" setting).

Metrics: balanced accuracy and per-class recall of the patch classes, and
the pixel Dice of the lesion maps, mean and standard deviation over seeds.
Prints a table and writes a JSON file.

Run::

    python benchmarks/bench_patch_classifier.py --seeds 0 1 2
    python benchmarks/bench_patch_classifier.py --quick        # smoke run
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

CLASSES = ("negative", "LGIN", "HGIN", "carcinoma")
SETTINGS = {
    "patent": {"classification_loss": "euclidean", "class_weight": None},
    "cross_entropy": {"classification_loss": "cross_entropy", "class_weight": None},
    "balanced": {},
    "balanced_hed": {"hed_jitter": 0.05},
}
HERE = Path(__file__).resolve().parent


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-annotated", type=int, default=64)
    parser.add_argument("--n-test", type=int, default=32)
    parser.add_argument("--size", type=int, default=768)
    parser.add_argument("--tile-size", type=int, default=64)
    parser.add_argument("--patches-per-slide", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds = args.seeds[:1]
        args.n_annotated, args.n_test, args.size, args.epochs = 8, 8, 512, 1
    if args.out is None:
        suffix = "_quick" if args.quick else ""
        args.out = HERE / "results" / f"bench_patch_classifier{suffix}.json"
    return args


def patches_of(args, n_slides, seed, lab=None):
    from sklearn_gastric.datasets import make_gastric_slides
    from sklearn_gastric.segmentation import sample_patches

    slides, labels, lesions = make_gastric_slides(
        n_slides, size=args.size, lab=lab, random_state=seed
    )
    return sample_patches(
        slides,
        lesions,
        labels,
        tile_size=args.tile_size,
        n_patches=args.patches_per_slide,
        random_state=seed,
    )[:3]


def score(segmenter, patches, masks, labels):
    from sklearn.metrics import balanced_accuracy_score, recall_score

    predicted = segmenter.classes_[segmenter.predict_patch_proba(patches).argmax(1)]
    maps = segmenter.predict_proba_maps(patches) >= 0.5
    truth = masks >= 0.5
    recall = recall_score(labels, predicted, labels=list(CLASSES), average=None)
    return {
        "balanced_accuracy": float(balanced_accuracy_score(labels, predicted)),
        "recall": dict(zip(CLASSES, map(float, recall))),
        "dice": float(2 * (maps & truth).sum() / (maps.sum() + truth.sum())),
    }


def run_seed(args, seed):
    import torch

    from sklearn_gastric.datasets import make_stain_profile
    from sklearn_gastric.segmentation import PatchSegmenter

    torch.set_num_threads(1)
    train = patches_of(args, args.n_annotated, 1000 + seed)
    tests = {
        "same_lab": patches_of(args, args.n_test, 2000 + seed),
        "other_lab": patches_of(
            args, args.n_test, 3000 + seed, lab=make_stain_profile(seed)
        ),
    }
    result = {"seed": seed, "n_train_patches": len(train[0]), "settings": {}}
    for name, params in SETTINGS.items():
        start = time.perf_counter()
        segmenter = PatchSegmenter(
            base_channels=8,
            depth=3,
            feature_dim=32,
            max_epochs=args.epochs,
            lr=3e-3,
            patience=None,
            random_state=seed,
            **params,
        ).fit(*train)
        entry = {"fit_seconds": time.perf_counter() - start}
        entry.update(
            {cohort: score(segmenter, *data) for cohort, data in tests.items()}
        )
        result["settings"][name] = entry
        print(
            f"seed {seed} {name}: "
            + ", ".join(
                f"{c} bal.acc. {entry[c]['balanced_accuracy']:.3f} "
                f"Dice {entry[c]['dice']:.3f}"
                for c in tests
            ),
            flush=True,
        )
    return result


def _cell(values):
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def main(argv=None):
    args = parse_args(argv)
    import sklearn
    import torch

    from sklearn_gastric._version import __version__

    started = time.perf_counter()
    per_seed = [run_seed(args, seed) for seed in args.seeds]
    header = (
        f"{'setting':<15}{'bal.acc. same':>16}{'Dice same':>16}"
        f"{'bal.acc. other':>16}{'Dice other':>16}"
        + "".join(f"{'rec. ' + c:>16}" for c in CLASSES)
    )
    print(f"\nHeld-out patches, mean ± std over {len(per_seed)} seed(s)")
    print(header)
    print("-" * len(header))
    summary = {}
    for name in SETTINGS:
        runs = [r["settings"][name] for r in per_seed]
        row = {
            f"{metric}_{cohort}": [run[cohort][metric] for run in runs]
            for cohort in ("same_lab", "other_lab")
            for metric in ("balanced_accuracy", "dice")
        }
        recall = {c: [run["same_lab"]["recall"][c] for run in runs] for c in CLASSES}
        summary[name] = {k: _cell(v) for k, v in row.items()}
        summary[name]["recall_same_lab"] = {c: _cell(v) for c, v in recall.items()}
        print(
            f"{name:<15}{_cell(row['balanced_accuracy_same_lab']):>16}"
            f"{_cell(row['dice_same_lab']):>16}"
            f"{_cell(row['balanced_accuracy_other_lab']):>16}"
            f"{_cell(row['dice_other_lab']):>16}"
            + "".join(f"{_cell(recall[c]):>16}" for c in CLASSES)
        )
    record = {
        "benchmark": "bench_patch_classifier",
        "config": {
            k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
        },
        "summary": summary,
        "per_seed": per_seed,
        "total_seconds": time.perf_counter() - started,
        "load_average": os.getloadavg(),
        "versions": {
            "sklearn_gastric": __version__,
            "scikit-learn": sklearn.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2))
    print(f"\nwrote {args.out} in {record['total_seconds']:.0f} s")


if __name__ == "__main__":
    main()
