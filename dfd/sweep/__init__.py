"""Optuna sweeps over the training config; every trial is one real `dfd.train.train` run.

One job per module: `space` (parameters, grid points), `compose` (trial configs), `objective`
(train one trial, the pruning callback), `storage` (the shared study, grid claims), `report`
(tables and plots of a study), `ablation` (the per-row table of a grid ablation, with bootstrap
CIs), `run` (a sweep from start to report) and `__main__` (`python -m dfd.sweep`).
"""
