"""Attention fusion: cross-attention, co-attention and a small fusion transformer.

Each modality vector h_m is one token t_m = W_m h_m + b_m of width d = out_dim (so the token
count T is M, or M + 1 with a fusion token). Multi-head attention with H heads, d_h = d / H:
A = softmax(Q Kᵀ / √d_h) over the allowed keys, out = W_o [A_1 V_1; …; A_H V_H] + b_o.
A missing modality's token is masked as a key (it never receives weight), so changing its
values cannot change the output.

- CrossAttentionFusion: the query modality attends to the other modalities
  (h = t_q + MHA(t_q, {t_m}_{m≠q})), as in the cross-modal attention of ViLBERT/LXMERT.
- CoAttentionFusion (Lu et al. 2019, "ViLBERT"): every modality attends to the others with its
  own projections, u_m = t_m + MHA_m(t_m, {t_k}_{k≠m}), and h = mean of u_m over the present m.
- TransformerFusion: [CLS; t_1 + e_1; …; t_M + e_M] through the encoders' pre-LN
  `TransformerBlock`s with a key padding mask for missing modalities (Vaswani et al. 2017);
  h = LN(CLS token output).

With one token per modality, a query with a single allowed key puts all its weight on it
(e.g. M = 2 in cross/co-attention), so the attention pattern only becomes informative for
M ≥ 3; the operators still learn through the value/output projections.
Every operator computes attention with `mmlab.encoders.attention.attend`: with
`return_attention=True` the weights are computed explicitly (the fused SDPA kernel returns
none); otherwise `F.scaled_dot_product_attention` is used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from mmlab._checks import check_choice, check_int, values_are_cheap
from mmlab.encoders.attention import TransformerBlock, attend
from mmlab.fusion._base import FusionOperator


def _check_heads(dim: int, heads: int) -> int:
    check_int("heads", heads)
    if dim % heads:
        raise ValueError(f"`out_dim` ({dim}) must be divisible by `heads` ({heads}); "
                         f"try heads={math.gcd(dim, heads)} or "
                         f"out_dim={dim + heads - dim % heads}.")
    return heads


class MultiHeadAttention(nn.Module):
    """Multi-head cross-attention with separate Q, K, V, O projections (4·(d² + d) parameters).

    Queries and keys come from different token sets here, so the projections are separate (the
    encoders' `MultiHeadSelfAttention` fuses them); both call the same `attend`.

    Args:
        dim: token width d.
        heads: H, with d divisible by H.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = _check_heads(dim, heads)
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, xq: Tensor, xkv: Tensor, allowed: Tensor | None = None,
                return_attention: bool = False) -> tuple[Tensor, Tensor | None]:
        """Attend from `xq` (B, Tq, d) to `xkv` (B, Tk, d).

        Args:
            xq: query tokens (B, Tq, d).
            xkv: key/value tokens (B, Tk, d).
            allowed: bool (B, Tq, Tk), True where query i may attend to key j; None = all.
                A query with no allowed key gets a zero output and zero weights.
            return_attention: compute the weights explicitly and return them.
        Returns:
            `(out, weights)`: out (B, Tq, d); weights (B, H, Tq, Tk) or None.
        """
        b, tq, d = xq.shape
        tk, h = xkv.shape[1], self.heads
        q = self.q(xq).view(b, tq, h, d // h).transpose(1, 2)  # (B, H, Tq, d_h)
        k = self.k(xkv).view(b, tk, h, d // h).transpose(1, 2)  # (B, H, Tk, d_h)
        v = self.v(xkv).view(b, tk, h, d // h).transpose(1, 2)  # (B, H, Tk, d_h)
        row_ok = None
        if allowed is not None:
            row_ok = allowed.any(dim=-1)  # (B, Tq): the query has at least one allowed key
            # an empty row may look at any key (no NaN); its output and weights are zeroed below
            allowed = (allowed | ~row_ok[:, :, None])[:, None]  # (B, 1, Tq, Tk)
        ctx, weights = attend(q, k, v, allowed, need_weights=return_attention)  # (B, H, Tq, d_h)
        if weights is not None and row_ok is not None:
            weights = weights * row_ok[:, None, :, None].to(weights.dtype)  # (B, H, Tq, Tk)
        out = self.o(ctx.transpose(1, 2).reshape(b, tq, d))  # (B, Tq, d)
        if row_ok is not None:
            out = out * row_ok[:, :, None].to(out.dtype)  # (B, Tq, d)
        return out, weights


class _TokenFusion(FusionOperator):
    """Shared part: one token per modality, t_m = W_m h_m + b_m of width d = out_dim."""

    attends = True

    def __init__(self, dims: Mapping[str, int], out_dim: int, heads: int, minimum: int) -> None:
        super().__init__(dims, minimum=minimum)
        self.out_dim = check_int("out_dim", out_dim)
        _check_heads(out_dim, heads)
        self.heads = heads
        self.tokens = nn.ModuleDict({m: nn.Linear(d, out_dim) for m, d in self.dims.items()})

    def embed(self, x: dict[str, Tensor]) -> Tensor:
        """The modality tokens, (B, M, d), in modality order."""
        return torch.stack([self.tokens[m](x[m]) for m in self.modalities], dim=1)  # (B, M, d)

    def forward(self, features: dict[str, Tensor], present: dict[str, Tensor] | None = None,
                return_attention: bool = False) -> Tensor | tuple[Tensor, Tensor | list[Tensor]]:
        """Fuse the modalities.

        Args:
            features: dict modality → (B, D_m).
            present: optional dict modality → bool (B,); a missing key means all present.
            return_attention: also return the attention weights (see the subclass).
        Returns:
            (B, out_dim), or `(fused, attention)` with `return_attention=True`.
        """
        x, masks, any_missing = self.prepare(features, present)
        fused, attn = self._attend(x, masks, any_missing, return_attention)
        return (fused, attn) if return_attention else fused

    def _attend(self, x: dict[str, Tensor], masks: dict[str, Tensor], any_missing: bool,
                return_attention: bool) -> tuple[Tensor, Any]:
        raise NotImplementedError


class CrossAttentionFusion(_TokenFusion):
    """h = t_q + MHA(t_q, {t_m}_{m≠q}): the query modality attends to the others.

    Attention weights: (B, H, 1, M − 1), over the context modalities in modality order.
    The query modality and at least one context modality must be present (ValueError otherwise;
    the check reads values, so it runs on the CPU only).
    Parameters: Σ_m (D_m + 1)·d + 4·(d² + d).

    Args:
        dims: modality name → D_m (M ≥ 2).
        out_dim: d, the token and output width (divisible by `heads`).
        query: the query modality (default: the first modality of `dims`).
        heads: H.
    """

    handles_missing = False

    def __init__(self, dims: Mapping[str, int], out_dim: int, query: str | None = None,
                 heads: int = 4) -> None:
        super().__init__(dims, out_dim, heads, minimum=2)
        self.query = (self.modalities[0] if query is None
                      else check_choice("query", query, self.modalities))
        self.context = tuple(m for m in self.modalities if m != self.query)
        self.attn = MultiHeadAttention(out_dim, heads)

    def _attend(self, x: dict[str, Tensor], masks: dict[str, Tensor], any_missing: bool,
                return_attention: bool) -> tuple[Tensor, Any]:
        t = self.embed(x)  # (B, M, d)
        qi = self.modalities.index(self.query)
        ci = [self.modalities.index(m) for m in self.context]
        allowed = None
        if any_missing:
            self.require(masks, self.query, "the query modality",
                         "CoAttentionFusion, TransformerFusion or GatedFusion")
            ctx_present = torch.stack([masks[m] for m in self.context], dim=1)  # (B, M − 1)
            none = ~ctx_present.any(dim=1)  # (B,)
            if values_are_cheap(none) and bool(none.any()):  # on a GPU such a row gives h = t_q
                raise ValueError(
                    "CrossAttentionFusion needs at least one context modality "
                    f"{list(self.context)} for every sample, but all are missing for sample(s) "
                    f"{none.nonzero().flatten().tolist()[:10]}. Use CoAttentionFusion, "
                    "TransformerFusion or GatedFusion instead, which handle missing modalities.")
            allowed = ctx_present[:, None, :]  # (B, 1, M − 1)
        tq = t[:, qi:qi + 1]  # (B, 1, d)
        out, w = self.attn(tq, t[:, ci], allowed, return_attention)  # (B, 1, d), (B, H, 1, M − 1)
        return (tq + out)[:, 0], w  # (B, d)


class CoAttentionFusion(_TokenFusion):
    """u_m = t_m + MHA_m(t_m, {t_k}_{k≠m}); h = mean of u_m over the present modalities (ViLBERT).

    Attention weights: (B, H, M, M), row m = where modality m looks; the diagonal and missing
    columns are zero; a row with no other present modality is all zero (that u_m = t_m).
    Parameters: Σ_m (D_m + 1)·d + M·4·(d² + d).
    """

    def __init__(self, dims: Mapping[str, int], out_dim: int, heads: int = 4) -> None:
        super().__init__(dims, out_dim, heads, minimum=2)
        self.attn = nn.ModuleDict({m: MultiHeadAttention(out_dim, heads) for m in self.modalities})

    def _attend(self, x: dict[str, Tensor], masks: dict[str, Tensor], any_missing: bool,
                return_attention: bool) -> tuple[Tensor, Any]:
        t = self.embed(x)  # (B, M, d)
        n = len(self.modalities)
        present = torch.stack([masks[m] for m in self.modalities], dim=1)  # (B, M)
        not_self = ~torch.eye(n, dtype=torch.bool, device=t.device)  # (M, M)
        allowed = present[:, None, :] & not_self[None]  # (B, M, M)
        us, ws = [], []
        for i, m in enumerate(self.modalities):
            row = allowed[:, i:i + 1]  # (B, 1, M)
            out, w = self.attn[m](t[:, i:i + 1], t, row, return_attention)  # (B, 1, d)
            us.append(t[:, i] + out[:, 0])  # (B, d)
            ws.append(w)
        u = torch.stack(us, dim=1)  # (B, M, d)
        p = present.to(u.dtype)[:, :, None]  # (B, M, 1)
        fused = (u * p).sum(dim=1) / p.sum(dim=1)  # (B, d)
        weights = torch.cat(ws, dim=2) if return_attention else None  # (B, H, M, M)
        return fused, weights


class TransformerFusion(_TokenFusion):
    """h = LN(z_CLS) after `depth` self-attention blocks over [CLS; t_1 + e_1; …; t_M + e_M].

    e_m is a learned modality embedding; missing modality tokens are masked as keys (a key
    padding mask), the CLS token is always present. `return_attention=True` returns a list of
    per-layer weights (B, H, T, T), T = M + 1, token 0 = CLS.
    Parameters: Σ_m (D_m + 1)·d + M·d + d + depth·(4(d² + d) + 4d + 2·r·d² + r·d + d) + 2d,
    with r = `mlp_ratio`.

    Args:
        dims: modality name → D_m.
        out_dim: d, the token and output width (divisible by `heads`).
        depth: number of blocks.
        heads: H.
        mlp_ratio: hidden width of each block's MLP, in units of d.
    """

    def __init__(self, dims: Mapping[str, int], out_dim: int, depth: int = 1, heads: int = 4,
                 mlp_ratio: int = 2) -> None:
        super().__init__(dims, out_dim, heads, minimum=1)
        self.depth = check_int("depth", depth)
        check_int("mlp_ratio", mlp_ratio)
        self.modality_embedding = nn.Parameter(0.02 * torch.randn(len(self.dims), out_dim))
        self.cls = nn.Parameter(0.02 * torch.randn(out_dim))
        self.blocks = nn.ModuleList(TransformerBlock(out_dim, heads, mlp_ratio)
                                    for _ in range(depth))
        self.norm = nn.LayerNorm(out_dim)

    def _attend(self, x: dict[str, Tensor], masks: dict[str, Tensor], any_missing: bool,
                return_attention: bool) -> tuple[Tensor, Any]:
        t = self.embed(x) + self.modality_embedding  # (B, M, d)
        b = t.shape[0]
        z = torch.cat([self.cls.expand(b, 1, -1), t], dim=1)  # (B, T, d)
        present = torch.stack([masks[m] for m in self.modalities], dim=1)  # (B, M)
        keys = torch.cat([present.new_ones(b, 1), present], dim=1)  # (B, T): CLS and present tokens
        weights = []
        for block in self.blocks:
            z, w = block(z, keys, return_attention)  # (B, T, d), (B, H, T, T) or None
            weights.append(w)
        return self.norm(z[:, 0]), (weights if return_attention else None)  # (B, d)
