"""Attention, and a pre-norm transformer block whose attention can be looked at (Vaswani 2017).

`attend(q, k, v, mask)` is the one scaled dot-product attention of mmlab: the encoders'
`MultiHeadSelfAttention` and the fusion operators' `MultiHeadAttention` both call it.

Every transformer encoder in mmlab (`ViTEncoder`, `AudioTransformer`, `TextTransformer`) is a
sequence of tokens `[CLS, x_1, ..., x_N]` run through the same blocks:

    h = x + MHSA(LN(x)),   out = h + MLP(LN(h)),   A = softmax(Q Kᵀ / √d_head)  (B, heads, T, T)

with `T = N + 1` (the CLS token sits at position 0). The feature of the sequence is the final
CLS token, layer-normed and projected to `out_dim` (Dosovitskiy et al., 2021, "An Image is Worth
16x16 Words").

Two paths compute the same thing:
- `return_attention=False`: the fused `F.scaled_dot_product_attention` kernel (fast, no weights);
- `return_attention=True`: the explicit `softmax(QKᵀ/√d)` so the weights `A` can be returned.
  The returned tensors are *part of the autograd graph* (never detached), so
  `torch.autograd.grad(score, attentions)` gives ∇A, as needed by gradient-weighted attention
  rollout (Chefer et al., 2021, "Transformer Interpretability Beyond Attention Visualization").

Padding: `key_padding_mask` is a bool `(B, T)` with True for real tokens; padded keys get
probability 0 in every row.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmlab._checks import check_int, check_probability


def attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, dropout_p: float = 0.0,
           need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
    """Scaled dot-product attention, the one used by every attention module in mmlab.

        A = softmax(Q Kᵀ / √d_head),   out = A V          (Vaswani et al., 2017, Eq. 1)

    Masked keys get -∞ before the softmax, hence weight 0. `need_weights=False` runs the fused
    `F.scaled_dot_product_attention` kernel (fast, returns no weights); `need_weights=True`
    computes `A` explicitly and returns it inside the autograd graph (never detached).

    Args:
        q: queries (B, heads, Tq, d_head).
        k: keys (B, heads, Tk, d_head).
        v: values (B, heads, Tk, d_v).
        mask: optional bool, broadcastable to (B, heads, Tq, Tk), True where query i may attend
            to key j. Every query needs at least one allowed key (a row of -∞ gives NaN).
        dropout_p: dropout on the attention weights (pass 0.0 outside training).
        need_weights: compute A explicitly and return it.
    Returns:
        `(out, A)`: out (B, heads, Tq, d_v); A (B, heads, Tq, Tk) (before dropout) or None.
    """
    if not need_weights:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        return out, None  # (B, heads, Tq, d_v)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, heads, Tq, Tk)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)  # (B, heads, Tq, Tk), rows sum to 1
    dropped = F.dropout(weights, dropout_p) if dropout_p > 0 else weights
    return dropped @ v, weights  # (B, heads, Tq, d_v)


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention with fused Q, K, V projections (4·(dim² + dim) parameters).

    Args:
        dim: token width (must be divisible by `heads`).
        heads: number of attention heads.
        dropout: dropout on the attention weights (training only).
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        check_int("dim", dim)
        check_int("heads", heads)
        if dim % heads:
            raise ValueError(f"`dim` ({dim}) must be divisible by `heads` ({heads}); "
                             f"try dim={heads * max(1, dim // heads)}.")
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.dropout = check_probability("dropout", dropout, inclusive=False)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None,
                return_attention: bool = False) -> tuple[Tensor, Tensor | None]:
        """Attend.

        Args:
            x: tokens (B, T, dim).
            key_padding_mask: optional bool (B, T), True for real tokens.
            return_attention: compute softmax(QKᵀ/√d) explicitly and return it.
        Returns:
            `(out, attention)`: out (B, T, dim); attention (B, heads, T, T) or None.
        """
        B, T, _ = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.heads, self.head_dim)  # (B, T, 3, heads, d_head)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, T, d_head)
        mask = None if key_padding_mask is None else key_padding_mask[:, None, None, :]
        # mask: (B, 1, 1, T), broadcast over heads and queries
        p = self.dropout if self.training else 0.0
        out, attention = attend(q, k, v, mask, p, return_attention)  # (B, heads, T, d_head)
        out = out.transpose(1, 2).reshape(B, T, self.dim)  # (B, T, dim)
        return self.proj(out), attention


class TransformerBlock(nn.Module):
    """Pre-norm block: `h = x + MHSA(LN(x))`, `out = h + MLP(LN(h))` with a GELU MLP.

    Args:
        dim: token width.
        heads: attention heads.
        mlp_ratio: hidden width of the MLP as a multiple of `dim`.
        dropout: dropout on attention weights and MLP output.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        hidden = int(round(dim * mlp_ratio))
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadSelfAttention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim),
                                 nn.Dropout(dropout))

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None,
                return_attention: bool = False) -> tuple[Tensor, Tensor | None]:
        """Args: x (B, T, dim). Returns: (out (B, T, dim), attention (B, heads, T, T) or None)."""
        a, attention = self.attn(self.norm1(x), key_padding_mask, return_attention)
        x = x + a  # (B, T, dim)
        x = x + self.mlp(self.norm2(x))  # (B, T, dim)
        return x, attention


