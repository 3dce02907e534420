"""OmegaConf resolvers dfd's configs use; imported by every entry point before Hydra composes."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

# The project root (the folder holding conf/ and dfd/): default outputs live under it, so
# results never depend on the directory a command is started from.
PROJECT_ROOT = Path(__file__).resolve().parents[2]

if not OmegaConf.has_resolver("dfd_root"):
    OmegaConf.register_new_resolver("dfd_root", lambda: str(PROJECT_ROOT))

CONF_DIR = PROJECT_ROOT / "conf"


def compose_config(config_name: str, overrides: list[str] | tuple[str, ...] = ()):
    """`conf/<config_name>.yaml` with `overrides`, as the matching entry point would see it.

    Reuses Hydra's global state when an entry point already initialized it on `conf/`;
    otherwise initializes it for this call only.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return compose(config_name=config_name, overrides=list(overrides))
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides))
