"""Errors about one input item (a video, an image), each naming the file and a reason code."""

from __future__ import annotations

from dfd.runtime.errors import UserError

# Reason codes: the keys of the manifest's `skipped` counts.
EMPTY_FILE = "empty_file"  # zero bytes
UNREADABLE_VIDEO = "unreadable_video"  # OpenCV cannot open it or decode any frame
UNREADABLE_IMAGE = "unreadable_image"  # an image of an image folder cannot be decoded
NO_FRAMES = "no_frames"  # an image folder with no readable image
NO_FACE = "no_face"  # no usable face in any sampled frame
INTERNAL_ERROR = "internal_error"  # an unexpected exception (a bug, or a library crash)


class InputItemError(Exception):
    """A bad input item: `path` could not be used because of `reason` (a code above)."""

    def __init__(self, path: str, reason: str, detail: str) -> None:
        super().__init__(f"{path}: {detail} [{reason}]")
        self.path = path
        self.reason = reason
        self.detail = detail

    def __reduce__(self):  # keeps the three fields when sent between processes
        return (type(self), (self.path, self.reason, self.detail))


class PreprocessError(UserError):
    """Raised under ``on_error=raise`` with the first bad item's message, or when no video
    of the input gave a crop."""
