"""Text encoders: a small transformer and a bag of words over `Tokenizer` ids.

- `TextTransformer`: word + position embeddings, padding masked out of attention, CLS pooling
  (Devlin et al., 2019, "BERT"). Padding never changes the features.
- `BagOfWordsEncoder`: the mean of word embeddings, a cheap baseline with no word order.

The tokenizer lives in `mmlab.encoders.tokenizer`, the frozen MiniLM (`SentenceEncoder`) in
`mmlab.encoders.sentence`.

Per-token gradients for attribution (TextTransformer)::

    ids, mask = model.tokenizer.encode(texts, max_len=model.max_len)
    e = model.embed(ids).detach().requires_grad_()      # (B, L, dim) word embeddings
    z, attentions = model.forward_embeddings(e, mask, return_attention=True)
    g, = torch.autograd.grad(score(z), e)               # (B, L, dim)
    per_token = (g * e).sum(-1)                          # (B, L); position 0 is CLS

Position `j ≥ 1` is the word `model.tokenizer.tokens(text)[j - 1]`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mmlab._checks import check_int, values_are_cheap
from mmlab.encoders.attention import CLSTransformer
from mmlab.encoders.tokenizer import CLS, PAD, SPECIALS, UNK, Tokenizer, check_texts

__all__ = ["TextTransformer", "BagOfWordsEncoder", "Tokenizer", "check_texts", "PAD", "UNK", "CLS",
           "SPECIALS"]


def _check_ids(ids: Tensor, vocab_size: int) -> Tensor:
    if ids.ndim != 2 or ids.dtype != torch.int64:
        raise TypeError(f"token ids must be an int64 tensor of shape (B, L), got {ids.dtype} of "
                        f"shape {tuple(ids.shape)}; use tokenizer.encode(texts).")
    if ids.numel() == 0:
        raise ValueError(f"token ids are empty (shape {tuple(ids.shape)}); pass at least one text.")
    if values_are_cheap(ids) and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        raise ValueError(f"token ids must be in [0, {vocab_size}), got range "
                         f"[{int(ids.min())}, {int(ids.max())}]; were they made with this "
                         "model's tokenizer?")
    return ids


class TextTransformer(nn.Module):
    """Word + position embeddings → transformer blocks (padding masked) → the CLS feature.

    Args:
        tokenizer: a `Tokenizer` (its vocabulary is saved in the state_dict as extra state).
        dim: token width.
        depth: transformer blocks.
        heads: attention heads.
        out_dim: feature width D.
        max_len: longest input in tokens, CLS included (longer texts are truncated).
        mlp_ratio, dropout: transformer block settings.
    """

    def __init__(self, tokenizer: Tokenizer, dim: int = 64, depth: int = 2, heads: int = 4,
                 out_dim: int = 64,
                 max_len: int = 32, mlp_ratio: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        if not isinstance(tokenizer, Tokenizer):
            raise TypeError("`tokenizer` must be a mmlab Tokenizer, "
                            f"got {type(tokenizer).__name__}; "
                            "build one with Tokenizer.from_texts(texts).")
        check_int("max_len", max_len)
        self.tokenizer, self.dim, self.out_dim, self.max_len = tokenizer, dim, out_dim, max_len
        self.token_embedding = nn.Embedding(len(tokenizer), dim, padding_idx=PAD)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        with torch.no_grad():
            self.token_embedding.weight[PAD].zero_()
        self.transformer = CLSTransformer(dim, depth, heads, out_dim, max_len, mlp_ratio, dropout,
                                          add_cls=False)

    def get_extra_state(self) -> dict[str, list[str]]:
        return {"vocab": list(self.tokenizer.vocab)}

    def set_extra_state(self, state: dict[str, list[str]]) -> None:
        self.tokenizer = Tokenizer(state["vocab"])

    def _ids_and_mask(self, x: Sequence[str] | Tensor, mask: Tensor | None,
                      trim: bool = True) -> tuple[Tensor, Tensor]:
        if isinstance(x, Tensor):
            ids = _check_ids(x, len(self.tokenizer))
            if ids.shape[1] > self.max_len:
                raise ValueError(f"token ids have length {ids.shape[1]} > max_len={self.max_len}; "
                                 f"encode with tokenizer.encode(texts, max_len={self.max_len}).")
            mask = ids != PAD if mask is None else mask.to(device=ids.device, dtype=torch.bool)
            if trim and values_are_cheap(mask) and mask.shape[1] > 1:
                # ids padded for a whole dataset (`pretokenize`): drop the columns that are padding
                # in every row of this batch (the features are the same: padded keys are masked).
                # Not on a GPU or while compiling, where the fixed shape is worth more than the
                # shorter sequence, and not when attention maps are returned, so that their shape
                # (B, heads, L, L) is the same on every device.
                length = int(mask.any(dim=0).nonzero().max()) + 1 if bool(mask.any()) else 1
                ids, mask = ids[:, :length], mask[:, :length]
            return ids, mask
        ids, mask = self.tokenizer.encode(x, max_len=self.max_len)
        device = self.token_embedding.weight.device
        return ids.to(device), mask.to(device)

    def embed(self, ids: Tensor) -> Tensor:
        """Word embeddings (B, L, dim) of ids (B, L): the input for per-token attribution."""
        return self.token_embedding(_check_ids(ids, len(self.tokenizer)))  # (B, L, dim)

    def forward_embeddings(self, embeddings: Tensor, mask: Tensor,
                           return_attention: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Run the transformer on word embeddings (B, L, dim) with mask (B, L) (True = real
        token)."""
        return self.transformer(embeddings, mask, return_attention)

    def forward(self, x: Sequence[str] | Tensor, mask: Tensor | None = None,
                return_attention: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Encode texts.

        Args:
            x: list of B strings, or ids int64 (B, L) from `tokenizer.encode` (CLS first).
            mask: optional bool (B, L) for ids (default: ids != PAD).
            return_attention: also return attention (B, heads, L, L) per layer; padded keys get 0.
        Returns:
            features (B, out_dim), or `(features, attentions)`.
        """
        ids, mask = self._ids_and_mask(x, mask, trim=not return_attention)
        return self.forward_embeddings(self.token_embedding(ids), mask, return_attention)


class BagOfWordsEncoder(nn.Module):
    """Mean of word embeddings (CLS, PAD and UNK excluded); a text with no known words maps to 0.

    Unknown words are left out of the mean: their shared UNK vector would otherwise pull every
    caption with new words towards one direction that training never shaped.

    Args:
        tokenizer: a `Tokenizer`.
        out_dim: embedding width D (the feature is the mean embedding).
        max_len: truncate texts to this many tokens (CLS included); None keeps all.
    """

    def __init__(self, tokenizer: Tokenizer, out_dim: int = 64, max_len: int | None = None) -> None:
        super().__init__()
        if not isinstance(tokenizer, Tokenizer):
            raise TypeError("`tokenizer` must be a mmlab Tokenizer, "
                            f"got {type(tokenizer).__name__}.")
        check_int("out_dim", out_dim)
        self.tokenizer, self.out_dim, self.max_len = tokenizer, out_dim, max_len
        self.embedding = nn.Embedding(len(tokenizer), out_dim)

    def forward(self, x: Sequence[str] | Tensor) -> Tensor:
        """Args: x list of B strings or ids int64 (B, L). Returns: (B, out_dim)."""
        if isinstance(x, Tensor):
            ids = _check_ids(x, len(self.tokenizer))
        else:
            ids = self.tokenizer.encode(x, max_len=self.max_len)[0].to(self.embedding.weight.device)
        words = (ids != PAD) & (ids != CLS) & (ids != UNK)  # (B, L)
        words = words.to(self.embedding.weight.dtype)
        summed = (self.embedding(ids) * words[..., None]).sum(1)  # (B, out_dim)
        return summed / words.sum(1, keepdim=True).clamp(min=1)  # (B, out_dim)
