"""Random inputs for the checks, drawn from a local `torch.Generator` (never the global one).

Embeddings get rows of random norms (0.5 to 3), so an answer that forgets to L2-normalise is
caught; paired rows are correlated, so a loss is neither at chance nor at zero.
"""

from __future__ import annotations

import torch
from torch import Tensor

F32, F64 = torch.float32, torch.float64

SIZES = ((8, 5, F64), (3, 4, F32), (1, 3, F64), (16, 8, F32), (2, 6, F64))
"""(B, D, dtype) of the paired-embedding cases: B = 1 and 2 included, both dtypes."""


def randn(gen: torch.Generator, *shape: int, dtype: torch.dtype = F64) -> Tensor:
    """Standard normal values drawn in float64 from `gen`, then cast (the same draws per dtype)."""
    return torch.randn(shape, generator=gen, dtype=F64).to(dtype)


def rows(gen: torch.Generator, n: int, d: int, dtype: torch.dtype = F64) -> Tensor:
    """(n, d) Gaussian rows rescaled to random norms in [0.5, 3)."""
    x = torch.randn(n, d, generator=gen, dtype=F64)
    norms = 0.5 + 2.5 * torch.rand(n, 1, generator=gen, dtype=F64)
    return (x / x.norm(dim=1, keepdim=True) * norms).to(dtype)


def paired(gen: torch.Generator, n: int, d: int, dtype: torch.dtype = F64,
           noise: float = 0.8) -> tuple[Tensor, Tensor]:
    """Two (n, d) batches, row i of b a noisy copy of row i of a; both of random norms."""
    a = rows(gen, n, d, F64)
    b = a / a.norm(dim=1, keepdim=True) + noise * torch.randn(n, d, generator=gen, dtype=F64)
    b = b / b.norm(dim=1, keepdim=True) * (0.5 + 2.5 * torch.rand(n, 1, generator=gen, dtype=F64))
    return a.to(dtype), b.to(dtype)


def label(**parts: object) -> str:
    """'B = 8, D = 5, float64, temperature = 0.1' (a dtype is written bare)."""
    out = []
    for k, v in parts.items():
        if isinstance(v, torch.dtype):
            out.append(str(v).removeprefix("torch."))
        else:
            out.append(f"{k} = {v}")
    return ", ".join(out)
