"""What an image must become to enter a backbone: size, resampling filter, mean and std.

The contract between the data pipeline (`dfd.data.frames` prepares frames by it) and the
models (each backbone reads it from its image processor). Both import it from here, so the
data package never imports the models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class InputSpec:
    """How images must be prepared for a backbone: its image processor's geometry and statistics.

    Attributes:
        size: (height, width) the backbone expects.
        resample: PIL resampling filter id (3 = bicubic, CLIP's choice).
        mean, std: per-channel normalization of [0, 1] RGB.
    """

    size: tuple[int, int]
    resample: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def from_processor(cls, processor: Any) -> InputSpec:
        """Read the target size, interpolation, mean and std from a transformers image processor."""
        size = _processor_size(processor)
        return cls(
            size=size,
            resample=int(getattr(processor, "resample", 3)),
            mean=tuple(float(v) for v in processor.image_mean),
            std=tuple(float(v) for v in processor.image_std),
        )


def _processor_size(processor: Any) -> tuple[int, int]:
    def as_dict(value: Any) -> dict:
        if value is None:
            return {}
        if isinstance(value, Mapping):
            return dict(value)
        return {
            k: getattr(value, k) for k in ("height", "width", "shortest_edge") if hasattr(value, k)
        }

    # CLIP resizes the shortest edge then centre-crops; for the square face crops dfd feeds
    # it, that equals a resize to the crop size, which is what the model was trained on.
    candidates = []
    if getattr(processor, "do_center_crop", False):
        candidates.append(as_dict(getattr(processor, "crop_size", None)))
    candidates.append(as_dict(getattr(processor, "size", None)))
    for d in candidates:
        if d.get("height") and d.get("width"):
            return int(d["height"]), int(d["width"])
        if d.get("shortest_edge"):
            return int(d["shortest_edge"]), int(d["shortest_edge"])
    raise ValueError(f"cannot read the input size from image processor {type(processor).__name__}")


@dataclass
class ProcessorFields:
    """The fields of an image-processor config that `InputSpec` reads (for random backbones)."""

    image_mean: Sequence[float]
    image_std: Sequence[float]
    resample: int = 3
    size: Mapping[str, int] | None = None
    crop_size: Mapping[str, int] | None = None
    do_center_crop: bool = False
    image_processor_type: str | None = None
