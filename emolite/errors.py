"""One exception type for every error a user can cause.

The CLI prints it as one line (no traceback) and exits non-zero; batch jobs log it,
count it and carry on with the next file.
"""

import os


def shown(path: object) -> str:
    """A path as text every terminal, CSV and JSON writer takes. File names are bytes on Linux:
    bytes that are not UTF-8 (Python holds them as surrogates, which no UTF-8 writer accepts)
    are shown as \\xNN escapes, like `ls -b` does; other names are unchanged."""
    s = os.fspath(path) if isinstance(path, os.PathLike) else path
    if isinstance(s, bytes):
        return s.decode("utf-8", "backslashreplace")
    s = str(s)
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class EmoliteError(Exception):
    """A problem with the user's input: the message names the file and what to do."""

    def __init__(self, message: str, path: object = None):
        self.path = None if path is None else shown(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)
