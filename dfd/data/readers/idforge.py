"""IDForge v1 (Xu et al. 2024): identity-driven multimedia forgeries, with the official split CSVs.

Release (xyyandxyy/IDForge README and ``IDForge_v1/{train,val,test}.csv``)::

    main/<forgery type>/<person>/<source video>/<file>.mp4
        e.g. face_tts/id53/id53_08/id53_scene_0083_0_simswap.mp4, pristine/id00/id00_03/id00_scene_0010-0.mp4

with 11 forgery types: ``pristine`` and ``face_audiomismatch_textmismatch``,
``face_rvc_textmismatch``, ``face_tts``, ``face_tts_textgen``, ``lip_audiomismatch_textmismatch``,
``lip_rvc_textmismatch``, ``lip_tts_textgen``, ``rvc_textmismatch``, ``tts_textgen``,
``tts_textmismatch``. Each split CSV has no header and one path relative to ``main/`` a line
(``face_audiomismatch_textmismatch/id00/id00_00/id00_scene_0015_0_infoswap.mp4``).

Labels (README's table): ``pristine`` is real, every other type fake. Three types change only
the audio or text (``rvc_textmismatch``, ``tts_textgen``, ``tts_textmismatch``: no lip sync, no
face swap): they are not visual fakes and this reader refuses them. ``face_*`` videos are face
swaps by InsightFace/roop, SimSwap or InfoSwap, named by the suffix of the file name; their
source is ``<type>_<swapper>`` (GenD's ``test-face_tts_roop``...). GenD's target is
``face_tts`` (by swapper) against ``pristine`` on the test CSV, this reader's default.

Frames: file names are not documented as unique within a type, so the crops are made with
the type as source and ``video_name=below_source``:
``<root>/<type>/<person>__<source video>__<stem>/<NNN>.png``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import PurePosixPath

from dfd.data.index import FAKE, REAL, FrameIndex
from dfd.data.readers._common import (
    STANDARD_SPLITS,
    DataError,
    Plan,
    Reading,
    below_source_video,
    reader,
    require_dir,
    require_file,
    wanted_splits,
)

REAL_TYPE = "pristine"
VISUAL_FAKE_TYPES = (
    "face_audiomismatch_textmismatch",
    "face_rvc_textmismatch",
    "face_tts",
    "face_tts_textgen",
    "lip_audiomismatch_textmismatch",
    "lip_rvc_textmismatch",
    "lip_tts_textgen",
)
NON_VISUAL_TYPES = ("rvc_textmismatch", "tts_textgen", "tts_textmismatch")
SWAPPERS = ("infoswap", "roop", "simswap")


@reader("idforge")
def read_idforge(
    root: str | os.PathLike,
    splits_dir: str | os.PathLike,
    name: str = "idforge",
    split: str | Sequence[str] | None = "test",
    types: Sequence[str] = (REAL_TYPE, "face_tts"),
    swappers: Sequence[str] | None = None,
) -> Plan:
    """IDForge frames of the requested split(s) (``splits_dir/<split>.csv``) and forgery types.

    `types` picks the forgery-type folders (``pristine`` real, the others fake; the three
    audio/text-only types are refused); `swappers` keeps the face-swap videos of those
    swappers (infoswap, roop, simswap; null = all). A CSV line that is not
    ``<type>/<person>/<source video>/<file>.mp4`` or names an unknown type, and a listed
    video without frames, are bad items. Video ids are
    ``<type>/<person>__<source video>__<stem>``.
    """
    splits = wanted_splits(name, split, STANDARD_SPLITS)
    chosen = list(types)
    refused = [t for t in chosen if t in NON_VISUAL_TYPES]
    if refused:
        raise DataError(
            f"dataset {name!r}: types {refused} forge only the audio or the text (IDForge's "
            f"table: no lip sync, no face swap), so a visual detector cannot see them. "
            f"Fix: choose among {[REAL_TYPE, *VISUAL_FAKE_TYPES]}"
        )
    bad = [t for t in chosen if t not in (REAL_TYPE, *VISUAL_FAKE_TYPES)]
    if bad or not chosen:
        raise DataError(
            f"dataset {name!r}: unknown IDForge types {bad or chosen}; valid: "
            f"{[REAL_TYPE, *VISUAL_FAKE_TYPES]}. Fix: correct types"
        )
    bad = [s for s in swappers or () if s not in SWAPPERS]
    if bad:
        raise DataError(f"dataset {name!r}: unknown swappers {bad}; valid: {list(SWAPPERS)}")
    known = {REAL_TYPE, *VISUAL_FAKE_TYPES, *NON_VISUAL_TYPES}
    csvs = {s: f"{splits_dir}/{s}.csv" for s in splits}

    def build(reading: Reading) -> FrameIndex:
        require_dir(name, root, "IDForge frame root", "root")
        problems = reading.problems
        for s, path in csvs.items():
            require_file(name, path, f"IDForge split file {s}.csv", "splits_dir")
            with open(path) as f:
                lines = f.read().splitlines()
            for lineno, line in enumerate(lines, 1):
                rel = line.strip().replace("\\", "/")
                if not rel:
                    continue
                where = f"{path} line {lineno}"
                parts = PurePosixPath(rel).parts
                if len(parts) != 4 or not rel.lower().endswith(".mp4") or parts[0] not in known:
                    problems(
                        "bad_line",
                        where,
                        f"{rel!r} is not <forgery type>/<person>/<source video>/<file>.mp4 "
                        f"with a type of {sorted(known)}",
                        "restore the official IDForge_v1 split CSV",
                    )
                    continue
                kind, person, source_video, file_name = parts
                if kind not in chosen:
                    continue
                stem = PurePosixPath(file_name).stem
                swapper = stem.rsplit("_", 1)[-1] if kind.startswith("face_") else ""
                if kind.startswith("face_") and swapper not in SWAPPERS:
                    problems(
                        "bad_line",
                        where,
                        f"face-swap video {file_name!r} does not end in _<swapper> "
                        f"({'/'.join(SWAPPERS)})",
                        "restore the official IDForge_v1 split CSV",
                    )
                    continue
                if swappers is not None and kind.startswith("face_") and swapper not in swappers:
                    continue
                video = below_source_video([person, source_video, stem])
                reading.video_folder(
                    f"{root}/{kind}/{video}",
                    label=REAL if kind == REAL_TYPE else FAKE,
                    video_id=f"{kind}/{video}",
                    source=f"{kind}_{swapper}" if swapper else kind,
                    split=s,
                    where=where,
                )
        return reading.index(root)

    return Plan(build, list(csvs.values()), root)
