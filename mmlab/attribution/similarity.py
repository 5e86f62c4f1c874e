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
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from mmlab._checks import check_choice, check_int
from mmlab.attribution.result import ATTENTION_METHODS, SIMILARITY_METHODS, Attribution
from mmlab.attribution.towers import _explain_audio, _explain_pixels, _explain_text, _project

__all__ = ["SIMILARITY_METHODS", "ATTENTION_METHODS", "Attribution", "similarity_attribution"]


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
    raise TypeError(f"`batch[{name!r}]` must be a tensor or a list of strings, "
                    f"got {type(x).__name__}.")


def similarity_attribution(model: nn.Module, batch: Mapping[str, Any], i: int, j: int,
                           modality: str, *,
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
            raise ValueError("`other` is None and the batch has no modality besides "
                             f"{modality!r} that the model encodes (batch keys {sorted(batch)}); "
                             "pass other=...")
        other = others[0]
    check_choice("other", other, available)
    check_choice("method", method, SIMILARITY_METHODS)
    check_int("steps", steps)
    for name, idx, m in (("i", i, modality), ("j", j, other)):
        check_int(name, idx, minimum=0)
        if idx >= len(batch[m]):
            raise ValueError(f"`{name}` = {idx} is out of range for batch[{m!r}] of length "
                             f"{len(batch[m])}.")

    encoder = encoders[modality]
    if method in ATTENTION_METHODS and not _supports_attention(encoder.forward):
        raise ValueError(f"method={method!r} needs a transformer encoder with "
                         "forward(x, return_attention=True); "
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
