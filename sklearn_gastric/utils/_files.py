"""Output files: written atomically (complete or absent), and locked for
the processes that share them."""

import os
import secrets
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_output", "file_lock", "save_figure", "write_text_atomic"]


@contextmanager
def atomic_output(path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The temporary file lies in the same directory (a rename there is atomic
    on POSIX and Windows), is hidden (its name starts with a dot) and ends
    in ``.part``. If the block raises anything, ``KeyboardInterrupt``
    included, the temporary file is removed and ``path`` is left as it was:
    a reader sees either the previous file or the complete new one, never a
    truncated one.

    Parameters
    ----------
    path : str or os.PathLike
        The final file. Its directory must exist.

    Yields
    ------
    temporary : pathlib.Path
        Where to write. It exists (empty, created with the process's umask),
        so writers that check for the file find it; its suffix is ``.part``,
        so give writers that infer a format from the name (matplotlib) the
        format explicitly.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from sklearn_gastric.utils import atomic_output
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     target = pathlib.Path(folder) / "result.txt"
    ...     with atomic_output(target) as temporary:
    ...         _ = temporary.write_text("done")
    ...     target.read_text(), sorted(p.name for p in target.parent.iterdir())
    ('done', ['result.txt'])
    """
    path = Path(path)
    temporary = path.with_name(
        f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.part"
    )
    # O_EXCL: never write through a file (or link) someone else put there.
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise


def write_text_atomic(path, text):
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_output`.

    Parameters
    ----------
    path : str or os.PathLike
        The final file.
    text : str
        Its whole content.

    Returns
    -------
    path : pathlib.Path
    """
    path = Path(path)
    with atomic_output(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return path


def save_figure(figure, path, *, dpi=120):
    """Save a matplotlib figure as PNG through :func:`atomic_output`, then
    close it (also when saving fails).

    Parameters
    ----------
    figure : matplotlib.figure.Figure
    path : str or os.PathLike
        The ``.png`` file.
    dpi : int, default=120

    Returns
    -------
    path : pathlib.Path
    """
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        with atomic_output(path) as temporary:
            figure.savefig(temporary, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(figure)
    return path


@contextmanager
def file_lock(path):
    """Hold an exclusive lock on ``path`` (created if missing) for the block.

    Processes that take the same lock run their blocks one at a time; the
    lock goes with the process, so one killed while holding it never blocks
    the others. The lock file itself stays (empty) for the next user.

    Parameters
    ----------
    path : str or os.PathLike
        The lock file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from sklearn_gastric.utils import file_lock
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     with file_lock(pathlib.Path(folder) / ".lock"):
    ...         pass
    """
    with open(path, "a+b") as file:
        if os.name == "nt":  # pragma: no cover - tested on POSIX only
            import msvcrt

            while True:
                try:
                    file.seek(0)
                    msvcrt.locking(file.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:  # LK_LOCK gives up after 10 s: wait on
                    continue
            try:
                yield
            finally:
                file.seek(0)
                msvcrt.locking(file.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(file.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(file.fileno(), fcntl.LOCK_UN)
