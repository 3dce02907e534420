"""DFDM (Jia, Li, Lyu, ICIP 2022): face swaps of Celeb-DF identities by five autoencoder models, at three CRFs.

Release (shanface33/Deepfake_Model_Attribution README): three folders ``DFDM_crf0``,
``DFDM_crf10`` and ``DFDM_crf23`` of 2,150 videos each (H.264 at CRF 0, 10, 23), made by
*Faceswap*, *Lightweight*, *IAE*, *Dfaker* and *DFL-H128*, file names
``id**_id**_(scene)_(model_name).mp4``. DFDM has only fakes; its real side is Celeb-DF's
(its identities are Celeb-DF's): GenD pairs the DFDM fakes with every Celeb-DF-v2
``Celeb-real`` video (``config/datasets/CDFv2/all/Celeb-real.txt``) and tests on four of the
five models (dfaker, dfl, iae, lightweight). There is no official split: every video is ``test``.

Not established from a public source: the sub-folders inside each ``DFDM_crf*`` folder (the
README says only "videos in three subfolders") and the exact spelling of the model in the file
names; which CRF GenD used. The crops are made with the CRF folder as source, so the
sub-folders do not matter (``<root>/DFDM_crf23/<stem>/<NNN>.png``), and the model is read from
the file name's last ``_`` fields after ``id_id_scene``; a model asked for that no file names
is an error listing the models found.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from dfd.data.index import FAKE, REAL, FrameIndex
from dfd.data.readers._common import (
    DataError,
    Plan,
    Reading,
    reader,
    require_dir,
    wanted_splits,
)

CRFS = ("DFDM_crf0", "DFDM_crf10", "DFDM_crf23")


def model_of(stem: str) -> str | None:
    """The model named by a DFDM file stem ``id<a>_id<b>_<scene>_<model>``; None for another name."""
    parts = stem.split("_")
    if len(parts) < 4 or not (parts[0].startswith("id") and parts[1].startswith("id")):
        return None
    return "_".join(parts[3:])


@reader("dfdm")
def read_dfdm(
    root: str | os.PathLike,
    real_root: str | os.PathLike,
    name: str = "dfdm",
    split: str | Sequence[str] | None = "test",
    crf: str = "DFDM_crf23",
    models: Sequence[str] | None = None,
    real_folders: Sequence[str] = ("Celeb-real",),
) -> Plan:
    """DFDM fakes of one CRF folder under `root`, with Celeb-DF-v2's real videos under `real_root`.

    `crf` picks the ``DFDM_crf*`` folder; `models` keeps the fakes of those models (compared
    without case; null = all five); `real_folders` are the Celeb-DF-v2 crop folders whose
    every video is a real one (GenD: ``Celeb-real``). A fake whose name is not
    ``id<a>_id<b>_<scene>_<model>``, and a video folder without frames, are bad items; a model
    in `models` that names no video is an error listing the models found. Video ids are
    ``<crf>/<stem>`` and ``<real folder>/<stem>`` (the latter as the Celeb-DF-v2 reader names
    the same videos); the source of a fake is its model.
    """
    wanted_splits(name, split, ("test",))
    if crf not in CRFS:
        raise DataError(f"dataset {name!r}: unknown DFDM folder crf={crf!r}; valid: {list(CRFS)}")
    wanted = None if models is None else {m.lower() for m in models}

    def build(reading: Reading) -> FrameIndex:
        require_dir(name, root, "DFDM frame root", "root")
        require_dir(name, real_root, "Celeb-DF-v2 frame root (DFDM's real videos)", "real_root")
        problems = reading.problems
        crf_dir = f"{root}/{crf}"
        videos = reading.source_folder(
            crf_dir,
            f"DFDM folder {crf!r} does not exist under {root}",
            f"preprocess {crf} (see the dataset's preprocess command) or choose another crf",
        )
        found: set[str] = set()
        for video in videos or []:
            model = model_of(video)
            if model is None:
                problems(
                    "bad_name",
                    f"folder {crf_dir}/{video}",
                    "is not named id<a>_id<b>_<scene>_<model>, so its model cannot be derived",
                    "move it out of the DFDM folder",
                )
                continue
            found.add(model.lower())
            if wanted is not None and model.lower() not in wanted:
                continue
            reading.video_folder(
                f"{crf_dir}/{video}",
                label=FAKE,
                video_id=f"{crf}/{video}",
                source=model,
                split="test",
                where=f"folder {crf_dir}",
            )
        unmatched = sorted((wanted or set()) - found)
        if unmatched and videos:
            raise DataError(
                f"dataset {name!r}: models {unmatched} name no video in {crf_dir}; the file "
                f"names there give {sorted(found)}. Fix: set models to those spellings"
            )
        reading.labelled_sources(real_root, {f: (f, REAL, "test") for f in real_folders})
        return reading.index(root)

    return Plan(build, (), root)
