"""Tokenise a dataset's texts once, so that training never runs a Python loop per sample.

A word-level text encoder (`TextTransformer`, `BagOfWordsEncoder`) accepts either a list of
strings, which it tokenises on every call (a Python loop over the batch, on the CPU), or a
tensor of token ids (B, L), which it embeds directly. `pretokenize` turns a dataset's text column
into ids (N, L) padded to one length L, so the whole dataset can sit on the GPU
(`dataset.to(device)`), batches are index slices, and the shapes are static (what
`torch.compile` needs: a list of strings would be a new constant every step and re-trace the graph).

The mask the encoders use is `ids != PAD`, so padding changes nothing: an encoder gives the
same features for a text and for its padded ids (tested).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from mmlab._checks import check_int
from mmlab.data.dataset import MultimodalDataset
from mmlab.encoders.tokenizer import Tokenizer


def _tokenizer_of(encoder: Any) -> Tokenizer:
    if isinstance(encoder, Tokenizer):
        return encoder
    tokenizer = getattr(encoder, "tokenizer", None) if isinstance(encoder, nn.Module) else None
    if not isinstance(tokenizer, Tokenizer):
        raise TypeError("`encoder` must be a mmlab Tokenizer or a word-level text encoder with a "
                        "`tokenizer` (TextTransformer, BagOfWordsEncoder), got "
                        f"{type(encoder).__name__}; a SentenceEncoder tokenises inside its "
                        "pretrained model and caches per string instead.")
    return tokenizer


def pretokenize(dataset: MultimodalDataset, encoder: Any, *, modality: str = "text",
                max_len: int | None = None) -> MultimodalDataset:
    """A copy of `dataset` whose `modality` holds token ids (N, L) instead of N strings.

    Args:
        dataset: a `MultimodalDataset` whose `modality` is a list of str.
        encoder: the `Tokenizer`, or the text encoder whose `tokenizer` (and `max_len`, if it has
            one) to use.
        modality: the text modality's name.
        max_len: tokens per text, CLS included (longer texts are cut). Default: the encoder's
            `max_len` if it has one, else the longest text in the dataset.
    Returns:
        A new dataset (labels, factors, masks and meta shared) with `modality` as int64 ids
        (N, L): CLS first, PAD = 0 after the words; on the CPU, like the strings were.
    """
    if not isinstance(dataset, MultimodalDataset):
        raise TypeError(f"`dataset` must be a MultimodalDataset, got {type(dataset).__name__}.")
    texts = dataset.modalities_data.get(modality)
    if texts is None:
        raise ValueError(f"`modality={modality!r}` is not in the dataset; it has "
                         f"{list(dataset.modalities_data)}.")
    if not isinstance(texts, list):
        raise TypeError(f"`dataset[{modality!r}]` must be a list of str to tokenise, got "
                        f"{type(texts).__name__} (already tokenised?).")
    tokenizer = _tokenizer_of(encoder)
    if max_len is None:
        max_len = getattr(encoder, "max_len", None)
    if max_len is not None:
        max_len = check_int("max_len", max_len, minimum=2)
    ids, _ = tokenizer.encode(texts, max_len=max_len)  # (N, L), L = the longest text (≤ max_len)
    modalities = {**dataset.modalities_data, modality: ids}
    return MultimodalDataset(modalities, label=dataset.label, factors=dataset.factors,
                             present=dataset.present, classes=dataset.classes, meta=dataset.meta)
