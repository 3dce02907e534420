"""The datasets a run reads: the source domain's training frames, every target, and the set
that selects the checkpoint (by the run's selection rule: `data.val`, the pooled
`data.heldout` sets, or a named test target).

Each dataset spec of `cfg.data` is a reader call built with `hydra.utils.instantiate`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from dfd.data.index import FrameIndex
from dfd.data.provenance import dataset_provenance, pipeline_mismatch
from dfd.data.selection import check_disjoint, pool
from dfd.runtime.protocol import SelectionRule

SOURCE_VAL = SelectionRule("source_val", ("data.val",))


@dataclass
class Splits:
    """The source domain's training frames, the set that selects the checkpoint (`val`: the
    source validation split, the pooled held-out sets or a test target, as `selection`
    says) and every target test set."""

    train: FrameIndex
    val: FrameIndex
    test: dict[str, FrameIndex]
    selection: SelectionRule = SOURCE_VAL

    def by_role(self) -> list[tuple[str, FrameIndex]]:
        """``[("train", ...), ("val", ...), (target, ...), ...]``: every set under the name
        its params and logs use."""
        return [("train", self.train), ("val", self.val), *self.test.items()]

    def summary(self) -> str:
        """One line per set (frames, videos, labels) and one per reason frames were skipped."""
        lines = []
        for role, index in self.by_role():
            lines.append(f"{role:>8}: {index.summary()}")
            lines += [f"{'':>8}  skipped {n} ({why})" for why, n in index.skipped.items()]
        return "\n".join(lines)

    def params(self, warn: bool = True) -> dict[str, int | str]:
        """What a run logs of its data: per set, frames, videos, skipped frames by reason, and
        the face pipeline behind its crops with the frames per video used
        (`dfd.data.provenance`). With `warn`, a test set cropped by another pipeline than the
        training set is a warning."""
        provenance = {role: dataset_provenance(index) for role, index in self.by_role()}
        if warn:
            for warning in pipeline_mismatch(provenance):
                warnings.warn(warning, stacklevel=2)
        params: dict[str, int | str] = {}
        for role, index in self.by_role():
            params[f"data/{role}/frames"] = len(index)
            params[f"data/{role}/videos"] = len(set(index.video_ids))
            for reason, n in index.skipped.items():
                params[f"data/{role}/skipped/{reason}"] = n
            for key, value in provenance[role].items():
                params[f"data/{role}/preprocess/{key}"] = value
        return params


def load_targets(data_cfg: DictConfig) -> dict[str, FrameIndex]:
    """Every target of `data.test`, with the evaluation frames-per-video limit applied."""
    if not data_cfg.get("test"):
        raise ValueError("data.test is empty: name at least one target dataset to evaluate on")
    per_video = (data_cfg.get("frames_per_video") or {}).get("eval")
    return {
        name: read_dataset(spec, f"data.test.{name}").frames_per_video(per_video)
        for name, spec in data_cfg.test.items()
    }


def read_dataset(spec: DictConfig, key: str) -> FrameIndex:
    """Instantiate one dataset spec (a reader call) and return its index.

    A reader's own error (a missing file, a bad label, an unknown split) already names the
    file and the fix; Hydra would wrap it in an InstantiationException whose prefix buries
    that message, so the reader's error is re-raised as it is, with the config key added.
    """
    try:
        return instantiate(spec)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, ValueError | OSError):
            cause.add_note(f"(while reading {key})")
            raise cause from None
        raise


def load_splits(data_cfg: DictConfig, selection: SelectionRule = SOURCE_VAL) -> Splits:
    """Instantiate every dataset spec of `cfg.data` the run needs and apply the
    frames-per-video limits; the selection set is the one `selection` names."""
    per_video = data_cfg.get("frames_per_video") or {}
    train = read_dataset(data_cfg.train, "data.train").frames_per_video(per_video.get("train"))
    if selection.rule == "source_val":
        # before the targets, as always: a wrong source root fails first
        val = _source_val(data_cfg, train)
        return Splits(train, val, load_targets(data_cfg), selection)
    test = load_targets(data_cfg)
    if selection.rule == "test_set":
        return Splits(train, test[selection.target], test, selection)
    # every held-out set, checked against every test list and the training set, then pooled
    heldout = {
        f"data.heldout.{name}": read_dataset(spec, f"data.heldout.{name}").frames_per_video(
            per_video.get("eval")
        )
        for name, spec in data_cfg.heldout.items()
    }
    check_disjoint(heldout, {"data.train": train, **{f"data.test.{t}": i for t, i in test.items()}})
    return Splits(train, pool(heldout, "heldout"), test, selection)


def _source_val(data_cfg: DictConfig, train: FrameIndex) -> FrameIndex:
    """`data.val`, refused when it shares videos with a training set of the same dataset."""
    per_video = data_cfg.get("frames_per_video") or {}
    val = read_dataset(data_cfg.val, "data.val").frames_per_video(per_video.get("eval"))
    leaked = set(train.video_ids) & set(val.video_ids)
    if leaked and train.name == val.name:
        raise ValueError(
            f"{len(leaked)} videos of {train.name!r} are in both train and val (e.g. {sorted(leaked)[0]!r}): "
            f"checkpoint selection would see training videos"
        )
    return val
