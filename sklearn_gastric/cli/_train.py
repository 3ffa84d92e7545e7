"""``sklearn-gastric train``: a segmenter from annotations (or one reused),
then the slide classifier from the labels, saved as one model file."""

import time
from pathlib import Path

from ._common import (
    CommandError,
    check_out_file,
    load_pipeline,
    make_out_file_folder,
    open_slides,
    save_trained_pipeline,
    say,
    set_torch_threads,
)
from ._train_inputs import read_labels, read_slide_annotations

__all__ = ["train_command"]


def train_command(args):
    from ..io import SlideError

    _check_options(args)
    out = check_out_file(args.out)
    started = time.perf_counter()
    paths, labels = read_labels(args.labels, args.slides_dir)
    reused, slide_annotations = None, None
    tile_mpp = args.mpp
    if args.segmenter is not None:
        reused = _segmenter_from_model(args.segmenter, trust_pickle=args.trust_pickle)
        tile_mpp = _reused_resolution(args, reused[2])
    slides = open_slides(paths, tile_mpp=tile_mpp, assume_mpp=args.assume_mpp)
    if tile_mpp is None:
        _warn_level_zero(args, slides)
    if args.segmenter is None:
        slide_annotations = read_slide_annotations(args.annotations, paths)
    set_torch_threads(args.torch_threads)
    make_out_file_folder(out)
    stain = _stain_normalizer(args.stain_target)
    target = args.stain_target
    if reused is not None:
        segmenter, tile_size, _, reused_target = reused
        if target is None and reused_target is not None:
            # The segmenter was trained on normalised tiles: keep showing it
            # the same colours.
            target = reused_target
            say(args, "stain-normalising as the segmenter's model does")
        patch_counts = None
    else:
        # The segmenter learns from the tiles the pipeline will show it:
        # stain-normalised when the pipeline normalises.
        segmenter, patch_counts = _train_segmenter(
            args, slides, slide_annotations, stain, tile_mpp
        )
        tile_size = args.tile_size
    pipeline = _make_pipeline(
        args, segmenter, tile_size=tile_size, mpp=tile_mpp, target=target
    )
    say(args, f"training the slide classifier on {len(slides)} slides")
    segmenter.set_params(verbose=0 if args.quiet else 1)
    try:
        pipeline.fit(slides, labels)
    except (OSError, SlideError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    finally:
        segmenter.set_params(verbose=0)
    metadata = {
        "classes": [str(c) for c in pipeline.classes_],
        "tile_size": int(tile_size),
        "mpp": tile_mpp,
        "k": int(args.k),
        "segmenter_classes": [str(c) for c in segmenter.classes_],
        "patch_counts": patch_counts,
        "n_slides": len(slides),
        "trained_seconds": round(time.perf_counter() - started, 1),
    }
    save_trained_pipeline(pipeline, out, metadata)
    print(
        f"trained on {len(slides)} slides ({', '.join(metadata['classes'])}) in "
        f"{metadata['trained_seconds']} s; wrote {out}"
    )
    return 0


def _check_options(args):
    """Refuse, before any work, options that fit would refuse after hours."""
    from ..utils._sklearn_compat import InvalidParameterError
    from ..utils._validation import check_device

    if (args.annotations is None) == (args.segmenter is None):
        raise CommandError(
            "give --annotations DIR (QuPath GeoJSON lesion annotations: the "
            "segmenter learns from them) or --segmenter MODEL (reuse the "
            "segmenter of a trained model and train only the slide classifier "
            "on the labels); the segmenter cannot learn from slide labels alone."
        )
    if args.tile_size % 2**args.depth:
        raise CommandError(
            f"--tile-size {args.tile_size} must be divisible by 2**--depth "
            f"({2**args.depth})."
        )
    if args.stain_target is not None and not Path(args.stain_target).is_file():
        raise CommandError(f"stain target {args.stain_target!r} does not exist.")
    try:
        check_device(args.device, "--device")
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    segmenter = _new_segmenter(args)
    try:
        pipeline = _make_pipeline(args, segmenter, tile_size=args.tile_size)
        for estimator in [segmenter, *(step for _, step in pipeline.steps)]:
            if hasattr(estimator, "estimator"):
                continue  # the frozen segmenter, checked first
            estimator._validate_params()
    except InvalidParameterError as exc:
        raise CommandError(f"invalid option: {exc}") from None


def _reused_resolution(args, reused_mpp):
    """The resolution tiles are cut at with a reused segmenter: the one it
    was trained at; ``--mpp`` may only say the same (or give one to a
    segmenter of a model that does not know its own)."""
    if reused_mpp is None or args.mpp is None:
        return reused_mpp if args.mpp is None else args.mpp
    if abs(reused_mpp - args.mpp) > 1e-9 * reused_mpp:
        raise CommandError(
            f"--mpp {args.mpp:g}: the segmenter of --segmenter "
            f"{args.segmenter!r} was trained at {reused_mpp:g} µm/px and reads "
            "every slide there; leave out --mpp, or train a new segmenter with "
            "--annotations."
        )
    return reused_mpp


def _warn_level_zero(args, slides):
    """Tiles of level-0 pixels: say what that means for this cohort."""
    stated = sorted({round(sum(s.mpp) / 2, 4) for s in slides if s.mpp is not None})
    cohort = (
        f" (these slides state {', '.join(f'{m:g}' for m in stated)} µm/px)"
        if stated
        else ""
    )
    say(
        args,
        "no --mpp: tiles of --tile-size level-0 pixels, whatever each slide's "
        f"resolution{cohort}; the model will not know its resolution. Give "
        "--mpp (0.5 for 20x) to cut every tile at one physical size.",
    )


def _make_pipeline(args, segmenter, *, tile_size, mpp=None, target=None):
    from ..graph import GCNSlideClassifier
    from ..pipeline import make_gastric_pipeline

    classifier = GCNSlideClassifier(
        max_epochs=args.gcn_epochs,
        class_weight="balanced",
        random_state=args.random_state,
    )
    return make_gastric_pipeline(
        segmenter,
        tile_size=tile_size,
        mpp=mpp,
        target=target,
        min_tissue=args.min_tissue,
        k=args.k,
        threshold=args.threshold,
        classifier=classifier,
        random_state=args.random_state,
    )


def _new_segmenter(args, validation_fraction=0.1):
    from ..segmentation import PatchSegmenter

    return PatchSegmenter(
        base_channels=args.base_channels,
        depth=args.depth,
        feature_dim=args.feature_dim,
        max_epochs=args.epochs,
        lr=args.lr,
        batch_size=16,
        validation_fraction=validation_fraction,
        device=args.device,
        verbose=0 if args.quiet else 1,
        random_state=args.random_state,
    )


def _stain_normalizer(stain_target):
    """The fitted normaliser to ``--stain-target``; None without one."""
    if stain_target is None:
        return None
    from ..io import SlideError
    from ..preprocessing import StainNormalizer

    try:
        return StainNormalizer(target=stain_target).fit()
    except (OSError, SlideError, ValueError) as exc:
        raise CommandError(f"stain target: {exc}") from exc


def _segmenter_from_model(path, *, trust_pickle):
    """The trained segmenter of a model file, the tile size and resolution
    (``mpp``, None for level-0 tiles) it works on, and the
    stain-normalisation target of its pipeline (None when it has none)."""
    from ..pipeline import find_step
    from ..preprocessing import StainNormalizer, Tiler
    from ..segmentation import PatchSegmenter

    pipeline = load_pipeline(path, trust_pickle=trust_pickle)
    stain = find_step(pipeline, StainNormalizer)
    tiler = find_step(pipeline, Tiler)
    return (
        find_step(pipeline, PatchSegmenter),
        int(tiler.tile_size),
        getattr(tiler, "mpp", None),
        getattr(stain, "target", None),
    )


def _train_segmenter(args, slides, slide_annotations, normalizer, mpp):
    """Sample annotated patches from the slides and train the segmenter."""
    import numpy as np

    from ..io import SlideError
    from ..segmentation import sample_patches

    say(args, f"sampling up to {args.patches_per_slide} patches per slide")
    try:
        patches, masks, labels, _ = sample_patches(
            slides,
            slide_annotations,
            tile_size=args.tile_size,
            mpp=mpp,
            n_patches=args.patches_per_slide,
            positive_fraction=0.5,
            min_tissue=args.min_tissue,
            normalizer=normalizer,
            random_state=args.random_state,
        )
    except (OSError, SlideError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    n_lesion = int(np.count_nonzero(labels != "negative"))
    if n_lesion == 0:
        raise CommandError(
            "no sampled tissue tile lies inside a lesion annotation: check that "
            "the GeoJSON polygons are in level-0 pixels of their slides and that "
            f"lesions cover tiles of --min-tissue {args.min_tissue} tissue."
        )
    if n_lesion == len(labels):
        raise CommandError(
            "every sampled tile holds a lesion: the segmenter also needs tiles "
            "without lesion."
        )
    counts = dict(zip(*np.unique(labels, return_counts=True)))
    say(
        args,
        f"training the segmenter on {len(labels)} patches ("
        + ", ".join(f"{name}: {int(n)}" for name, n in sorted(counts.items()))
        + ")",
    )
    segmenter = _new_segmenter(
        args, validation_fraction=0.1 if len(labels) >= 20 else 0
    )
    try:
        segmenter.fit(patches, masks, labels)
    except ValueError as exc:
        raise CommandError(f"cannot train the segmenter: {exc}") from exc
    _report_held_out(args, segmenter)
    return segmenter, {name: int(n) for name, n in counts.items()}


def _report_held_out(args, segmenter):
    """The held-out patches' scores at the epoch whose weights were kept."""
    history = segmenter.net_.history
    if "valid_bacc" not in history[-1]:
        return  # no held-out patches
    # Early stopping keeps the weights of the best valid_loss, which skorch
    # flags as valid_loss_best; without it the last epoch's are kept.
    best = [epoch for epoch in history if epoch.get("valid_loss_best")]
    kept = best[-1] if segmenter.patience is not None and best else history[-1]
    say(
        args,
        f"held-out patches (epoch {kept['epoch']}): Dice "
        f"{kept['valid_dice']:.3f}, balanced accuracy of the patch classes "
        f"{kept['valid_bacc']:.3f}",
    )
