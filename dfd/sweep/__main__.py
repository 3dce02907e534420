"""Entry point: `python -m dfd.sweep sweep=<name> [overrides]` runs or joins an Optuna study.

A grid sweep (`sweep=demo_ablation`, `paper_ablation`) trains the paper's ablation rows over
several seeds; a search sweep (`sweep=demo_search`) tunes with TPE. Each trial trains with
`dfd.train.train` and is scored on the source validation split; target-test metrics are
reported, never optimized. See conf/sweep.yaml and sweeps/README.md.
"""

from __future__ import annotations

import optuna
from omegaconf import DictConfig

import dfd.runtime.config  # noqa: F401  (registers the config resolvers)
from dfd.runtime.cli import entry_point
from dfd.sweep.run import run_sweep


@entry_point("sweep")
def main(cfg: DictConfig) -> float | None:
    """Run this process's trials; return the study's best source-validation value."""
    # Optuna's progress lines into Hydra's logging: the console and the run folder's log
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    study = run_sweep(cfg)
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return study.best_value if complete else None


if __name__ == "__main__":
    main()
