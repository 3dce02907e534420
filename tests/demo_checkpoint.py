"""One small trained checkpoint for the tests of dfd.predict and dfd.export (made once a session)."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from tests.conftest import compose_train, small_run_overrides


@functools.cache
def trained_checkpoint(cache: Path, *extra: str) -> Path:
    """The checkpoint folder of a seconds-long real `dfd.train` run on the demo data.

    `extra` overrides pick other methods (e.g. ``peft=lora``); each combination trains once.
    """
    from dfd.train import train

    run = Path(tempfile.mkdtemp(prefix="dfd-test-ckpt-"))
    atexit.register(shutil.rmtree, run, ignore_errors=True)
    overrides = [*small_run_overrides(run, cache), "tracking=none", *extra]
    train(compose_train(overrides, run))
    return run / "checkpoint"
