"""Two→one contrastive learning: fuse some modalities into one embedding, align it with another.

Sources m ∈ S (e.g. image and audio) are encoded, h_m = f_m(x_m) (B, D_m), fused by any
`FusionOperator` into z_S = normalize(fuse({h_m}, present)) (B, D), and the target t (e.g. text)
is embedded as z_t = normalize(g_t(f_t(x_t))) (B, D). The loss is CLIP's symmetric InfoNCE
between z_S and z_t (Radford et al. 2021), so a fused pair retrieves its caption ("two→one" as
in notebook 05, with a learned fusion instead of a sum of cosines). With a single source the
model is the ordinary two-tower CLIP of that modality, the control for the fused model.

Options for jointly trained encoders:
- `drop_p`: modality dropout of the sources during training (Neverova et al. 2016, ModDrop;
  `mmlab.fusion.modality_dropout`).
- `ogm_alpha`: OGM gradient modulation (Peng et al. 2022; `mmlab.fusion.modulation`): per
  batch, s_m = Σ_i softmax_j(z^m_i · z_t_j / τ)_{i=j}, the confidence of the fused embedding made
  from modality m alone (the others marked missing), then h_m's gradient is scaled by k_m.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from mmlab._checks import check_modalities, check_probability
from mmlab._norm import l2_normalize
from mmlab.fusion._base import FusionOperator
from mmlab.fusion.dropout import modality_dropout
from mmlab.fusion.modulation import ogm_ge_coefficients, scale_gradient
from mmlab.losses import ClipLoss
from mmlab.losses.output import LossOutput

__all__ = ["FusedContrastiveModel"]


class FusedContrastiveModel(nn.Module):
    """Source encoders → fusion → z_S, target encoder → head → z_t, CLIP loss between them.

    Args:
        encoders: modality → encoder (`batch[m] -> (B, D_m)`), the sources and the target.
        fusion: a `FusionOperator` over the source modalities (its `dims`), out_dim = D.
        target: the target modality (a key of `encoders`, not a source).
        target_head: maps the target encoder's output to D (e.g. `ProjectionHead`).
        loss: a pairwise contrastive loss `(z_S, z_t) -> LossOutput` (default `ClipLoss()`).
        drop_p: modality dropout rate of the sources while training (0: none), or a dict
            source → its own rate (e.g. {"image": 0.5}: drop only the image); a row whose sources
            would all drop keeps them all.
        ogm_alpha: α of OGM gradient modulation while training (None: none; needs ≥ 2 sources).
    """

    def __init__(self, encoders: Mapping[str, nn.Module], fusion: FusionOperator, target: str,
                 target_head: nn.Module, *, loss: nn.Module | None = None,
                 drop_p: float | Mapping[str, float] = 0.0,
                 ogm_alpha: float | None = None) -> None:
        super().__init__()
        check_modalities("encoders", encoders)
        if not isinstance(fusion, FusionOperator):
            raise TypeError("`fusion` must be a FusionOperator (e.g. make_fusion('concat', dims, "
                            "D)), "
                            f"got {type(fusion).__name__}.")
        self.sources = tuple(fusion.modalities)
        missing = [m for m in (*self.sources, target) if m not in encoders]
        if missing:
            raise ValueError(f"`encoders` lacks {missing}; the fusion's modalities "
                             f"{list(self.sources)} and the target {target!r} each need an "
                             "encoder.")
        if target in self.sources:
            raise ValueError(f"`target` {target!r} is also a source of `fusion`; pick a modality "
                             f"outside {list(self.sources)}.")
        if ogm_alpha is not None and len(self.sources) < 2:
            raise ValueError("`ogm_alpha` balances two or more sources; with one source pass "
                             "ogm_alpha=None.")
        self.encoders = nn.ModuleDict({m: encoders[m] for m in (*self.sources, target)})
        self.fusion, self.target, self.target_head = fusion, target, target_head
        self.loss = ClipLoss() if loss is None else loss
        if isinstance(drop_p, Mapping):
            unknown = [m for m in drop_p if m not in self.sources]
            if unknown:
                raise ValueError(f"`drop_p` has modalities {unknown} that are not sources "
                                 f"{list(self.sources)}.")
            self.drop_p = {m: check_probability(f"drop_p[{m!r}]", p) for m, p in drop_p.items()}
        else:
            self.drop_p = check_probability("drop_p", drop_p)
        self.ogm_alpha = ogm_alpha
        self.last_coefficients: dict[str, Tensor] = {}  # k_m of the last training batch (OGM)

    def features(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """h_m = f_m(batch[m]) for every source: modality → (B, D_m)."""
        return {m: self.encoders[m](batch[m]) for m in self.sources}

    def embed_target(self, batch: Mapping[str, Any]) -> Tensor:
        """z_t = normalize(g_t(f_t(batch[target]))): (B, D)."""
        h_t = self.encoders[self.target](batch[self.target])  # (B, D_t)
        return l2_normalize(self.target_head(h_t), dim=-1)

    def embed_fused(self, batch: Mapping[str, Any],
                    present: Mapping[str, Tensor] | None = None) -> Tensor:
        """z_S = normalize(fuse({h_m}, present)): (B, D); `present` marks missing sources."""
        return l2_normalize(self.fusion(self.features(batch), present), dim=-1)

    @torch.no_grad()
    def modality_scores(self, h: Mapping[str, Tensor], z_t: Tensor,
                        present: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        """s_m = Σ_i softmax_j(z^m_i · z_t_j / τ)_{i=j}, z^m fused from m alone: m → 0-d.

        The sum runs over the rows i where m is present (`present[m]`, default all); with none,
        s_m = 1e-6. Pure tensor operations: no host read, so it never waits for the GPU.
        """
        scale = 1.0 / self.loss.temperature if hasattr(self.loss, "temperature") else 1.0
        b = z_t.shape[0]
        out = {}
        for m in self.sources:
            alone = {n: torch.full((b,), n == m, dtype=torch.bool, device=z_t.device)
                     for n in self.sources}  # every row made from modality m only
            rows = alone[m] if present is None or m not in present else present[m]  # (B,)
            zm = l2_normalize(self.fusion(h, alone), dim=-1)  # (B, D)
            p = torch.softmax(scale * zm @ z_t.T, dim=1)  # (B, B)
            hits = torch.where(rows, p.diagonal(), torch.zeros((), dtype=p.dtype, device=p.device))
            out[m] = hits.sum().clamp_min(1e-6)  # rows where m is absent count 0
        return out

    def forward(self, batch: Mapping[str, Any]) -> LossOutput:
        """The contrastive loss between the fused sources and the target (training: dropout / OGM).

        Args:
            batch: a batch dict holding every source, the target, and optionally
                `present` (source → bool (B,)).
        Returns:
            The loss's `LossOutput` (loss, logits (B, B), terms).
        """
        h = self.features(batch)
        given = batch.get("present") or {}
        present = {m: p for m, p in given.items() if m in self.sources} or None
        if self.training and isinstance(self.drop_p, dict):
            h, present = _drop_some(h, self.drop_p, present)
        elif self.training and self.drop_p > 0:
            h, present = modality_dropout(h, self.drop_p, present=present)
        z_t = self.embed_target(batch)  # (B, D)
        if self.training and self.ogm_alpha is not None:
            k = ogm_ge_coefficients(self.modality_scores(h, z_t, present), self.ogm_alpha)
            self.last_coefficients = k
            h = {m: scale_gradient(v, k[m]) for m, v in h.items()}
        z_s = l2_normalize(self.fusion(h, present), dim=-1)  # (B, D)
        return self.loss(z_s, z_t)


def _drop_some(h: dict[str, Tensor], rates: Mapping[str, float],
               present: Mapping[str, Tensor] | None,
               ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Drop source m of each row with its own probability rates[m]; rows left empty keep every
    source."""
    b = next(iter(h.values())).shape[0]
    device = next(iter(h.values())).device
    old = {m: (present or {}).get(m, torch.ones(b, dtype=torch.bool, device=device)) for m in h}
    keep = {m: old[m] & (torch.rand(b, device=device) >= rates.get(m, 0.0)) for m in h}  # each (B,)
    empty = ~torch.stack(list(keep.values()), dim=1).any(dim=1)  # (B,)
    keep = {m: k | (empty & old[m]) for m, k in keep.items()}
    zero = {m: torch.zeros((), dtype=v.dtype, device=device) for m, v in h.items()}
    out = {m: torch.where(keep[m][:, None], v, zero[m]) for m, v in h.items()}
    return out, keep
