"""Datasets in the Hugging Face `datasets` formats: a hub id, a local folder of parquet or image files, a saved dataset.

`load_dataset` reads a hub id (from the local hub cache when offline) or a local folder
(parquet, arrow, csv/json with a path column, or an ``imagefolder`` with an optional
``metadata.csv`` holding extra columns); `load_from_disk` reads a folder written by
``save_to_disk``. The columns are configurable: the image (an ``Image`` feature or a path
string), the label (0/1 ints, a ``ClassLabel`` or strings, through `label_map` or the
"contains real" rule), the video, the split (else the dataset's own splits), the source and
the source video of each fake.

How the frames reach `FrameDataset`, which reads image *files*: an image that is a file on
disk (an imagefolder, a path column) is indexed where it is; an image stored *inside* the
parquet/arrow data (bytes) is written once, unchanged, to
``<frames_dir>/<name>-<dataset fingerprint>/<split>/<row>.<ext>`` and that file is indexed.
The folder is keyed by the dataset's content fingerprint, so a changed dataset gets new
files and an unchanged one is not written again; the index cache records the folder, so
deleting it rebuilds the index.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from dfd.data.index import FAKE, REAL, FrameIndex
from dfd.data.readers._common import (
    DataError,
    Plan,
    Reading,
    abspath,
    is_real_name,
    reader,
    wanted_splits,
)

LOADERS = ("auto", "load_dataset", "load_from_disk")
# save_to_disk writes one of these; their fingerprints change whenever the data does
_SAVED_MARKERS = ("state.json", "dataset_dict.json")
_DATA_SUFFIXES = (".parquet", ".arrow", ".csv", ".json", ".jsonl", ".txt", ".tsv")
_MAGIC = ((b"\x89PNG", ".png"), (b"\xff\xd8", ".jpg"), (b"RIFF", ".webp"), (b"BM", ".bmp"))


def _looks_local(path: str) -> bool:
    return path.startswith(("/", ".", "~")) or os.path.exists(path)


def _local_inputs(folder: str) -> list[str]:
    """The files whose content defines a local dataset (images excepted: their folders' mtimes do)."""
    for marker in _SAVED_MARKERS:
        if os.path.isfile(f"{folder}/{marker}"):
            # a saved dataset: the state files carry the fingerprint of every shard
            return sorted(
                f"{d}/{f}" for d, _, files in os.walk(folder) for f in files if f in _SAVED_MARKERS
            )
    return sorted(
        f"{d}/{f}"
        for d, _, files in os.walk(folder)
        for f in files
        if f.lower().endswith(_DATA_SUFFIXES)
    )


def _scan_tree(reading: Reading, folder: str) -> None:
    # list every folder once through the scanner: its mtimes go with the cached index, so an
    # image added to or removed from an imagefolder rebuilds it
    stack = [folder]
    while stack:
        d = stack.pop()
        stack.extend(f"{d}/{s}" for s in reading.scanner.subdirs(d) or [])


@reader("hf")
def read_hf(
    path: str,
    name: str = "hf",
    split: str | Sequence[str] | None = "test",
    loader: str = "auto",
    config_name: str | None = None,
    data_files: str | Sequence[str] | Mapping[str, Any] | None = None,
    revision: str | None = None,
    load_kwargs: Mapping[str, Any] | None = None,
    image_column: str = "image",
    label_column: str = "label",
    video_column: str | None = "video",
    split_column: str | None = None,
    source_column: str | None = None,
    source_video_column: str | None = None,
    label_map: Mapping[str, int] | None = None,
    image_root: str | os.PathLike | None = None,
    frames_dir: str | os.PathLike | None = None,
    hf_cache_dir: str | os.PathLike | None = None,
) -> Plan:
    """Frames of a `datasets` dataset: the requested split(s), one row an image.

    `loader` ``auto`` uses `load_from_disk` for a folder written by ``save_to_disk`` and
    `load_dataset` otherwise (`config_name`, `data_files`, `revision`, `load_kwargs` and
    `hf_cache_dir` go to it). The valid splits are the dataset's (or the values of
    `split_column`); a saved single `Dataset` has none and is the one split `split` names.
    Labels: with `label_map` (name or value -> 0/1) every label is mapped through it, and
    one it lacks is a bad item; without, ints must be 0/1 and names (a ``ClassLabel``'s or
    strings) are real when they contain "real" in any case. Video ids are the
    `video_column` value, prefixed ``<source>/`` when `source_column` is set (without a
    video column every image is its own video, ``<split>/<row>``); `source_video_column`
    holds, for a fake, the `video_column` value of the real video it was made from. Path
    strings in the image column are relative to `image_root` (default: `path` when it is a
    folder); images stored as bytes are written under `frames_dir` (see the module doc).
    """
    if loader not in LOADERS:
        raise DataError(f"dataset {name!r}: loader must be one of {list(LOADERS)}, got {loader!r}")
    path = os.fspath(path)
    local = abspath(path) if _looks_local(path) else None
    if local is not None and not os.path.exists(local):
        raise DataError(
            f"dataset {name!r}: {local} does not exist [missing_root]. Fix: point path at a "
            f"folder of parquet/image files or one written by save_to_disk, or give a hub id"
        )
    saved = local is not None and any(os.path.isfile(f"{local}/{m}") for m in _SAVED_MARKERS)
    from_disk = loader == "load_from_disk" or (loader == "auto" and saved)
    labels = None if label_map is None else {str(k): int(v) for k, v in label_map.items()}
    bad = {k: v for k, v in (labels or {}).items() if v not in (REAL, FAKE)}
    if bad:
        raise DataError(
            f"dataset {name!r}: label_map values must be 0 (real) or 1 (fake), got {bad}"
        )
    base = image_root or (local if local and os.path.isdir(local) else None)
    inputs = _local_inputs(local) if local and os.path.isdir(local) else []

    def load() -> dict[str, Any]:
        import datasets

        try:
            if from_disk:
                data = datasets.load_from_disk(local or path)
            else:
                data = datasets.load_dataset(
                    local or path,
                    config_name,
                    data_files=data_files,
                    revision=revision,
                    cache_dir=hf_cache_dir,
                    **(load_kwargs or {}),
                )
        except (OSError, ValueError, datasets.exceptions.DatasetNotFoundError) as err:
            offline = (
                ""
                if local
                else (
                    " Offline, download it on a machine with internet (`hf download "
                    f"{path} --repo-type dataset --local-dir <folder>`) and set path=<folder>."
                )
            )
            raise DataError(
                f"dataset {name!r}: cannot load {local or path!r} with "
                f"{'load_from_disk' if from_disk else 'load_dataset'} "
                f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}).{offline}"
            ) from err
        if isinstance(data, datasets.DatasetDict):
            return dict(data)
        return {None: data}

    def build(reading: Reading) -> FrameIndex:
        parts = load()
        first = next(iter(parts.values()))
        columns = [
            image_column,
            label_column,
            video_column,
            split_column,
            source_column,
            source_video_column,
        ]
        for key, col in zip(
            (
                "image_column",
                "label_column",
                "video_column",
                "split_column",
                "source_column",
                "source_video_column",
            ),
            columns,
            strict=True,
        ):
            if col is not None and col not in first.column_names:
                raise DataError(
                    f"dataset {name!r}: {local or path} has no column {col!r} ({key}); its "
                    f"columns: {first.column_names}. Fix: set {key} to one of them"
                    + (" or null" if key != "image_column" and key != "label_column" else "")
                )
        if split_column is not None:
            present = sorted({str(s) for ds in parts.values() for s in ds[split_column]})
        elif None in parts:
            present = [split] if isinstance(split, str) else ["test"]
        else:
            present = sorted(parts)
        splits = wanted_splits(name, split, present)
        real_of: dict[tuple[str, str], set[str]] = {}
        links: list[tuple[int, str, str]] = []  # (index row, split, source video value)
        for part, ds in parts.items():
            for row, split_name, item in _rows(ds, columns, split_column, part, present):
                if split_name not in splits:
                    continue
                where = f"{local or path} [{part or split_name}] row {row}"
                label = _label(item[label_column], ds.features[label_column], labels)
                if label is None:
                    reading.problems(
                        "bad_label",
                        where,
                        f"label {item[label_column]!r} is not "
                        + (
                            f"in label_map {sorted(labels)}"
                            if labels is not None
                            else "0/1 or a name"
                        ),
                        "set label_map (e.g. {real: 0, fake: 1}) or correct the column",
                    )
                    continue
                frame = _frame_file(
                    item[image_column], ds, image_column, base, frames_dir, name, split_name, row
                )
                if frame is None:
                    reading.problems(
                        "missing_frame",
                        where,
                        f"image {item[image_column]!r} is neither a file nor stored bytes",
                        "set image_root to the folder its paths are relative to",
                    )
                    continue
                source = (
                    str(item[source_column])
                    if source_column
                    else ("real" if label == REAL else "fake")
                )
                video = str(item[video_column]) if video_column else f"{split_name}/{row:08d}"
                video_id = f"{source}/{video}" if source_column else video
                if label == REAL:
                    real_of.setdefault((split_name, video), set()).add(video_id)
                elif source_video_column and item[source_video_column]:
                    links.append((len(reading.rows), split_name, str(item[source_video_column])))
                reading.rows.add_paths([frame], label, video_id, source, split_name)
        for i, split_name, link in links:
            # the link names the real video by its video column; its id may carry a source
            found = real_of.get((split_name, link), set())
            if len(found) == 1:
                reading.rows.source_videos[i] = next(iter(found))
        for folder in {p.rpartition("/")[0] for p in reading.rows.paths}:
            if frames_dir is not None and folder.startswith(abspath(frames_dir) + "/"):
                reading.scanner.frames(folder)  # recorded: deleting the written frames rebuilds
        if local and os.path.isdir(local):
            _scan_tree(reading, local)
        return reading.index(local or path)

    return Plan(build, inputs, local or path)


