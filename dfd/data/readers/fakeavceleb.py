"""FakeAVCeleb (Khalid et al., NeurIPS 2021 D&B): audio-video deepfakes in four categories, from ``meta_data.csv``.

Release (DASH-Lab/FakeAVCeleb README; the data and its ``meta_data.csv`` come by request):
500 real and 19,500 fake videos in ``<category>/<race>/<gender>/<id>/<file>.mp4`` with the
categories ``RealVideo-RealAudio`` (A), ``RealVideo-FakeAudio`` (B), ``FakeVideo-RealAudio``
(C) and ``FakeVideo-FakeAudio`` (D). ``meta_data.csv``'s header is
``source,target1,target2,method,category,type,race,gender,path,`` and each row has ten
fields, the ninth the file name and the tenth its folder, e.g.
``id00076,-,-,real,A,RealVideo-RealAudio,African,men,00109.mp4,FakeAVCeleb/RealVideo-RealAudio/African/men/id00076``
(schema from independent public parsers that agree; the file itself is not public, so read
positionally here and checked against the header's first eight names).

Labels for a *visual* detector, as GenD applies them: ``RealVideo-RealAudio`` is real,
``FakeVideo-RealAudio`` and ``FakeVideo-FakeAudio`` are fake. ``RealVideo-FakeAudio`` is an
audio-only fake: its video is real, so it is neither a visual fake nor an honest real; it is
left out (counted in the log) and asking for it is an error. There is no official split:
every video is ``test``.

Frames: file names repeat across identities, so the crops are made with
``video_name=below_source`` and the category as source:
``<root>/<category>/<race>__<gender>__<id>__<stem>/<NNN>.png``.
"""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import PurePosixPath

from dfd.data.index import FAKE, REAL, FrameIndex
from dfd.data.readers._common import (
    DataError,
    Plan,
    Reading,
    below_source_video,
    reader,
    require_dir,
    require_file,
    wanted_splits,
)

log = logging.getLogger("dfd.data.readers")

HEADER = ("source", "target1", "target2", "method", "category", "type", "race", "gender")
# category folder -> (its letter in the `category` column, its label for a visual detector)
CATEGORIES = {
    "RealVideo-RealAudio": ("A", REAL),
    "FakeVideo-RealAudio": ("C", FAKE),
    "FakeVideo-FakeAudio": ("D", FAKE),
}
AUDIO_ONLY = ("RealVideo-FakeAudio", "B")
VISUAL = tuple(CATEGORIES)


@reader("fakeavceleb")
def read_fakeavceleb(
    root: str | os.PathLike,
    metadata_csv: str | os.PathLike,
    name: str = "fakeavceleb",
    split: str | Sequence[str] | None = "test",
    categories: Sequence[str] = VISUAL,
    methods: Sequence[str] | None = None,
) -> Plan:
    """FakeAVCeleb frames of the chosen categories, labelled real (RealVideo-RealAudio) or fake (FakeVideo-*).

    `categories` picks category folders (default the three visual ones; a target of one
    fake category lists it with ``RealVideo-RealAudio``); ``RealVideo-FakeAudio`` is refused
    (an audio-only fake). `methods` keeps the fakes of those ``method`` values (e.g.
    ``[wav2lip]``; null = all); real rows are always kept. A row with fewer than ten fields,
    whose ``category`` letter disagrees with its ``type`` folder, or whose folder does not
    contain its ``type``, and a listed video without frames, are bad items. Video ids are
    ``<type>/<race>__<gender>__<id>__<stem>``; the source is the category folder.
    """
    wanted_splits(name, split, ("test",))
    chosen = list(categories)
    if AUDIO_ONLY[0] in chosen:
        raise DataError(
            f"dataset {name!r}: category {AUDIO_ONLY[0]!r} holds audio-only fakes (real video, "
            f"cloned voice): a visual detector can call them neither fake nor real. "
            f"Fix: choose among {list(VISUAL)}"
        )
    bad = [c for c in chosen if c not in CATEGORIES]
    if bad or not chosen:
        raise DataError(
            f"dataset {name!r}: unknown FakeAVCeleb categories {bad or chosen}; valid: "
            f"{list(VISUAL)}. Fix: correct categories"
        )
    keep_methods = None if methods is None else set(methods)

    def build(reading: Reading) -> FrameIndex:
        require_dir(name, root, "FakeAVCeleb frame root", "root")
        require_file(name, metadata_csv, "FakeAVCeleb meta_data.csv", "metadata_csv")
        problems = reading.problems
        left_out: Counter[str] = Counter()
        with open(metadata_csv, newline="") as f:
            rows = csv.reader(f)
            header = tuple(h.strip() for h in next(rows, []))
            if header[: len(HEADER)] != HEADER:
                raise DataError(
                    f"dataset {name!r}: {metadata_csv}: header {list(header)} does not start "
                    f"with {list(HEADER)} [bad_header]. Fix: use the release's meta_data.csv"
                )
            for row in rows:
                where = f"{metadata_csv} line {rows.line_num}"
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) < 10:
                    problems(
                        "bad_line",
                        where,
                        f"expected 10 fields (..., gender, file, folder), got {len(row)}",
                        "restore the release's meta_data.csv",
                    )
                    continue
                method, letter, kind = row[3].strip(), row[4].strip(), row[5].strip()
                file_name, folder = row[8].strip(), row[9].strip()
                if kind == AUDIO_ONLY[0]:
                    left_out[kind] += 1
                    continue
                if kind not in CATEGORIES or CATEGORIES[kind][0] != letter:
                    problems(
                        "label_conflict",
                        where,
                        f"category {letter!r} and type {kind!r} disagree (A = RealVideo-RealAudio, "
                        f"B = RealVideo-FakeAudio, C = FakeVideo-RealAudio, D = FakeVideo-FakeAudio)",
                        "restore the release's meta_data.csv",
                    )
                    continue
                label = CATEGORIES[kind][1]
                if kind not in chosen or (
                    label == FAKE and keep_methods is not None and method not in keep_methods
                ):
                    continue
                parts = PurePosixPath(folder.replace("\\", "/")).parts
                if kind not in parts:
                    problems(
                        "bad_line",
                        where,
                        f"folder {folder!r} does not contain the type folder {kind!r}",
                        "restore the release's meta_data.csv",
                    )
                    continue
                below = [*parts[parts.index(kind) + 1 :], PurePosixPath(file_name).stem]
                video = below_source_video(below)
                reading.video_folder(
                    f"{root}/{kind}/{video}",
                    label=label,
                    video_id=f"{kind}/{video}",
                    source=kind,
                    split="test",
                    where=where,
                )
        if left_out:
            log.info(
                "dataset %r: left out %d %s videos (audio-only fakes)",
                name,
                left_out[AUDIO_ONLY[0]],
                AUDIO_ONLY[0],
            )
        return reading.index(root)

    return Plan(build, [metadata_csv], root)
