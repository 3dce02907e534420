"""The face pipeline that `dfd.preprocess` and `dfd.predict` share: frames -> aligned face crops.

One piece of code and one config (``conf/faces/``) decide which frames of a video are kept
(`sample_frame_indices`), which face of a frame is used (the largest, as DeepfakeBench), how it
is aligned (ArcFace template, DeepfakeBench's margin) and whether it survives re-detection in the
crop. `dfd.preprocess` writes the crops to disk for training and evaluation; `dfd.predict`
scores them directly, so a detector sees new inputs exactly as it saw its training frames.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from omegaconf import DictConfig, OmegaConf

from dfd.preprocess.alignment import align_face, transform_points
from dfd.preprocess.errors import UNREADABLE_VIDEO, InputItemError
from dfd.preprocess.faces import Face, FaceDetector, build_face_detector, by_size, largest_face
from dfd.preprocess.reading import FrameCountMismatch, open_frames
from dfd.preprocess.sampling import SAMPLING_MODES, sample_frame_indices

# why a frame (or one face of it) gives no crop; not errors: counted per video
DROP_NO_FACE = "no_face"
DROP_NO_FACE_IN_CROP = "no_face_in_crop"


@dataclass(frozen=True)
class FaceSettings:
    """Everything of ``conf/faces/`` except the detector.

    Attributes:
        mode, num_frames, stride: frame sampling (`sample_frame_indices`).
        size, scale: crop size and margin scale (`dfd.preprocess.alignment.arcface_template`).
        redetect: detect again in the aligned crop and drop the face if none is found there
            (DeepfakeBench); the landmarks found in the crop are the ones kept.
        image_extensions, video_extensions: file suffixes read as images / videos.
    """

    mode: str = "fixed_num_frames"
    num_frames: int = 32
    stride: int = 10
    size: int = 256
    scale: float = 1.3
    redetect: bool = True
    image_extensions: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp")
    video_extensions: tuple[str, ...] = (".mp4", ".avi", ".mov")

    @classmethod
    def from_config(cls, faces: DictConfig) -> FaceSettings:
        """Settings from the composed ``faces`` config, each value checked with a message naming its key."""
        if faces.frames.mode not in SAMPLING_MODES:
            raise ValueError(
                f"faces.frames.mode={faces.frames.mode!r} must be one of {SAMPLING_MODES}"
            )
        for key in ("frames.num_frames", "frames.stride", "align.size"):
            if int(OmegaConf.select(faces, key)) <= 0:
                raise ValueError(
                    f"faces.{key}={OmegaConf.select(faces, key)} must be a positive integer"
                )
        if float(faces.align.scale) < 1.0:
            raise ValueError(
                f"faces.align.scale={faces.align.scale} must be >= 1 (1.3 in DeepfakeBench)"
            )
        return cls(
            mode=faces.frames.mode,
            num_frames=int(faces.frames.num_frames),
            stride=int(faces.frames.stride),
            size=int(faces.align.size),
            scale=float(faces.align.scale),
            redetect=bool(faces.align.redetect),
            image_extensions=tuple(e.lower() for e in faces.image_extensions),
            video_extensions=tuple(e.lower() for e in faces.video_extensions),
        )


@dataclass(frozen=True)
class AlignedFace:
    """One face of a frame, aligned.

    Attributes:
        face: the detection in the frame's pixels (box, score, landmarks).
        rank: its place among the frame's detections by size, 0 = the largest (the one
            DeepfakeBench and dfd's training crops keep).
        crop: (size, size, 3) RGB uint8 aligned crop.
        landmarks: (5, 2) landmarks in crop pixels: re-detected in the crop with
            ``redetect``, else the frame's landmarks mapped into the crop.
    """

    face: Face
    rank: int
    crop: np.ndarray
    landmarks: np.ndarray


@dataclass(frozen=True)
class FrameFaces:
    """What the pipeline made of one frame: its aligned faces, or why there are none.

    `index` is the frame's index in the video, `position` its place among the sampled frames.

    `dropped` is `DROP_NO_FACE` / `DROP_NO_FACE_IN_CROP` when `faces` is empty; `error` is set
    instead for an image of an image folder that cannot be read.
    """

    index: int
    position: int = 0
    faces: tuple[AlignedFace, ...] = ()
    dropped: str | None = None
    error: InputItemError | None = None


@dataclass(frozen=True)
class SampledVideo:
    """A video's frame count, the frames sampled from it, and a note if its container lied."""

    total: int
    indices: np.ndarray
    note: str | None = None