class CLSTransformer(nn.Module):
    """Prepend a learned CLS token, add learned positions, run `depth` blocks, pool the CLS token.

    The shared trunk of `ViTEncoder`, `AudioTransformer` and `TextTransformer`: they only differ
    in how they turn their input into token embeddings `(B, N, dim)`.

    Args:
        dim: token width.
        depth: number of blocks.
        heads: attention heads.
        out_dim: width of the output feature.
        max_tokens: the largest N (without CLS) that has a position embedding.
        mlp_ratio: MLP hidden width / dim.
        dropout: dropout inside the blocks.
        add_cls: prepend a learned CLS token (False when the tokens already start with one,
            e.g. text ids that begin with the tokenizer's CLS id).
    """

    def __init__(self, dim: int, depth: int, heads: int, out_dim: int, max_tokens: int,
                 mlp_ratio: float = 4.0, dropout: float = 0.0, add_cls: bool = True) -> None:
        super().__init__()
        check_int("depth", depth)
        check_int("out_dim", out_dim)
        check_int("max_tokens", max_tokens)
        self.dim, self.depth, self.heads, self.out_dim = dim, depth, heads, out_dim
        self.max_tokens, self.add_cls = max_tokens, add_cls
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if add_cls else None
        n_pos = max_tokens + (1 if add_cls else 0)
        self.pos_embedding = nn.Parameter(torch.randn(1, n_pos, dim) * 0.02)
        self.blocks = nn.ModuleList([TransformerBlock(dim, heads, mlp_ratio, dropout)
                                     for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, out_dim)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=0.02)

    def forward(self, tokens: Tensor, key_padding_mask: Tensor | None = None,
                return_attention: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Run the trunk on token embeddings.

        Args:
            tokens: (B, N, dim) token embeddings (without CLS when `add_cls`).
            key_padding_mask: optional bool (B, N), True for real tokens.
            return_attention: also return the per-layer attention (explicit path).
        Returns:
            features (B, out_dim), or `(features, attentions)` with `attentions` a list of `depth`
            tensors (B, heads, T, T), T = N + 1 when `add_cls` (CLS at position 0), else N.
        """
        B, N, D = tokens.shape
        if D != self.dim:
            raise ValueError(f"`tokens` must have width dim={self.dim}, "
                             f"got shape {tuple(tokens.shape)}.")
        if N > self.max_tokens:
            raise ValueError(f"the input gives {N} tokens but the model has position embeddings "
                             f"for at most {self.max_tokens}; shorten the input or build the "
                             "encoder with a larger maximum.")
        if self.add_cls:
            cls = self.cls_token.expand(B, 1, D).to(tokens.dtype)  # (B, 1, dim)
            tokens = torch.cat([cls, tokens], dim=1)  # (B, T, dim), T = N + 1
            if key_padding_mask is not None:
                ones = torch.ones(B, 1, dtype=torch.bool, device=key_padding_mask.device)
                key_padding_mask = torch.cat([ones, key_padding_mask], dim=1)  # (B, T)
        x = tokens + self.pos_embedding[:, : tokens.shape[1]]  # (B, T, dim)
        attentions: list[Tensor] = []
        for block in self.blocks:
            x, attention = block(x, key_padding_mask, return_attention)
            if return_attention:
                attentions.append(attention)
        features = self.head(self.norm(x[:, 0]))  # (B, out_dim)
        return (features, attentions) if return_attention else features
