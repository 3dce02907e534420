"""Preprocessing one video: run the face pipeline over its sampled frames, write the crops."""

from __future__ import annotations

import shutil
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from dfd.preprocess.errors import INTERNAL_ERROR, NO_FACE, NO_FRAMES, InputItemError
from dfd.preprocess.inputs import VideoJob
from dfd.preprocess.pipeline import DROP_NO_FACE, DROP_NO_FACE_IN_CROP, FacePipeline, FrameFaces


@dataclass(frozen=True)
class OutputDirs:
    """Where crops, landmarks and unfinished work go (all come from config)."""

    frames: Path  # <output_dir>/<dataset>
    landmarks: Path
    work: Path

    def final(self, job: VideoJob) -> tuple[Path, Path]:
        """The finished crop folder and landmark folder of `job`."""
        return self.frames / job.source / job.video, self.landmarks / job.source / job.video


@dataclass
class VideoResult:
    """What happened to one video; one entry of the manifest."""

    video_id: str
    input: str
    status: str  # done | failed
    reason: str | None = None
    message: str | None = None
    frames_total: int | None = None
    frames_sampled: int | None = None
    frames_with_face: int | None = None
    frames_written: int | None = None
    dropped: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    frame_indices: list[int] = field(default_factory=list)
    note: str | None = None
    seconds: float | None = None


class _CropWriter:
    """Writes ``NNN.png`` and ``NNN.npy`` under `out` for each sampled frame with a face.

    NNN is the frame's position among the sampled frames, so crops of one video line up
    across runs and detectors.
    """

    def __init__(self, out: Path, on_error: str) -> None:
        self.out = out
        self.on_error = on_error
        self.reset()

    def reset(self) -> None:
        shutil.rmtree(self.out, ignore_errors=True)
        (self.out / "frames").mkdir(parents=True)
        (self.out / "landmarks").mkdir(parents=True)
        self.dropped: Counter = Counter()
        self.skipped: Counter = Counter()
        self.with_face = 0

    def __call__(self, frame: FrameFaces) -> None:
        name = f"{frame.position:03d}"
        if frame.error is not None:
            if self.on_error == "raise":
                raise frame.error
            self.skipped[frame.error.reason] += 1
            return
        if frame.dropped != DROP_NO_FACE:
            self.with_face += 1  # a face was found, even if lost after alignment
        if not frame.faces:
            self.dropped[frame.dropped] += 1
            return
        face = frame.faces[0]
        path = self.out / "frames" / f"{name}.png"
        if not cv2.imwrite(str(path), cv2.cvtColor(face.crop, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {path}")
        np.save(self.out / "landmarks" / f"{name}.npy", face.landmarks.astype(np.float32))


def _publish(work: Path, frames_dir: Path, landmarks_dir: Path) -> None:
    # landmarks first: the crop folder appearing is what marks the video as finished
    for src, dst in ((work / "landmarks", landmarks_dir), (work / "frames", frames_dir)):
        if dst.exists():
            shutil.rmtree(dst)
        dst.parent.mkdir(parents=True, exist_ok=True)
        src.rename(dst)


def process_video(
    job: VideoJob, pipeline: FacePipeline, on_error: str, dirs: OutputDirs
) -> VideoResult:
    """Preprocess one video into ``<frames>/<source>/<video>/NNN.png`` (+ landmarks).

    Output is built in a work folder and renamed into place only when complete, so an
    interrupted run leaves no half-written video folder. Bad input never raises: it comes
    back as a ``failed`` result with a reason code and a message naming the file.
    ``on_error=raise`` fails the video at its first unreadable image; ``skip`` drops that image.
    """
    start = time.perf_counter()
    result = VideoResult(video_id=job.video_id, input=job.rel_path, status="failed")
    work = dirs.work / job.source / job.video
    frames_dir, landmarks_dir = dirs.final(job)
    try:
        writer = _CropWriter(work, on_error)
        video = pipeline.video(Path(job.path), writer, writer.reset)
        written = len(list((work / "frames").glob("*.png")))
        result.note = video.note
        result.frames_total = video.total
        result.frames_sampled = len(video.indices)
        result.frames_with_face = writer.with_face
        result.frames_written = written
        result.dropped = dict(writer.dropped)
        result.skipped = dict(writer.skipped)
        result.frame_indices = [int(i) for i in video.indices]
        readable = len(video.indices) - sum(writer.skipped.values())
        if readable == 0:
            raise InputItemError(
                job.path, NO_FRAMES, f"none of its {len(video.indices)} sampled images can be read"
            )
        if written == 0:
            raise InputItemError(
                job.path,
                NO_FACE,
                f"no usable face in any of the {readable} readable sampled frames "
                f"(no face: {writer.dropped[DROP_NO_FACE]}, "
                f"lost after alignment: {writer.dropped[DROP_NO_FACE_IN_CROP]})",
            )
        _publish(work, frames_dir, landmarks_dir)
        result.status = "done"
    except InputItemError as err:
        result.reason, result.message = err.reason, str(err)
    except Exception as err:  # one broken video must not end a long run
        result.reason = INTERNAL_ERROR
        result.message = f"{job.path}: {type(err).__name__}: {err}\n{traceback.format_exc()}"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if result.status == "failed":
        # leftovers of an earlier run (overwrite=true) must not outlive a failure
        for stale in (frames_dir, landmarks_dir):
            shutil.rmtree(stale, ignore_errors=True)
    result.seconds = round(time.perf_counter() - start, 3)
    return result
