"""``sklearn-gastric info``: describe a slide."""

from ..utils._json import dumps
from ._common import CommandError, load_pipeline, open_slide_at

__all__ = ["info_command"]


def info_command(args):
    from ..io import SlideError
    from ..preprocessing import OtsuFilter, Tiler

    tile_size, tile_mpp = args.tile_size, args.mpp
    if args.model is not None:
        # Tiled as the model tiles: its tile size, at its resolution.
        tiler = _model_tiler(args)
        tile_size, tile_mpp = int(tiler.tile_size), tiler.mpp
    try:
        slide = open_slide_at(args.slide, tile_mpp, args.assume_mpp)
        (bag,) = Tiler(tile_size=tile_size, mpp=tile_mpp).fit_transform([slide])
        (kept,) = OtsuFilter(min_tissue=args.min_tissue).fit_transform([bag])
    except (OSError, SlideError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    mpp = None if slide.mpp is None else (slide.mpp[0] + slide.mpp[1]) / 2
    info = {
        "name": slide.name,
        "path": str(slide.path) if slide.path is not None else None,
        "vendor": slide.vendor,
        "dimensions": list(slide.dimensions),
        "level_count": slide.level_count,
        "level_dimensions": [list(d) for d in slide.level_dimensions],
        "level_downsamples": list(slide.level_downsamples),
        "mpp": list(slide.mpp) if slide.mpp is not None else None,
        "model": args.model,
        "tile_size": tile_size,
        "tile_mpp": tile_mpp,
        "tile_level": bag.level,
        "tile_read_mpp": None if mpp is None else mpp * bag.pixel_downsample,
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


def _model_tiler(args):
    from ..pipeline import find_step
    from ..preprocessing import Tiler

    if args.mpp is not None:
        raise CommandError(
            "give --mpp or --model, not both: the model tiles at its own resolution."
        )
    return find_step(load_pipeline(args.model, trust_pickle=args.trust_pickle), Tiler)
