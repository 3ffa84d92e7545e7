"""The ``sklearn-gastric`` command: ``info``, ``train``, ``predict`` and ``demo``.

Every subcommand has ``--help``. Errors a user can fix (a missing or bad
input file, an output location that cannot be written, a model of another
version, a pickle not trusted explicitly) print
``sklearn-gastric <command>: <message>`` on stderr and exit with status 2,
before any long work where the cause can be seen up front; Ctrl-C exits with
130; an unexpected failure exits with status 1 after its traceback. Progress
bars go to stderr and are hidden by ``--quiet``. Every output file appears
under its name only once complete.

The package is a shell over the library: ``_parser`` declares the options,
one module per command turns them into library calls and the library's
errors into messages, and ``_common`` holds what the commands share.
"""

import sys
import traceback

from ._common import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, CommandError
from ._demo import demo_command
from ._info import info_command
from ._parser import build_parser
from ._predict import predict_command
from ._train import train_command
from ._train_inputs import read_labels as read_labels  # importable as before

__all__ = ["main"]

_COMMANDS = {
    "info": info_command,
    "train": train_command,
    "predict": predict_command,
    "demo": demo_command,
}


def _interrupted(exc):
    """Whether ``exc`` was raised because of a KeyboardInterrupt."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def main(argv=None):
    """Run the ``sklearn-gastric`` command line.

    Parameters
    ----------
    argv : list of str, default=None
        The arguments; ``sys.argv[1:]`` when None.

    Returns
    -------
    status : int
        0 on success, 2 for an error the user can fix (the message is on
        stderr), 1 for an unexpected failure, 130 when interrupted (Ctrl-C).

    Examples
    --------
    >>> from sklearn_gastric.cli import main
    >>> main(["info", "no-such-slide.svs"])
    2
    """
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except CommandError as exc:
        print(f"sklearn-gastric {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"sklearn-gastric {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if _interrupted(exc):  # e.g. an ImportError raised from Ctrl-C
            print(f"sklearn-gastric {args.command}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        traceback.print_exc()
        print(
            f"sklearn-gastric {args.command}: unexpected error "
            f"({type(exc).__name__}: {exc}); please report it with the traceback "
            "above.",
            file=sys.stderr,
        )
        return EXIT_FAILURE
