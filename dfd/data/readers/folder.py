"""Any folder of videos in the preprocessed layout: ``<root>/<source>/<video>/<frame>``, one split.

A source folder is real when its name is in `real_sources` or, by default, when it
contains "real" in any case (``real``, ``Celeb-real``, ``YouTube-real``, ``DFD_real``);
every other source folder is fake.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from dfd.data.cache import DirScanner, cached_index
from dfd.data.index import FAKE, REAL, FrameIndex
from dfd.data.readers._common import (
    STANDARD_SPLITS,
    DataError,
    Problems,
    Rows,
    abspath,
    check_on_error,
    is_real_name,
    plain,
    require_dir,
    scan_labelled_sources,
    wanted_splits,
)


def read_folder(
    root: str | os.PathLike,
    name: str = "folder",
    split: str | Sequence[str] | None = "test",
    real_sources: Sequence[str] | None = None,
    on_error: str = "raise",
    cache_dir: str | os.PathLike | None = None,
) -> FrameIndex:
    """Every video under `root`, labelled by its source folder and assigned to the one split `split` names.

    A folder has no splits of its own, so `split` must be a single name from train, val,
    test: the split this folder plays (e.g. ``test`` for a target). Video ids are
    ``<source>/<video>``; a video folder without frames is a bad item.
    """
    check_on_error(name, on_error)
    splits = wanted_splits(name, split, STANDARD_SPLITS)
    if len(splits) != 1:
        raise DataError(
            f"dataset {name!r}: a folder is one split, got split={splits}. "
            f"Fix: set split to one of {list(STANDARD_SPLITS)}"
        )
    reals = None if real_sources is None else list(plain(real_sources))
    root = abspath(root)
    params = {
        "name": name,
        "root": root,
        "split": splits,
        "real_sources": reals,
        "on_error": on_error,
    }

    def build(scanner: DirScanner) -> FrameIndex:
        require_dir(name, root, "frame root", "root")
        problems = Problems(name, on_error)
        rows = Rows()
        sources = {
            s: (s, REAL if is_real_name(s, reals) else FAKE, splits[0])
            for s in scanner.subdirs(root) or []
        }
        scan_labelled_sources(rows, scanner, problems, root, sources)
        return rows.to_index(name, problems, root)

    return cached_index("folder", params, [], cache_dir, build)