class FacePipeline:
    """Sample frames, detect faces, align them: the geometry DeepfakeBench preprocessing uses.

    Without a detector (``detector=None``) the inputs are taken to be aligned crops already:
    each frame is its own single face, unchanged.
    """

    def __init__(self, detector: FaceDetector | None, settings: FaceSettings) -> None:
        self.detector = detector
        self.settings = settings

    @classmethod
    def from_config(cls, faces: DictConfig) -> FacePipeline:
        """Build the detector of ``faces.detector`` (a missing model fails here) and the settings."""
        settings = FaceSettings.from_config(faces)
        return cls(build_face_detector(detector_config(faces)), settings)

    def sample(self, total: int) -> np.ndarray:
        """Indices of the frames kept from a video of `total` frames."""
        s = self.settings
        return sample_frame_indices(total, s.mode, s.num_frames, s.stride)

    def align(
        self, rgb: np.ndarray, index: int = 0, position: int = 0, all_faces: bool = False
    ) -> FrameFaces:
        """The aligned faces of one RGB uint8 frame, largest first.

        With ``all_faces=False`` only the largest face is tried (DeepfakeBench: when it is lost
        in the crop, the frame is dropped; no smaller face takes its place). With ``True`` every
        detection is tried and each one lost is left out.
        """
        s = self.settings
        if self.detector is None:
            return FrameFaces(index, position, (_whole_frame(rgb),))
        found = by_size(self.detector.detect(rgb))
        if not found:
            return FrameFaces(index, position, dropped=DROP_NO_FACE)
        faces: list[AlignedFace] = []
        reasons: list[str] = []
        for rank, face in enumerate(found if all_faces else found[:1]):
            try:
                crop, matrix = align_face(rgb, face.landmarks, s.size, s.scale)
            except ValueError:  # degenerate landmarks (all on one point): not a usable face
                reasons.append(DROP_NO_FACE)
                continue
            if s.redetect:
                in_crop = largest_face(self.detector.detect(crop))
                if in_crop is None:
                    reasons.append(DROP_NO_FACE_IN_CROP)
                    continue
                landmarks = in_crop.landmarks
            else:
                landmarks = transform_points(face.landmarks, matrix)
            faces.append(AlignedFace(face, rank, crop, np.asarray(landmarks, dtype=np.float32)))
        if faces:
            return FrameFaces(index, position, tuple(faces))
        return FrameFaces(index, position, dropped=reasons[0])

    def video(
        self,
        path: Path,
        on_frame: Callable[[FrameFaces], None],
        on_restart: Callable[[], None],
        all_faces: bool = False,
    ) -> SampledVideo:
        """Run the pipeline over the sampled frames of a video file or image folder.

        Each sampled frame's result goes to `on_frame` as it is made (nothing is held in
        memory). A container that promises more frames than decode is sampled again over the
        frames that do: `on_restart` is called first, so the caller discards what it got.
        Raises `InputItemError` for an input that cannot be read at all.
        """
        reader = open_frames(path, self.settings.image_extensions)
        total = reader.num_frames if reader.num_frames is not None else reader.count()
        indices = self.sample(total)
        try:
            self._frames(reader, indices, on_frame, all_faces)
            return SampledVideo(total, indices)
        except FrameCountMismatch as mismatch:
            on_restart()
            total = reader.count()
            if total == 0:
                raise InputItemError(
                    str(path), UNREADABLE_VIDEO, "opens, but not a single frame decodes"
                ) from None
            indices = self.sample(total)
            self._frames(reader, indices, on_frame, all_faces)
            note = f"container reports {mismatch.reported} frames, {total} decode"
            return SampledVideo(total, indices, note)

    def _frames(self, reader, indices, on_frame, all_faces) -> None:
        for position, (frame_index, frame) in enumerate(reader.read(indices)):
            if isinstance(frame, InputItemError):
                on_frame(FrameFaces(frame_index, position, error=frame))
                continue
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            on_frame(self.align(rgb, frame_index, position, all_faces))


def _whole_frame(rgb: np.ndarray) -> AlignedFace:
    height, width = rgb.shape[:2]
    box = np.array([0.0, 0.0, float(width), float(height)])
    unknown = np.full((5, 2), np.nan, dtype=np.float32)  # a given crop comes without landmarks
    return AlignedFace(Face(box, 1.0, unknown), 0, rgb, unknown)


def detector_config(faces: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The ``faces.detector`` config as a plain dict (what worker processes are built from)."""
    if isinstance(faces, DictConfig):
        return OmegaConf.to_container(faces.detector, resolve=True)
    return dict(faces["detector"])
