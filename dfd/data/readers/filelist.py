"""The paper's file lists: one frame path a line, ``<...>/<dataset>/<source>/<video>/<frame>``.

Example lines (relative to `root`): ``datasets/FF/real/000/000.png``,
``datasets/FF/DF/000_003/000.png``, ``datasets/CDFv2/YouTube-real/00000/014.png``. The
label comes from the source folder: real when its name contains "real" in any case
(``real``, ``Celeb-real``, ``YouTube-real``) unless `real_sources` names the real ones;
the video is the frame's parent folder. The authors keep one list per split and source
(``config/datasets/FF/test/DF.txt``), so a list entry may also be a folder of ``*.txt``.

Built for large lists: a million lines index in about a second (see
``benchmarks/index_build.py``), because per-line work is a string split and an append;
everything per video is computed once per video folder.
"""

from __future__ import annotations

import array
import os
from collections.abc import Mapping, Sequence

import numpy as np

from dfd.data.index import FAKE, REAL, FrameIndex
from dfd.data.readers._common import (
    DataError,
    Plan,
    Problems,
    Reading,
    abspath,
    is_real_name,
    leaves_root,
    link_ff_sources,
    normalized,
    reader,
    wanted_splits,
)


def _list_files(name: str, root: str, split: str, entries: str | Sequence[str]) -> list[str]:
    files: list[str] = []
    for entry in [entries] if isinstance(entries, str) else entries:
        path = entry if os.path.isabs(entry) else f"{root}/{entry}"
        path = abspath(path)
        if os.path.isdir(path):
            found = sorted(
                f"{path}/{f}"
                for f in os.listdir(path)
                if f.endswith(".txt") and not f.startswith(".")
            )
            if not found:
                raise DataError(
                    f"dataset {name!r}: list folder {path} (split {split!r}) holds no *.txt list "
                    f"[missing_file]. Fix: point lists.{split} at the list files"
                )
            files.extend(found)
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise DataError(
                f"dataset {name!r}: file list {path} (split {split!r}) does not exist [missing_file]. "
                f"Fix: point lists.{split} at it (paths relative to root={root} or absolute)"
            )
    return files


