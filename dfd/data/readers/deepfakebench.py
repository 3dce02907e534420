"""DeepfakeBench dataset JSONs (what its rearrange step writes), FF++'s compression level included.

Format::

    {"<DatasetName>": {"<label_key>": {"train" | "val" | "test": {
        "<video>": {"label": "<label_key>", "frames": ["<path>/000.png", ...]}}}}}

FF++ puts the compression between split and video:
``["FaceForensics++"]["FF-DF"]["train"]["c23"]["000_003"]``. A label key maps to 0/1 through
`label_dict` (DeepfakeBench's config); without one, a key containing "real" in any case
is real (FF-real, DFD_real, DFDCP_Real...) and every other key fake. Frame paths are
relative to `root` (DeepfakeBench's ``rgb_dir``) unless absolute; Windows separators
are accepted, and `strip_prefix` removes a machine-specific prefix first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from dfd.data.index import FAKE, REAL, FrameIndex
from dfd.data.readers._common import (
    DataError,
    Plan,
    Reading,
    load_json,
    reader,
    require_file,
    wanted_splits,
)


def _is_video(node: object) -> bool:
    return isinstance(node, dict) and "frames" in node


@reader("deepfakebench")
def read_deepfakebench(
    json_path: str | os.PathLike,
    root: str | os.PathLike,
    name: str = "deepfakebench",
    split: str | Sequence[str] | None = "test",
    dataset: str | None = None,
    label_keys: Sequence[str] | None = None,
    compression: str = "c23",
    label_dict: Mapping[str, int] | None = None,
    strip_prefix: str | None = None,
    check_files: bool = True,
) -> Plan:
    """Frames of one DeepfakeBench JSON: the chosen dataset, label keys and split(s).

    `dataset` picks the top-level key (optional when there is only one); `label_keys`
    restricts the label keys (e.g. ``[FF-real, FF-DF]`` for a per-manipulation set; default
    all); `compression` picks FF++'s level where the JSON has one. The valid splits are
    those present under the chosen label keys. A video's label is its ``label`` field (else
    its label key) mapped through `label_dict`; a key absent from a given `label_dict` is a
    bad item, as is a video without frames and, with `check_files`, a frame path that
    does not exist (checked with one directory listing per video folder, not a stat per
    frame). Video ids are ``<label_key>/<video>`` (``FF-DF/000_003``); a fake in FF++
    naming gets its real video as source (``FF-real/000``, `link_ff_sources`).
    """
    labels_map = None if label_dict is None else {k: int(v) for k, v in label_dict.items()}
    bad_values = {k: v for k, v in (labels_map or {}).items() if v not in (REAL, FAKE)}
    if bad_values:
        raise DataError(
            f"dataset {name!r}: label_dict values must be 0 (real) or 1 (fake), got {bad_values}"
        )
    keys = None if label_keys is None else list(label_keys)
    requested = split

    def label_of(key: str) -> int | None:
        if labels_map is None:
            return REAL if "real" in key.lower() else FAKE
        return labels_map.get(key)

    def build(reading: Reading) -> FrameIndex:
        require_file(name, json_path, "DeepfakeBench dataset JSON", "json_path")
        data = load_json(
            name,
            json_path,
            dict,
            "{dataset: {label_key: ...}}",
            "regenerate it with DeepfakeBench's rearrange step",
        )
        if not data:
            raise DataError(
                f"dataset {name!r}: {json_path}: expected {{dataset: {{label_key: ...}}}}"
            )
        if dataset is None and len(data) > 1:
            raise DataError(
                f"dataset {name!r}: {json_path} holds datasets {sorted(data)}. "
                f"Fix: set dataset to one of them"
            )
        ds = dataset if dataset is not None else next(iter(data))
        if ds not in data:
            raise DataError(
                f"dataset {name!r}: {json_path} has no dataset {ds!r}; it has {sorted(data)}. "
                f"Fix: set dataset to one of them"
            )
        tree = data[ds]
        if not isinstance(tree, dict) or not all(isinstance(v, dict) for v in tree.values()):
            raise DataError(
                f"dataset {name!r}: {json_path} [{ds!r}]: expected {{label_key: {{split: ...}}}}. "
                f"Fix: regenerate it with DeepfakeBench's rearrange step"
            )
        chosen = list(tree) if keys is None else keys
        missing = [k for k in chosen if k not in tree]
        if missing:
            raise DataError(
                f"dataset {name!r}: {json_path} [{ds!r}] has no label key(s) {missing}; "
                f"it has {sorted(tree)}. Fix: correct label_keys"
            )
        present = sorted({s for k in chosen for s in tree[k]})
        splits = wanted_splits(name, requested, present)

        problems, scanner = reading.problems, reading.scanner
        prefix = None if strip_prefix is None else strip_prefix.replace("\\", "/")
        for key in chosen:
            for s in splits:
                node = tree[key].get(s) or {}
                if not isinstance(node, dict):
                    raise DataError(
                        f"dataset {name!r}: {json_path} [{ds!r}][{key!r}][{s!r}]: expected an "
                        f"object of videos. Fix: regenerate it with DeepfakeBench's rearrange step"
                    )
                where_split = f"{json_path} [{ds!r}][{key!r}][{s!r}]"
                if node and not any(_is_video(v) for v in node.values()):
                    # FF++: one more level, the compression, between split and video
                    if compression not in node:
                        raise DataError(
                            f"dataset {name!r}: {where_split} has compression levels {sorted(node)}, "
                            f"not {compression!r}. Fix: set compression to one of them"
                        )
                    node = node[compression]
                    where_split += f"[{compression!r}]"
                for video, info in node.items():
                    where = f"{where_split}[{video!r}]"
                    if (
                        not _is_video(info)
                        or not isinstance(info["frames"], list)
                        or not info["frames"]
                    ):
                        problems(
                            "no_frames",
                            where,
                            "video has no frames list",
                            "regenerate the JSON from the preprocessed frames",
                        )
                        continue
                    raw = info.get("label", key)
                    label = label_of(raw) if isinstance(raw, str) else None
                    if label is None:
                        problems(
                            "bad_label",
                            where,
                            f"label {raw!r} is not in label_dict {sorted(labels_map or {})}",
                            "add it to label_dict (0 real / 1 fake)",
                        )
                        continue
                    frames = []
                    for i, frame in enumerate(info["frames"]):
                        p = str(frame).replace("\\", "/")
                        if prefix and p.startswith(prefix):
                            p = p[len(prefix) :].lstrip("/")
                        p = reading.entry_path(root, p, f"{where} frame {i}")
                        if p is None:
                            continue
                        if check_files:
                            folder, _, fname = p.rpartition("/")
                            names = scanner.names(folder)
                            if names is None or fname not in names:
                                problems(
                                    "missing_frame",
                                    f"{where} frame {i}",
                                    f"frame {p} does not exist",
                                    "check root/strip_prefix (frame paths are relative to root) "
                                    "or re-run the preprocessing",
                                )
                                continue
                        frames.append(p)
                    reading.add_video(
                        frames,
                        label=label,
                        video_id=f"{key}/{video}",
                        source=key,
                        split=s,
                        where=where,
                    )
        reading.link_ff_sources()
        return reading.index(f"{json_path} label keys {chosen}")

    return Plan(build, [json_path], json_path)
