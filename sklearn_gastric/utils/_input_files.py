"""Input files the user names: one wording for why one cannot be read."""

import errno
import os
import stat

__all__ = ["not_a_regular_file", "read_error_message"]

# What ``os.stat`` says a path is, when it is not a regular file.
_SPECIAL_FILES = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def not_a_regular_file(path):
    """What ``path`` is when it is not a regular file, or None when it is one.

    The path is only stat'ed (symbolic links followed), never opened, so a
    FIFO cannot block and a device is never read.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    kind : str or None
        ``"a directory"``, ``"a FIFO (named pipe)"``, ``"a character
        device"``, ``"a block device"``, ``"a socket"`` or ``"a special
        file"``; None for a regular file.

    Raises
    ------
    OSError
        ``os.stat`` failed: :class:`FileNotFoundError` (a dangling symbolic
        link included), a symbolic link loop (``errno.ELOOP``), no
        permission...; :func:`read_error_message` words it.

    Examples
    --------
    >>> from sklearn_gastric.utils._input_files import not_a_regular_file
    >>> not_a_regular_file("/dev/null")
    'a character device'
    """
    mode = os.stat(path).st_mode
    if stat.S_ISREG(mode):
        return None
    for test, kind in _SPECIAL_FILES:
        if test(mode):
            return kind
    return "a special file"


def read_error_message(exc, what, path, kind):
    """The one-line message for an :class:`OSError` raised opening an input file.

    Parameters
    ----------
    exc : OSError
        What ``open`` (or a loader, or :func:`not_a_regular_file`) raised.
    what : str
        The file's role, first in the message, e.g. ``"labels file"``.
    path : str or os.PathLike
        The file, quoted in the message.
    kind : str
        What the file should be, said when ``path`` is a folder, e.g.
        ``"CSV file"``.

    Returns
    -------
    message : str

    Examples
    --------
    >>> import errno
    >>> from sklearn_gastric.utils._input_files import read_error_message
    >>> read_error_message(FileNotFoundError(2, "No such file"), "labels file",
    ...                    "x.csv", "CSV file")
    "labels file 'x.csv' does not exist."
    >>> read_error_message(IsADirectoryError(21, "Is a directory"), "labels file",
    ...                    "data", "CSV file")
    "labels file 'data' is a folder, not a CSV file."
    >>> read_error_message(PermissionError(13, "Permission denied"), "labels file",
    ...                    "x.csv", "CSV file")
    "labels file 'x.csv' cannot be read (Permission denied)."
    >>> read_error_message(OSError(errno.ELOOP, "Too many levels of symbolic links"),
    ...                    "labels file", "x.csv", "CSV file")
    "labels file 'x.csv' is a symlink loop (a symbolic link that leads back to itself)."
    """
    path = str(path)
    if isinstance(exc, FileNotFoundError):
        return f"{what} {path!r} does not exist."
    if isinstance(exc, IsADirectoryError):
        return f"{what} {path!r} is a folder, not a {kind}."
    if exc.errno == errno.ELOOP:
        return (
            f"{what} {path!r} is a symlink loop (a symbolic link that leads back "
            "to itself)."
        )
    return f"{what} {path!r} cannot be read ({exc.strerror or exc})."
