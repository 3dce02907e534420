"""Writing the demo benchmark to disk, once, deterministically and atomically.

`ensure_demo` renders every dataset of `recipes.RECIPES` into
``<root>/v<version>-<hash>/<dataset>/<source>/<video>/<frame:03d>.png`` plus one
``manifest.csv`` (columns of `dfd.data.index.COLUMNS`, paths relative to that folder) and
a ``spec.json``. The folder name hashes every parameter, so a changed generator never
reads a stale cache, and the folder appears only when complete (written under a temporary
name, then renamed), so an interrupted run never leaves half a benchmark behind.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from dfd.data.demo.manipulate import blend, eye_band_mask, jitter_blend, sample_blend, soft_mask
from dfd.data.demo.recipes import DATASETS, REAL, RECIPES, SOURCE, Recipe
from dfd.data.demo.render import Identity, jitter_pose, render_face, sample_identity, to_uint8
from dfd.data.index import COLUMNS, FAKE
from dfd.data.index import REAL as REAL_LABEL

# Bump when rendering or manipulation code changes what gets drawn or what the manifest
# says: it is part of the key (2: the manifest records each fake's source video; 3: targets
# have a held-out `val` split of new identities; the other videos' pixels are unchanged).
GENERATOR_VERSION = 3
MANIFEST = "manifest.csv"


@dataclass(frozen=True)
class DemoSpec:
    """Size and seed of the demo benchmark; every field is part of the cache key.

    Attributes:
        seed: root of every random stream.
        frames_per_video: frames rendered per video.
        source_identities: identities of the source dataset; each gives one real and one
            fake video (the fake is a manipulated version of that real video).
        target_identities: identities of each target dataset's ``test`` split, new ones
            per dataset.
        val_every: every ``val_every``-th source identity (both its videos) goes to ``val``.
        heldout_identities: identities of each target dataset's ``val`` split: held-out
            videos of the target domain, never tested (what `selection=heldout` selects on,
            as GenD selects on videos drawn from its targets' training folders). They come
            after the test identities, from their own random streams, so they change no
            test video.
    """

    seed: int = 0
    frames_per_video: int = 4
    source_identities: int = 150
    target_identities: int = 50
    val_every: int = 5
    heldout_identities: int = 10

    def key(self) -> str:
        """Folder name of this spec's cache: generator version plus a hash of all parameters."""
        payload = {
            "version": GENERATOR_VERSION,
            "spec": asdict(self),
            "recipes": {k: r.as_dict() for k, r in RECIPES.items()},
        }
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        return f"v{GENERATOR_VERSION}-{digest[:10]}"


def _rng(spec: DemoSpec, dataset: str, identity: int, stream: int) -> np.random.Generator:
    # One independent stream per (dataset, identity, purpose): a video's pixels never depend
    # on the order of generation, and a swap can re-create its donor identity exactly.
    return np.random.default_rng([spec.seed, DATASETS.index(dataset), identity, stream])


def _identity(spec: DemoSpec, dataset: str, i: int) -> Identity:
    return sample_identity(_rng(spec, dataset, i, 0))


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


def _split_of(spec: DemoSpec, recipe: Recipe, i: int) -> str:
    if recipe.name == SOURCE:
        return "val" if i % spec.val_every == spec.val_every - 1 else "train"
    return "test" if i < spec.target_identities else "val"


def _donor(spec: DemoSpec, recipe: Recipe, i: int) -> int:
    """The identity whose face a swap pastes over identity i: the next one of its own block
    (the source's identities, a target's test identities or its held-out ones)."""
    if recipe.name == SOURCE:
        return (i + 1) % spec.source_identities
    if i < spec.target_identities:
        return (i + 1) % spec.target_identities
    first = spec.target_identities
    return first + (i - first + 1) % spec.heldout_identities


def _identity_videos(
    spec: DemoSpec, recipe: Recipe, i: int
) -> Iterator[tuple[str, int, np.ndarray]]:
    """Yield ``(source, frame_number, uint8 image)`` for identity i's real and fake video."""
    identity = _identity(spec, recipe.name, i)
    frame_rng = _rng(spec, recipe.name, i, 1)
    poses = [jitter_pose(identity.pose, frame_rng) for _ in range(spec.frames_per_video)]
    reals = [render_face(identity, p, frame_rng) for p in poses]

    fake_rng = _rng(spec, recipe.name, i, 2)
    video_params = sample_blend(fake_rng)
    sigma = float(fake_rng.uniform(*recipe.mask_sigma))
    donor = (
        _identity(spec, recipe.name, _donor(spec, recipe, i)) if recipe.donor == "other" else None
    )
    for k, (pose, real) in enumerate(zip(poses, reals, strict=True)):
        if recipe.region == "eye_band":
            mask = eye_band_mask(pose, identity.eye_dy)
        else:
            mask = soft_mask(pose, recipe.region, sigma)
        source = real if donor is None else render_face(donor, pose, fake_rng)
        fake = blend(real, source, mask, jitter_blend(video_params, fake_rng), pose)
        for name, img in ((REAL, real), (recipe.manipulation, fake)):
            out = to_uint8(img)
            if recipe.jpeg_quality is not None:
                out = _jpeg(out, recipe.jpeg_quality)
            yield name, k, out


def _video_name(spec: DemoSpec, recipe: Recipe, source: str, i: int) -> str:
    # Swaps are named target_donor, as FF++ names its fakes.
    if source != REAL and recipe.donor == "other":
        return f"{i:03d}_{_donor(spec, recipe, i):03d}"
    return f"{i:03d}"


def _write_dataset(spec: DemoSpec, recipe: Recipe, folder: Path) -> list[dict]:
    n = (
        spec.source_identities
        if recipe.name == SOURCE
        else spec.target_identities + spec.heldout_identities
    )
    rows: list[dict] = []
    for i in range(n):
        split = _split_of(spec, recipe, i)
        for source, k, img in _identity_videos(spec, recipe, i):
            video = _video_name(spec, recipe, source, i)
            rel = Path(recipe.name, source, video, f"{k:03d}.png")
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            # compress_level 1: the demo is written once and read many times; 6 is 3x slower
            Image.fromarray(img).save(folder / rel, format="PNG", compress_level=1)
            rows.append(
                {
                    "path": rel.as_posix(),
                    "label": REAL_LABEL if source == REAL else FAKE,
                    "video_id": f"{source}/{video}",
                    "source": source,
                    "split": split,
                    # every fake is drawn over its identity's real frames (`_identity_videos`
                    # blends into `real`, a swap too), frame k over frame k
                    "source_video": "" if source == REAL else f"{REAL}/{i:03d}",
                }
            )
    return rows


def build_demo(folder: Path, spec: DemoSpec) -> None:
    """Render all demo datasets into `folder` (which must exist) and write the manifest last."""
    rows: list[dict] = []
    for recipe in RECIPES.values():
        rows.extend(_write_dataset(spec, recipe, folder))
    with open(folder / "spec.json", "w") as f:
        json.dump(
            {
                "version": GENERATOR_VERSION,
                "spec": asdict(spec),
                "recipes": {k: r.as_dict() for k, r in RECIPES.items()},
            },
            f,
            indent=2,
        )
    with open(folder / MANIFEST, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(rows)


def ensure_demo(root: str | os.PathLike, spec: DemoSpec | None = None) -> Path:
    """Return the demo benchmark's folder under `root`, generating it on first use.

    The folder is ``<root>/<spec.key()>``. If it exists it is returned at once; otherwise
    the benchmark is rendered into a temporary sibling folder and renamed into place, so a
    crash leaves no partial cache and two processes racing to build it both end up with
    one complete copy. Generation is deterministic for a given `spec` (default: the full
    demo, ~3,100 frames, a few seconds on two CPU cores).
    """
    spec = spec or DemoSpec()
    root = Path(root).expanduser()
    final = root / spec.key()
    if (final / MANIFEST).is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.key()}.tmp-", dir=root))
    # mkdtemp makes the folder private (0700); the cache is meant to be shared like its root
    tmp.chmod(0o755)
    try:
        build_demo(tmp, spec)
        try:
            os.rename(tmp, final)
        except OSError:
            # Another process finished first; its copy is identical, keep it.
            if not (final / MANIFEST).is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
