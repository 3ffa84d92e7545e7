"""The options of every command (argparse only: the commands are elsewhere)."""

import argparse

from .._version import __version__
from ..segmentation._options import ENGINES, PRECISIONS

__all__ = ["build_parser"]


def build_parser():
    """The ``sklearn-gastric`` parser; ``args.command`` names the command."""
    parser = argparse.ArgumentParser(
        prog="sklearn-gastric",
        description=(
            "Classify gastric whole-slide images (negative / LGIN / HGIN / "
            "carcinoma) with the method of patent CN 112990339 A."
        ),
        epilog="Run 'sklearn-gastric COMMAND --help' for a command's options. "
        "Exit status: 0 success, 2 bad input (message on stderr), 1 unexpected "
        "failure, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM), 129 hung "
        "up (SIGHUP).",
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    _add_info(commands)
    _add_train(commands)
    _add_predict(commands)
    _add_demo(commands)
    return parser


# -- argument types -------------------------------------------------------------


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text}")
    return value


def _torch_threads(text):
    from ..utils._cpu import check_torch_threads

    try:
        return check_torch_threads(text, "the count")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _resolution(text):
    from ..io._slide import MAX_MPP, MIN_MPP

    value = float(text)
    if not MIN_MPP <= value <= MAX_MPP:
        raise argparse.ArgumentTypeError(
            f"must be a resolution from {MIN_MPP:g} to {MAX_MPP:g} µm per pixel; "
            f"got {text}"
        )
    return value


def _fraction(text):
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1]; got {text}")
    return value


# -- options of several commands ----------------------------------------------


def _add_common(parser):
    parser.add_argument(
        "-q",
        "--quiet",
        "--no-progress",
        action="store_true",
        dest="quiet",
        help="hide progress bars and messages",
    )
    parser.add_argument(
        "--torch-threads",
        type=_torch_threads,
        metavar="N",
        help="torch threads, at most 1024 (default: "
        "$SKLEARN_GASTRIC_TORCH_THREADS if set, else 1 on machines with at most "
        "2 cores, where more threads are slower, else the cores minus one for "
        "reading tiles)",
    )


def _add_tiling(parser, tile_size):
    parser.add_argument(
        "--tile-size",
        type=_positive_int,
        default=tile_size,
        metavar="PX",
        help="tile side in pixels: of level 0, or at --mpp when given "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--min-tissue",
        type=_fraction,
        default=0.7,
        metavar="F",
        help="smallest tissue fraction of a kept tile (default: %(default)s)",
    )


def _add_mpp(parser):
    parser.add_argument(
        "--mpp",
        type=_resolution,
        metavar="UM",
        help="cut tiles of --tile-size pixels at this resolution, in microns "
        "per pixel (0.5 for 20x), read from the best pyramid level and "
        "resized; needs a slide that states its resolution (default: tiles "
        "of level-0 pixels)",
    )


def _add_assume_mpp(parser):
    parser.add_argument(
        "--assume-mpp",
        type=_resolution,
        metavar="UM",
        help="the resolution, in microns per pixel, of slides whose file does "
        "not state a usable one (0.5 for a 20x scan, 0.25 for 40x); a slide "
        "that states one keeps its own",
    )


def _add_trust_pickle(parser, what):
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help=f"allow {what} to be a joblib pickle (.joblib, .pkl): loading a "
        "pickle can run any code it holds, so only for a file you made or trust. "
        "A .sgm model is never unpickled, with or without this option",
    )


def _add_out_dir(parser, default):
    parser.add_argument(
        "--out",
        default=default,
        metavar="DIR",
        help="output folder (default: %(default)s)",
    )


def _add_count(parser, option, default, what):
    """A positive integer option ``N`` with a default."""
    parser.add_argument(
        option,
        type=_positive_int,
        default=default,
        metavar="N",
        help=f"{what} (default: %(default)s)",
    )


# -- the commands -------------------------------------------------------------------


