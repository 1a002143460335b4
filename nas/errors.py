"""The one exception type that means "the user's input is wrong".

The CLI turns it into one message on stderr and exit code 2, with no traceback.
Everything else that escapes is a bug in nas and keeps its traceback.
"""

from __future__ import annotations


class NasInputError(Exception):
    """Bad input: a space file, a dataset, a command-line value or a storage URL."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class NasRunFailed(Exception):
    """A run (or a confirmation) could not finish: too many failed candidates, workers gone. The CLI prints
    it and exits with code 1; what completed is kept."""
