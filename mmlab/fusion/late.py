"""Late fusion: one classifier per modality, then a weighted average of their logits.

ℓ_m = W_m h_m + b_m (per-modality logits, (B, C)); with weights α_m ≥ 0, Σ_m α_m = 1 and
presence p_m ∈ {0, 1}: logits = Σ_m p_m α_m ℓ_m / Σ_m p_m α_m.
We average logits (not probabilities), so the output stays a logit that goes straight into
cross-entropy; the softmax of the averaged logits is the normalised weighted geometric mean of
the per-modality softmaxes (a product of experts). A missing modality drops out and the weights
of the present ones are renormalised. α is uniform (`weights=None`), fixed (a dict or a sequence
in modality order), or learned as α = softmax(θ) (`weights="learnable"`). See Baltrušaitis et
al. 2019, "Multimodal Machine Learning: A Survey and Taxonomy", for early vs. late fusion.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from mmlab._checks import check_int, values_are_cheap
from mmlab.fusion._base import FusionOperator


class LateFusion(FusionOperator):
    """logits = Σ_m p_m α_m (W_m h_m + b_m) / Σ_m p_m α_m; out_dim = num_classes.

    Parameters: Σ_m (D_m + 1)·C, plus M when `weights="learnable"`.

    Args:
        dims: modality name → D_m.
        num_classes: C.
        weights: None (uniform), "learnable" (α = softmax(θ), θ initialised to 0), or fixed
            non-negative weights as a dict {modality: α_m} or a sequence in modality order
            (normalised to sum to 1).
    """

    def __init__(self, dims: Mapping[str, int], num_classes: int,
                 weights: None | str | Mapping[str, float] | Sequence[float] = None) -> None:
        super().__init__(dims)
        self.out_dim = self.num_classes = check_int("num_classes", num_classes)
        self.classifiers = nn.ModuleDict({m: nn.Linear(d, num_classes)
                                          for m, d in self.dims.items()})
        n = len(self.modalities)
        self.learnable = isinstance(weights, str)
        if self.learnable:
            if weights != "learnable":
                raise ValueError("`weights` must be None, 'learnable', a dict or a sequence of "
                                 f"numbers; got {weights!r}.")
            self.theta = nn.Parameter(torch.zeros(n))
        else:
            self.register_buffer("fixed_alpha", self._fixed(weights, n))

    def _fixed(self, weights: None | Mapping[str, float] | Sequence[float], n: int) -> Tensor:
        if weights is None:
            return torch.full((n,), 1.0 / n)
        if isinstance(weights, Mapping):
            if set(weights) != set(self.modalities):
                raise ValueError("`weights` must give one weight per modality "
                                 f"{list(self.modalities)}, "
                                 f"got keys {list(weights)}.")
            values = [weights[m] for m in self.modalities]
        elif isinstance(weights, Sequence):
            values = list(weights)
            if len(values) != n:
                raise ValueError("`weights` must have one weight per modality "
                                 f"(M={n}, {list(self.modalities)}), "
                                 f"got {len(values)}.")
        else:
            raise TypeError("`weights` must be None, 'learnable', a dict or a sequence; "
                            f"got {type(weights).__name__}.")
        for v in values:
            if (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                    or v < 0):
                raise ValueError(f"`weights` must be finite numbers ≥ 0, got {values}.")
        if sum(values) <= 0:
            raise ValueError(f"`weights` must not all be zero, got {values}.")
        alpha = torch.tensor(values, dtype=torch.float32)
        return alpha / alpha.sum()

    @property
    def alpha(self) -> Tensor:
        """The modality weights α (M,), summing to 1."""
        return self.theta.softmax(dim=0) if self.learnable else self.fixed_alpha

    def per_modality_logits(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        """ℓ_m = W_m h_m + b_m for every modality: dict modality → (B, C)."""
        x, _, _ = self.prepare(features)
        return {m: self.classifiers[m](x[m]) for m in self.modalities}

    def _fuse(self, x: dict[str, Tensor], masks: dict[str, Tensor], any_missing: bool) -> Tensor:
        dtype = x[self.modalities[0]].dtype
        alpha = self.alpha.to(dtype)  # (M,)
        num, den = 0, 0
        for i, m in enumerate(self.modalities):
            w = alpha[i] * masks[m].to(dtype)[:, None]  # (B, 1)
            num = num + w * self.classifiers[m](x[m])  # (B, C)
            den = den + w  # (B, 1)
        if any_missing and values_are_cheap(den) and bool((den <= 0).any()):  # CPU only
            rows = (den[:, 0] <= 0).nonzero().flatten().tolist()[:10]
            raise ValueError(f"LateFusion: sample(s) {rows} have only modalities whose weight α "
                             "is 0 present; give those modalities a weight > 0.")
        return num / den  # (B, C)