def _add_info(commands):
    info = commands.add_parser(
        "info",
        help="describe a slide: levels, size, mpp, vendor, tissue tiles",
        description="Describe a slide: levels, size, mpp, vendor and the "
        "number of tissue tiles the tissue filter keeps.",
    )
    info.add_argument("slide", metavar="SLIDE", help="a slide file, or a PNG/JPEG")
    _add_tiling(info, 512)
    _add_mpp(info)
    _add_assume_mpp(info)
    info.add_argument(
        "--model",
        metavar="MODEL",
        help="tile as this trained model does (its tile size and resolution), "
        "and say which pyramid level it would read",
    )
    _add_trust_pickle(info, "the --model MODEL")
    info.add_argument("--json", action="store_true", help="print JSON")


def _add_train(commands):
    train = commands.add_parser(
        "train",
        help="train a model on labelled slides and lesion annotations",
        description=(
            "Train the segmenter on tiles sampled from lesion annotations "
            "(QuPath GeoJSON exports, one '<slide stem>.geojson' per slide, "
            "polygons in level-0 pixels, classified by lesion class; a slide "
            "without a file has no lesion), then the slide classifier (top-K "
            "tiles, Pearson graph, GCN) on the slide labels, and save the "
            "model. With --segmenter instead of --annotations, reuse the "
            "segmenter of a trained model and train only the classifier: the "
            "segmenter cannot learn from slide labels alone."
        ),
    )
    train.add_argument("slides_dir", metavar="SLIDES_DIR", help="folder of slides")
    train.add_argument(
        "labels",
        metavar="LABELS.csv",
        help="CSV with columns 'slide' (file name in SLIDES_DIR) and 'label'",
    )
    source = train.add_argument_group("segmenter (give one)")
    source.add_argument(
        "--annotations", metavar="DIR", help="folder of QuPath GeoJSON annotations"
    )
    source.add_argument(
        "--segmenter",
        metavar="MODEL",
        help="reuse the segmenter (and stain target) of this trained model",
    )
    _add_trust_pickle(train, "the --segmenter MODEL")
    train.add_argument(
        "--out",
        required=True,
        metavar="MODEL",
        help="model file to write: the pickle-free format (name it model.sgm), "
        "or a joblib pickle when the name ends in .joblib, .pkl or .pickle "
        "(loading it then needs --trust-pickle); checked before training",
    )
    _add_tiling(train, 256)
    train.add_argument(
        "--mpp",
        type=_resolution,
        metavar="UM",
        help="the resolution, in microns per pixel, of the training patches "
        "and of every tile (0.5 for 20x): each slide is read from its best "
        "pyramid level and resized, so 20x and 40x scans give tiles of one "
        "physical size; the model keeps it and reads every slide there "
        "(default: the --segmenter model's; without one, tiles of level-0 "
        "pixels, and the model does not know its resolution)",
    )
    _add_assume_mpp(train)
    train.add_argument(
        "--stain-target",
        metavar="IMAGE",
        help="H&E image to stain-normalise every slide to (default: none)",
    )
    _add_train_model_options(train)
    train.add_argument(
        "--device", default="cpu", help="segmenter torch device, e.g. cuda"
    )
    train.add_argument("--random-state", type=int, default=0, metavar="SEED")
    _add_common(train)


def _add_train_model_options(train):
    """The sizes and training lengths of the segmenter and the classifier."""
    train.add_argument(
        "--k", type=_positive_int, default=10, help="top-K tiles (default: 10)"
    )
    train.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        metavar="R",
        help="Pearson threshold of the slide graph (default: %(default)s)",
    )
    _add_count(
        train,
        "--patches-per-slide",
        64,
        "tiles sampled per slide for the segmenter, half of them with lesion "
        "when there are enough",
    )
    _add_count(train, "--epochs", 20, "segmenter epochs")
    train.add_argument(
        "--lr",
        type=float,
        default=1e-3,
        help="segmenter learning rate (default: %(default)s)",
    )
    for option, default in (("base-channels", 4), ("depth", 3), ("feature-dim", 128)):
        _add_count(
            train, f"--{option}", default, f"segmenter {option.replace('-', ' ')}"
        )
    _add_count(train, "--gcn-epochs", 200, "GCN epochs")


