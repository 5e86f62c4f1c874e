"""Recipes: the course's reference tri-modal model (image, audio, text), built in one call.

The model follows CLIP (Radford et al., 2021, "Learning Transferable Visual Models From Natural
Language Supervision"): one encoder f_m per modality m, a linear projection g_m to the shared
width D, and the symmetric InfoNCE loss with a learnable temperature τ on every pair:

    z_m = g_m(f_m(x_m)) / ‖g_m(f_m(x_m))‖                                  (B, D) per modality
    L   = (1 / |P|) Σ_{(m, n) ∈ P} ½ [CE(S_mn / τ, I) + CE(S_mnᵀ / τ, I)]   S_mn = z_m z_nᵀ  (B, B)

With M = 3 modalities the pairs P are either all three (`pairs="all"`: image↔audio, image↔text,
audio↔text) or the two that share one anchor modality (`pairs="anchor:image"`), as in ImageBind
(Girdhar et al., 2023, "ImageBind: One Embedding Space To Bind Them All"): aligning every
modality to images alone is enough for audio↔text retrieval to emerge, without a single
audio–text pair in the loss.

Parts (see docs/DESIGN.md for the interfaces):

- image: `ConvEncoder` (3 stride-2 3x3 convs, average pool, linear) on (B, 3, H, W);
- audio: `AudioConvEncoder`, a log-mel spectrogram computed inside (so it runs batched on the
  model's device) followed by the same small CNN, on waveforms (B, T);
- text: a `BagOfWordsEncoder` or a `TextTransformer` over a `Tokenizer.from_texts` vocabulary
  built from the training texts, or the frozen `SentenceEncoder` (all-MiniLM-L6-v2, bundled);
- a linear `ProjectionHead` per modality to D = `embed_dim`;
- `ClipLoss(normalize=False)`: `ContrastiveModel.encode` already L2-normalises, so the loss does
  not normalise twice. Its `logit_scale = log(1/τ)` is clamped to `MAX_LOGIT_SCALE = log 100`
  in `forward` and, by `mmlab.train.fit`, after every optimizer step.

Example::

    from mmlab.data import load
    from mmlab.recipes import TriModalConfig, trimodal_model
    from mmlab.train import fit

    train = load("digits", split="train")
    model = trimodal_model(train, TriModalConfig(text="bag-of-words"))
    history = fit(model, train, steps=300, batch_size=128)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from mmlab._checks import check_choice, check_int, check_temperature
from mmlab.encoders import (AudioConvEncoder, BagOfWordsEncoder, ConvEncoder, ProjectionHead,
                            SentenceEncoder, TextTransformer, Tokenizer)
from mmlab.losses import DEFAULT_TEMPERATURE, ClipLoss
from mmlab.model import ContrastiveModel, resolve_pairs

__all__ = ["TriModalConfig", "trimodal_model", "TEXT_KINDS", "MODALITIES"]

TEXT_KINDS = ("bag-of-words", "transformer", "sentence")
MODALITIES = ("image", "audio", "text")


@dataclass
class TriModalConfig:
    """Sizes and options of the reference tri-modal model (validated on construction).

    Args:
        embed_dim: shared embedding width D of every projection head.
        image_width: conv channels of the image `ConvEncoder`.
        audio_width: conv channels of the `AudioConvEncoder`.
        text: "bag-of-words" (mean of word embeddings), "transformer" (a small `TextTransformer`
            with CLS pooling) or "sentence" (the frozen MiniLM `SentenceEncoder`, 384 features).
        hidden: feature width of the trainable encoders (out_dim of image, audio and the
            bag-of-words / transformer text encoder) before the projection heads.
        init_temperature: initial τ of the `ClipLoss` (CLIP: 0.07).
        learnable_temperature: whether `logit_scale = log(1/τ)` is trained.
        pairs: modality pairs in the loss: "all", "anchor:<modality>" (ImageBind-style, e.g.
            "anchor:image") or a list of (m1, m2) tuples over ("image", "audio", "text").
    """

    embed_dim: int = 64
    image_width: int = 32
    audio_width: int = 32
    text: str = "bag-of-words"
    hidden: int = 128
    init_temperature: float = DEFAULT_TEMPERATURE
    learnable_temperature: bool = True
    pairs: str | Sequence[tuple[str, str]] = "all"

    def __post_init__(self) -> None:
        for name in ("embed_dim", "image_width", "audio_width", "hidden"):
            check_int(name, getattr(self, name))
        check_choice("text", self.text, TEXT_KINDS)
        check_temperature(self.init_temperature, "init_temperature")
        if not isinstance(self.learnable_temperature, bool):
            raise TypeError(f"`learnable_temperature` must be a bool, got "
                            f"{type(self.learnable_temperature).__name__} "
                            f"({self.learnable_temperature!r}).")
        resolve_pairs(self.pairs, MODALITIES)  # raises a ValueError naming `pairs`


def _check_train_data(train_data: Any, text_kind: str) -> list[str] | None:
    """Check a dataset with image, audio and text; return its texts (None for a frozen text
    encoder)."""
    mods = getattr(train_data, "modalities", None)
    if not callable(getattr(train_data, "batch", None)) or not isinstance(mods, (tuple, list)):
        raise TypeError("`train_data` must be a mmlab.data.MultimodalDataset (with `.modalities` "
                        f"and `.batch(idx)`), got {type(train_data).__name__}; e.g. "
                        "load('digits', split='train').")
    missing = [m for m in MODALITIES if m not in mods]
    if missing:
        hint = (" Load it with audio, e.g. load('digits', audio=True)." if missing == ["audio"]
                else "")
        raise ValueError(f"`train_data` must hold the modalities {list(MODALITIES)}; it is missing "
                         f"{missing} (it has {list(mods)}).{hint}")
    if len(train_data) == 0:
        raise ValueError("`train_data` is empty; pass a dataset with at least one sample.")
    # one row: cheap shape checks without touching the rest
    first = train_data.batch(torch.arange(1))
    image, audio = first["image"], first["audio"]
    if not isinstance(image, Tensor) or image.ndim != 4 or image.shape[1] != 3:
        shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError("`train_data` images must be (N, 3, H, W) RGB tensors; one batch row has "
                         f"shape {shape}.")
    if not isinstance(audio, Tensor) or audio.ndim != 2:
        shape = tuple(audio.shape) if isinstance(audio, Tensor) else type(audio).__name__
        raise ValueError("`train_data` audio must be waveforms (N, T) at 16 kHz; one batch row has "
                         f"shape {shape}.")
    if text_kind == "sentence":
        return None
    stored = getattr(train_data, "modalities_data", {}).get("text")
    texts = (stored if isinstance(stored, list)
             else train_data.batch(torch.arange(len(train_data)))["text"])
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise TypeError(f"`train_data` text must be a list of str, got {type(texts).__name__}.")
    return texts


def _text_encoder(config: TriModalConfig, texts: list[str] | None) -> nn.Module:
    if config.text == "sentence":
        return SentenceEncoder()  # frozen: no parameters of its own
    tokenizer = Tokenizer.from_texts(texts)
    if len(tokenizer) <= 3:
        raise ValueError("`train_data` texts contain no words (the vocabulary would be only <pad>, "
                         "<unk>, <cls>); a word-level text encoder cannot learn from them.")
    if config.text == "bag-of-words":
        return BagOfWordsEncoder(tokenizer, out_dim=config.hidden)
    return TextTransformer(tokenizer, out_dim=config.hidden)


def trimodal_model(train_data: Any, config: TriModalConfig | None = None) -> ContrastiveModel:
    """Build the course's reference tri-modal (image, audio, text) `ContrastiveModel`.

    Encoders: `ConvEncoder(hidden, image_width)`, `AudioConvEncoder(hidden, width=audio_width)`
    and the text encoder of `config.text`; a linear `ProjectionHead(out_dim, embed_dim)` each;
    `ClipLoss(init_temperature, learnable_temperature, normalize=False)` averaged over
    `config.pairs`. Only the text vocabulary depends on `train_data`; nothing is trained here.

    Args:
        train_data: a `MultimodalDataset` with "image" (N, 3, H, W), "audio" (N, T) and "text"
            (list of N str), e.g. `mmlab.data.load("digits", split="train")`. Its texts build the
            tokenizer (unused for text="sentence").
        config: a `TriModalConfig` (default: `TriModalConfig()`).
    Returns:
        A `ContrastiveModel` on the CPU, in train mode; `model(batch)` returns a `LossOutput`
        whose terms are keyed "m1-m2", and `model.encode(batch)` the unit-norm (B, D) embeddings.
    Raises:
        TypeError: `config` is not a TriModalConfig, or `train_data` is not a dataset.
        ValueError: `train_data` lacks one of image/audio/text or has wrongly shaped images or
            audio, or its texts hold no words.
    """
    config = TriModalConfig() if config is None else config
    if not isinstance(config, TriModalConfig):
        raise TypeError(f"`config` must be a TriModalConfig, got {type(config).__name__}; "
                        "e.g. TriModalConfig(text='transformer').")
    texts = _check_train_data(train_data, config.text)
    encoders: dict[str, nn.Module] = {
        "image": ConvEncoder(config.hidden, width=config.image_width),
        "audio": AudioConvEncoder(config.hidden, width=config.audio_width),
        "text": _text_encoder(config, texts),
    }
    heads = {m: ProjectionHead(enc.out_dim, config.embed_dim) for m, enc in encoders.items()}
    loss = ClipLoss(config.init_temperature, config.learnable_temperature, normalize=False)
    pairs = config.pairs if isinstance(config.pairs, str) else [tuple(p) for p in config.pairs]
    return ContrastiveModel(encoders, heads, loss, pairs=pairs)
