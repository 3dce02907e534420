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


VIDEO_NAMES = ("stem", "below_source")
# joins the folders below the source and the stem into one folder name (video_name=below_source)
BELOW_SOURCE_SEP = "__"


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


def video_name_of(folders: Sequence[str], source_part: int, stem: str, video_name: str) -> str:
    """The output folder name of a video whose source is ``folders[source_part]``.

    ``stem`` (default): the file's stem (or the image folder's name). ``below_source``: the
    folders between the source folder and the video, then the stem, joined by ``__``
    (FakeAVCeleb's ``RealVideo-RealAudio/African/men/id00076/00109.mp4`` with the category as
    source -> ``African__men__id00076__00109``): for releases whose file names repeat in
    sibling folders below the source. Readers of such releases build the same name with
    `below_source_name`.
    """
    if video_name == "stem":
        return stem
    position = source_part if source_part >= 0 else len(folders) + source_part
    return below_source_name([*folders[position + 1 :], stem])


def below_source_name(parts: Sequence[str]) -> str:
    """``video_name=below_source``'s folder name of a video from its path parts below the source."""
    return BELOW_SOURCE_SEP.join(parts)


def discover_videos(
    input_dir: Path,
    video_extensions: Sequence[str],
    image_extensions: Sequence[str],
    source_part: int = -1,
    source_rename: Mapping[str, str] | None = None,
    include: Sequence[str] | None = None,
    video_name: str = "stem",
) -> list[VideoJob]:
    """All video files and image folders under `input_dir`, sorted by relative path.

    A video file is any file with one of `video_extensions` (any case); an image folder is
    any folder that directly holds at least one file with one of `image_extensions`. Hidden
    files and folders are ignored. The source name is chosen by `source_of` and then renamed
    through `source_rename` (e.g. ``{youtube: real}``, since labels come from the source
    name). `include` keeps only inputs whose relative path matches one of its shell patterns
    (`fnmatch`, ``*`` also crosses folders: ``*/c23/*`` picks FF++'s c23 videos). The video
    folder is named by `video_name_of` (``stem`` or ``below_source``). Two inputs that would
    write to the same ``<source>/<video>`` are an error.
    """
    if video_name not in VIDEO_NAMES:
        raise ValueError(f"video_name={video_name!r} is not one of {list(VIDEO_NAMES)}")
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
            video = video_name_of(folders[:-1], source_part, root_path.name, video_name)
            jobs.append(
                VideoJob(str(root_path), rel_root.as_posix(), rename.get(source, source), video)
            )
        for name in visible:
            if Path(name).suffix.lower() in video_exts:
                source = source_of(folders, source_part, str(root_path / name))
                jobs.append(
                    VideoJob(
                        str(root_path / name),
                        (rel_root / name).as_posix(),
                        rename.get(source, source),
                        video_name_of(folders, source_part, Path(name).stem, video_name),
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
