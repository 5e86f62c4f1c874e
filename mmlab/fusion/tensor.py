"""Multiplicative fusion: bilinear, full tensor fusion and its low-rank factorisation.

- Bilinear: h_k = h_1ᵀ W_k h_2 + b_k (two modalities; every pairwise product of features).
- Tensor fusion (Zadeh et al. 2017, "Tensor Fusion Network for Multimodal Sentiment Analysis"):
  z = [h_1; 1] ⊗ [h_2; 1] ⊗ … ⊗ [h_M; 1], flattened with the first modality varying slowest,
  then h = W z + b. The appended 1 keeps every lower-order term: the unimodal features, the
  pairwise products, … up to the M-way product. Parameters: Π_m (D_m + 1)·out_dim + out_dim.
- Low-rank tensor fusion (Liu et al. 2018, "Efficient Low-rank Multimodal Fusion with
  Modality-Specific Factors"): write W (out_dim × Π(D_m + 1)) as a rank-R sum of outer products,
  W[:, i_1, …, i_M] = Σ_r Π_m F_m^{(r)}[i_m, :]; then W z never has to be built:
  h = Σ_{r=1}^{R} Π_m ([h_m; 1] F_m^{(r)}) + b. Parameters: R·Σ_m (D_m + 1)·out_dim + out_dim.
  (Liu et al. also learn R "fusion weights" w_r; they are redundant, since they can be absorbed
  into any one factor, so we leave them out.) The factors live in an `nn.ParameterDict`:
  MultiBench kept them in a Python list, so they were never registered and never trained.

Missing modalities: a missing h_m is zero, so [h_m; 1] = [0; 1] and only the terms without
modality m remain (tensor and low-rank fusion). Bilinear fusion has no such terms and raises.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mmlab._checks import check_int
from mmlab.fusion._base import FusionOperator


def _append_one(h: Tensor) -> Tensor:
    """[h; 1]: (B, D) → (B, D + 1)."""
    return torch.cat([h, h.new_ones(h.shape[0], 1)], dim=1)  # (B, D + 1)


class BilinearFusion(FusionOperator):
    """h_k = h_1ᵀ W_k h_2 + b_k for k = 1..out_dim (exactly two modalities).

    Parameters: D_1·D_2·out_dim + out_dim. Both modalities are required: with one missing the
    product is zero and only b would remain, so a missing modality raises a ValueError.
    """

    handles_missing = False

    def __init__(self, dims: Mapping[str, int], out_dim: int) -> None:
        super().__init__(dims, exactly=2)
        self.out_dim = check_int("out_dim", out_dim)
        d1, d2 = self.dims.values()
        self.bilinear = nn.Bilinear(d1, d2, out_dim)

    def _fuse(self, x: dict[str, Tensor], masks: dict[str, Tensor], any_missing: bool) -> Tensor:
        if any_missing:
            for m in self.modalities:
                self.require(masks, m, "modality",
                             "TensorFusion or LowRankTensorFusion (which keep the "
                             "unimodal terms), SumFusion or GatedFusion")
        m1, m2 = self.modalities
        return self.bilinear(x[m1], x[m2])  # (B, out_dim)


def outer_product_features(x: dict[str, Tensor], order: tuple[str, ...]) -> Tensor:
    """z = [h_1; 1] ⊗ … ⊗ [h_M; 1] flattened (first modality slowest): (B, Π_m (D_m + 1))."""
    b = x[order[0]].shape[0]
    z = x[order[0]].new_ones(b, 1)  # (B, 1)
    for m in order:
        hm = _append_one(x[m])  # (B, D_m + 1)
        z = (z[:, :, None] * hm[:, None, :]).reshape(b, -1)  # (B, running Π (D + 1))
    return z


class TensorFusion(FusionOperator):
    """h = W ([h_1; 1] ⊗ … ⊗ [h_M; 1]) + b (Zadeh et al. 2017).

    Parameters: Π_m (D_m + 1)·out_dim + out_dim (this grows exponentially with M: use
    LowRankTensorFusion for wide features or many modalities).
    """

    def __init__(self, dims: Mapping[str, int], out_dim: int) -> None:
        super().__init__(dims)
        self.out_dim = check_int("out_dim", out_dim)
        self.linear = nn.Linear(math.prod(d + 1 for d in self.dims.values()), out_dim)

    def _fuse(self, x: dict[str, Tensor], masks: dict[str, Tensor], any_missing: bool) -> Tensor:
        return self.linear(outer_product_features(x, self.modalities))  # (B, out_dim)


class LowRankTensorFusion(FusionOperator):
    """h = Σ_{r=1}^{R} Π_m ([h_m; 1] F_m^{(r)}) + b (Liu et al. 2018).

    `factors[m]` has shape (R, D_m + 1, out_dim). The equivalent full TensorFusion weight is
    W[o, i_1, …, i_M] = Σ_r Π_m factors[m][r, i_m, o].
    Parameters: R·Σ_m (D_m + 1)·out_dim + out_dim.

    Args:
        dims: modality name → D_m.
        out_dim: output width.
        rank: R, the number of rank-1 terms (default 4).
    """

    def __init__(self, dims: Mapping[str, int], out_dim: int, rank: int = 4) -> None:
        super().__init__(dims)
        self.out_dim = check_int("out_dim", out_dim)
        self.rank = check_int("rank", rank)
        self.factors = nn.ParameterDict(
            {m: nn.Parameter(torch.empty(rank, d + 1, out_dim)) for m, d in self.dims.items()})
        self.bias = nn.Parameter(torch.zeros(out_dim))
        for f in self.factors.values():
            nn.init.xavier_normal_(f)

    def _fuse(self, x: dict[str, Tensor], masks: dict[str, Tensor], any_missing: bool) -> Tensor:
        prod = 1
        for m in self.modalities:
            hm = _append_one(x[m])  # (B, D_m + 1)
            prod = prod * torch.einsum("bi,rio->bro", hm, self.factors[m])  # (B, R, out_dim)
        return prod.sum(dim=1) + self.bias  # (B, out_dim)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rank={self.rank}"
