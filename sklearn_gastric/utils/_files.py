"""Output files: written atomically (complete or absent), and locked for
the processes that share them; files of a folder read back safely."""

import errno
import hashlib
import os
import secrets
import stat
import time
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "LockTimeoutError",
    "NoSpaceError",
    "RefusedFileError",
    "atomic_output",
    "file_lock",
    "fit_name",
    "name_max",
    "raise_if_no_space",
    "read_file_in",
    "save_figure",
    "write_text_atomic",
]

_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_NAME_MAX = 255  # NAME_MAX of ext4, xfs, btrfs, tmpfs, NTFS, APFS


class NoSpaceError(OSError):
    """The device (or the user's quota) is full: a file could not be written.

    Raised by :func:`atomic_output` (and so by every writer built on it) in
    place of the ``ENOSPC``/``EDQUOT`` error, with the final file as
    ``filename``; the partial file has been removed.
    """

    def __str__(self):
        quota = errno.errorcode.get(self.errno) == "EDQUOT"
        return f"no space left on device writing {str(self.filename)!r}" + (
            " (disk quota exceeded)" if quota else ""
        )


class RefusedFileError(ValueError):
    """A file :func:`read_file_in` will not read; the message says why."""


class LockTimeoutError(TimeoutError):
    """:func:`file_lock` gave up waiting for a lock held by another process."""


def name_max(folder):
    """The longest file name, in bytes, that ``folder``'s file system takes.

    Parameters
    ----------
    folder : str or os.PathLike
        An existing folder.

    Returns
    -------
    n_bytes : int
        ``NAME_MAX`` there (255 on the usual file systems, and where the
        system does not say).
    """
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (AttributeError, OSError, ValueError):
        return _NAME_MAX


def fit_name(name, max_bytes):
    """``name`` unchanged if its UTF-8 encoding fits in ``max_bytes``, else a
    shorter name, the same for the same ``name``: its start and a hash of
    the whole.

    Parameters
    ----------
    name : str
    max_bytes : int
        At least 16.

    Returns
    -------
    fitted : str

    Examples
    --------
    >>> from sklearn_gastric.utils._files import fit_name
    >>> fit_name("short", 32)
    'short'
    >>> fit_name("a" * 40, 32)
    'aaaaaaaaaaaaaaaaaaaaaaa-e33cdf9c'
    """
    encoded = name.encode("utf-8", "surrogateescape")
    if len(encoded) <= max_bytes:
        return name
    digest = hashlib.sha256(encoded).hexdigest()[:8]
    # "ignore" drops a character cut in half at the end.
    start = encoded[: max_bytes - 9].decode("utf-8", "ignore")
    return f"{start}-{digest}"


