"""Reading the sampled frames of one video file or image folder with OpenCV."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from dfd.preprocess.errors import (
    EMPTY_FILE,
    NO_FRAMES,
    UNREADABLE_IMAGE,
    UNREADABLE_VIDEO,
    InputItemError,
)


class FrameCountMismatch(Exception):
    """The container promised more frames than could be decoded (a truncated or odd file)."""

    def __init__(self, reported: int, decoded: int) -> None:
        super().__init__(f"container reports {reported} frames, only {decoded} decodable")
        self.reported = reported
        self.decoded = decoded


def _natural_key(name: str) -> list:
    # "2.png" before "10.png": frame folders are rarely zero-padded
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def check_not_empty(path: Path) -> None:
    """Raise `InputItemError` (empty_file) for a zero-byte file."""
    if path.stat().st_size == 0:
        raise InputItemError(str(path), EMPTY_FILE, "file is empty (0 bytes)")


class VideoFileReader:
    """Frames of a video file, decoded sequentially (seeking is frame-inexact in many codecs).

    `num_frames` is the container's frame count, or None when it reports none; `count()`
    decodes the whole video to count when that is needed.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        check_not_empty(path)
        capture = cv2.VideoCapture(str(path))
        try:
            if not capture.isOpened():
                raise InputItemError(
                    str(path),
                    UNREADABLE_VIDEO,
                    "OpenCV cannot open it as a video (corrupt, truncated or unsupported codec)",
                )
            reported = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        finally:
            capture.release()
        self.num_frames: int | None = reported if reported > 0 else None

    def count(self) -> int:
        """Number of frames that actually decode (reads the whole video)."""
        capture = cv2.VideoCapture(str(self.path))
        n = 0
        try:
            while capture.grab():
                n += 1
        finally:
            capture.release()
        return n

    def read(self, indices: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(frame_index, bgr)`` for the sorted `indices`.

        Raises `FrameCountMismatch` when the video ends before the last index (its frame
        count was wrong): the caller re-samples over the frames that do exist.
        """
        wanted = set(int(i) for i in indices)
        last = max(wanted, default=-1)
        capture = cv2.VideoCapture(str(self.path))
        try:
            index = 0
            while index <= last:
                # grab() demuxes and decodes; retrieve() (colour conversion) only when kept
                if not capture.grab():
                    raise FrameCountMismatch(self.num_frames or 0, index)
                if index in wanted:
                    ok, frame = capture.retrieve()
                    if not ok or frame is None:
                        raise FrameCountMismatch(self.num_frames or 0, index)
                    yield index, frame
                index += 1
        finally:
            capture.release()


class ImageFolderReader:
    """Frames of a folder of images (one video), in natural file-name order."""

    def __init__(self, path: Path, image_extensions: tuple[str, ...]) -> None:
        self.path = path
        exts = tuple(e.lower() for e in image_extensions)
        self.files = sorted(
            (p for p in path.iterdir() if p.is_file() and p.suffix.lower() in exts),
            key=lambda p: _natural_key(p.name),
        )
        if not self.files:
            raise InputItemError(str(path), NO_FRAMES, "image folder holds no images")
        self.num_frames: int | None = len(self.files)

    def count(self) -> int:
        """Number of image files."""
        return len(self.files)

    def read(self, indices: np.ndarray) -> Iterator[tuple[int, np.ndarray | InputItemError]]:
        """Yield ``(frame_index, bgr)``, or ``(frame_index, InputItemError)`` for a bad image."""
        for index in indices:
            file = self.files[int(index)]
            try:
                check_not_empty(file)
                image = cv2.imread(str(file), cv2.IMREAD_COLOR)
                if image is None:
                    raise InputItemError(
                        str(file), UNREADABLE_IMAGE, "OpenCV cannot decode it as an image"
                    )
            except InputItemError as err:
                # a zero-byte image is counted with the undecodable ones: one reason per frame
                yield int(index), InputItemError(err.path, UNREADABLE_IMAGE, err.detail)
                continue
            yield int(index), image


def open_frames(
    path: Path, image_extensions: tuple[str, ...]
) -> VideoFileReader | ImageFolderReader:
    """A reader for a video file or an image folder; raises `InputItemError` if unusable."""
    if path.is_dir():
        return ImageFolderReader(path, image_extensions)
    return VideoFileReader(path)
