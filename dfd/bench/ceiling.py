"""Section (d): the matmul ceiling of this device, measured in the same run as the model step.

The rate a large square matrix product reaches through torch (cuBLAS on a GPU, the CPU
BLAS with torch's threads on a CPU) is the practical upper bound of a transformer step,
whose FLOPs are almost all matrix products. On a GPU it is measured in bf16 (the paper's
training precision), on a CPU in fp32; the caller labels which.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dfd.bench.timing import Rate, interleaved


@dataclass(frozen=True)
class Ceiling:
    """A measured matmul rate and what it was measured with."""

    tflops: Rate
    dtype: str
    size: int
    device: str

    @property
    def label(self) -> str:
        return f"{self.dtype} matmul {self.size}x{self.size} on {self.device}"


def matmul_ceiling(
    device: torch.device, dtype: torch.dtype, size: int, iters: int, repeats: int, warmup: int
) -> Ceiling:
    """TFLOP/s of `iters` back-to-back (size x size) @ (size x size) products, median over repeats.

    Three operand pairs of random values rotate, so no product reads what the one before
    left in cache, and no operand is all zeros (which some units multiply faster).
    """
    if size < 1 or iters < 1:
        raise ValueError(f"ceiling size={size} and iters={iters} must be >= 1")
    g = torch.Generator().manual_seed(0)
    pairs = [
        (
            torch.randn(size, size, generator=g).to(device, dtype),
            torch.randn(size, size, generator=g).to(device, dtype),
        )
        for _ in range(3)
    ]
    out = torch.empty(size, size, device=device, dtype=dtype)

    def products(n: int = iters) -> None:
        for i in range(n):
            a, b = pairs[i % len(pairs)]
            torch.mm(a, b, out=out)

    products(warmup)
    flops = 2.0 * size**3 * iters
    rate = interleaved({"mm": products}, {"mm": flops / 1e12}, repeats, device)["mm"]
    if not torch.isfinite(out).all():
        raise FloatingPointError(f"the {dtype} ceiling matmul produced non-finite values")
    return Ceiling(rate, str(dtype).removeprefix("torch."), size, device.type)
