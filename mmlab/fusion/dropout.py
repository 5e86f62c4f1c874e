"""Modality dropout: randomly hide whole modalities during training.

Each modality of each sample is dropped independently with probability p, but never all of
them: if every modality of a sample would drop, one of its (originally present) modalities,
chosen uniformly at random, is kept. So for M modalities all present, a given modality is
dropped with probability p − p^M / M (slightly below p). Training with it teaches a fusion
operator to cope with missing modalities (Neverova et al. 2016, "ModDrop: Adaptive Multi-Modal
Gesture Recognition").
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from mmlab._checks import check_embeddings, check_modalities, check_probability, values_are_cheap


def modality_dropout(features: Mapping[str, Tensor], p: float, *,
                     generator: torch.Generator | None = None, training: bool = True,
                     present: Mapping[str, Tensor] | None = None,
                     ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Drop each modality per sample with probability p, never all modalities of one sample.

    Args:
        features: dict modality → (B, D_m) float tensor (same B for all).
        p: drop probability in [0, 1].
        generator: optional torch.Generator for reproducible masks (on any device).
        training: when False nothing is dropped (like `nn.Dropout` in eval mode).
        present: optional existing presence masks (bool (B,)); already missing modalities stay
            missing, and the modality kept for a fully dropped sample is one that was present.
    Returns:
        `(features, present)`: features with dropped rows set to zero, and the new bool (B,)
        presence mask of every modality.
    """
    check_modalities("features", features)
    if not features:
        raise ValueError("`features` is empty; pass at least one modality.")
    p = check_probability("p", p)
    names = list(features)
    xs = [check_embeddings(f"features[{m!r}]", features[m]) for m in names]
    b, device = xs[0].shape[0], xs[0].device
    for m, x in zip(names, xs):
        if x.shape[0] != b:
            raise ValueError(f"every modality in `features` must have the same batch size B; "
                             f"`features[{names[0]!r}]` has {b} rows but `features[{m!r}]` has "
                             f"{x.shape[0]}.")
    old = torch.ones(b, len(names), dtype=torch.bool, device=device)  # (B, M)
    if present is not None:
        check_modalities("present", present)
        for i, m in enumerate(names):
            if m in present:
                pm = present[m]
                if not isinstance(pm, Tensor) or pm.dtype != torch.bool or pm.shape != (b,):
                    raise ValueError(f"`present[{m!r}]` must be a bool tensor of shape ({b},), got "
                                     f"{getattr(pm, 'dtype', type(pm).__name__)} "
                                     f"{getattr(pm, 'shape', '')}.")
                old[:, i] = pm.to(device)
        if values_are_cheap(old) and not bool(old.any(dim=1).all()):  # CPU only: no sync
            raise ValueError("`present` marks every modality missing for some sample; drop those "
                             "rows first.")
    if not training or p == 0:
        keep = old
    else:
        gdev = generator.device if generator is not None else device
        u = torch.rand(b, len(names), generator=generator, device=gdev).to(device)  # (B, M)
        keep = (u >= p) & old  # (B, M)
        none = ~keep.any(dim=1)  # (B,)
        scores = torch.rand(b, len(names), generator=generator, device=gdev).to(device)  # (B, M)
        scores = scores.masked_fill(~old, -1.0)  # only originally present modalities can be rescued
        best = scores.argmax(dim=1, keepdim=True)  # (B, 1)
        rescue = torch.zeros_like(keep).scatter_(1, best, True)  # (B, M)
        keep = keep | (rescue & none[:, None])  # (B, M)
    out = {m: torch.where(keep[:, i, None], x, torch.zeros((), dtype=x.dtype, device=device))
           for i, (m, x) in enumerate(zip(names, xs))}
    return out, {m: keep[:, i].clone() for i, m in enumerate(names)}
