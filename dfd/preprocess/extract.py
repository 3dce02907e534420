"""Preprocessing one video: sample frames, keep the largest face, align, write crops."""

from __future__ import annotations

import shutil
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from dfd.preprocess.alignment import align_face, transform_points
from dfd.preprocess.errors import (
    INTERNAL_ERROR,
    NO_FACE,
    NO_FRAMES,
    UNREADABLE_VIDEO,
    InputItemError,
)
from dfd.preprocess.faces import FaceDetector, largest_face
from dfd.preprocess.inputs import VideoJob
from dfd.preprocess.reading import (
    FrameCountMismatch,
    ImageFolderReader,
    VideoFileReader,
    open_frames,
)
from dfd.preprocess.sampling import sample_frame_indices

# frame-level drop reasons (not errors: counted per video)
DROP_NO_FACE = "no_face"
DROP_NO_FACE_IN_CROP = "no_face_in_crop"


@dataclass(frozen=True)
class ExtractSettings:
    """Everything that decides what one video's output looks like.

    Attributes:
        mode, num_frames, stride: frame sampling (`sample_frame_indices`).
        size, scale: crop size and margin scale (`arcface_template`).
        redetect: detect again in the aligned crop, drop the frame if no face is found there
            and save the landmarks found in the crop (DeepfakeBench); otherwise save the
            frame's landmarks mapped into the crop.
        on_error: ``raise`` fails the video at its first unreadable image; ``skip`` drops it.
        image_extensions: file suffixes read from image folders.
    """

    mode: str = "fixed_num_frames"
    num_frames: int = 32
    stride: int = 10
    size: int = 256
    scale: float = 1.3
    redetect: bool = True
    on_error: str = "skip"
    image_extensions: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp")


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


def _extract_frames(
    reader: VideoFileReader | ImageFolderReader,
    indices: np.ndarray,
    detector: FaceDetector,
    settings: ExtractSettings,
    out: Path,
) -> tuple[Counter, Counter, int]:
    """Write ``NNN.png`` and ``NNN.npy`` under `out` for each sampled frame with a face.

    NNN is the frame's position among the sampled frames, so crops of one video line up
    across runs and detectors. Returns (drop counts, skipped-item counts, frames with a face).
    """
    position = {int(frame): pos for pos, frame in enumerate(indices)}
    dropped: Counter = Counter()
    skipped: Counter = Counter()
    with_face = 0
    (out / "frames").mkdir(parents=True)
    (out / "landmarks").mkdir(parents=True)
    for frame_index, frame in reader.read(indices):
        if isinstance(frame, InputItemError):
            if settings.on_error == "raise":
                raise frame
            skipped[frame.reason] += 1
            continue
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        face = largest_face(detector.detect(rgb))
        if face is None:
            dropped[DROP_NO_FACE] += 1
            continue
        with_face += 1
        try:
            crop, matrix = align_face(rgb, face.landmarks, settings.size, settings.scale)
        except ValueError:  # degenerate landmarks (all on one point): not a usable face
            dropped[DROP_NO_FACE] += 1
            continue
        if settings.redetect:
            in_crop = largest_face(detector.detect(crop))
            if in_crop is None:
                dropped[DROP_NO_FACE_IN_CROP] += 1
                continue
            landmarks = in_crop.landmarks
        else:
            landmarks = transform_points(face.landmarks, matrix)
        name = f"{position[frame_index]:03d}"
        if not cv2.imwrite(
            str(out / "frames" / f"{name}.png"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)
        ):
            raise OSError(f"could not write {out / 'frames' / name}.png")
        np.save(out / "landmarks" / f"{name}.npy", landmarks.astype(np.float32))
    return dropped, skipped, with_face


def _publish(work: Path, frames_dir: Path, landmarks_dir: Path) -> None:
    # landmarks first: the crop folder appearing is what marks the video as finished
    for src, dst in ((work / "landmarks", landmarks_dir), (work / "frames", frames_dir)):
        if dst.exists():
            shutil.rmtree(dst)
        dst.parent.mkdir(parents=True, exist_ok=True)
        src.rename(dst)


def process_video(
    job: VideoJob, detector: FaceDetector, settings: ExtractSettings, dirs: OutputDirs
) -> VideoResult:
    """Preprocess one video into ``<frames>/<source>/<video>/NNN.png`` (+ landmarks).

    Output is built in a work folder and renamed into place only when complete, so an
    interrupted run leaves no half-written video folder. Bad input never raises: it comes
    back as a ``failed`` result with a reason code and a message naming the file.
    """
    start = time.perf_counter()
    result = VideoResult(video_id=job.video_id, input=job.rel_path, status="failed")
    work = dirs.work / job.source / job.video
    frames_dir, landmarks_dir = dirs.final(job)
    shutil.rmtree(work, ignore_errors=True)
    try:
        reader = open_frames(Path(job.path), settings.image_extensions)
        total = reader.num_frames if reader.num_frames is not None else reader.count()
        indices = sample_frame_indices(total, settings.mode, settings.num_frames, settings.stride)
        try:
            dropped, skipped, with_face = _extract_frames(reader, indices, detector, settings, work)
        except FrameCountMismatch as mismatch:
            # the container lied about its length: sample again over what really decodes
            shutil.rmtree(work, ignore_errors=True)
            total = reader.count()
            if total == 0:
                raise InputItemError(
                    job.path, UNREADABLE_VIDEO, "opens, but not a single frame decodes"
                ) from None
            result.note = f"container reports {mismatch.reported} frames, {total} decode"
            indices = sample_frame_indices(
                total, settings.mode, settings.num_frames, settings.stride
            )
            dropped, skipped, with_face = _extract_frames(reader, indices, detector, settings, work)
        written = len(list((work / "frames").glob("*.png")))
        result.frames_total = total
        result.frames_sampled = len(indices)
        result.frames_with_face = with_face
        result.frames_written = written
        result.dropped = dict(dropped)
        result.skipped = dict(skipped)
        result.frame_indices = [int(i) for i in indices]
        readable = len(indices) - sum(skipped.values())
        if readable == 0:
            raise InputItemError(
                job.path, NO_FRAMES, f"none of its {len(indices)} sampled images can be read"
            )
        if written == 0:
            raise InputItemError(
                job.path,
                NO_FACE,
                f"no usable face in any of the {readable} readable sampled frames "
                f"(no face: {dropped[DROP_NO_FACE]}, "
                f"lost after alignment: {dropped[DROP_NO_FACE_IN_CROP]})",
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
