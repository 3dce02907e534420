"""What an image must become to enter a backbone: resize, crop, resampling filter, mean and std.

The contract between the data pipeline (`dfd.data.frames` prepares frames by it) and the
models (each backbone reads it from its image processor). Both import it from here, so the
data package never imports the models.

The geometry is transformers' own, integer for integer, so that a frame of any shape gets
the pixels the backbone's image processor would give it:

- shortest edge + centre crop (CLIP, DINOv2's `BitImageProcessor`): the short edge is resized
  to `resize_to`, the long edge to ``int(resize_to * long / short)`` (truncated, as
  `transformers.image_transforms.get_resize_output_image_size`), then the centre
  `size` is cut at ``top = (h - crop_h) // 2``, ``left = (w - crop_w) // 2``
  (`image_transforms.center_crop`);
- ConvNeXt (`ConvNextImageProcessor.resize`): below 384 px the short edge goes to
  ``int(shortest_edge / crop_pct)`` and the centre ``shortest_edge`` square is cut; at 384 px
  and more the image is resized straight to the square;
- a ``{height, width}`` size (SigLIP): resized straight to it (aspect not kept), then the
  centre crop if the processor has one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# ConvNextImageProcessor's threshold: below it, resize to shortest_edge / crop_pct and crop
_CONVNEXT_CROP_BELOW = 384


@dataclass(frozen=True)
class InputSpec:
    """How images must be prepared for a backbone: its image processor's geometry and statistics.

    Attributes:
        size: (height, width) the backbone takes: the centre crop's size.
        resample: PIL resampling filter id (3 = bicubic, CLIP's choice).
        mean, std: per-channel normalization of [0, 1] RGB.
        resize_to: the resize before the crop. An int: the shortest edge becomes it and the
            long edge ``int(resize_to * long / short)`` (transformers' ``{"shortest_edge"}``
            rule); a (height, width) pair: resized straight to it. None (the default) is the
            shortest-edge rule at ``max(size)``: for a square `size`, CLIP's geometry.
    """

    size: tuple[int, int]
    resample: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize_to: int | tuple[int, int] | None = None

    def __post_init__(self) -> None:
        size = (int(self.size[0]), int(self.size[1]))
        object.__setattr__(self, "size", size)
        resize_to = self.resize_to
        if resize_to is None:
            resize_to = max(size)
        elif not isinstance(resize_to, int):
            resize_to = (int(resize_to[0]), int(resize_to[1]))
        object.__setattr__(self, "resize_to", resize_to)
        # transformers pads a crop larger than the resized image with zeros; no backbone
        # dfd knows does that, and it would feed the model black borders
        short = resize_to if isinstance(resize_to, int) else None
        if (short is not None and short < max(size)) or (
            short is None and (resize_to[0] < size[0] or resize_to[1] < size[1])
        ):
            raise ValueError(
                f"the image processor resizes to {resize_to} but crops {size}: a crop larger "
                f"than the resized image would be padded with zeros; set a size at least as "
                f"large as crop_size in the backbone's image_processor"
            )

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) an image of this shape is resized to before the centre crop."""
        if not isinstance(self.resize_to, int):
            return self.resize_to
        # transformers.image_transforms.get_resize_output_image_size(default_to_square=False)
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = self.resize_to, int(self.resize_to * long / short)
        return (new_long, new_short) if width <= height else (new_short, new_long)

    def geometry(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(resized height, resized width, crop top, crop left) for an image of this shape."""
        nh, nw = self.resized_size(height, width)
        th, tw = self.size
        return nh, nw, (nh - th) // 2, (nw - tw) // 2  # transformers' center_crop

    def to_json(self) -> dict[str, Any]:
        """The geometry as transformers names it: ``resize`` ({shortest_edge} or {height,
        width}) and ``crop`` ([height, width]); what an exported model's metadata carries."""
        resize = (
            {"shortest_edge": self.resize_to}
            if isinstance(self.resize_to, int)
            else {"height": self.resize_to[0], "width": self.resize_to[1]}
        )
        return {"resize": resize, "crop": list(self.size)}

    @classmethod
    def from_processor(cls, processor: Any) -> InputSpec:
        """Read the resize, crop, interpolation, mean and std from a transformers image processor
        (or `ProcessorFields`), by the rule of the processor's kind (see the module docstring)."""
        resize_to, size = _processor_geometry(processor)
        return cls(
            size=size,
            resample=int(getattr(processor, "resample", 3)),
            mean=tuple(float(v) for v in processor.image_mean),
            std=tuple(float(v) for v in processor.image_std),
            resize_to=resize_to,
        )


def _as_dict(value: Any) -> dict:
    """A processor's size / crop_size (a dict, transformers' SizeDict, an int or None) as a dict."""
    if value is None:
        return {}
    if isinstance(value, int):  # old configs: `size: 224` is a shortest edge
        return {"shortest_edge": value}
    if isinstance(value, Mapping):
        return {k: v for k, v in value.items() if v is not None}
    keys = ("height", "width", "shortest_edge", "longest_edge", "max_height", "max_width")
    return {k: getattr(value, k) for k in keys if getattr(value, k, None) is not None}


def _processor_kind(processor: Any) -> str:
    """The processor's class name without transformers' backend suffix (``CLIPImageProcessor``)."""
    name = getattr(processor, "image_processor_type", None) or type(processor).__name__
    for suffix in ("Pil", "Fast"):
        name = name.removesuffix(suffix)
    return name


def _processor_geometry(processor: Any) -> tuple[int | tuple[int, int], tuple[int, int]]:
    """(resize_to, crop size) of an image processor, by transformers' rule for its kind."""
    kind = _processor_kind(processor)
    size = _as_dict(getattr(processor, "size", None))
    crop = _as_dict(getattr(processor, "crop_size", None))
    center_crop = bool(getattr(processor, "do_center_crop", False))
    if set(size) - {"height", "width", "shortest_edge"}:
        raise ValueError(
            f"image processor {kind} resizes by {size}: dfd follows the shortest_edge and "
            f"height/width rules only; use a backbone whose processor has one of them"
        )
    crop_pct = getattr(processor, "crop_pct", None)
    if kind.startswith("ConvNext"):
        if center_crop or "shortest_edge" not in size:
            raise ValueError(
                f"image processor {kind} with size={size}, do_center_crop={center_crop}: dfd "
                f"follows ConvNextImageProcessor's own rule (size {{shortest_edge}}, crop_pct) only"
            )
        edge = int(size["shortest_edge"])
        if edge < _CONVNEXT_CROP_BELOW:
            # ConvNextImageProcessor.resize: int(shortest_edge / crop_pct), then the centre square
            return int(edge / float(crop_pct if crop_pct is not None else 224 / 256)), (edge, edge)
        return (edge, edge), (edge, edge)
    if crop_pct is not None:
        raise ValueError(
            f"image processor {kind} has crop_pct={crop_pct}, whose rule dfd knows only for "
            f"ConvNextImageProcessor; use a backbone with a shortest_edge or height/width size"
        )
    if "height" in size and "width" in size:
        resize_to: int | tuple[int, int] = (int(size["height"]), int(size["width"]))
    elif "shortest_edge" in size:
        resize_to = int(size["shortest_edge"])
    else:
        raise ValueError(f"cannot read the input size from image processor {kind} (size={size})")
    if center_crop:
        if not ("height" in crop and "width" in crop):
            raise ValueError(
                f"image processor {kind} centre-crops but has no crop_size {{height, width}}"
            )
        return resize_to, (int(crop["height"]), int(crop["width"]))
    if isinstance(resize_to, int):
        raise ValueError(
            f"image processor {kind} resizes the shortest edge to {resize_to} without a centre "
            f"crop, so its output size depends on the image; dfd needs a fixed input size"
        )
    return resize_to, resize_to


@dataclass
class ProcessorFields:
    """The fields of an image-processor config that `InputSpec` reads (for random backbones).

    `image_processor_type` names the processor class whose rule applies (e.g.
    ``ConvNextImageProcessor``, whose `crop_pct` sets the resize); without it the
    shortest-edge or height/width rule of `size` applies.
    """

    image_mean: Sequence[float]
    image_std: Sequence[float]
    resample: int = 3
    size: Mapping[str, int] | None = None
    crop_size: Mapping[str, int] | None = None
    do_center_crop: bool = False
    image_processor_type: str | None = None
    crop_pct: float | None = None
