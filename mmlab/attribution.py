"""Attribution: which patches, frames or tokens drive a similarity?

Four ways to explain a score `s = cos(z_i, z_j)` of a contrastive model, from cheapest to
most principled:

- **Attention rollout** (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers"):
  multiply the head-averaged attention maps of all layers, with the residual stream as `+ I`.
  Class-agnostic: it ignores which score is being explained.
- **Gradient-weighted attention** (Chefer, Gur & Wolf 2021, "Generic Attention-model
  Explainability for Interpreting Bi-Modal and Encoder-Decoder Transformers", Eqs. 5-6):
  weight every attention map by its gradient `∂s/∂A`, keep the positive part and accumulate
  `R ← R + Ā·R` through the layers.
- **Input × gradient** (Shrikumar et al. 2016): `(x − x') ⊙ ∇s(x)`, a one-step linearisation.
- **Integrated gradients** (Sundararajan, Taly & Yan 2017, "Axiomatic Attribution for Deep
  Networks"): average the gradient along the straight path from a baseline `x'` to `x`;
  the attributions then sum to `s(x) − s(x')` (completeness).

Plus the helpers a notebook needs to judge an explanation: the share of positive attribution
mass inside the object's bounding box, the sanity check of Adebayo et al. 2018 ("Sanity
Checks for Saliency Maps": a randomly re-initialised model must give a different map), and
Spearman rank correlation to compare two maps.

Notation as in docs/DESIGN.md: `B` batch, `h` heads, `T` tokens, `A_l` the attention of layer
`l` with shape (B, h, T, T), rows summing to 1.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmlab._checks import check_choice, check_finite, check_finite_if_cheap, check_int, check_tensor

HEAD_FUSIONS = ("mean", "max", "min")
IG_METHODS = ("riemann_trapezoid", "gausslegendre")
SIMILARITY_METHODS = ("grad_attention", "rollout", "integrated_gradients", "input_x_gradient")
ATTENTION_METHODS = ("grad_attention", "rollout")

__all__ = [
    "Attribution", "IGResult", "attention_rollout", "gradient_attention", "integrated_gradients",
    "similarity_attribution", "attribution_in_box", "box_share", "upsample_to_image",
    "randomize_weights", "rank_correlation",
]


# ---------------------------------------------------------------------------------------------
# Attention-based relevance
# ---------------------------------------------------------------------------------------------

def _check_attentions(name: str, attentions: Any) -> list[Tensor]:
    if isinstance(attentions, Tensor) or not isinstance(attentions, Sequence) or len(attentions) == 0:
        raise TypeError(f"`{name}` must be a non-empty list (one per layer) of (B, heads, T, T) tensors, "
                        f"got {type(attentions).__name__}. Call the encoder with return_attention=True.")
    out = []
    for layer, a in enumerate(attentions):
        check_tensor(f"{name}[{layer}]", a, ndim=4, what="of shape (B, heads, T, T)")
        check_finite_if_cheap(f"{name}[{layer}]", a)
        if a.shape[-1] != a.shape[-2]:
            raise ValueError(f"`{name}[{layer}]` must be square in its last two dims (B, heads, T, T), "
                             f"got shape {tuple(a.shape)}.")
        if a.shape != attentions[0].shape:
            raise ValueError(f"every layer of `{name}` must have the same shape (B, heads, T, T); "
                             f"layer 0 is {tuple(attentions[0].shape)}, layer {layer} is {tuple(a.shape)}.")
        out.append(a)
    return out


def _eye_like(a: Tensor) -> Tensor:
    B, _, T, _ = a.shape
    return torch.eye(T, dtype=a.dtype, device=a.device).expand(B, T, T)  # (B, T, T)


def attention_rollout(attentions: Sequence[Tensor], *, head_fusion: str = "mean",
                      residual: bool = True) -> Tensor:
    """Attention rollout (Abnar & Zuidema 2020): how much each token flows into each output.

    Â_l = normalise_rows(fuse_h A_l + I)   (without `+ I` when `residual=False`)
    rollout = Â_L · … · Â_2 · Â_1

    `fuse_h` is the mean over heads (the paper), or the max / min (popular variants). Rows are
    renormalised to sum to 1 in every layer, so every row of the result sums to 1: row `t`
    is a distribution over the input tokens that token `t` of the last layer is built from.

    Args:
        attentions: one (B, h, T, T) tensor per layer, first layer first, rows summing to 1
            (CPU tensors are checked for NaN/Inf).
        head_fusion: "mean", "max" or "min" over the h heads.
        residual: add the identity for the skip connection (as in the paper).
    Returns:
        (B, T, T) rollout; `rollout[b, t]` is the relevance of every input token for token t.
    """
    attentions = _check_attentions("attentions", attentions)
    check_choice("head_fusion", head_fusion, HEAD_FUSIONS)
    eye = _eye_like(attentions[0])  # (B, T, T)
    rollout = eye.clone()
    for a in attentions:
        if head_fusion == "mean":
            fused = a.mean(dim=1)  # (B, T, T)
        elif head_fusion == "max":
            fused = a.amax(dim=1)  # (B, T, T)
        else:
            fused = a.amin(dim=1)  # (B, T, T)
        if residual:
            fused = fused + eye  # (B, T, T)
        fused = fused / fused.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(fused.dtype).tiny)
        rollout = fused @ rollout  # (B, T, T): Â_l · (Â_{l-1} ⋯ Â_1)
    return rollout


def gradient_attention(attentions: Sequence[Tensor], attention_grads: Sequence[Tensor]) -> Tensor:
    """Gradient-weighted attention relevance (Chefer, Gur & Wolf 2021, ICCV, Eqs. 5-6).

    For the self-attention layers of one encoder, starting from R = I (each token explains
    only itself) and going from the first layer to the last:

        Ā_l = E_h[(∇A_l ⊙ A_l)⁺]      (Eq. 5: ∇A_l = ∂s/∂A_l, ⁺ keeps the positive part,
                                       E_h is the mean over heads)
        R   ← R + Ā_l · R             (Eq. 6: the residual keeps the old relevance, the
                                       attention mixes it)

    so R = (I + Ā_L) ⋯ (I + Ā_1). Unlike rollout, rows are not normalised and the map depends on
    the score s being explained (through ∇A). The row of the token that is pooled into the
    embedding (CLS) gives the relevance of every input token; R[t, t] ≥ 1 is the identity's
    self-relevance and is usually dropped.

    Args:
        attentions: one (B, h, T, T) tensor per layer, first layer first.
        attention_grads: the gradients ∂s/∂A_l, same shapes
            (`torch.autograd.grad(s, attentions)`).
    Returns:
        (B, T, T) relevance matrix R.
    """
    attentions = _check_attentions("attentions", attentions)
    attention_grads = _check_attentions("attention_grads", attention_grads)
    if len(attentions) != len(attention_grads) or attentions[0].shape != attention_grads[0].shape:
        raise ValueError(f"`attention_grads` must match `attentions` layer by layer: got {len(attention_grads)} "
                         f"layers of {tuple(attention_grads[0].shape)} for {len(attentions)} layers of "
                         f"{tuple(attentions[0].shape)}. Pass torch.autograd.grad(score, attentions).")
    relevance = _eye_like(attentions[0]).clone()  # (B, T, T)
    for a, g in zip(attentions, attention_grads):
        a_bar = (g * a).clamp(min=0).mean(dim=1)  # (B, T, T), Eq. 5
        relevance = relevance + a_bar @ relevance  # (B, T, T), Eq. 6
    return relevance


# ---------------------------------------------------------------------------------------------
# Integrated gradients
# ---------------------------------------------------------------------------------------------

@dataclass
class IGResult:
    """What `integrated_gradients` returns.

    Attributes:
        attributions: same shape as `x`; (x − x') ⊙ mean_α ∇f(x' + α(x − x')).
        completeness_gap: Σ attributions − (f(x) − f(x')); → 0 as `steps` grows (the axiom).
        f_x: f(x).
        f_baseline: f(x').
        steps: number of path points used.
        method: the quadrature rule ("riemann_trapezoid" or "gausslegendre").
        baseline: the baseline x' that was used (same shape as x).
    """

    attributions: Tensor
    completeness_gap: float
    f_x: float
    f_baseline: float
    steps: int
    method: str
    baseline: Tensor = field(repr=False)


def _quadrature(steps: int, method: str, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """Nodes α_k in [0, 1] and weights w_k (Σ w_k = 1) so that Σ_k w_k g(α_k) ≈ ∫_0^1 g(α) dα."""
    if method == "riemann_trapezoid":
        alphas = np.linspace(0.0, 1.0, steps + 1)
        weights = np.full(steps + 1, 1.0 / steps)
        weights[0] = weights[-1] = 0.5 / steps
    else:
        nodes, w = np.polynomial.legendre.leggauss(steps)
        alphas, weights = (nodes + 1.0) / 2.0, w / 2.0
    return (torch.as_tensor(alphas, dtype=dtype, device=device),
            torch.as_tensor(weights, dtype=dtype, device=device))


def integrated_gradients(f: Callable[[Tensor], Tensor], x: Tensor, baseline: Tensor | None = None,
                         steps: int = 64, *, batch_size: int | None = None,
                         method: str = "riemann_trapezoid") -> IGResult:
    """Integrated gradients (Sundararajan et al. 2017) for one input.

    IG(x) = (x − x') ⊙ ∫_0^1 ∇f(x' + α(x − x')) dα
          ≈ (x − x') ⊙ Σ_k w_k ∇f(x' + α_k(x − x'))

    with the trapezoid rule on `steps` equal intervals (`steps + 1` points) or `steps`-point
    Gauss-Legendre quadrature (exact for polynomial paths of degree < 2·steps). Completeness
    says Σ IG = f(x) − f(x'); the gap left by the quadrature is reported.

    The path points are evaluated as batches (N, ...) of up to `batch_size` points at a time,
    so `f` must treat the rows of its batch independently (use `model.eval()`: batch norm in
    training mode mixes rows).

    Args:
        f: maps a batch (N, *shape) to (N,) scalars (e.g. a similarity).
        x: one input, shape `shape` or (1, *shape) (a leading 1 is taken as the batch dim).
        baseline: x', same shape as x; zeros when None.
        steps: number of intervals (trapezoid) or nodes (Gauss-Legendre), ≥ 1.
        batch_size: path points per call to f (all at once when None).
        method: "riemann_trapezoid" or "gausslegendre".
    Returns:
        IGResult(attributions (shape of x), completeness_gap, f_x, f_baseline, steps, method, baseline).
    """
    if not callable(f):
        raise TypeError(f"`f` must be a callable mapping a batch (N, ...) to (N,) scores, got {type(f).__name__}.")
    check_tensor("x", x)
    check_int("steps", steps)
    check_choice("method", method, IG_METHODS)
    if batch_size is not None:
        check_int("batch_size", batch_size)
    if baseline is None:
        baseline = torch.zeros_like(x)
    check_tensor("baseline", baseline)
    if baseline.shape != x.shape:
        raise ValueError(f"`baseline` must have the shape of `x` {tuple(x.shape)}, got {tuple(baseline.shape)}.")
    batched = x.ndim >= 2 and x.shape[0] == 1
    x0 = (x[0] if batched else x).detach()  # (*shape)
    b0 = (baseline[0] if batched else baseline).detach().to(x0.dtype)  # (*shape)
    delta = x0 - b0  # (*shape)

    alphas, weights = _quadrature(steps, method, x0.dtype, x0.device)  # (K,), (K,)
    K = alphas.numel()
    chunk = K if batch_size is None else batch_size
    expand = (-1,) + (1,) * x0.ndim
    mean_grad = torch.zeros_like(x0)  # (*shape)
    for start in range(0, K, chunk):
        a = alphas[start:start + chunk]  # (n,)
        points = (b0 + a.view(expand) * delta).requires_grad_(True)  # (n, *shape)
        with torch.enable_grad():
            out = f(points)  # (n,)
            _check_scores(out, points.shape[0])
            (grads,) = torch.autograd.grad(out.sum(), points)  # (n, *shape)
        mean_grad += (weights[start:start + chunk].view(expand) * grads.detach()).sum(0)  # (*shape)

    with torch.no_grad():
        ends = f(torch.stack([x0, b0]))  # (2,)
        _check_scores(ends, 2)
    f_x, f_b = float(ends[0]), float(ends[1])
    attributions = delta * mean_grad  # (*shape)
    gap = float(attributions.sum()) - (f_x - f_b)
    if batched:
        attributions = attributions.unsqueeze(0)  # (1, *shape)
    return IGResult(attributions=attributions, completeness_gap=gap, f_x=f_x, f_baseline=f_b,
                    steps=steps, method=method, baseline=baseline.detach())


def _check_scores(out: Any, n: int) -> None:
    if not isinstance(out, Tensor) or out.shape != (n,):
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"`f` must map a batch of {n} inputs to a tensor of shape ({n},), got {shape}. "
                         "Reduce each row to one scalar, e.g. `lambda u: embed(u) @ z_j`.")


# ---------------------------------------------------------------------------------------------
# Explaining a similarity of a ContrastiveModel
# ---------------------------------------------------------------------------------------------

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
    return F.normalize(_head(model, modality)(features), dim=-1)  # (N, D)


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


# ---------------------------------------------------------------------------------------------
# Judging a map: boxes, upsampling, the randomisation sanity check, rank correlation
# ---------------------------------------------------------------------------------------------

def _check_bbox(bbox: Any) -> tuple[float, float, float, float]:
    if isinstance(bbox, Tensor):
        bbox = bbox.detach().flatten().tolist()
    try:
        x0, y0, x1, y1 = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise TypeError(f"`bbox` must be 4 numbers (x0, y0, x1, y1) in pixels, got {bbox!r}.") from None
    if not (x1 >= x0 and y1 >= y0):
        raise ValueError(f"`bbox` must have x1 ≥ x0 and y1 ≥ y0 (x0, y0, x1, y1), got {(x0, y0, x1, y1)}.")
    return x0, y0, x1, y1


def _pixel_coverage(bbox: tuple[float, float, float, float], H: int, W: int,
                    dtype: torch.dtype = torch.float64) -> Tensor:
    """Fraction of each pixel [c, c+1) × [r, r+1) covered by the box: (H, W) in [0, 1]."""
    x0, y0, x1, y1 = bbox
    cols = torch.arange(W, dtype=dtype)
    rows = torch.arange(H, dtype=dtype)
    cover_x = (torch.clamp(cols + 1, max=x1) - torch.clamp(cols, min=x0)).clamp(0, 1)  # (W,)
    cover_y = (torch.clamp(rows + 1, max=y1) - torch.clamp(rows, min=y0)).clamp(0, 1)  # (H,)
    return cover_y[:, None] * cover_x[None, :]  # (H, W)


def box_share(bbox: Any, H: int, W: int) -> float:
    """The box's share of the image: area(box ∩ image) / (H·W), the score of a uniform map.

    Args:
        bbox: (x0, y0, x1, y1) in pixels (x to the right, y down; pixel (r, c) is [c, c+1)×[r, r+1)).
        H: image height in pixels. W: image width in pixels.
    Returns:
        A float in [0, 1].
    """
    check_int("H", H)
    check_int("W", W)
    return float(_pixel_coverage(_check_bbox(bbox), H, W).sum()) / (H * W)


def attribution_in_box(attr_map: Tensor, bbox: Any) -> float:
    """Share of the positive attribution mass that falls inside a bounding box.

    in_box = Σ_p a_p⁺ · cover_p / Σ_p a_p⁺,

    where cover_p ∈ [0, 1] is the fraction of pixel p inside the box (fractional boxes are
    handled exactly). A map spread uniformly scores `box_share(bbox, H, W)`; a good
    explanation of an object scores well above it. Upsample patch maps first
    (`upsample_to_image`).

    Args:
        attr_map: (H, W) attribution map in pixels.
        bbox: (x0, y0, x1, y1) in pixels (the shapes dataset's `bbox[i]`).
    Returns:
        A float in [0, 1]; NaN when the map has no positive mass.
    """
    check_tensor("attr_map", attr_map, ndim=2, what="of shape (H, W)")
    H, W = attr_map.shape
    positive = attr_map.detach().to(torch.float64).cpu().clamp(min=0)  # (H, W)
    total = float(positive.sum())
    if total == 0.0:
        return float("nan")
    return float((positive * _pixel_coverage(_check_bbox(bbox), H, W)).sum()) / total


def _check_image_size(image_size: Any) -> tuple[int, int]:
    """H (square) or (H, W): positive ints (not bools, floats or strings)."""
    def is_size(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v > 0

    if is_size(image_size):
        return (image_size, image_size)
    if isinstance(image_size, Sequence) and not isinstance(image_size, str) and len(image_size) == 2 \
            and all(is_size(v) for v in image_size):
        return (image_size[0], image_size[1])
    kind = TypeError if not isinstance(image_size, (int, Sequence)) or isinstance(image_size, (bool, str)) else ValueError
    raise kind(f"`image_size` must be a positive int H or a pair (H, W) of positive ints, got {image_size!r}.")


def upsample_to_image(patch_scores: Tensor, image_size: int | tuple[int, int], mode: str = "nearest") -> Tensor:
    """Spread a patch grid (h, w) (or (B, h, w)) over the image's pixels (H, W).

    "nearest" gives every pixel its patch's score (when H, W are multiples of h, w the mass
    per patch is preserved up to the factor H·W/(h·w)); "bilinear" is smoother for display.

    Args:
        patch_scores: (h, w) or (B, h, w).
        image_size: H (square) or (H, W), positive ints.
        mode: "nearest" or "bilinear".
    Returns:
        (H, W) or (B, H, W).
    """
    check_tensor("patch_scores", patch_scores)
    if patch_scores.ndim not in (2, 3):
        raise ValueError(f"`patch_scores` must be (h, w) or (B, h, w), got shape {tuple(patch_scores.shape)}.")
    check_choice("mode", mode, ("nearest", "bilinear"))
    check_finite_if_cheap("patch_scores", patch_scores)
    size = _check_image_size(image_size)
    grid = patch_scores if patch_scores.ndim == 3 else patch_scores[None]  # (B, h, w)
    kwargs = {"align_corners": False} if mode == "bilinear" else {}
    up = F.interpolate(grid[:, None], size=size, mode=mode, **kwargs)[:, 0]  # (B, H, W)
    return up if patch_scores.ndim == 3 else up[0]


def randomize_weights(model: nn.Module, seed: int = 0) -> nn.Module:
    """A deep copy of `model` with every parameter re-initialised (Adebayo et al. 2018).

    The model-randomisation sanity check: an explanation method that returns (nearly) the same
    map for a trained and for a random model explains the input, not the model. Modules with
    `reset_parameters` (Linear, Conv, LayerNorm, Embedding, …) use it; parameters owned by other
    modules (CLS tokens, position embeddings, …) are drawn from N(0, 0.02²). Buffers (e.g. a
    mel filterbank) are kept. The global random state is left untouched.

    Args:
        model: any nn.Module (it is not modified).
        seed: seed of the new weights.
    Returns:
        The re-initialised copy.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be an nn.Module, got {type(model).__name__}.")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"`seed` must be an int, got {type(seed).__name__}.")
    clone = copy.deepcopy(model)
    devices = sorted({p.device.index or 0 for p in clone.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed)
        for module in clone.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
                continue
            for p in module.parameters(recurse=False):
                p.normal_(0.0, 0.02)
    return clone


def _average_ranks(v: Tensor) -> Tensor:
    """Ranks 1..n, ties sharing their average rank."""
    order = torch.argsort(v, stable=True)
    sorted_v = v[order]
    n = v.numel()
    ranks_sorted = torch.arange(1, n + 1, dtype=torch.float64)
    new_group = torch.ones(n, dtype=torch.bool)
    new_group[1:] = sorted_v[1:] != sorted_v[:-1]
    group = torch.cumsum(new_group.long(), 0) - 1  # (n,) group id of each sorted element
    n_groups = int(group[-1]) + 1
    sums = torch.zeros(n_groups, dtype=torch.float64).index_add_(0, group, ranks_sorted)
    counts = torch.zeros(n_groups, dtype=torch.float64).index_add_(0, group, torch.ones(n, dtype=torch.float64))
    ranks = torch.empty(n, dtype=torch.float64)
    ranks[order] = (sums / counts)[group]
    return ranks


def rank_correlation(x: Tensor, y: Tensor) -> float:
    """Spearman rank correlation ρ of two maps (flattened): the Pearson correlation of the ranks.

    Used to compare attributions (trained vs. randomised model; method vs. method). Ties get
    their average rank.

    Args:
        x: any shape. y: same number of elements as x. Neither may hold NaN/Inf (a ValueError).
    Returns:
        ρ in [-1, 1]; NaN when one of the maps is constant.
    """
    check_tensor("x", x)
    check_tensor("y", y)
    if x.numel() != y.numel() or x.numel() < 2:
        raise ValueError(f"`x` and `y` must have the same number (≥ 2) of elements, got shapes "
                         f"{tuple(x.shape)} and {tuple(y.shape)}.")
    x64 = check_finite("x", x.detach().flatten().cpu().to(torch.float64))  # (n,)
    y64 = check_finite("y", y.detach().flatten().cpu().to(torch.float64))  # (n,)
    rx = _average_ranks(x64)
    ry = _average_ranks(y64)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = float(rx.norm() * ry.norm())
    return float("nan") if denom == 0.0 else float((rx * ry).sum()) / denom
