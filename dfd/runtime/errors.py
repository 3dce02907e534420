"""The family of errors that a user's input or config causes (a message, never a traceback)."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the command line, config or input files that the message names and says how
    to fix. Entry points (`dfd.runtime.cli.entry_point`) print it as one line and exit with status 1;
    ``HYDRA_FULL_ERROR=1`` shows the traceback."""


def config_flag(cfg, key: str) -> bool:
    """The boolean config value at `key`; anything but true/false is a `UserError` naming it
    (a YAML string such as ``fals`` would otherwise count as true)."""
    value = cfg[key]
    if not isinstance(value, bool):
        raise UserError(f"{key}={value!r} must be true or false")
    return value
