"""The demo's datasets: one training domain and targets with manipulations it never shows.

Each recipe says how the fake videos of one dataset are made from real ones. The source
domain only ever shows soft-edged inner-face blends on uncompressed frames; every target
changes one thing the detector has to generalise over: the region (mouth), the seam (hard
edge), where the pasted face comes from (another identity) or the post-processing (JPEG).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

SOURCE = "source"
REAL = "real"


@dataclass(frozen=True)
class Recipe:
    """How one demo dataset is made.

    Attributes:
        name: dataset name (``source``, ``mouth``...), the first folder of its frames.
        manipulation: name of its fakes' source folder and ``source`` column.
        region: blended region: ``inner``, ``mouth``, ``face`` (see `manipulate.REGIONS`)
            or ``eye_band`` (hard-edged band across the eyes).
        mask_sigma: range of the mask's Gaussian blur in pixels, drawn once per video;
            ``(0, 0)`` keeps a hard edge.
        donor: ``self`` blends a modified copy of the frame, ``other`` pastes the face of
            the next identity of the dataset drawn at this frame's pose (a swap).
        jpeg_quality: JPEG quality applied to every frame, real and fake alike, or None.
        description: one sentence for logs and the README.
    """

    name: str
    manipulation: str
    region: str
    mask_sigma: tuple[float, float]
    donor: str = "self"
    jpeg_quality: int | None = None
    description: str = ""

    def splits(self) -> tuple[str, ...]:
        """Splits this dataset holds: the source trains and validates; a target is tested on
        `test` and holds out `val` (other identities), which `selection=heldout` may select on."""
        return ("train", "val") if self.name == SOURCE else ("test", "val")

    def as_dict(self) -> dict:
        """Plain dict for the cache key and ``spec.json``."""
        return asdict(self)


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            SOURCE,
            "inner",
            "inner",
            (1.5, 3.0),
            description="inner-face region (eyes to mouth) colour-shifted, slightly rotated "
            "and scaled, blended back through a soft mask",
        ),
        Recipe(
            "mouth",
            "mouth",
            "mouth",
            (1.0, 2.0),
            description="mouth region only, soft mask: a smaller region than training shows",
        ),
        Recipe(
            "eyes",
            "eyes",
            "eye_band",
            (0.0, 0.0),
            description="band across eyes and brows pasted with a hard-edged mask: a seam "
            "training never shows",
        ),
        Recipe(
            "swap",
            "swap",
            "face",
            (1.5, 3.0),
            donor="other",
            description="another identity's face drawn at the target's pose, colour-shifted "
            "and blended over the whole face",
        ),
        Recipe(
            "jpeg",
            "inner",
            "inner",
            (1.5, 3.0),
            jpeg_quality=60,
            description="the training manipulation under JPEG quality 60 applied to real and "
            "fake frames alike",
        ),
    )
}
DATASETS: tuple[str, ...] = tuple(RECIPES)
TARGETS: tuple[str, ...] = tuple(n for n in RECIPES if n != SOURCE)


def get_recipe(dataset: str) -> Recipe:
    """The recipe of a dataset name; an unknown name is a ValueError listing the valid ones."""
    if dataset not in RECIPES:
        raise ValueError(f"unknown demo dataset {dataset!r}; valid: {list(DATASETS)}")
    return RECIPES[dataset]
