"""Time verifying a frame store: the content checksum of every shard, once per process.

Builds a store of N 224x224 evaluation frames (147 KiB each, the `data/store=eval` form of a
ViT at 224) from a few distinct PNGs, then times `FrameStore.verify` twice: the first call
hashes every shard (what each process pays once, the files here in the page cache as right
after a build), the second only reads each shard's identity (what a later open in the same
process pays). Also prints the time to read every frame once through the store, for scale.

    python benchmarks/store_verify.py [--frames 4000] [--workdir /tmp/dfd-bench-store]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from dfd.data import store as store_module
from dfd.data.frames import FrameTransform
from dfd.data.index import FrameIndex
from dfd.data.spec import InputSpec
from dfd.data.store import open_store

SPEC = InputSpec(size=(224, 224), resample=3, mean=(0.5,) * 3, std=(0.25,) * 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=4000)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="dfd-bench-store-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        rng = np.random.default_rng(0)
        sources = []
        for i in range(16):  # distinct files, each listed many times: a store of any size
            path = work / f"{i}.png"
            Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(path)
            sources.append(str(path))
        paths = [sources[i % len(sources)] for i in range(args.frames)]
        index = FrameIndex(
            name="bench",
            paths=paths,
            labels=np.arange(args.frames) % 2,
            video_ids=[f"v{i // 32}" for i in range(args.frames)],
            sources=["x"] * args.frames,
            splits=["test"] * args.frames,
        )
        t = time.perf_counter()
        store = open_store(index, FrameTransform(SPEC), work / "stores")
        built = time.perf_counter() - t
        gib = store.meta["bytes"] / 2**30
        store_module._VERIFIED.clear()  # as a new process would find it
        t = time.perf_counter()
        store.verify()
        full = time.perf_counter() - t
        t = time.perf_counter()
        store.verify()
        again = time.perf_counter() - t
        t = time.perf_counter()
        for i in range(len(store)):
            store.read(i)
        read = time.perf_counter() - t
        print(f"store: {args.frames} frames, {gib:.2f} GiB in {len(store.shards)} shard(s)")
        print(f"build (decode, resize, write, checksum): {built:.1f} s")
        print(f"verify, first in a process: {full:.2f} s ({gib / full:.2f} GiB/s)")
        print(f"verify, again in the same process: {again * 1000:.1f} ms")
        print(f"read every frame once: {read:.2f} s ({gib / read:.2f} GiB/s)")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
