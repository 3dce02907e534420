"""The family of errors that a user's input or config causes (a message, never a traceback)."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the command line, config or input files that the message names and says how
    to fix. Entry points (`dfd.cli.entry_point`) print it as one line and exit with status 1;
    ``HYDRA_FULL_ERROR=1`` shows the traceback."""
