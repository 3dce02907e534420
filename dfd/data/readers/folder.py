"""Any folder of videos in the preprocessed layout: ``<root>/<source>/<video>/<frame>``, one split.

A source folder is real when its name is in `real_sources` or, by default, when it
contains "real" in any case (``real``, ``Celeb-real``, ``YouTube-real``, ``DFD_real``);
every other source folder is fake, or, when `fake_sources` names the fake ones, a folder in
neither list is an error (its label cannot be derived). The datasets whose release is two
labelled folder sets (UADFV, KoDF, PolyGlotFake, DeepSpeak once laid out, WildDeepfake) are
this reader plus a ``conf/dataset`` file naming their folders.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from dfd.data.index import FAKE, REAL, FrameIndex
from dfd.data.readers._common import (
    STANDARD_SPLITS,
    DataError,
    Plan,
    Reading,
    is_real_name,
    reader,
    require_dir,
    wanted_splits,
)


@reader("folder")
def read_folder(
    root: str | os.PathLike,
    name: str = "folder",
    split: str | Sequence[str] | None = "test",
    real_sources: Sequence[str] | None = None,
    fake_sources: Sequence[str] | None = None,
) -> Plan:
    """Every video under `root`, labelled by its source folder and assigned to the one split `split` names.

    A folder has no splits of its own, so `split` must be a single name from train, val,
    test: the split this folder plays (e.g. ``test`` for a target). Video ids are
    ``<source>/<video>``; a video folder without frames is a bad item. A fake in FF++
    naming gets its real video as source (`link_ff_sources`: ``DF/000_003`` -> ``real/000``).
    """
    splits = wanted_splits(name, split, STANDARD_SPLITS)
    if len(splits) != 1:
        raise DataError(
            f"dataset {name!r}: a folder is one split, got split={splits}. "
            f"Fix: set split to one of {list(STANDARD_SPLITS)}"
        )

    fakes = None if fake_sources is None else list(fake_sources)
    both = sorted(set(fakes or ()) & set(real_sources or ()))
    if both:
        raise DataError(
            f"dataset {name!r}: folder(s) {both} are in both real_sources and fake_sources. "
            f"Fix: name each folder in one of them"
        )

    def build(reading: Reading) -> FrameIndex:
        require_dir(name, root, "frame root", "root")
        sources = {}
        for s in reading.scanner.subdirs(root) or []:
            real = is_real_name(s, real_sources)
            if fakes is not None and not real and s not in fakes:
                reading.problems(
                    "unknown_source",
                    f"folder {root}/{s}",
                    f"is in neither real_sources {list(real_sources or ['*real*'])} nor "
                    f"fake_sources {fakes}, so its label cannot be derived",
                    "move it out of root, or add it to real_sources or fake_sources",
                )
                continue
            sources[s] = (s, REAL if real else FAKE, splits[0])
        reading.labelled_sources(root, sources)
        reading.link_ff_sources()
        return reading.index(root)

    return Plan(build, (), root)