def _rows(
    ds: Any,
    columns: Sequence[str | None],
    split_column: str | None,
    part: str | None,
    present: Sequence[str],
) -> Iterator[tuple[int, str, dict]]:
    """(row number, split, row) of one part, images undecoded; the split from `split_column` or the part."""
    import datasets

    wanted = [c for c in dict.fromkeys(columns) if c is not None]
    view = ds.select_columns(wanted)
    image = columns[0]
    if isinstance(view.features[image], datasets.Image):
        view = view.cast_column(image, datasets.Image(decode=False))
    row = 0
    for batch in view.iter(batch_size=1024):
        n = len(batch[image])
        for k in range(n):
            item = {c: batch[c][k] for c in wanted}
            split_name = str(item[split_column]) if split_column else (part or present[0])
            yield row, split_name, item
            row += 1


def _label(value: Any, feature: Any, labels: Mapping[str, int] | None) -> int | None:
    import datasets

    if isinstance(feature, datasets.ClassLabel) and isinstance(value, int):
        value = feature.int2str(value)
    if labels is not None:
        return labels.get(str(value))
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value in (REAL, FAKE) else None
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if text in ("0", "1"):
            return int(text)
        return REAL if is_real_name(text, None) else FAKE
    return None


def _frame_file(
    value: Any,
    ds: Any,
    column: str,
    base: str | os.PathLike | None,
    frames_dir: str | os.PathLike | None,
    name: str,
    split: str,
    row: int,
) -> str | None:
    """A file FrameDataset can open for one image cell: its own file, or its bytes written under `frames_dir`."""
    if isinstance(value, str):
        path = value if os.path.isabs(value) or base is None else f"{base}/{value}"
        return abspath(path) if os.path.isfile(path) else None
    if not isinstance(value, dict):
        return None
    if value.get("bytes") is None:
        path = value.get("path")
        if path and not os.path.isabs(path) and base is not None:
            path = f"{base}/{path}"
        return abspath(path) if path and os.path.isfile(path) else None
    if frames_dir is None:
        raise DataError(
            f"dataset {name!r}: column {column!r} stores its images inside the dataset, and "
            f"FrameDataset reads image files. Fix: set frames_dir (the dataset config sets "
            f"${{paths.cache_dir}}/hf_frames) so they are written there once"
        )
    data: bytes = value["bytes"]
    ext = os.path.splitext(value.get("path") or "")[1].lower()
    if not ext:
        ext = next((e for magic, e in _MAGIC if data.startswith(magic)), ".img")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    # the dataset's content fingerprint (datasets' own, stable across loads): a changed
    # dataset writes new files instead of overwriting frames a running job may be reading
    folder = f"{abspath(frames_dir)}/{safe}-{ds._fingerprint}/{split}"
    path = f"{folder}/{row:08d}{ext}"
    if not os.path.isfile(path):
        os.makedirs(folder, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    return path
