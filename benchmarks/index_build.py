"""Time building and reloading the index of a 1,000,000-frame file list (paths only, no files).

Writes a synthetic list in the paper's format (``datasets/<dataset>/<source>/<video>/<frame>.png``,
32 frames a video, FF++-like sources that share video folder names), then times
`read_filelist` twice with ``check_files=False``: the first call parses the list and
writes the Arrow/parquet cache, the second reloads it. ``check_files=True`` is not timed
here because the frames do not exist; on real data it adds one directory listing per
video folder (~31k for 1M frames), far cheaper than a stat per frame but still disk-bound.

    python benchmarks/index_build.py [--frames 1000000] [--workdir /tmp/dfd-bench]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from dfd.data.readers.filelist import read_filelist

SOURCES = ("real", "DF", "F2F", "FS", "NT")
FRAMES_PER_VIDEO = 32


def write_list(path: Path, n_frames: int) -> None:
    """A list of `n_frames` lines: videos of 32 frames cycling through the FF++ sources."""
    lines = []
    n_videos = -(-n_frames // FRAMES_PER_VIDEO)
    for v in range(n_videos):
        source = SOURCES[v % len(SOURCES)]
        video = f"{v // len(SOURCES):06d}" if source == "real" else f"{v // len(SOURCES):06d}_x"
        for f in range(FRAMES_PER_VIDEO):
            lines.append(f"datasets/FF/{source}/{video}/{f:03d}.png")
    path.write_text("\n".join(lines[:n_frames]) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="dfd-index-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    cache = work / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    list_file = work / "train.txt"
    write_list(list_file, args.frames)

    def read(cache_dir: Path | None):
        return read_filelist(
            lists={"train": str(list_file)},
            root=str(work),
            name="bench",
            split="train",
            check_files=False,
            cache_dir=None if cache_dir is None else str(cache_dir),
        )

    t0 = time.perf_counter()
    built = read(cache)
    t1 = time.perf_counter()
    reloaded = read(cache)
    t2 = time.perf_counter()
    read(None)
    t3 = time.perf_counter()
    assert len(built) == len(reloaded) == args.frames
    assert built.video_ids == reloaded.video_ids and (built.labels == reloaded.labels).all()
    size = sum(p.stat().st_size for p in cache.iterdir()) / 2**20
    print(built.summary())
    print(f"build (parse + write cache): {t1 - t0:.2f} s")
    print(f"cached reload:               {t2 - t1:.2f} s")
    print(f"parse only (no cache):       {t3 - t2:.2f} s")
    print(f"cache size:                  {size:.1f} MiB in {cache}")
    if args.workdir is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
