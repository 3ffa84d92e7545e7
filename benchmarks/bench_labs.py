"""Labs benchmark: renders, tissue mask, stain estimates and normalisation
across simulated laboratories, checked against the truth the generator knows.

Five measurements (issue 11), each printed as a table and written to JSON:

1. ``od``: the optical densities of real H&E (the CMU slide, the H&E target)
   and of renders of several labs: the fraction of tissue pixels passing
   Macenko's mask (OD >= 0.15 in every channel) and the per-channel OD
   percentiles.
2. ``tissue``: the tissue mask ``OtsuFilter(mode="slide")`` decides on,
   against the generator's tissue mask at the view's resolution (IoU) and
   its lesion masks (the fraction of lesion pixels kept), for the old
   green-pen rule (green above red by more than 15), the optical-density ink
   model alone, and the ink model with hole filling (the default); and the
   share of the CMU slide's hand-checked ink mask rejected.
3. ``stains``: per-slide stain estimates (as ``StainNormalizer.transform``
   makes them) against the true stain vectors: Macenko as published, our
   Macenko, our Vahadane; estimation failures.
4. ``cmu``: our Macenko normalisation of the CMU slide to the H&E target
   against torchstain's (``pip install torchstain``; skipped without it), in
   mean absolute grey levels.
5. ``transfer``: a segmenter trained on lab A's patches, applied to slides
   of lab A and of three other labs, raw and stain-normalised to lab A's
   colour: Dice over all tissue tiles and the top-K tiles' lesion hit rate.

Run::

    python benchmarks/bench_labs.py                 # everything, ~15 min on 2 cores
    python benchmarks/bench_labs.py --sections od tissue stains
    python benchmarks/bench_labs.py --quick         # smoke run
"""

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SECTIONS = ("od", "tissue", "stains", "cmu", "transfer")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=SECTIONS)
    parser.add_argument("--labs", type=int, default=8, help="random labs (+ reference)")
    parser.add_argument("--slides", type=int, default=4, help="slides per lab")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--out", type=Path, default=HERE / "results" / "bench_labs.json"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.labs, args.slides, args.size = 2, 2, 512
    return args


def labs(n):
    from sklearn_gastric.datasets import REFERENCE_LAB, make_stain_profile

    return [REFERENCE_LAB, *(make_stain_profile(seed) for seed in range(1, n + 1))]


def degrees(a, b):
    cosine = np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b)
    return float(np.degrees(np.arccos(np.clip(cosine, -1, 1))))


