"""FiLM: feature-wise linear modulation of one modality's features by another's.

Perez et al. 2018, "FiLM: Visual Reasoning with a General Conditioning Layer".
With c the conditioning modality and h_rest = [h_m; …] the other modalities concatenated:
γ(c) = 1 + W_γ c + b_γ, β(c) = W_β c + b_β, h = γ(c) ⊙ (W h_rest + b) + β(c).
γ is predicted as a residual around 1, so at initialisation FiLM is close to the identity
modulation. A missing non-conditioning modality is zero-filled; the conditioning modality is
required (FiLM has nothing to modulate with without it) and its absence raises a ValueError.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mmlab._checks import check_choice, check_int
from mmlab.fusion._base import FusionOperator


class FiLMFusion(FusionOperator):
    """h = γ(c) ⊙ (W h_rest + b) + β(c), with c = features[condition].

    Parameters: (Σ_{m≠c} D_m + 1)·out_dim + (D_c + 1)·2·out_dim.

    Args:
        dims: modality name → D_m (M ≥ 2).
        out_dim: output width.
        condition: the conditioning modality (default: the first modality of `dims`).
    """

    handles_missing = False

    def __init__(self, dims: Mapping[str, int], out_dim: int, condition: str | None = None) -> None:
        super().__init__(dims, minimum=2)
        self.out_dim = check_int("out_dim", out_dim)
        self.condition = (self.modalities[0] if condition is None
                          else check_choice("condition", condition, self.modalities))
        self.rest = tuple(m for m in self.modalities if m != self.condition)
        self.proj = nn.Linear(sum(self.dims[m] for m in self.rest), out_dim)
        self.film = nn.Linear(self.dims[self.condition], 2 * out_dim)

    def _fuse(self, x: dict[str, Tensor], masks: dict[str, Tensor], any_missing: bool) -> Tensor:
        if any_missing:
            self.require(masks, self.condition, "the conditioning modality",
                         "SumFusion, GatedFusion, ConcatFusion(indicator=True) "
                         "or TransformerFusion")
        h = self.proj(torch.cat([x[m] for m in self.rest], dim=1))  # (B, out_dim)
        dgamma, beta = self.film(x[self.condition]).chunk(2, dim=1)  # (B, out_dim) each
        return (1 + dgamma) * h + beta  # (B, out_dim)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, condition={self.condition!r}"