@reader("filelist")
def read_filelist(
    lists: Mapping[str, str | Sequence[str]],
    root: str | os.PathLike,
    name: str = "filelist",
    split: str | Sequence[str] | None = "test",
    real_sources: Sequence[str] | None = None,
    check_files: bool = True,
) -> Plan:
    """Frames named by the file lists of the requested split(s).

    `lists` maps each split to a list file, a folder of ``*.txt`` lists, or a sequence of
    either, relative to `root` unless absolute; frame paths in them are relative to
    `root` unless absolute, and read as the path they resolve to (``real/v0/../v1/000.png``
    is a frame of ``real/v1``; a path that climbs out of `root` is a bad item). The valid
    splits are the keys of `lists`. Video ids are
    ``<source>/<video>`` (``DF/000_003``); when the lists span several ``<dataset>``
    folders that share a ``<source>/<video>``, every id becomes
    ``<dataset>/<source>/<video>`` so no two videos merge. A line with fewer than three
    path components (no derivable source or video), a repeated path, and, with
    `check_files`, a frame that does not exist are bad items. `check_files` lists each
    video folder once (not a stat per frame); turn it off for very large lists whose
    frames you trust, and a missing frame then fails when it is loaded. A fake in FF++
    naming gets its real video of the same list folder as source (`link_ff_sources`).
    """
    mapping = lists
    if not isinstance(mapping, dict) or not mapping:
        raise DataError(
            f"dataset {name!r}: lists must map split names to list files, e.g. "
            f"{{test: lists/test.txt}}, got {lists!r}"
        )
    splits = wanted_splits(name, split, list(mapping))
    reals = None if real_sources is None else list(real_sources)
    files = {s: _list_files(name, root, s, mapping[s]) for s in splits}

    def build(reading: Reading) -> FrameIndex:
        problems, scanner = reading.problems, reading.scanner
        prefix = root.rstrip("/") + "/"
        paths: list[str] = []
        row_video = array.array("q")  # per row: index into the per-video arrays below
        origin_file = array.array("q")
        origin_line = array.array("q")
        file_names: list[str] = []
        video_of: dict[tuple[str, str], int] = {}  # (split, video folder) -> video number
        v_label: list[int] = []
        v_source: list[str] = []
        v_short: list[str] = []
        v_dataset: list[str] = []
        v_split: list[str] = []
        real_cache: dict[str, bool] = {}
        for s in splits:
            for list_file in files[s]:
                file_no = len(file_names)
                file_names.append(list_file)
                with open(list_file) as f:
                    lines = f.read().splitlines()
                last_dir: str | None = None
                vid = -1
                names: set[str] | None = None
                for lineno, line in enumerate(lines, 1):
                    rel = line.strip()
                    if not rel:
                        continue
                    # label, source and video come from the folder the path resolves to
                    # (the test inline: a call per line would cost ~0.3 s per million lines)
                    if "/." in rel or "//" in rel or rel[0] == ".":
                        rel = normalized(rel)
                    if rel[0] == "." and leaves_root(rel):
                        problems(
                            "outside_root",
                            f"{list_file} line {lineno}",
                            f"{line.strip()!r} leaves root {root}",
                            "list the frame below root (or by its absolute path)",
                        )
                        continue
                    path = rel if rel[0] == "/" else prefix + rel
                    vdir, _, frame = path.rpartition("/")
                    if vdir != last_dir:
                        # once per video folder: source, video, label (lines come grouped by video)
                        last_dir = vdir
                        key = (s, vdir)
                        vid = video_of.get(key, -1)
                        if vid < 0:
                            parts = rel.rsplit("/", 3)
                            if len(parts) < 3 or not all(parts[-3:]):
                                vid = -2
                            else:
                                source, video = parts[-3], parts[-2]
                                dataset = parts[0].rsplit("/", 1)[-1] if len(parts) == 4 else ""
                                if source not in real_cache:
                                    real_cache[source] = is_real_name(source, reals)
                                vid = video_of[key] = len(v_label)
                                v_label.append(REAL if real_cache[source] else FAKE)
                                v_source.append(source)
                                v_short.append(f"{source}/{video}")
                                v_dataset.append(dataset)
                                v_split.append(s)
                        names = scanner.names(vdir) if check_files and vid >= 0 else None
                    if vid == -2:
                        problems(
                            "bad_line",
                            f"{list_file} line {lineno}",
                            f"{rel!r} is not <...>/<source>/<video>/<frame>, so its label and "
                            f"video cannot be derived",
                            "write the full path below root",
                        )
                        continue
                    if check_files and (names is None or frame not in names):
                        problems(
                            "missing_frame",
                            f"{list_file} line {lineno}",
                            f"frame {path} does not exist",
                            "check root (list paths are relative to it), correct the list, or "
                            "re-run the preprocessing",
                        )
                        continue
                    paths.append(path)
                    row_video.append(vid)
                    origin_file.append(file_no)
                    origin_line.append(lineno)
        keep = _drop_duplicates(paths, origin_file, origin_line, file_names, problems)
        if not paths or (keep is not None and not keep.any()):
            raise reading.empty_error(f"the lists {[f for s in splits for f in files[s]]}")
        # a <source>/<video> shared by two <dataset> folders would merge two videos: qualify all ids
        owners: dict[str, str] = {}
        clash = any(owners.setdefault(v, d) != d for v, d in zip(v_short, v_dataset, strict=True))
        ids = [f"{d}/{v}" for v, d in zip(v_short, v_dataset, strict=True)] if clash else v_short
        v_source_video = link_ff_sources(ids, v_label, v_split)
        rv = np.frombuffer(row_video, dtype=np.int64)
        if keep is not None:
            rv = rv[keep]
            paths[:] = [p for p, k in zip(paths, keep, strict=True) if k]
        return FrameIndex(
            name=name,
            paths=paths,
            labels=np.asarray(v_label, dtype=np.int64)[rv],
            video_ids=np.asarray(ids, dtype=object)[rv].tolist(),
            sources=np.asarray(v_source, dtype=object)[rv].tolist(),
            splits=np.asarray(v_split, dtype=object)[rv].tolist(),
            source_videos=np.asarray(v_source_video, dtype=object)[rv].tolist(),
        )

    inputs = [f for s in splits for f in files[s]]
    return Plan(build, inputs, f"the lists {inputs}")


def _drop_duplicates(
    paths: list[str],
    origin_file: array.array,
    origin_line: array.array,
    file_names: list[str],
    problems: Problems,
) -> np.ndarray | None:
    """Mask of rows to keep (None: no duplicates); each repeat of a path is a bad item."""
    if len(set(paths)) == len(paths):
        return None
    keep = np.ones(len(paths), dtype=bool)
    first: dict[str, int] = {}
    for i, p in enumerate(paths):
        j = first.setdefault(p, i)
        if j != i:
            problems(
                "duplicate",
                f"{file_names[origin_file[i]]} line {origin_line[i]}",
                f"frame {p} repeats {file_names[origin_file[j]]} line {origin_line[j]}",
                "remove the repeated line (a frame listed twice, or in two splits, would be "
                "counted twice or leak between splits)",
            )
            keep[i] = False
    return keep
