"""``sklearn-gastric info``: describe a slide."""

from ..utils._json import dumps
from ._common import CommandError

__all__ = ["info_command"]


def info_command(args):
    from ..io import SlideError, open_slide
    from ..preprocessing import OtsuFilter, Tiler

    try:
        slide = open_slide(args.slide)
        (bag,) = Tiler(tile_size=args.tile_size, mpp=args.mpp).fit_transform([slide])
        (kept,) = OtsuFilter(min_tissue=args.min_tissue).fit_transform([bag])
    except (OSError, SlideError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
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
        "tile_mpp": args.mpp,
        "tile_level": bag.level,
        "tile_footprint": bag.footprint,
        "tiles": len(bag),
        "tissue_tiles": len(kept),
        "min_tissue": args.min_tissue,
    }
    if args.json:
        print(dumps(info, indent=2))
    else:
        width = max(len(key) for key in info)
        for key, value in info.items():
            print(f"{key:<{width}}  {value}")
    return 0
