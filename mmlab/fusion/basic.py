"""Simple fusion: concatenation, sum (mean), product, and the gated multimodal unit.

With h_m the (B, D_m) feature of modality m and p_m ∈ {0, 1} its presence:
- Concat: h = W [p_1 h_1; …; p_M h_M; (p_1, …, p_M)] + b   (indicator and projection optional)
- Sum:    h = Σ_m p_m (W_m h_m + b_m) / Σ_m p_m             (mean over the present modalities)
- Product: h = Π_m (W_m h_m + b_m) over the present modalities (a missing factor is 1)
- Gated (Arevalo et al. 2017, "Gated Multimodal Units for Information Fusion", GMU):
  u_m = tanh(W_m h_m + b_m), g = softmax_m(U_m [h_1; …; h_M] + c_m) per output dimension,
  h = Σ_m g_m ⊙ u_m. For M = 2 the softmax is the paper's sigmoid:
  softmax(s_1, s_2)_1 = 1 / (1 + e^{s_2 − s_1}) = σ(s_1 − s_2), so g = σ(W[h_1; h_2] + b) with
  W = U_1 − U_2, b = c_1 − c_2, and h = g ⊙ u_1 + (1 − g) ⊙ u_2.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mmlab._checks import check_int
from mmlab.fusion._base import FusionOperator


class ConcatFusion(FusionOperator):
    """h = [h_1; …; h_M] (missing slots zero-filled), with an optional presence indicator and
    projection.

    Parameters: 0 without a projection; (Σ_m D_m + M·indicator)·out_dim + out_dim with one.

    Args:
        dims: modality name → D_m.
        out_dim: if given, a linear projection to this width; else out_dim = Σ_m D_m (+ M).
        indicator: append the presence indicators (p_1, …, p_M) as extra features, so a
            downstream layer can tell a missing modality from a zero feature.
    """

    def __init__(self, dims: Mapping[str, int], out_dim: int | None = None, *,
                 indicator: bool = False) -> None:
        super().__init__(dims)
        self.indicator = bool(indicator)
        width = sum(self.dims.values()) + (len(self.dims) if self.indicator else 0)
        self.proj = None if out_dim is None else nn.Linear(width, check_int("out_dim", out_dim))
        self.out_dim = width if out_dim is None else out_dim

    def _fuse(self, x: dict[str, Tensor], masks: dict[str, Tensor], any_missing: bool) -> Tensor:
        parts = [x[m] for m in self.modalities]  # each (B, D_m), zero where missing
        if self.indicator:
            dtype = parts[0].dtype
            parts.append(
                torch.stack([masks[m] for m in self.modalities], dim=1).to(dtype))  # (B, M)
        h = torch.cat(parts, dim=1)  # (B, Σ D_m [+ M])
        return h if self.proj is None else self.proj(h)  # (B, out_dim)


class SumFusion(FusionOperator):
    """h = Σ_m p_m (W_m h_m + b_m) / Σ_m p_m: the mean of the projections of the present modalities.

    Parameters: Σ_m (D_m + 1)·out_dim.
    """

    def __init__(self, dims: Mapping[str, int], out_dim: int) -> None:
        super().__init__(dims)
        self.out_dim = check_int("out_dim", out_dim)
        self.proj = nn.ModuleDict({m: nn.Linear(d, out_dim) for m, d in self.dims.items()})

    def _fuse(self, x: dict[str, Tensor], masks: dict[str, Tensor], any_missing: bool) -> Tensor:
        dtype = x[self.modalities[0]].dtype
        total = 0
        count = 0
        for m in self.modalities:
            p = masks[m].to(dtype)[:, None]  # (B, 1)
            total = total + p * self.proj[m](x[m])  # (B, out_dim)
            count = count + p  # (B, 1)
        return total / count  # (B, out_dim); count ≥ 1 is checked in `prepare`


class ProductFusion(FusionOperator):
    """h = Π_m (W_m h_m + b_m) elementwise, over the present modalities (a missing factor is 1).

    Parameters: Σ_m (D_m + 1)·out_dim.
    """

    def __init__(self, dims: Mapping[str, int], out_dim: int) -> None:
        super().__init__(dims)
        self.out_dim = check_int("out_dim", out_dim)
        self.proj = nn.ModuleDict({m: nn.Linear(d, out_dim) for m, d in self.dims.items()})

    def _fuse(self, x: dict[str, Tensor], masks: dict[str, Tensor], any_missing: bool) -> Tensor:
        h = 1
        for m in self.modalities:
            z = self.proj[m](x[m])  # (B, out_dim)
            h = h * torch.where(masks[m][:, None], z, torch.ones_like(z))  # (B, out_dim)
        return h


class GatedFusion(FusionOperator):
    """Gated multimodal unit (Arevalo et al. 2017), generalised to M modalities by a softmax gate.

    u_m = tanh(W_m h_m + b_m), s = U [h_1; …; h_M] + c reshaped to (B, M, out_dim),
    g = softmax over the modalities m (per output dimension), h = Σ_m g_m ⊙ u_m.
    A missing modality gets s_m = −∞, so the gate renormalises over the present ones.
    For M = 2 this is exactly g = σ(W[h_1; h_2] + b), h = g ⊙ u_1 + (1 − g) ⊙ u_2 with
    W = U_1 − U_2 and b = c_1 − c_2 (see the module docstring).

    Parameters: Σ_m (D_m + 1)·out_dim + (Σ_m D_m + 1)·M·out_dim.
    """

    def __init__(self, dims: Mapping[str, int], out_dim: int) -> None:
        super().__init__(dims)
        self.out_dim = check_int("out_dim", out_dim)
        self.proj = nn.ModuleDict({m: nn.Linear(d, out_dim) for m, d in self.dims.items()})
        self.gate = nn.Linear(sum(self.dims.values()), len(self.dims) * out_dim)

    def gates(self, x: dict[str, Tensor], masks: dict[str, Tensor]) -> Tensor:
        """The gate g: (B, M, out_dim), summing to 1 over the present modalities."""
        b = x[self.modalities[0]].shape[0]
        s = self.gate(torch.cat([x[m] for m in self.modalities], dim=1))  # (B, M·out_dim)
        s = s.view(b, len(self.modalities), self.out_dim)  # (B, M, out_dim)
        present = torch.stack([masks[m] for m in self.modalities], dim=1)  # (B, M)
        s = s.masked_fill(~present[:, :, None], float("-inf"))  # (B, M, out_dim)
        return s.softmax(dim=1)  # (B, M, out_dim)

    def _fuse(self, x: dict[str, Tensor], masks: dict[str, Tensor], any_missing: bool) -> Tensor:
        g = self.gates(x, masks)  # (B, M, out_dim)
        u = torch.stack([torch.tanh(self.proj[m](x[m])) for m in self.modalities],
                        dim=1)  # (B, M, out_dim)
        return (g * u).sum(dim=1)  # (B, out_dim)
