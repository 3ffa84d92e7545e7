"""Benchmark: how long ``import sklearn_gastric`` takes, beside scikit-learn's.

Each statement runs in a fresh interpreter (``python -c "import ..."``),
timed from the parent's side, so the time is what a user waits for at a
prompt or a script's start: the interpreter's own start-up included. The
child's CPU time (user and system) is recorded too: on a loaded machine it
varies less than the wall time. The statements take turns, one run of each
per round and the order rotated each round, so that a change in the
machine's load falls on all of them alike; one untimed round first writes
the bytecode caches. Reported: the best and the median wall time of the
rounds, the median CPU time, and the ratio of ``import sklearn_gastric`` to
``import sklearn.pipeline`` (the goal is at most 1.3), with ``import
torch`` for reference (most of what ``import sklearn_gastric`` cost when it
imported torch) and ``pass`` (the interpreter alone). A last child reports
whether ``import sklearn_gastric`` left torch or skorch in
``sys.modules``.

Prints a table and writes ``benchmarks/results/bench_import.json``.

Run::

    python benchmarks/bench_import.py                # 15 rounds
    python benchmarks/bench_import.py --repeats 31
"""

import argparse
import importlib.metadata
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

STATEMENTS = {
    "sklearn_gastric": "import sklearn_gastric",
    "sklearn.pipeline": "import sklearn.pipeline",
    "torch": "import torch",
    "python": "pass",
}
GOAL = 1.3
REPORT = "import sys; print(*(m for m in ('torch', 'skorch') if m in sys.modules))"
HERE = Path(__file__).resolve().parent


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds")
    parser.add_argument(
        "--out", type=Path, default=HERE / "results" / "bench_import.json"
    )
    return parser.parse_args(argv)


def time_statement(statement):
    """Wall and CPU seconds of a fresh interpreter running ``statement``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def modules_loaded(statement):
    """Which of torch and skorch a fresh interpreter holds after ``statement``."""
    result = subprocess.run(
        [sys.executable, "-c", f"{statement}\n{REPORT}"],
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.split()


def _version(distribution):
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def main(argv=None):
    args = parse_args(argv)
    names = list(STATEMENTS)
    load_before = os.getloadavg()
    for name in names:  # untimed: bytecode caches, the page cache
        time_statement(STATEMENTS[name])
    times = {name: [] for name in names}
    for round_ in range(args.repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(time_statement(STATEMENTS[name]))
    load_after = os.getloadavg()

    wall = {name: [w for w, _ in runs] for name, runs in times.items()}
    cpu = {name: [c for _, c in runs] for name, runs in times.items()}
    summary = {
        name: {
            "best_s": min(wall[name]),
            "median_s": statistics.median(wall[name]),
            "cpu_median_s": statistics.median(cpu[name]),
        }
        for name in names
    }
    ratio = {
        statistic: summary["sklearn_gastric"][statistic]
        / summary["sklearn.pipeline"][statistic]
        for statistic in ("best_s", "median_s", "cpu_median_s")
    }
    loaded = modules_loaded(STATEMENTS["sklearn_gastric"])

    print(f"\nFresh interpreters, {args.repeats} interleaved rounds")
    header = (
        f"{'statement':<26}{'best (s)':>10}{'median (s)':>12}"
        f"{'CPU median (s)':>16}{'median / sklearn':>18}"
    )
    print(header)
    print("-" * len(header))
    for name in names:
        row = summary[name]
        relative = row["median_s"] / summary["sklearn.pipeline"]["median_s"]
        print(
            f"{STATEMENTS[name]:<26}{row['best_s']:>10.3f}{row['median_s']:>12.3f}"
            f"{row['cpu_median_s']:>16.3f}{relative:>17.2f}x"
        )
    print(
        "\nimport sklearn_gastric / import sklearn.pipeline: "
        f"{ratio['best_s']:.2f}x (best), {ratio['median_s']:.2f}x (median), "
        f"{ratio['cpu_median_s']:.2f}x (CPU, median); goal <= {GOAL}x"
    )
    print(
        "torch or skorch imported by import sklearn_gastric: "
        f"{', '.join(loaded) or 'neither'}"
    )
    print(
        "load average (1, 5, 15 min): "
        f"before {', '.join(f'{v:.2f}' for v in load_before)}; "
        f"after {', '.join(f'{v:.2f}' for v in load_after)}"
    )

    record = {
        "benchmark": "bench_import",
        "config": {"repeats": args.repeats, "statements": STATEMENTS},
        "summary": summary,
        "ratio_to_sklearn_pipeline": ratio,
        "goal": GOAL,
        "torch_modules_after_import": loaded,
        "wall_s": wall,
        "cpu_s": cpu,
        "load_average": {"before": load_before, "after": load_after},
        "versions": {
            "sklearn_gastric": _version("sklearn-gastric"),
            "scikit-learn": _version("scikit-learn"),
            "torch": _version("torch"),
            "skorch": _version("skorch"),
            "python": platform.python_version(),
        },
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