@contextmanager
def atomic_output(path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The temporary file lies in the same directory (a rename there is atomic
    on POSIX and Windows), is hidden (its name starts with a dot) and ends
    in ``.part``. If the block raises anything, ``KeyboardInterrupt``
    included, the temporary file is removed and ``path`` is left as it was:
    a reader sees either the previous file or the complete new one, never a
    truncated one. An error of the file system names ``path`` (not the
    temporary file), and a full device raises :class:`NoSpaceError`. The
    temporary name is shortened when ``path``'s name is close to the file
    system's limit.

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
    tail = f".{os.getpid()}.{secrets.token_hex(4)}.part"
    # A final name near the file system's limit must not make the temporary
    # one too long: the pid and token keep it unique, not the name.
    start = fit_name(path.name, name_max(path.parent) - len(tail) - 1)
    temporary = path.with_name(f".{start}{tail}")
    try:
        # O_EXCL: never write through a file (or link) someone else put there.
        os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:
        raise_if_no_space(exc, path)
        raise
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException as exc:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise_if_no_space(exc, path)
        if isinstance(exc, OSError) and exc.filename is not None:
            if str(exc.filename) == str(temporary):
                # Name the file the user asked for, not a temporary now gone.
                exc.filename, exc.filename2 = str(path), None
        raise


def raise_if_no_space(exc, path):
    """Raise ``exc`` as a :class:`NoSpaceError` naming ``path`` if it is a
    full device's error (``ENOSPC``, ``EDQUOT``); else return."""
    if (
        isinstance(exc, OSError)
        and not isinstance(exc, NoSpaceError)
        and exc.errno in _NO_SPACE
    ):
        raise NoSpaceError(exc.errno, exc.strerror, str(path)) from exc


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
def file_lock(path, *, timeout=None, on_wait=None, notice_after=2.0):
    """Hold an exclusive lock on ``path`` (created if missing) for the block.

    Processes that take the same lock run their blocks one at a time; the
    lock goes with the process, so one killed while holding it never blocks
    the others. The lock file itself stays (empty) for the next user. A
    process that hangs while holding it does block the others: ``timeout``
    bounds the wait and ``on_wait`` tells the user.

    Parameters
    ----------
    path : str or os.PathLike
        The lock file.
    timeout : float, default=None
        Seconds to wait for the lock before giving up with
        :class:`LockTimeoutError`; None waits for as long as it takes.
    on_wait : callable, default=None
        Called once, with ``path``, when the lock is still held by another
        process after ``notice_after`` seconds.
    notice_after : float, default=2.0

    Raises
    ------
    LockTimeoutError
        The lock was still held by another process after ``timeout``
        seconds; the message names the lock file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from sklearn_gastric.utils import file_lock
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     with file_lock(pathlib.Path(folder) / ".lock", timeout=10):
    ...         pass
    """
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    descriptor = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        _acquire(descriptor, path, timeout, on_wait, notice_after)
        try:
            yield
        finally:
            _unlock(descriptor)
    finally:
        os.close(descriptor)


def _acquire(descriptor, path, timeout, on_wait, notice_after):
    """Try the lock without blocking until it is had or ``timeout`` passes:
    a blocking call could neither tell the user nor give up."""
    started = time.monotonic()
    pause, noticed = 0.01, False
    while not _try_lock(descriptor):
        waited = time.monotonic() - started
        if timeout is not None and waited >= timeout:
            raise LockTimeoutError(
                f"gave up after {waited:.0f} s waiting for the lock "
                f"{str(path)!r}: another process holds it (a run that hangs? "
                "stop it, or wait for it to finish)."
            )
        if on_wait is not None and not noticed and waited >= notice_after:
            noticed = True
            on_wait(path)
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def _try_lock(descriptor):
    if os.name == "nt":  # pragma: no cover - tested on POSIX only
        import msvcrt

        os.lseek(descriptor, 0, os.SEEK_SET)
        try:
            msvcrt.locking(descriptor, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(descriptor):
    if os.name == "nt":  # pragma: no cover - tested on POSIX only
        import msvcrt

        os.lseek(descriptor, 0, os.SEEK_SET)
        msvcrt.locking(descriptor, msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(descriptor, fcntl.LOCK_UN)


def read_file_in(folder, name, *, max_bytes):
    """The bytes of the regular file ``name`` in ``folder``, read safely.

    For files a folder shared with others may hold: a name that leads out
    of ``folder`` (``..``, a symbolic link whose target lies elsewhere), a
    FIFO, a device or a folder, and a file of more than ``max_bytes`` are
    refused. The file is opened without following a link and without
    blocking, and checked on the opened descriptor (no race between the
    check and the read); at most ``max_bytes + 1`` bytes are ever read.

    Parameters
    ----------
    folder : str or os.PathLike
        The folder the file must lie in, once links are resolved.
    name : str
        The file's name in ``folder``.
    max_bytes : int
        The largest file read.

    Returns
    -------
    data : bytes

    Raises
    ------
    FileNotFoundError
        There is no such file.
    RefusedFileError
        The file is refused; the message names it and says why.
    OSError
        It cannot be read (permissions, ...).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from sklearn_gastric.utils._files import read_file_in
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     _ = (pathlib.Path(folder) / "a.txt").write_bytes(b"abc")
    ...     read_file_in(folder, "a.txt", max_bytes=16)
    b'abc'
    """
    root = os.path.realpath(folder)
    path = os.path.join(root, name)
    real = os.path.realpath(path)
    if os.path.commonpath([root, real]) != root:
        raise RefusedFileError(f"{path!r} leads out of the folder (to {real!r}).")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    # O_NONBLOCK: opening a FIFO for reading would wait for a writer.
    descriptor = os.open(real, flags | getattr(os, "O_NONBLOCK", 0))
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            raise RefusedFileError(f"{path!r} is not a regular file.")
        data = _read_at_most(descriptor, max_bytes + 1)
    finally:
        os.close(descriptor)
    if len(data) > max_bytes:
        raise RefusedFileError(f"{path!r} is larger than {max_bytes} bytes.")
    return data


def _read_at_most(descriptor, n_bytes):
    chunks, left = [], n_bytes
    while left > 0:
        chunk = os.read(descriptor, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
