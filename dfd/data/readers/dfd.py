"""DeepFakeDetection (DFD, Google/Jigsaw, hosted with FF++): real and fake folders, all used as a test set.

Raw dataset: ``original_sequences/actors/<c>/videos/`` (363 real) and
``manipulated_sequences/DeepFakeDetection/<c>/videos/`` (3,068 fake). Both raw folders are
named ``videos``, so the preprocessing must write them to distinct source folders:
``<root>/real/<video>/<frame>.png`` and ``<root>/fake/<video>/<frame>.png`` by default
(rename via `real_dirs` / `fake_dirs`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from dfd.data.index import FAKE, REAL, FrameIndex
from dfd.data.readers._common import Plan, Reading, reader, require_dir, wanted_splits

SPLITS = ("test",)


@reader("dfd")
def read_dfd(
    root: str | os.PathLike,
    name: str = "dfd",
    split: str | Sequence[str] | None = "test",
    real_dirs: Sequence[str] = ("real",),
    fake_dirs: Sequence[str] = ("fake",),
) -> Plan:
    """DFD frames, all in split ``test``: folders in `real_dirs` are real, those in `fake_dirs` fake.

    Any other folder under `root` has no derivable label and is a bad item
    (``unknown_source``), as is a video folder without frames. Video ids are
    ``<folder>/<video>``.
    """
    wanted_splits(name, split, SPLITS)
    real, fake = list(real_dirs), list(fake_dirs)

    def build(reading: Reading) -> FrameIndex:
        require_dir(name, root, "DFD frame root", "root")
        known = set(real) | set(fake)
        for folder in reading.scanner.subdirs(root) or []:
            if folder not in known:
                reading.problems(
                    "unknown_source",
                    f"folder {root}/{folder}",
                    f"is neither a real folder {real} nor a fake folder {fake}, so its label "
                    f"cannot be derived",
                    "move it out of root, or add it to real_dirs or fake_dirs",
                )
        sources = {d: (d, REAL, "test") for d in real} | {d: (d, FAKE, "test") for d in fake}
        reading.labelled_sources(root, sources)
        return reading.index(root)

    return Plan(build, (), root)