def block_fraction(mask, factor):
    height, width = (-(-n // factor) * factor for n in mask.shape)
    padded = np.zeros((height, width))
    padded[: mask.shape[0], : mask.shape[1]] = mask
    return padded.reshape(height // factor, factor, width // factor, factor).mean(
        axis=(1, 3)
    )


# -- 1. optical densities -------------------------------------------------------


def _triple(values):
    return " ".join(f"{v:.2f}" for v in values)


def od_statistics(rgb):
    from sklearn_gastric.preprocessing import tissue_mask
    from sklearn_gastric.preprocessing._stain_methods import rgb_to_od

    od = rgb_to_od(rgb[tissue_mask(rgb)])
    return {
        "pass_all_channels": float(np.all(od >= 0.15, axis=1).mean()),
        "od_p10": np.percentile(od, 10, axis=0).round(3).tolist(),
        "od_p50": np.percentile(od, 50, axis=0).round(3).tolist(),
        "od_p90": np.percentile(od, 90, axis=0).round(3).tolist(),
    }


def section_od(args):
    from sklearn_gastric.datasets import (
        fetch_cmu_small_region,
        fetch_he_target,
        make_gastric_slides,
    )
    from sklearn_gastric.io import low_resolution_view, open_slide

    rows = {}
    cmu, _ = low_resolution_view(
        open_slide(fetch_cmu_small_region()), 2, reduce="sample"
    )
    rows["real: CMU-1-Small-Region"] = od_statistics(cmu)
    target = open_slide(fetch_he_target()).read_region((0, 0), 0, (1000, 1000))
    rows["real: H&E target"] = od_statistics(target)
    for lab in labs(args.labs):
        slides, _, _ = make_gastric_slides(
            args.slides, size=args.size, lab=lab, random_state=1
        )
        stats = [od_statistics(slide) for slide in slides]
        rows[f"render: {lab.name}"] = {
            key: np.mean([s[key] for s in stats], axis=0).round(3).tolist()
            for key in stats[0]
        }
    print("\n1. Optical densities of tissue pixels (mean over slides for renders)")
    print(f"{'image':28s} {'pass all':>8s}  {'OD p10 (R G B)':>18s}  {'OD p50':>18s}")
    for name, row in rows.items():
        print(
            f"{name:28s} {row['pass_all_channels']:8.2f}  "
            f"{_triple(row['od_p10']):>18s}  {_triple(row['od_p50']):>18s}"
        )
    return rows


# -- 2. tissue masks ------------------------------------------------------------


def old_pen_rule_mask(view):
    """The tissue mask before the ink model: green above red by more than 15
    is pen, no hole filling."""
    from sklearn_gastric.preprocessing._tissue import _BLACK_MAX, _gray, _guarded_otsu

    red, green, blue = (view[..., c].astype(int) for c in range(3))
    valid = (np.maximum(np.maximum(red, green), blue) >= _BLACK_MAX) & (
        green - red <= 15
    )
    gray = _gray(view)
    return valid & (gray <= _guarded_otsu(gray, valid))


def section_tissue(args):
    from sklearn_gastric.datasets import (
        REFERENCE_LAB,
        StainProfile,
        fetch_cmu_small_region,
        make_gastric_slides,
    )
    from sklearn_gastric.io import low_resolution_view, open_slide
    from sklearn_gastric.preprocessing import tissue_mask
    from sklearn_gastric.preprocessing._otsu import slide_tissue_mask

    # The lab of the issue-6 benchmark: every OD channel of the reference
    # scaled by (1.3, 0.85, 1.1), a bluish haematoxylin.
    gain = np.array([1.3, 0.85, 1.1])
    shifted = StainProfile(*(REFERENCE_LAB.stain_matrix * gain), name="shifted")
    variants = ("old pen rule", "ink model", "ink model + holes")
    rows = {}
    for lab in [*labs(args.labs), shifted]:
        slides, _, lesions, tissue = make_gastric_slides(
            args.slides, size=args.size, lab=lab, return_tissue=True, random_state=11
        )
        ious = {v: [] for v in variants}
        kept = {v: [] for v in variants}
        for slide, lesion, truth in zip(slides, lesions, tissue):
            new, downsample, _ = slide_tissue_mask(open_slide(slide), 128)
            factor = int(downsample)
            view, _ = low_resolution_view(slide, factor)
            masks = {
                "old pen rule": old_pen_rule_mask(view),
                "ink model": tissue_mask(view),
                "ink model + holes": new,
            }
            truth_view = block_fraction(truth, factor) > 0.5
            for name, mask in masks.items():
                t = truth_view[: mask.shape[0], : mask.shape[1]]
                ious[name].append(float((mask & t).sum() / (mask | t).sum()))
                if lesion.any():
                    ys, xs = np.nonzero(lesion)
                    kept[name].append(float(mask[ys // factor, xs // factor].mean()))
        rows[lab.name] = {
            name: {"iou_min": min(ious[name]), "lesion_kept_min": min(kept[name])}
            for name in variants
        }
    from PIL import Image

    fixture = HERE.parent / "tests" / "data" / "cmu_ink_mask.png"
    ink = np.asarray(Image.open(fixture))
    view, _ = low_resolution_view(
        open_slide(fetch_cmu_small_region()), 4, use_thumbnail=False
    )
    cmu = {
        "old pen rule": float((~old_pen_rule_mask(view)[ink]).mean()),
        "ink model": float((~tissue_mask(view)[ink]).mean()),
    }
    print("\n2. Tissue mask at the view's resolution (min over the lab's slides)")
    print(f"{'lab':10s} " + "  ".join(f"{v:>26s}" for v in variants))
    print(f"{'':10s} " + "  ".join(f"{'IoU / lesion kept':>26s}" for v in variants))
    for name, row in rows.items():
        cells = [
            f"{row[v]['iou_min']:.3f} / {row[v]['lesion_kept_min']:.3f}"
            for v in variants
        ]
        print(f"{name:10s} " + "  ".join(f"{c:>26s}" for c in cells))
    print(
        f"CMU hand-checked ink pixels rejected: old rule {cmu['old pen rule']:.3f}, "
        f"ink model {cmu['ink model']:.3f}"
    )
    return {"labs": rows, "cmu_ink_rejected": cmu}


# -- 3. stain estimates ---------------------------------------------------------


def published_macenko(od):
    """Macenko et al. (2009) as published (and as torchstain does it): OD
    >= beta in every channel, plain percentiles of the angles."""
    from sklearn_gastric.preprocessing._stain_methods import (
        ALPHA,
        BETA,
        _order_and_check,
    )

    od = od[np.all(od >= BETA, axis=1)]
    _, vectors = np.linalg.eigh(np.cov(od, rowvar=False))
    plane = vectors[:, [2, 1]]
    if plane[:, 0].sum() < 0:
        plane[:, 0] *= -1
    angles = np.arctan2(*(od @ plane).T[::-1])
    low, high = np.percentile(angles, [ALPHA, 100 - ALPHA])
    return _order_and_check(
        np.stack([plane @ [np.cos(a), np.sin(a)] for a in (low, high)])
    )


def section_stains(args):
    from sklearn_gastric.datasets import make_gastric_slides
    from sklearn_gastric.io import open_slide
    from sklearn_gastric.preprocessing._stain import _slide_tissue_pixels
    from sklearn_gastric.preprocessing._stain_methods import (
        StainEstimationError,
        estimate_stains,
        rgb_to_od,
    )

    methods = ("macenko as published", "macenko", "vahadane")
    errors = {m: [] for m in methods}
    failures = {m: 0 for m in methods}
    rows = {}
    for lab in labs(args.labs):
        slides, _, _, stains = make_gastric_slides(
            args.slides, size=args.size, lab=lab, return_stains=True, random_state=21
        )
        lab_errors = {m: [] for m in methods}
        for slide, truth in zip(slides, stains):
            pixels = _slide_tissue_pixels(open_slide(slide))
            for method in methods:
                try:
                    if method == "macenko as published":
                        found = published_macenko(rgb_to_od(pixels).astype(float))
                    else:
                        found = estimate_stains(
                            pixels, method, random_state=np.random.RandomState(0)
                        )["stains"]
                except StainEstimationError:
                    failures[method] += 1
                    continue
                pair = (degrees(found[0], truth[0]), degrees(found[1], truth[1]))
                lab_errors[method].append(pair)
                errors[method].append(pair)
        rows[lab.name] = {
            m: np.max(lab_errors[m], axis=0).round(2).tolist() for m in methods
        }
    summary = {
        m: {
            "h_median": float(np.median(np.asarray(errors[m])[:, 0])),
            "h_max": float(np.max(np.asarray(errors[m])[:, 0])),
            "e_median": float(np.median(np.asarray(errors[m])[:, 1])),
            "e_max": float(np.max(np.asarray(errors[m])[:, 1])),
            "failures": failures[m],
            "slides": len(errors[m]) + failures[m],
        }
        for m in methods
    }
    print("\n3. Per-slide stain estimates against the truth (degrees)")
    print(
        f"{'method':22s} {'H median':>9s} {'H max':>7s} {'E median':>9s} "
        f"{'E max':>7s} fails"
    )
    for m, s in summary.items():
        print(
            f"{m:22s} {s['h_median']:9.2f} {s['h_max']:7.2f} {s['e_median']:9.2f} "
            f"{s['e_max']:7.2f} {s['failures']}/{s['slides']}"
        )
    return {"by_lab_max": rows, "summary": summary}


# -- 4. CMU against torchstain ---------------------------------------------------


def section_cmu(args):
    try:
        from torchstain.numpy.normalizers import NumpyMacenkoNormalizer
    except ImportError:
        print("\n4. skipped: torchstain is not installed (pip install torchstain)")
        return None
    from sklearn_gastric.datasets import fetch_cmu_small_region, fetch_he_target
    from sklearn_gastric.io import open_slide
    from sklearn_gastric.preprocessing import StainNormalizer, tissue_mask

    target = open_slide(fetch_he_target()).read_region((0, 0), 0, (1000, 1000))
    slide = open_slide(fetch_cmu_small_region())
    region = slide.read_region((0, 0), 0, slide.dimensions)
    ours = StainNormalizer(target=target).fit().transform([slide])[0]
    ours = ours.read_region((0, 0), 0, slide.dimensions).astype(float)
    reference = NumpyMacenkoNormalizer()
    reference.fit(target)
    tissue = tissue_mask(region)
    # torchstain estimates from every pixel absorbing in all channels, the
    # slide's green ink included; fed the tissue alone (the rest white), it
    # sees what our estimate sees.
    inked, _, _ = reference.normalize(region)
    tissue_only = np.where(tissue[..., None], region, 255).astype(np.uint8)
    clean, _, _ = reference.normalize(tissue_only)

    def gap(a, b):
        return float(np.abs(np.asarray(a, float) - np.asarray(b, float))[tissue].mean())

    result = {
        "ours_vs_torchstain": gap(ours, inked),
        "ours_vs_torchstain_on_tissue_only": gap(ours, clean),
        "unnormalised_vs_torchstain": gap(region, inked),
    }
    print(
        "\n4. CMU normalised to the H&E target, mean absolute grey levels over "
        f"its tissue: ours vs torchstain {result['ours_vs_torchstain']:.1f}; vs "
        "torchstain estimating from the tissue alone "
        f"{result['ours_vs_torchstain_on_tissue_only']:.1f}; unnormalised vs "
        f"torchstain {result['unnormalised_vs_torchstain']:.1f}"
    )
    return result


# -- 5. normalisation across labs --------------------------------------------------


def segment_cohort(segmenter, slides, lesions, tile_size, k):
    """Global Dice over every tissue tile, and the top-K lesion hit rate."""
    from sklearn_gastric.graph import TopKSelector
    from sklearn_gastric.preprocessing import OtsuFilter, Tiler

    bags = OtsuFilter().fit_transform(Tiler(tile_size).fit_transform(slides))
    intersection = total = 0.0
    for bag, lesion in zip(bags, lesions):
        for indices, batch in bag.iter_batches(64, return_indices=True):
            maps = segmenter.predict_proba_maps(batch) > 0.5
            for index, predicted in zip(indices, maps):
                x, y = bag.coords[index]
                truth = lesion[y : y + tile_size, x : x + tile_size]
                intersection += np.count_nonzero(predicted & truth)
                total += np.count_nonzero(predicted) + np.count_nonzero(truth)
    top = TopKSelector(k=k).fit_transform(segmenter.transform(bags))
    hits = []
    for bag, lesion in zip(top, lesions):
        if not lesion.any():
            continue
        for x, y in bag.coords:
            hits.append(lesion[y : y + tile_size, x : x + tile_size].mean() >= 0.1)
    return {
        "dice": float(2 * intersection / max(total, 1)),
        "topk_hit_rate": float(np.mean(hits)) if hits else float("nan"),
    }


def section_transfer(args):
    from sklearn_gastric.datasets import (
        make_gastric_slides,
        make_patch_dataset,
        make_stain_profile,
    )
    from sklearn_gastric.io import Slide
    from sklearn_gastric.preprocessing import StainNormalizer
    from sklearn_gastric.segmentation import PatchSegmenter

    tile, k = 64, 10
    n_patches, n_slides, size = (96, 4, 512) if args.quick else (448, 12, 1024)
    lab_a = make_stain_profile(101, name="lab A")
    others = [
        make_stain_profile(seed, name=f"lab {c}")
        for seed, c in zip((102, 103, 104), "BCD")
    ]
    patches, masks, labels = make_patch_dataset(
        n_patches, tile_size=tile, lab=lab_a, random_state=0
    )
    started = time.perf_counter()
    segmenter = PatchSegmenter(
        base_channels=8,
        depth=3,
        feature_dim=32,
        max_epochs=2 if args.quick else 10,
        lr=3e-3,
        batch_size=16,
        patience=4,
        random_state=0,
    ).fit(patches, masks, labels)
    trained = time.perf_counter() - started

    def cohort(lab, seed):
        arrays, _, lesions = make_gastric_slides(
            n_slides, size=size, lab=lab, random_state=seed
        )
        return [Slide(a, name=f"{lab.name}-{i}") for i, a in enumerate(arrays)], lesions

    train_slides, _ = cohort(lab_a, 50)
    normalizer = StainNormalizer(random_state=0).fit(train_slides)
    rows = {}
    for lab in [lab_a, *others]:
        slides, lesions = cohort(lab, 60)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            normalised = normalizer.transform(slides)
        rows[lab.name] = {
            "raw": segment_cohort(segmenter, slides, lesions, tile, k),
            "normalised": segment_cohort(segmenter, normalised, lesions, tile, k),
        }
    print(
        f"\n5. Segmenter trained on lab A's patches ({n_patches}, {trained:.0f} s), "
        f"{n_slides} slides of {size} px per lab"
    )
    print(
        f"{'slides of':10s} {'Dice raw':>9s} {'Dice norm':>10s} {'top-K raw':>10s} "
        f"{'top-K norm':>11s}"
    )
    for name, row in rows.items():
        print(
            f"{name:10s} {row['raw']['dice']:9.3f} {row['normalised']['dice']:10.3f} "
            f"{row['raw']['topk_hit_rate']:10.3f} "
            f"{row['normalised']['topk_hit_rate']:11.3f}"
        )
    return {"labs": rows, "segmenter_seconds": trained}


def main(argv=None):
    args = parse_args(argv)
    results = {
        "command": "python benchmarks/bench_labs.py "
        + ("--quick " if args.quick else "")
        + f"--sections {' '.join(args.sections)}",
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
        },
    }
    runners = {
        "od": section_od,
        "tissue": section_tissue,
        "stains": section_stains,
        "cmu": section_cmu,
        "transfer": section_transfer,
    }
    for name in args.sections:
        started = time.perf_counter()
        results[name] = runners[name](args)
        print(f"   ({name}: {time.perf_counter() - started:.0f} s)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
