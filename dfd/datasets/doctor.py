"""The data doctor: every dataset of a ``data=`` protocol, read through its reader and the index cache.

For each dataset the protocol names (``data.train``, ``data.val``, every ``data.test`` target,
every ``data.heldout`` set) it reads the index as training would (the same reader call, the
same cache), with bad items counted by reason instead of stopping at the first. A dataset
whose frame folder or list/label file does not exist is *missing*; one whose reader fails for
another reason, or that yields no frame, is *unusable*. Each missing or unusable dataset gets
the command(s) that make it, from its config's ``preprocess`` key (the ``conf/dataset`` file's
command, resolved against ``paths.data_dir``); a command shared by several datasets is printed
once. For the datasets found, the crops' face pipeline (`dfd.data.provenance`, from the
``dfd.preprocess`` manifest beside the crops) is compared with the training set's.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from omegaconf import DictConfig, OmegaConf

from dfd.data.index import FAKE, REAL, FrameIndex
from dfd.data.provenance import UNKNOWN, dataset_provenance
from dfd.data.splits import read_dataset
from dfd.runtime.errors import UserError

ROLES = ("train", "val", "test", "heldout")
# reader errors that mean "not made yet": a frame root or a list/label file that does not exist
_MISSING = re.compile(r"(\S+) does not exist.*\[(missing_root|missing_file)\]")
_PIPELINE_KEYS = ("pipeline", "detector", "landmarks", "crop")


@dataclass
class Entry:
    """One dataset of the protocol and what reading it gave."""

    role: str
    key: str
    spec: DictConfig
    index: FrameIndex | None = None
    status: str = "found"  # found | missing | unusable
    detail: str = ""
    commands: list[str] = field(default_factory=list)
    provenance: dict[str, str] = field(default_factory=dict)


def protocol_entries(data: DictConfig) -> Iterator[Entry]:
    """The protocol's datasets in reading order: train, val, targets, held-out sets."""
    yield Entry("train", _name(data.train, "train"), data.train)
    yield Entry("val", _name(data.val, "val"), data.val)
    for key, spec in (data.get("test") or {}).items():
        yield Entry("test", str(key), spec)
    for key, spec in (data.get("heldout") or {}).items():
        yield Entry("heldout", str(key), spec)


def _name(spec: DictConfig, default: str) -> str:
    """The dataset name a spec gives its index (that of the reader call it wraps), else `default`."""
    node: object = spec
    while isinstance(node, DictConfig):
        if node.get("name"):
            return str(node.name)
        node = node.get("index")
    return default


def preprocess_commands(spec: DictConfig) -> list[str]:
    """The ``preprocess`` command(s) of a dataset spec (or of the reader call it wraps), resolved."""
    node: object = spec
    while isinstance(node, DictConfig):
        if "preprocess" in node and node.preprocess is not None:
            value = OmegaConf.to_container(node, resolve=True)["preprocess"]  # type: ignore[index]
            return [value] if isinstance(value, str) else [str(v) for v in value]
        node = node.get("index")
    return []


def read_entry(entry: Entry) -> None:
    """Read one dataset's index; record it, or why it is missing or unusable."""
    entry.commands = preprocess_commands(entry.spec)
    try:
        entry.index = read_dataset(
            entry.spec,
            f"data.{entry.role}" + (f".{entry.key}" if entry.role in ("test", "heldout") else ""),
        )
    except (ValueError, OSError) as err:
        message = str(err).splitlines()[0]
        missing = _MISSING.search(message)
        entry.status = "missing" if missing else "unusable"
        entry.detail = f"no {missing.group(1)}" if missing else message


def label_counts(index: FrameIndex) -> dict[int, tuple[int, int]]:
    """{label: (videos, frames)}."""
    frames = Counter(index.labels.tolist())
    videos = Counter(index.video_labels().values())
    return {y: (videos[y], frames[y]) for y in (REAL, FAKE)}


def source_counts(index: FrameIndex) -> dict[str, tuple[int, int, int]]:
    """{source: (label, videos, frames)} in first-seen order (a source holding both labels shows the first)."""
    videos: dict[str, set[str]] = {}
    frames: Counter[str] = Counter()
    label: dict[str, int] = {}
    for source, video, y in zip(index.sources, index.video_ids, index.labels.tolist(), strict=True):
        videos.setdefault(source, set()).add(video)
        frames[source] += 1
        label.setdefault(source, y)
    return {s: (label[s], len(v), frames[s]) for s, v in videos.items()}


