"""Per-modality explainers behind `similarity_attribution`: patches or pixels, frames, tokens.

Each `_explain_*` scores the parts of sample i of one tower for s = cos(z_i, z_j), z_j fixed:
- attention methods read the tower's own attention maps and map token relevance back to image
  patches, spectrogram frames or words (`_pooled_relevance`, `_spread`, `_text_token_slice`);
- gradient methods (input × gradient, integrated gradients) differentiate s with respect to
  the tower's input: pixels, the log-mel spectrogram, or the token embeddings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmlab._checks import check_tensor
from mmlab._norm import l2_normalize
from mmlab.attribution.attention import attention_rollout, gradient_attention
from mmlab.attribution.integrated_gradients import integrated_gradients
from mmlab.attribution.result import ATTENTION_METHODS, Attribution


def _head(model: nn.Module, modality: str) -> Callable[[Tensor], Tensor]:
    heads = getattr(model, "heads", None)
    if heads is not None and modality in heads:
        return heads[modality]
    return nn.Identity()


def _project(model: nn.Module, modality: str, features: Tensor) -> Tensor:
    """z = normalise(head(features)), as `ContrastiveModel.encode` does."""
    return l2_normalize(_head(model, modality)(features), dim=-1)  # (N, D)


def _n_prefix(encoder: nn.Module, T: int, n_content: int) -> int:
    n_prefix = T - n_content
    if n_prefix < 0:
        raise ValueError(f"the encoder's attention has {T} tokens but the input has {n_content} "
                         "patches/frames; cannot map tokens back to the input.")
    return n_prefix


def _pooled_relevance(relevance: Tensor, encoder: nn.Module, n_prefix: int) -> Tensor:
    """The row(s) of R that feed the embedding, restricted to content tokens: (T - n_prefix,).

    CLS pooling (a prefix token exists and `encoder.pool` is not "mean"): row 0. Mean pooling:
    the mean of the rows of R − I (the identity is every token's trivial self-relevance).
    """
    R = relevance[0]  # (T, T)
    pool = getattr(encoder, "pool", None)
    if n_prefix > 0 and pool != "mean":
        return R[0, n_prefix:]  # (n_content,)
    eye = torch.eye(R.shape[0], dtype=R.dtype, device=R.device)
    return (R - eye).mean(dim=0)[n_prefix:]  # (n_content,)


def _relevance(method: str, score: Tensor, attentions: list[Tensor]) -> Tensor:
    if method == "rollout":
        return attention_rollout([a.detach() for a in attentions])  # (1, T, T)
    grads = torch.autograd.grad(score, attentions, allow_unused=True)
    grads = [torch.zeros_like(a) if g is None else g for a, g in zip(attentions, grads)]
    return gradient_attention([a.detach() for a in attentions], grads)  # (1, T, T)


def _find_token_embedding(encoder: nn.Module) -> nn.Embedding:
    for name in ("token_embedding", "tok_embedding", "token_emb", "tok_emb", "embed_tokens", "wte",
                 "embedding"):
        mod = getattr(encoder, name, None)
        if isinstance(mod, nn.Embedding):
            return mod
    embeddings = [m for m in encoder.modules() if isinstance(m, nn.Embedding)]
    if not embeddings:
        raise ValueError("gradient methods on text need the encoder's token nn.Embedding (e.g. "
                         "`encoder.token_embedding`); none was found.")
    return max(embeddings, key=lambda m: m.num_embeddings)


def _text_token_slice(encoder: nn.Module, text: str, length: int) -> tuple[list[str], slice]:
    """The tokens of `text` and where they sit among the encoder's `length` positions.

    The encoder's tokenizer encodes a text as [CLS] w_1 … w_n [PAD]…: the n word tokens sit at
    positions 1 … n (after the prefix tokens that `encode` puts first).
    """
    tokenizer = getattr(encoder, "tokenizer", None)
    if tokenizer is None or not hasattr(tokenizer, "tokens"):
        raise ValueError("text attribution needs `encoder.tokenizer.tokens(text)`; the text "
                         "encoder has none.")
    max_len = getattr(encoder, "max_len", None)
    tokens = list(tokenizer.tokens(text, max_len) if max_len is not None
                  else tokenizer.tokens(text))
    n_prefix = 1
    if hasattr(tokenizer, "encode"):
        ids, mask = tokenizer.encode([text], max_len=max_len)[:2]
        n_prefix = max(int(mask[0].sum()) - len(tokens), 0)
    n = max(min(len(tokens), length - n_prefix), 0)
    return tokens[:n], slice(n_prefix, n_prefix + n)


def _spread(token_scores: Tensor, n_frames: int) -> Tensor:
    """Give each of the n tokens' scores to the frames it covers (tokens in time order)."""
    n = token_scores.numel()
    stride = math.ceil(n_frames / n)
    frames = token_scores.repeat_interleave(stride)  # (n * stride,)
    if frames.numel() < n_frames:
        frames = F.pad(frames, (0, n_frames - frames.numel()))
    return frames[:n_frames]  # (frames,)


def _gradient_scores(g: Callable[[Tensor], Tensor], u0: Tensor, u_ref: Tensor, method: str,
                     steps: int) -> tuple[Tensor, float]:
    """Per-element attribution of s = g(u) at u0 (1, ...): input × gradient or IG.

    Returns `(scores, s)`."""
    if method == "integrated_gradients":
        res = integrated_gradients(g, u0, u_ref, steps=steps, method="gausslegendre")
        return res.attributions[0], res.f_x
    u = u0.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        s = g(u)  # (1,)
        (grad,) = torch.autograd.grad(s.sum(), u)
    return ((u0 - u_ref) * grad)[0].detach(), float(s[0].detach())


def _explain_pixels(model: nn.Module, encoder: nn.Module, batch: Mapping[str, Any], i: int,
                    z_j: Tensor, method: str, steps: int, modality: str,
                    other: str) -> Attribution:
    x = check_tensor(f"batch[{modality!r}]", batch[modality], ndim=4,
                     what="of shape (B, C, H, W)")[i:i + 1]  # (1, C, H, W)
    H, W = x.shape[-2:]
    if method in ATTENTION_METHODS:
        with torch.enable_grad():
            features, attentions = encoder(x, return_attention=True)
            s = _project(model, modality, features) @ z_j  # (1,)
            relevance = _relevance(method, s.sum(), list(attentions))  # (1, T, T)
        p = getattr(encoder, "patch_size", None)
        if p is None:
            raise ValueError(f"{type(encoder).__name__} has no `patch_size`; cannot map tokens "
                             "to patches.")
        ph, pw = (p, p) if isinstance(p, int) else tuple(p)
        grid = (H // ph, W // pw)
        n_prefix = _n_prefix(encoder, relevance.shape[-1], grid[0] * grid[1])
        scores = _pooled_relevance(relevance, encoder, n_prefix).reshape(grid)  # (H/p, W/p)
        return Attribution(scores.detach().cpu(), "patches", grid, None, float(s[0].detach()),
                           method, modality, other)

    def g(u: Tensor) -> Tensor:
        return _project(model, modality, encoder(u)) @ z_j  # (N,)

    scores, s = _gradient_scores(g, x, torch.zeros_like(x), method, steps)  # (C, H, W)
    scores = scores.sum(dim=0)  # (H, W)
    return Attribution(scores.cpu(), "pixels", (H, W), None, s, method, modality, other)


def _explain_audio(model: nn.Module, encoder: nn.Module, batch: Mapping[str, Any], i: int,
                   z_j: Tensor, method: str, steps: int, other: str) -> Attribution:
    wave = check_tensor("batch['audio']", batch["audio"], ndim=2, what="of shape (B, T)")[i:i + 1]
    if not (hasattr(encoder, "logmel") and hasattr(encoder, "forward_spectrogram")):
        raise ValueError("audio attribution needs an encoder with `logmel` and "
                         "`forward_spectrogram`; "
                         f"{type(encoder).__name__} has not both.")
    with torch.no_grad():
        spec = encoder.logmel(wave)  # (1, mels, frames)
    n_frames = spec.shape[-1]
    if method in ATTENTION_METHODS:
        with torch.enable_grad():
            features, attentions = encoder.forward_spectrogram(spec, return_attention=True)
            s = _project(model, "audio", features) @ z_j  # (1,)
            relevance = _relevance(method, s.sum(), list(attentions))  # (1, T, T)
        T = relevance.shape[-1]
        stride = getattr(encoder, "frame_stride", None) or 1
        n_tokens = math.ceil(n_frames / stride)
        n_prefix = _n_prefix(encoder, T, min(n_tokens, T))
        token_scores = _pooled_relevance(relevance, encoder, n_prefix)  # (T - n_prefix,)
        scores = _spread(token_scores, n_frames)  # (frames,)
        return Attribution(scores.detach().cpu(), "frames", (n_frames,), None, float(s[0].detach()),
                           method, "audio", other)

    def g(u: Tensor) -> Tensor:
        return _project(model, "audio", encoder.forward_spectrogram(u)) @ z_j  # (N,)

    # Baseline: each mel band's time average, a stationary sound with the clip's spectrum and no
    # events in time. (A constant spectrogram would not do: encoders standardise each clip, which
    # maps every point b + α(u − b) of a path from a constant b to the same input.)
    u_ref = spec.mean(dim=-1, keepdim=True).expand_as(spec)  # (1, mels, frames)
    scores, s = _gradient_scores(g, spec, u_ref, method, steps)  # (mels, frames)
    return Attribution(scores.cpu(), "frames", tuple(scores.shape), None, s, method, "audio", other)


def _explain_text(model: nn.Module, encoder: nn.Module, batch: Mapping[str, Any], i: int,
                  z_j: Tensor, method: str, steps: int, other: str) -> Attribution:
    texts = batch["text"]
    if isinstance(texts, Tensor):
        raise TypeError("text attribution needs the raw strings in batch['text'] (to name the "
                        "tokens), got ids.")
    text = texts[i]
    if method in ATTENTION_METHODS:
        with torch.enable_grad():
            features, attentions = encoder([text], return_attention=True)
            s = _project(model, "text", features) @ z_j  # (1,)
            relevance = _relevance(method, s.sum(), list(attentions))  # (1, T, T)
        tokens, where = _text_token_slice(encoder, text, relevance.shape[-1])
        pooled = _pooled_relevance(relevance, encoder, where.start)  # (T - n_prefix,)
        scores = pooled[: where.stop - where.start]  # (n_tokens,)
        return Attribution(scores.detach().cpu(), "tokens", (len(tokens),), tokens,
                           float(s[0].detach()), method, "text", other)

    embedding = _find_token_embedding(encoder)
    _text_token_slice(encoder, text, 1)  # fails early, with a clear message, without a tokenizer
    with torch.no_grad():
        captured: list[Tensor] = []
        handle = embedding.register_forward_hook(
            lambda mod, inp, out: captured.append(out.detach()))
        try:
            encoder([text])
        finally:
            handle.remove()
    if not captured:
        raise ValueError(f"the text encoder {type(encoder).__name__} did not use its token "
                         f"embedding for {text!r} (a cached or frozen encoder?); gradient methods "
                         "need a trainable text encoder.")
    e0 = captured[0]  # (1, L, E)
    tokens, where = _text_token_slice(encoder, text, e0.shape[1])

    def g(u: Tensor) -> Tensor:
        hook = embedding.register_forward_hook(lambda mod, inp, out: u)
        try:
            features = encoder([text] * u.shape[0])
        finally:
            hook.remove()
        return _project(model, "text", features) @ z_j  # (N,)

    scores, s = _gradient_scores(g, e0, torch.zeros_like(e0), method, steps)  # (L, E)
    scores = scores.sum(dim=-1)[where]  # (n_tokens,)
    return Attribution(scores.cpu(), "tokens", (len(tokens),), tokens, s, method, "text", other)
