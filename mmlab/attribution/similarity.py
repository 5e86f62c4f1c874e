"""Explaining one similarity s = cos(z_i, z_j) of a contrastive model over the parts of sample i.

`similarity_attribution` scores image patches or pixels, spectrogram frames and text tokens
with one of four methods:

- attention rollout (Abnar & Zuidema 2020) and gradient-weighted attention (Chefer, Gur & Wolf
  2021) on the explained tower's own attention maps (see `mmlab.attribution.attention`);
- input × gradient (Shrikumar et al. 2016) and integrated gradients (Sundararajan, Taly & Yan
  2017) on the tower's input: pixels, the log-mel spectrogram, or the token embeddings (see
  `mmlab.attribution.integrated_gradients`).

The other side z_j is held fixed; the model is evaluated in eval mode (flags restored after).
"""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmlab._checks import check_choice, check_int, check_tensor
from mmlab._norm import l2_normalize
from mmlab.attribution.attention import attention_rollout, gradient_attention
from mmlab.attribution.integrated_gradients import integrated_gradients

SIMILARITY_METHODS = ("grad_attention", "rollout", "integrated_gradients", "input_x_gradient")
ATTENTION_METHODS = ("grad_attention", "rollout")

__all__ = ["SIMILARITY_METHODS", "ATTENTION_METHODS", "Attribution", "similarity_attribution"]


