"""One exception type for every error a user can cause.

The CLI prints it as one line (no traceback) and exits non-zero; batch jobs log it,
count it and carry on with the next file.
"""


class EmoliteError(Exception):
    """A problem with the user's input: the message names the file and what to do."""

    def __init__(self, message: str, path: object = None):
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)
