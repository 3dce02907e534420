"""Which frames of a video to keep: DeepfakeBench's two sampling modes."""

from __future__ import annotations

import numpy as np

SAMPLING_MODES = ("fixed_num_frames", "fixed_stride")


def sample_frame_indices(
    num_total: int, mode: str = "fixed_num_frames", num_frames: int = 32, stride: int = 10
) -> np.ndarray:
    """Sorted, unique indices of the frames to keep from a video of `num_total` frames.

    DeepfakeBench (`preprocessing/preprocess.py`): ``fixed_num_frames`` takes
    ``np.linspace(0, num_total - 1, num_frames, dtype=int)`` -- evenly spaced over the whole
    video, first and last frame included, fractional positions floored; ``fixed_stride`` takes
    every `stride`-th frame from 0. A video shorter than `num_frames` yields each frame once.
    """
    if num_total <= 0:
        return np.zeros(0, dtype=np.int64)
    if mode == "fixed_num_frames":
        if num_frames <= 0:
            raise ValueError(f"frames.num_frames must be positive, got {num_frames}")
        indices = np.linspace(0, num_total - 1, num_frames, endpoint=True, dtype=int)
        return np.unique(indices).astype(np.int64)
    if mode == "fixed_stride":
        if stride <= 0:
            raise ValueError(f"frames.stride must be positive, got {stride}")
        return np.arange(0, num_total, stride, dtype=np.int64)
    raise ValueError(f"frames.mode={mode!r} is not one of {SAMPLING_MODES}")
