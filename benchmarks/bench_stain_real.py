"""Stain estimates on real tissue with known stains (issue 30, item 3).

Real H&E images (the CMU slide and the H&E target) are unmixed onto two
stains and re-rendered, with painted lesions and mimics, in the reference
lab and eight random labs (``make_real_tissue_slides``' engine, 4 slides per
lab and source), so the true stains of every slide are known. Each slide's
stains are then estimated as ``StainNormalizer.transform`` does (the tissue
pixels of a view of at most 2048 px) by Macenko as published, our Macenko and
our Vahadane, and compared with the truth in degrees.

Two ground truths per source:

- ``own``: the source unmixed onto its own stains (Macenko as published, run
  once on the source; what ``make_real_tissue_slides`` uses);
- ``ruifrok``: unmixed onto Ruifrok & Johnston's published H&E vectors, a
  stress case: they do not fit these images (the share of clipped, negative
  concentrations is printed), so pink collagen renders lilac.

A second table says what real tissue has that the synthetic renders lack:
how far pixels lie off the best two-stain plane, and how close the purest
pixels come to each stain.

Run::

    python benchmarks/bench_stain_real.py   # 25 min on 2 cores at load average 4
    python benchmarks/bench_stain_real.py --quick
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from bench_labs import degrees, labs, published_macenko

HERE = Path(__file__).resolve().parent
CASES = (
    ("cmu", "own", 1024),
    ("he_target", "own", 512),
    ("cmu", "ruifrok", 1024),
    ("he_target", "ruifrok", 512),
)
METHODS = ("macenko as published", "macenko", "vahadane")
CLASSES = ("negative", "LGIN", "HGIN", "carcinoma")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labs", type=int, default=8, help="random labs (+ reference)")
    parser.add_argument("--slides", type=int, default=4, help="slides per lab and case")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--out", type=Path, default=HERE / "results" / "bench_stain_real.json"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.labs, args.slides = 1, 2
    return args


def render_case(name, basis, size, lab, n_slides, seed):
    """Slides of one source and ground truth in one lab, with their stains."""
    from sklearn_gastric.datasets._real_tissue import _make_one

    rng = np.random.default_rng(seed)
    slides, stains = [], []
    for index in range(n_slides):
        image, _, vectors, _ = _make_one(
            (int(rng.integers(2**31 - 1)), CLASSES[index % 4], None),
            shape=(size, size),
            part="all",
            lesion_fraction=0.05,
            stain_jitter=0.1,
            lab=lab,
            data_home=None,
            source=(name, basis),
        )
        slides.append(image)
        stains.append(vectors)
    return slides, stains


def estimate(method, pixels):
    from sklearn_gastric.preprocessing._stain_methods import (
        estimate_stains,
        rgb_to_od,
    )

    if method == "macenko as published":
        return published_macenko(rgb_to_od(pixels).astype(float))
    return estimate_stains(pixels, method, random_state=np.random.RandomState(0))[
        "stains"
    ]


def section_estimates(args):
    from sklearn_gastric.datasets._tissue_source import load_tissue_source
    from sklearn_gastric.io import open_slide
    from sklearn_gastric.preprocessing._stain import _slide_tissue_pixels
    from sklearn_gastric.preprocessing._stain_methods import StainEstimationError

    results = {}
    for name, basis, size in CASES:
        source = load_tissue_source(name, basis)
        concentrations = np.asarray(source.concentrations)[source.tissue]
        errors = {m: [] for m in METHODS}
        failures = {m: 0 for m in METHODS}
        for index, lab in enumerate(labs(args.labs)):
            slides, truths = render_case(
                name, basis, size, lab, args.slides, seed=1000 + index
            )
            for slide, truth in zip(slides, truths):
                pixels = _slide_tissue_pixels(open_slide(slide))
                for method in METHODS:
                    try:
                        found = estimate(method, pixels)
                    except StainEstimationError:
                        failures[method] += 1
                        continue
                    errors[method].append(
                        (degrees(found[0], truth[0]), degrees(found[1], truth[1]))
                    )
        results[f"{name}/{basis}"] = {
            "clipped_fraction": _clipped_fraction(name, basis),
            "pure_eosin_share": _share_below(
                concentrations[:, 0], concentrations[:, 1]
            ),
            "pure_haematoxylin_share": _share_below(
                concentrations[:, 1], concentrations[:, 0]
            ),
            "methods": {m: _summary(errors[m], failures[m]) for m in METHODS},
        }
    print("\nPer-slide stain estimates on real tissue against the truth (degrees)")
    print(
        f"{'source/ground truth':22s} {'method':22s} {'H median':>9s} {'H max':>7s} "
        f"{'E median':>9s} {'E max':>7s} fails"
    )
    for case, entry in results.items():
        for method, s in entry["methods"].items():
            print(
                f"{case:22s} {method:22s} {s['h_median']:9.2f} {s['h_max']:7.2f} "
                f"{s['e_median']:9.2f} {s['e_max']:7.2f} {s['failures']}/{s['slides']}"
            )
        print(
            f"{case:22s} clipped concentrations (H, E): {entry['clipped_fraction']}; "
            f"pixels of nearly pure eosin {entry['pure_eosin_share']:.3f}, "
            f"haematoxylin {entry['pure_haematoxylin_share']:.3f}"
        )
    return results


def _share_below(other, stain):
    """The share of pixels whose ``other`` stain is under 5 % of ``stain``:
    nearly pure ``stain``."""
    return float(np.mean(other < 0.05 * stain))


def _clipped_fraction(name, basis):
    """The share of the source's tissue pixels with a negative concentration
    of each stain before clipping (how badly the basis fits the image)."""
    from sklearn_gastric.datasets._tissue_source import (
        _GLASS,
        _read_rgb,
        load_tissue_source,
    )

    source = load_tissue_source(name, basis)
    rgb = _read_rgb(name, None)[source.tissue]
    od = -np.log(np.maximum(rgb, 1) / np.asarray(_GLASS[name]))
    raw = od @ np.linalg.pinv(source.stains)
    return [round(float(v), 3) for v in np.mean(raw < -0.02, axis=0)]


def _summary(errors, failures):
    errors = np.asarray(errors).reshape(-1, 2)
    return {
        "h_median": float(np.median(errors[:, 0])),
        "h_max": float(np.max(errors[:, 0])),
        "e_median": float(np.median(errors[:, 1])),
        "e_max": float(np.max(errors[:, 1])),
        "failures": failures,
        "slides": len(errors) + failures,
    }


def _off_plane_degrees(od):
    """Each pixel's angle off the best plane through the origin (the span of
    the two leading right singular vectors)."""
    _, _, vt = np.linalg.svd(od, full_matrices=False)
    normal = vt[2]
    sine = np.abs(od @ normal) / np.linalg.norm(od, axis=1)
    return np.degrees(np.arcsin(np.clip(sine, 0, 1)))


def section_pixels(args):
    """What real tissue has that renders lack: off-plane light."""
    from sklearn_gastric.datasets import (
        fetch_cmu_small_region,
        fetch_he_target,
        make_gastric_slides,
    )
    from sklearn_gastric.io import open_slide
    from sklearn_gastric.preprocessing._stain import _slide_tissue_pixels
    from sklearn_gastric.preprocessing._stain_methods import rgb_to_od

    images = {
        "real: CMU-1-Small-Region": open_slide(fetch_cmu_small_region()),
        "real: H&E target": open_slide(fetch_he_target(), mpp=0.25),
    }
    slides, *_ = make_gastric_slides(2, size=1024, random_state=0)
    images["render: synthetic"] = open_slide(slides[0])
    real_tissue, *_ = render_case("cmu", "own", 1024, labs(0)[0], 1, seed=7)
    images["render: real tissue"] = open_slide(real_tissue[0])
    rows = {}
    for label, slide in images.items():
        od = rgb_to_od(_slide_tissue_pixels(slide)).astype(float)
        od = od[od.sum(axis=1) >= 0.45]
        angles = _off_plane_degrees(od)
        rows[label] = {
            "off_plane_median_deg": float(np.median(angles)),
            "off_plane_p99_deg": float(np.percentile(angles, 99)),
        }
    print("\nPixels off the best two-stain plane (stained tissue pixels, degrees)")
    for label, row in rows.items():
        print(
            f"{label:28s} median {row['off_plane_median_deg']:.2f}   "
            f"p99 {row['off_plane_p99_deg']:.2f}"
        )
    return rows


def main(argv=None):
    args = parse_args(argv)
    started = time.perf_counter()
    results = {
        "command": "python benchmarks/bench_stain_real.py"
        + (" --quick" if args.quick else ""),
        "estimates": section_estimates(args),
        "pixels": section_pixels(args),
        "seconds": time.perf_counter() - started,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.out} in {results['seconds']:.0f} s")


if __name__ == "__main__":
    main()
