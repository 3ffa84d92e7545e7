"""Input files the user names: one wording for why one cannot be read."""

__all__ = ["read_error_message"]


def read_error_message(exc, what, path, kind):
    """The one-line message for an :class:`OSError` raised opening an input file.

    Parameters
    ----------
    exc : OSError
        What ``open`` (or a loader) raised.
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
    """
    path = str(path)
    if isinstance(exc, FileNotFoundError):
        return f"{what} {path!r} does not exist."
    if isinstance(exc, IsADirectoryError):
        return f"{what} {path!r} is a folder, not a {kind}."
    return f"{what} {path!r} cannot be read ({exc.strerror or exc})."
