"""OmegaConf resolvers dfd's configs use; imported by every entry point before Hydra composes."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

# The project root (the folder holding conf/ and dfd/): default outputs live under it, so
# results never depend on the directory a command is started from.
PROJECT_ROOT = Path(__file__).resolve().parents[1]

if not OmegaConf.has_resolver("dfd_root"):
    OmegaConf.register_new_resolver("dfd_root", lambda: str(PROJECT_ROOT))
