"""Tracking runs in MLflow: the store and one run's client (`tracker`), and the callback that
reports a training or evaluation run to it (`callback`).

`Tracker` is what `conf/tracking/*.yaml` builds (`_target_: dfd.tracking.Tracker`).
"""

from dfd.tracking.tracker import Tracker

__all__ = ["Tracker"]
