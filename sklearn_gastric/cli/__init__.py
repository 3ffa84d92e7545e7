"""The ``sklearn-gastric`` command: ``info``, ``train``, ``predict`` and ``demo``.

Every subcommand has ``--help``. Errors a user can fix (a missing or bad
input file, an output location that cannot be written, a full device, a
model of another version, a pickle not trusted explicitly, a prediction
folder locked for too long) print ``sklearn-gastric <command>: <message>``
on stderr and exit with status 2, before any long work where the cause can
be seen up front. Ctrl-C exits with 130, SIGTERM (what a batch scheduler
sends to stop a job) with 143 and SIGHUP with 129, after the same cleanup:
outputs complete or absent, the prediction index rebuilt. An unexpected
failure exits with status 1 after its traceback. Progress bars go to stderr
and are hidden by ``--quiet``. Every output file appears under its name only
once complete.

The package is a shell over the library: ``_parser`` declares the options,
one module per command turns them into library calls and the library's
errors into messages, and ``_common`` holds what the commands share.
"""

import signal
import sys
import threading
import traceback
from contextlib import contextmanager

from ..utils._files import LockTimeoutError, NoSpaceError
from ._common import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    CommandError,
    Terminated,
)
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


# The signals that stop a command as Ctrl-C does (SIGHUP: not on Windows).
_STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


def _interruption(exc):
    """The KeyboardInterrupt (or :class:`Terminated`) that ``exc`` was
    raised because of, if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _stop(signum, frame):
    # Once only: a second SIGTERM must not cut the cleanup short (a scheduler
    # that insists sends SIGKILL).
    for other in _STOP_SIGNALS:
        signal.signal(other, signal.SIG_IGN)
    raise Terminated(signum)


@contextmanager
def _signals_as_interrupts():
    """SIGTERM and SIGHUP raise :class:`Terminated` in the block; the
    previous handlers come back after it. A signal the caller ignores
    (``nohup`` ignores SIGHUP) or handles itself is left alone."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers
        return
    previous = {}
    for signum in _STOP_SIGNALS:
        if signal.getsignal(signum) == signal.SIG_DFL:
            previous[signum] = signal.signal(signum, _stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _report_interruption(command, interruption):
    if isinstance(interruption, Terminated):
        print(
            f"sklearn-gastric {command}: terminated ({interruption.signal_name})",
            file=sys.stderr,
        )
        return interruption.status
    print(f"sklearn-gastric {command}: interrupted", file=sys.stderr)
    return EXIT_INTERRUPTED


def main(argv=None):
    """Run the ``sklearn-gastric`` command line.

    Parameters
    ----------
    argv : list of str, default=None
        The arguments; ``sys.argv[1:]`` when None.

    Returns
    -------
    status : int
        0 on success; 2 for an error the user can fix (the message is on
        stderr); 1 for an unexpected failure; 130 when interrupted (Ctrl-C),
        143 when terminated (SIGTERM) and 129 on SIGHUP, each after the
        cleanup of an interruption.

    Examples
    --------
    >>> from sklearn_gastric.cli import main
    >>> main(["info", "no-such-slide.svs"])
    2
    """
    args = build_parser().parse_args(argv)
    with _signals_as_interrupts():
        try:
            return _COMMANDS[args.command](args)
        except (CommandError, LockTimeoutError, NoSpaceError) as exc:
            print(f"sklearn-gastric {args.command}: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt as exc:
            return _report_interruption(args.command, exc)
        except Exception as exc:
            interruption = _interruption(exc)
            if interruption is not None:  # e.g. an ImportError raised from Ctrl-C
                return _report_interruption(args.command, interruption)
            traceback.print_exc()
            print(
                f"sklearn-gastric {args.command}: unexpected error "
                f"({type(exc).__name__}: {exc}); please report it with the "
                "traceback above.",
                file=sys.stderr,
            )
            return EXIT_FAILURE