@dataclass
class Attribution:
    """An explanation of s = cos(z_i, z_j) over the parts of sample i.

    Attributes:
        scores: detached, on the CPU: (gh, gw) for image patches, (H, W) for pixels, (frames,)
            or (mels, frames) for audio, (n_tokens,) for text.
        kind: "patches", "pixels", "frames" or "tokens".
        grid_shape: shape of `scores` as a tuple.
        tokens: the text tokens (text only, else None).
        similarity: s = cos(z_i, z_j) at the input.
        method: the method used.
        modality: the explained modality; `other`: the modality of z_j.
    """

    scores: Tensor
    kind: str
    grid_shape: tuple[int, ...]
    tokens: list[str] | None
    similarity: float
    method: str = ""
    modality: str = ""
    other: str = ""


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Evaluate with dropout off and batch-norm statistics frozen; restore the flags afterwards."""
    flags = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags.items():
            m.training = flag


def _supports_attention(fn: Callable[..., Any]) -> bool:
    try:
        return "return_attention" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _select(x: Any, idx: int, name: str) -> Any:
    if isinstance(x, Tensor):
        return x[idx:idx + 1]
    if isinstance(x, (list, tuple)):
        return [x[idx]]
    raise TypeError(f"`batch[{name!r}]` must be a tensor or a list of strings, got {type(x).__name__}.")


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
        raise ValueError(f"the encoder's attention has {T} tokens but the input has {n_content} patches/frames; "
                         "cannot map tokens back to the input.")
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
    for name in ("token_embedding", "tok_embedding", "token_emb", "tok_emb", "embed_tokens", "wte", "embedding"):
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
        raise ValueError("text attribution needs `encoder.tokenizer.tokens(text)`; the text encoder has none.")
    max_len = getattr(encoder, "max_len", None)
    tokens = list(tokenizer.tokens(text, max_len) if max_len is not None else tokenizer.tokens(text))
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


def similarity_attribution(model: nn.Module, batch: Mapping[str, Any], i: int, j: int, modality: str, *,
                           other: str | None = None, method: str = "grad_attention",
                           steps: int = 32) -> Attribution:
    """Which parts of sample i in `modality` make it similar to sample j in `other`?

    The explained score is s = cos(z_i, z_j) = ẑ_i · ẑ_j, with z_i from sample i of `modality`
    (the input whose parts are scored) and z_j from sample j of `other` (held fixed).

    Methods (see the module docstring for the papers):
    - "grad_attention" (Chefer et al. 2021) and "rollout" (Abnar & Zuidema 2020) need a
      transformer encoder (`forward(x, return_attention=True)`); they score image patches
      ((H/p, W/p) grid), audio frames ((frames,): each token's score is given to the frames it
      covers) or text tokens, from the row of the pooled CLS token (mean of rows for mean-pooled
      encoders).
    - "input_x_gradient" ((u − u')⊙∇s(u)) and "integrated_gradients" (`steps` Gauss-Legendre
      nodes, baseline u') work for every encoder. u is the pixels (H, W map, summed over
      colour channels; u' = black image), the log-mel spectrogram (mels, frames) for audio
      encoders with `logmel` and `forward_spectrogram` (u' = each mel band's time average: a
      stationary sound with the clip's spectrum; a constant u' would be useless because the
      encoders standardise each clip), or the token embeddings for text (u' = 0, summed over
      the embedding width).

    Args:
        model: a ContrastiveModel (`model.encoders[m]`, `model.heads[m]`).
        batch: a batch in the mmlab format.
        i: index of the explained sample in `batch[modality]`.
        j: index of the reference sample in `batch[other]`.
        modality: the modality to explain ("image", "audio" or "text").
        other: the modality of z_j; the first other modality of the batch when None.
        method: "grad_attention", "rollout", "integrated_gradients" or "input_x_gradient".
        steps: number of integrated-gradients quadrature nodes.
    Returns:
        An `Attribution` (scores detached on the CPU, kind, grid_shape, tokens, similarity).
    """
    encoders = getattr(model, "encoders", None)
    if not isinstance(encoders, Mapping | nn.ModuleDict):
        raise TypeError("`model` must be a ContrastiveModel with `encoders` (a ModuleDict), "
                        f"got {type(model).__name__}.")
    if not isinstance(batch, Mapping):
        raise TypeError(f"`batch` must be a dict of modality → data, got {type(batch).__name__}.")
    available = [m for m in batch if m in encoders]
    check_choice("modality", modality, available)
    if other is None:
        others = [m for m in available if m != modality]
        if not others:
            raise ValueError(f"`other` is None and the batch has no modality besides {modality!r} that the model "
                             f"encodes (batch keys {sorted(batch)}); pass other=...")
        other = others[0]
    check_choice("other", other, available)
    check_choice("method", method, SIMILARITY_METHODS)
    check_int("steps", steps)
    for name, idx, m in (("i", i, modality), ("j", j, other)):
        check_int(name, idx, minimum=0)
        if idx >= len(batch[m]):
            raise ValueError(f"`{name}` = {idx} is out of range for batch[{m!r}] of length {len(batch[m])}.")

    encoder = encoders[modality]
    if method in ATTENTION_METHODS and not _supports_attention(encoder.forward):
        raise ValueError(f"method={method!r} needs a transformer encoder with forward(x, return_attention=True); "
                         f"the {modality} encoder is a {type(encoder).__name__}. "
                         "Use method='input_x_gradient' or 'integrated_gradients'.")
    with _eval_mode(model), torch.no_grad():
        z_j = _project(model, other, encoders[other](_select(batch[other], j, other)))[0]  # (D,)
    with _eval_mode(model):
        if modality == "text":
            return _explain_text(model, encoder, batch, i, z_j, method, steps, other)
        if modality == "audio":
            return _explain_audio(model, encoder, batch, i, z_j, method, steps, other)
        return _explain_pixels(model, encoder, batch, i, z_j, method, steps, modality, other)


def _gradient_scores(g: Callable[[Tensor], Tensor], u0: Tensor, u_ref: Tensor, method: str,
                     steps: int) -> tuple[Tensor, float]:
    """Per-element attribution of s = g(u) at u0 (1, ...): input × gradient or IG. Returns (scores, s)."""
    if method == "integrated_gradients":
        res = integrated_gradients(g, u0, u_ref, steps=steps, method="gausslegendre")
        return res.attributions[0], res.f_x
    u = u0.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        s = g(u)  # (1,)
        (grad,) = torch.autograd.grad(s.sum(), u)
    return ((u0 - u_ref) * grad)[0].detach(), float(s[0].detach())


def _explain_pixels(model: nn.Module, encoder: nn.Module, batch: Mapping[str, Any], i: int, z_j: Tensor,
                    method: str, steps: int, modality: str, other: str) -> Attribution:
    x = check_tensor(f"batch[{modality!r}]", batch[modality], ndim=4, what="of shape (B, C, H, W)")[i:i + 1]
    H, W = x.shape[-2:]
    if method in ATTENTION_METHODS:
        with torch.enable_grad():
            features, attentions = encoder(x, return_attention=True)
            s = _project(model, modality, features) @ z_j  # (1,)
            relevance = _relevance(method, s.sum(), list(attentions))  # (1, T, T)
        p = getattr(encoder, "patch_size", None)
        if p is None:
            raise ValueError(f"{type(encoder).__name__} has no `patch_size`; cannot map tokens to patches.")
        ph, pw = (p, p) if isinstance(p, int) else tuple(p)
        grid = (H // ph, W // pw)
        n_prefix = _n_prefix(encoder, relevance.shape[-1], grid[0] * grid[1])
        scores = _pooled_relevance(relevance, encoder, n_prefix).reshape(grid)  # (H/p, W/p)
        return Attribution(scores.detach().cpu(), "patches", grid, None, float(s[0].detach()), method, modality, other)

    def g(u: Tensor) -> Tensor:
        return _project(model, modality, encoder(u)) @ z_j  # (N,)

    scores, s = _gradient_scores(g, x, torch.zeros_like(x), method, steps)  # (C, H, W)
    scores = scores.sum(dim=0)  # (H, W)
    return Attribution(scores.cpu(), "pixels", (H, W), None, s, method, modality, other)


def _explain_audio(model: nn.Module, encoder: nn.Module, batch: Mapping[str, Any], i: int, z_j: Tensor,
                   method: str, steps: int, other: str) -> Attribution:
    wave = check_tensor("batch['audio']", batch["audio"], ndim=2, what="of shape (B, T)")[i:i + 1]
    if not (hasattr(encoder, "logmel") and hasattr(encoder, "forward_spectrogram")):
        raise ValueError(f"audio attribution needs an encoder with `logmel` and `forward_spectrogram`; "
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


def _explain_text(model: nn.Module, encoder: nn.Module, batch: Mapping[str, Any], i: int, z_j: Tensor,
                  method: str, steps: int, other: str) -> Attribution:
    texts = batch["text"]
    if isinstance(texts, Tensor):
        raise TypeError("text attribution needs the raw strings in batch['text'] (to name the tokens), got ids.")
    text = texts[i]
    if method in ATTENTION_METHODS:
        with torch.enable_grad():
            features, attentions = encoder([text], return_attention=True)
            s = _project(model, "text", features) @ z_j  # (1,)
            relevance = _relevance(method, s.sum(), list(attentions))  # (1, T, T)
        tokens, where = _text_token_slice(encoder, text, relevance.shape[-1])
        pooled = _pooled_relevance(relevance, encoder, where.start)  # (T - n_prefix,)
        scores = pooled[: where.stop - where.start]  # (n_tokens,)
        return Attribution(scores.detach().cpu(), "tokens", (len(tokens),), tokens, float(s[0].detach()),
                           method, "text", other)

    embedding = _find_token_embedding(encoder)
    _text_token_slice(encoder, text, 1)  # fails early, with a clear message, without a tokenizer
    with torch.no_grad():
        captured: list[Tensor] = []
        handle = embedding.register_forward_hook(lambda mod, inp, out: captured.append(out.detach()))
        try:
            encoder([text])
        finally:
            handle.remove()
    if not captured:
        raise ValueError(f"the text encoder {type(encoder).__name__} did not use its token embedding for {text!r} "
                         "(a cached or frozen encoder?); gradient methods need a trainable text encoder.")
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
