"""Time the bootstrap interval of a video AUC (`dfd.scoring.bootstrap.auc_interval`) on a large
synthetic set: 100,000 videos and 1,000 replicates by default, the per-target cost of
`eval.bootstrap=1000` on the largest test sets of the field (DFDC's test set has 5,000 videos,
DF40's biggest protocols tens of thousands).

    python benchmarks/bootstrap.py [--videos 100000] [--replicates 1000] [--repeats 3]

Prints the best wall and CPU time of `--repeats` runs (with the machine's load), the interval (half the videos fake, scores
separated so the AUC is about 0.76), and the peak memory the replicates' arrays add.
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc

import numpy as np

from dfd.scoring.bootstrap import MAX_DRAWS, auc_interval
from dfd.scoring.metrics import roc_auc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=100_000)
    parser.add_argument("--replicates", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    labels = (np.arange(args.videos) % 2).astype(np.int64)
    scores = rng.normal(size=args.videos) + labels  # AUC ~0.76
    times, cpu = [], []
    for _ in range(args.repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        low, high = auc_interval(labels, scores, args.replicates, seed=0)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    tracemalloc.start()
    auc_interval(labels, scores, args.replicates, seed=0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"{args.videos:,} videos, {args.replicates:,} replicates "
        f"(chunks of {max(1, MAX_DRAWS // args.videos)} replicates): "
        f"best {min(times):.2f} s wall of {args.repeats} (all: {', '.join(f'{t:.2f}' for t in times)}), "
        f"best {min(cpu):.2f} s CPU; load average {os.getloadavg()[0]:.1f}"
    )
    print(f"video AUC {roc_auc(labels, scores):.4f}, 95% interval [{low:.4f}, {high:.4f}]")
    print(f"peak memory of the bootstrap: {peak / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
