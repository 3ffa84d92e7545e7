"""``sklearn-gastric demo``: the whole method on a synthetic cohort."""

from ._common import (
    CommandError,
    check_out_dir,
    make_out_dir,
    open_slides,
    set_torch_threads,
)

__all__ = ["demo_command"]


def demo_command(args):
    from .._demo import run_demo
    from ..io import SlideError

    config = _demo_config(args)
    out_dir = check_out_dir(args.out)
    slide = None
    if args.slide is not None:
        from ..datasets import SYNTHETIC_MPP

        (slide,) = open_slides(
            [args.slide], tile_mpp=SYNTHETIC_MPP, assume_mpp=args.assume_mpp
        )
    set_torch_threads(args.torch_threads)
    make_out_dir(out_dir)
    try:
        run_demo(
            out_dir=out_dir,
            config=config,
            slide=slide,
            random_state=args.random_state,
            verbose=not args.quiet,
        )
    except (OSError, SlideError) as exc:
        raise CommandError(str(exc)) from exc
    return 0


def _demo_config(args):
    """The quick or full run's sizes, with the options given, checked."""
    from dataclasses import replace

    from .._demo import FULL, QUICK

    config = QUICK if args.quick else FULL
    overrides = {
        "n_slides": args.n_slides,
        "slide_size": args.slide_size,
        "n_patches": args.n_patches,
        "n_annotated_slides": args.n_annotated,
        "segmenter_epochs": args.epochs,
        "gcn_epochs": args.gcn_epochs,
        "cv_folds": args.folds,
    }
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    if config.slide_size < 256:
        raise CommandError(
            f"--slide-size must be at least 256; got {config.slide_size}."
        )
    if config.cv_folds < 2:
        raise CommandError(f"--folds must be at least 2; got {config.cv_folds}.")
    if config.n_slides < 4 * config.cv_folds:
        raise CommandError(
            f"--n-slides {config.n_slides} is too few for {config.cv_folds}-fold "
            f"cross-validation over 4 classes; give at least {4 * config.cv_folds}."
        )
    return config
