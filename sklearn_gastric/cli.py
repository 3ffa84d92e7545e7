"""The ``sklearn-gastric`` command."""

import argparse
import json
import sys

from ._version import __version__

__all__ = ["main"]


def _cmd_info(args):
    from .io import SlideError, open_slide
    from .preprocessing import OtsuFilter, Tiler

    try:
        slide = open_slide(args.slide)
        (bag,) = Tiler(tile_size=args.tile_size).fit_transform([slide])
        (kept,) = OtsuFilter(min_tissue=args.min_tissue).fit_transform([bag])
    except (OSError, SlideError, ValueError) as exc:
        print(f"sklearn-gastric info: {exc}", file=sys.stderr)
        return 2
    info = {
        "name": slide.name,
        "path": str(slide.path) if slide.path is not None else None,
        "vendor": slide.vendor,
        "dimensions": list(slide.dimensions),
        "level_count": slide.level_count,
        "level_dimensions": [list(d) for d in slide.level_dimensions],
        "level_downsamples": list(slide.level_downsamples),
        "mpp": list(slide.mpp) if slide.mpp is not None else None,
        "tile_size": args.tile_size,
        "tiles": len(bag),
        "tissue_tiles": len(kept),
        "min_tissue": args.min_tissue,
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(len(key) for key in info)
        for key, value in info.items():
            print(f"{key:<{width}}  {value}")
    return 0


def _cmd_demo(args):
    from ._demo import run_demo

    run_demo(
        out_dir=args.out,
        quick=args.quick,
        random_state=args.random_state,
        verbose=not args.no_progress,
    )
    return 0


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="sklearn-gastric",
        description=(
            "Classify gastric whole-slide images (negative / LGIN / HGIN / "
            "carcinoma) with the method of patent CN 112990339 A."
        ),
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    info = commands.add_parser(
        "info",
        help="describe a slide: levels, size, mpp, vendor, tissue tiles",
        description="Describe a slide: levels, size, mpp, vendor and the "
        "number of tissue tiles the default filter keeps.",
    )
    info.add_argument("slide", help="a slide file OpenSlide reads, or a PNG/JPEG")
    info.add_argument("--tile-size", type=int, default=512)
    info.add_argument("--min-tissue", type=float, default=0.7)
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(handler=_cmd_info)

    demo = commands.add_parser(
        "demo",
        help="train and evaluate the whole method on a synthetic cohort",
        description="Render a synthetic cohort, train the segmenter and the "
        "pipeline, cross-validate it, and predict the real CMU slide.",
    )
    demo.add_argument("--out", default="sklearn_gastric_demo", help="output folder")
    demo.add_argument(
        "--quick", action="store_true", help="a smaller cohort (about 2 minutes)"
    )
    demo.add_argument("--random-state", type=int, default=0)
    demo.add_argument(
        "--no-progress", action="store_true", help="hide the progress bars"
    )
    demo.set_defaults(handler=_cmd_demo)
    return parser


def main(argv=None):
    """Run the command line; returns the exit status."""
    args = _build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
