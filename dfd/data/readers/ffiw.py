"""FFIW-10K: real ``source/<split>`` and fake ``target/<split>`` videos; cross-dataset papers test on ``val``.

Raw dataset: ``source/{train,val}/*.mp4`` (real), ``target/{train,val}/*.mp4`` (fake) and
``target_mask/`` (unused). Source and target videos share file names, so each raw folder
is preprocessed into its own source folder: ``<root>/real_val/<stem>/<frame>.png`` and
``<root>/fake_val/<stem>/<frame>.png`` by default (``real_train``/``fake_train`` for train).
`real_dirs` / `fake_dirs` rename them; nested names work too (``source/val`` for a layout
that mirrors the raw folders).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from dfd.data.index import FAKE, REAL, FrameIndex
from dfd.data.readers._common import Plan, Reading, reader, require_dir, wanted_splits

DEFAULT_REAL_DIRS = {"train": "real_train", "val": "real_val"}
DEFAULT_FAKE_DIRS = {"train": "fake_train", "val": "fake_val"}


@reader("ffiw")
def read_ffiw(
    root: str | os.PathLike,
    name: str = "ffiw",
    split: str | Sequence[str] | None = "val",
    real_dirs: Mapping[str, str] | None = None,
    fake_dirs: Mapping[str, str] | None = None,
) -> Plan:
    """FFIW frames of the requested split(s): every video folder under the split's real and fake folders.

    `real_dirs` / `fake_dirs` map a split to its folder under `root` (default
    ``real_<split>`` and ``fake_<split>``); the valid splits are their keys. Video ids are
    ``<folder>/<video>`` (``real_val/00001``), which keeps a real and a fake video of the
    same file name apart; the source is the folder's first component. A missing folder or
    a video folder without frames is a bad item.
    """
    real = real_dirs or DEFAULT_REAL_DIRS
    fake = fake_dirs or DEFAULT_FAKE_DIRS
    splits = wanted_splits(name, split, sorted(set(real) | set(fake)))

    def build(reading: Reading) -> FrameIndex:
        require_dir(name, root, "FFIW frame root", "root")
        sources: dict[str, tuple[str, int, str]] = {}
        for s in splits:
            if s in real:
                sources[real[s]] = (real[s].split("/")[0], REAL, s)
            if s in fake:
                sources[fake[s]] = (fake[s].split("/")[0], FAKE, s)
        reading.labelled_sources(root, sources)
        return reading.index(root)

    return Plan(build, (), root)
