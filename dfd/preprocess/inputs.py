"""Finding the videos under an input folder and naming each one `<source>/<video>`."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class VideoJob:
    """One video to preprocess: a video file or a folder of images.

    Attributes:
        path: absolute path of the file or folder.
        rel_path: its path relative to the input folder (as recorded in the manifest).
        source: output folder of its source or manipulation (``DF``, ``real``...).
        video: output folder of the video (file name without extension, or folder name).
    """

    path: str
    rel_path: str
    source: str
    video: str

    @property
    def video_id(self) -> str:
        """``<source>/<video>``, unique within a dataset (FF++ reuses video names per source)."""
        return f"{self.source}/{self.video}"


def source_of(folders: Sequence[str], source_part: int, where: str) -> str:
    """Pick the source name among `folders` (input folder's name first, video's parent last).

    ``source_part=-1`` (default) is the video's parent folder; 1 the first folder under the
    input folder; 0 the input folder's own name.
    """
    try:
        return folders[source_part]
    except IndexError:
        raise ValueError(
            f"source_part={source_part} does not exist for {where} (its folders from the input "
            f"folder down are {list(folders)}); pick an index into that list"
        ) from None


def discover_videos(
    input_dir: Path,
    video_extensions: Sequence[str],
    image_extensions: Sequence[str],
    source_part: int = -1,
    source_rename: Mapping[str, str] | None = None,
    include: Sequence[str] | None = None,
) -> list[VideoJob]:
    """All video files and image folders under `input_dir`, sorted by relative path.

    A video file is any file with one of `video_extensions` (any case); an image folder is
    any folder that directly holds at least one file with one of `image_extensions`. Hidden
    files and folders are ignored. The source name is chosen by `source_of` and then renamed
    through `source_rename` (e.g. ``{youtube: real}``, since labels come from the source
    name). `include` keeps only inputs whose relative path matches one of its shell patterns
    (`fnmatch`, ``*`` also crosses folders: ``*/c23/*`` picks FF++'s c23 videos). Two inputs
    that would write to the same ``<source>/<video>`` are an error.
    """
    video_exts = {e.lower() for e in video_extensions}
    image_exts = {e.lower() for e in image_extensions}
    rename = dict(source_rename or {})
    jobs: list[VideoJob] = []
    for root, dirs, files in os.walk(input_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        root_path = Path(root)
        rel_root = root_path.relative_to(input_dir)
        folders = [input_dir.name, *rel_root.parts]
        visible = sorted(f for f in files if not f.startswith("."))
        if any(Path(f).suffix.lower() in image_exts for f in visible):
            if root_path == input_dir:
                raise ValueError(
                    f"input_dir={input_dir} holds images directly; point input_dir at the folder "
                    "above the image folders (one folder of images = one video)"
                )
            source = source_of(folders[:-1], source_part, str(root_path))
            jobs.append(
                VideoJob(
                    str(root_path), rel_root.as_posix(), rename.get(source, source), root_path.name
                )
            )
        for name in visible:
            if Path(name).suffix.lower() in video_exts:
                source = source_of(folders, source_part, str(root_path / name))
                jobs.append(
                    VideoJob(
                        str(root_path / name),
                        (rel_root / name).as_posix(),
                        rename.get(source, source),
                        Path(name).stem,
                    )
                )
    if include:
        jobs = [j for j in jobs if any(fnmatch.fnmatchcase(j.rel_path, p) for p in include)]
    jobs.sort(key=lambda j: j.rel_path)
    _check_unique(jobs)
    return jobs


def _check_unique(jobs: list[VideoJob]) -> None:
    seen: dict[str, str] = {}
    clashes = []
    for job in jobs:
        if job.video_id in seen:
            clashes.append(f"{seen[job.video_id]} and {job.rel_path} -> {job.video_id}")
        else:
            seen[job.video_id] = job.rel_path
    if clashes:
        raise ValueError(
            f"{len(clashes)} inputs would write to the same <source>/<video> folder, e.g. "
            + "; ".join(clashes[:3])
            + ". Choose another source_part, rename sources with source_rename, or preprocess "
            "these folders as separate datasets"
        )