def _add_predict(commands):
    predict = commands.add_parser(
        "predict",
        help="classify slides; write lesion maps and GeoJSON",
        description=(
            "Classify slides with a trained model. Writes, in --out, "
            "predictions.json (or .csv): per slide the predicted class, the "
            "class probabilities and the top-K tiles; and per slide "
            "<stem>_lesion_map.png and <stem>_lesions.geojson (import into "
            "QuPath), with <stem>_prediction.json, its record. Running again "
            "into the same --out adds to it (a slide predicted again is "
            "replaced), and runs side by side on one --out lose nothing: the "
            "index always lists every slide in the folder. Nothing is written "
            "next to the slides. A .sgm model cannot run code; a .joblib model "
            "is a pickle, which can, and loads only with --trust-pickle."
        ),
    )
    predict.add_argument("model", metavar="MODEL", help="a model made by 'train'")
    _add_trust_pickle(predict, "MODEL")
    predict.add_argument("slides", metavar="SLIDE", nargs="+", help="slide files")
    _add_assume_mpp(predict)
    _add_out_dir(predict, "sklearn_gastric_predictions")
    predict.add_argument(
        "--format",
        choices=("json", "csv"),
        default="json",
        help="predictions file format (default: %(default)s)",
    )
    predict.add_argument(
        "--report",
        action="store_true",
        help="also write report.html, one self-contained page for the whole folder",
    )
    predict.add_argument(
        "--threshold",
        type=_fraction,
        default=0.5,
        metavar="P",
        help="lesion probability above which a pixel is a suspected lesion "
        "(default: %(default)s)",
    )
    predict.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="arithmetic of the segmenter: bfloat16 is about 1.5x faster on "
        "CPUs with AVX-512 BF16 or AMX (default: %(default)s: bfloat16 on "
        "CUDA, float32 elsewhere)",
    )
    predict.add_argument(
        "--engine",
        choices=ENGINES,
        default="torch",
        help="what runs the segmenter: openvino needs the 'openvino' extra "
        "(default: %(default)s)",
    )
    predict.add_argument(
        "--skip-errors",
        action="store_true",
        help="go on past a slide that cannot be read or has no tissue tile; "
        "it is reported and the exit status is 2",
    )
    _add_common(predict)


def _add_demo(commands):
    demo = commands.add_parser(
        "demo",
        help="train and evaluate the whole method on a synthetic cohort",
        description=(
            "Render a synthetic cohort, train the segmenter and the pipeline, "
            "cross-validate it (classification report, confusion matrix), and "
            "predict the real slide CMU-1-Small-Region (lesion map PNG and "
            "GeoJSON). Writes summary.json in --out. The sizes below default "
            "to the full run's (--quick: the quick run's)."
        ),
    )
    _add_out_dir(demo, "sklearn_gastric_demo")
    demo.add_argument(
        "--quick",
        action="store_true",
        help="a smaller cohort and shorter training (about 3 minutes on 2 cores)",
    )
    for option, metavar, what in (
        ("--n-slides", "N", None),
        ("--slide-size", "PX", None),
        (
            "--n-patches",
            "N",
            "segmenter training patches, sampled from the annotated slides "
            "(at least 2 per slide)",
        ),
        ("--n-annotated", "N", "annotated slides the segmenter's patches come from"),
        ("--epochs", "N", "segmenter epochs"),
        ("--gcn-epochs", "N", None),
        ("--folds", "N", "cross-validation folds"),
    ):
        demo.add_argument(option, type=_positive_int, metavar=metavar, help=what)
    demo.add_argument(
        "--slide",
        metavar="SLIDE",
        help="slide to predict at the end (default: the real slide "
        "CMU-1-Small-Region, downloaded once from PyPI); it is read at the "
        "synthetic slides' resolution, 0.5 µm/px",
    )
    _add_assume_mpp(demo)
    demo.add_argument("--random-state", type=int, default=0, metavar="SEED")
    _add_common(demo)