def pipeline_note(prov: Mapping[str, str], ref: Mapping[str, str] | None) -> str:
    """How a dataset's crops compare with the training set's (`ref`; None: this is the training
    set, or it was not found): same pipeline, which keys differ, or unknown."""
    if prov is ref:
        if prov.get("pipeline") == UNKNOWN:
            return "crops: no dfd.preprocess manifest"
        return f"crops: dfd.preprocess, {prov.get('detector')}, {prov.get('crop')}"
    if ref is None:
        return "crops: train not found"
    if prov.get("pipeline") == UNKNOWN or ref.get("pipeline") == UNKNOWN:
        return "crops: no dfd.preprocess manifest" + (
            "" if prov.get("pipeline") == UNKNOWN else " for train"
        )
    diff = [k for k in _PIPELINE_KEYS if prov.get(k) != ref.get(k)]
    if not diff:
        return "crops: same pipeline as train"
    return (
        "crops: differ from train ("
        + ", ".join(f"{k} {prov.get(k)} vs {ref.get(k)}" for k in diff)
        + ")"
    )


def _vf(videos: int, frames: int) -> str:
    return f"{videos}v/{frames}f"


def format_report(
    entries: list[Entry], protocol: str, data_dir: str, sources_shown: int | None
) -> list[str]:
    """The lines the doctor prints (see the module docstring)."""
    commands: dict[str, int] = {}
    for e in entries:
        if e.status != "found":
            for c in e.commands:
                commands.setdefault(c, len(commands) + 1)
    width = max(len(e.key) for e in entries)
    train = entries[0]
    reference = train.provenance if train.status == "found" else None
    lines = [
        f"data={protocol}  paths.data_dir={data_dir}: {len(entries)} datasets"
        + ("; [n] = the command that makes a missing one" if commands else "")
    ]
    for e in entries:
        head = f"{e.role:<8}{e.key:<{width + 2}}{e.status:<9}"
        if e.status != "found":
            refs = ",".join(str(commands[c]) for c in e.commands)
            make = f"  make: [{refs}]" if refs else "  (no command in its config)"
            lines.append(f"{head}{e.detail}{make}")
            continue
        assert e.index is not None
        counts = label_counts(e.index)
        problems = ", ".join(f"{r} {n}" for r, n in e.index.skipped.items()) or "none"
        lines.append(
            f"{head}real {_vf(*counts[REAL])}  fake {_vf(*counts[FAKE])}  "
            f"skipped: {problems}  {pipeline_note(e.provenance, reference)}"
        )
        sources = list(source_counts(e.index).items())
        shown = sources if sources_shown is None else sources[:sources_shown]
        groups = []
        for label, word in ((REAL, "real"), (FAKE, "fake")):
            parts = [f"{s} {_vf(v, f)}" for s, (y, v, f) in shown if y == label]
            if parts:
                groups.append(f"{word}: " + ", ".join(parts))
        more = f"; +{len(sources) - len(shown)} more" if len(shown) < len(sources) else ""
        lines.append(f"{'':<8}  sources {'; '.join(groups)}{more}")
    lines += [f"[{n}] {c}" for c, n in commands.items()]
    return lines


def check_protocol(data: DictConfig, on_error: str = "skip") -> list[Entry]:
    """Read every dataset of the protocol `data` (bad items counted, not raised, with ``skip``)."""
    data.on_error = on_error
    entries = list(protocol_entries(data))
    readers = logging.getLogger("dfd.data")
    level = readers.level
    readers.setLevel(
        logging.ERROR
    )  # skipped items are counted in the report, not logged one by one
    try:
        for entry in entries:
            read_entry(entry)
            if entry.index is not None and entry.key == entry.role:
                entry.key = entry.index.name  # train/val specs without a name: the index's
            if entry.index is not None:
                if not len(entry.index):
                    entry.status, entry.detail = "unusable", "no frames"
                entry.provenance = dataset_provenance(entry.index)
    finally:
        readers.setLevel(level)
    return entries


def run_doctor(cfg: DictConfig) -> list[Entry]:
    """Check ``cfg.data`` and print the report; a missing or unusable dataset is a `UserError` (exit 1)."""
    if cfg.on_error not in ("skip", "raise"):
        raise UserError(f"on_error={cfg.on_error!r} must be skip or raise")
    sources_shown = cfg.sources_shown
    if sources_shown is not None and (not isinstance(sources_shown, int) or sources_shown < 1):
        raise UserError(f"sources_shown={sources_shown!r} must be a positive number or null")
    entries = check_protocol(cfg.data, str(cfg.on_error))
    name = str(cfg.data.get("name", "?"))
    for line in format_report(entries, name, str(cfg.paths.data_dir), sources_shown):
        print(line)
    bad = [e for e in entries if e.status != "found"]
    if bad:
        missing = sum(e.status == "missing" for e in bad)
        raise UserError(
            f"{len(bad)} of {len(entries)} datasets of data={name} are not usable ({missing} "
            f"missing, {len(bad) - missing} unusable): make them with the commands above, or fix "
            f"what their rows name"
        )
    print(f"all {len(entries)} datasets of data={name} found")
    return entries
