"""On-the-fly gradient modulation (OGM-GE; Peng et al. 2022, "Balanced Multimodal Learning via
On-the-fly Gradient Modulation", CVPR).

When encoders are trained jointly through one fused objective, the modality that fits the data
first (the dominant one) reduces the loss for both, so the weaker encoder gets little gradient
and stays under-trained (Wang, Tran & Feiszli 2020). OGM-GE measures each modality's share of
the fit on every batch and slows the dominant encoder down.

With s_m the confidence of modality m on the batch (in the paper, Σ_i softmax(ℓ_m)_{i, y_i} of
its part ℓ_m of the fused logits; see `FusedContrastiveModel.modality_scores` for the
contrastive version), for two modalities m and n:

    ρ_m = s_m / s_n,        k_m = 1 − tanh(α · ρ_m)  if ρ_m > 1,   else k_m = 1      (Eq. 10)

and every gradient of encoder m is replaced by k_m · g (OGM), plus Gaussian noise
N(0, std(g)²) with the gradient's own standard deviation (GE, "generalisation enhancement").
Note that Eq. 10 jumps from 1 to 1 − tanh(α) as ρ_m crosses 1 (the authors' code does the
same); some reimplementations use tanh(α (ρ_m − 1)) instead, which is continuous.
With M > 2 modalities we take ρ_m = s_m / mean_{n≠m} s_n (M = 2: Eq. 9 of the paper).
Scaling a gradient by a constant is undone by Adam's normalisation; OGM-GE was designed for SGD.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn

from mmlab._checks import check_modalities, values_are_cheap

__all__ = ["ogm_ge_coefficients", "scale_gradient", "modulate_gradients_"]


def ogm_ge_coefficients(scores: Mapping[str, Tensor | float], alpha: float) -> dict[str, Tensor]:
    """OGM-GE's gradient coefficients k_m (Peng et al. 2022, Eq. 9-10).

    Args:
        scores: modality → its confidence s_m > 0 on the batch (a 0-d tensor or float), M ≥ 2.
        alpha: α ≥ 0, the strength of the modulation (0: no modulation).
    Returns:
        modality → k_m, a 0-d float tensor in (0, 1]: 1 − tanh(α ρ_m) where ρ_m > 1, else 1.
    """
    check_modalities("scores", scores)
    if len(scores) < 2:
        raise ValueError(f"`scores` needs at least 2 modalities to compare, got {list(scores)}.")
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or alpha < 0:
        raise ValueError(f"`alpha` must be a number ≥ 0 (0 turns the modulation off), "
                         f"got {alpha!r}.")
    s = {m: torch.as_tensor(v, dtype=torch.float32).detach() for m, v in scores.items()}
    for m, v in s.items():
        if v.numel() != 1 or (values_are_cheap(v) and not bool(v > 0)):  # no sync on a GPU
            raise ValueError(f"`scores[{m!r}]` must be one positive number, got {v}.")
    out = {}
    for m, v in s.items():
        others = torch.stack([s[n].reshape(()) for n in s if n != m]).mean()
        rho = v.reshape(()) / others  # ρ_m
        out[m] = torch.where(rho > 1, 1 - torch.tanh(alpha * rho), torch.ones_like(rho))
    return out


class _ScaleGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, k: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(k)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        (k,) = ctx.saved_tensors
        return grad * k.to(grad.dtype), None


def scale_gradient(x: Tensor, k: Tensor | float) -> Tensor:
    """Identity in the forward pass, gradient × k in the backward pass.

    Applied to an encoder's output h_m, it multiplies the gradient of every parameter of that
    encoder by k (the chain rule passes through h_m only): OGM without touching the optimiser.

    Args:
        x: any tensor (e.g. (B, D_m) features).
        k: the factor (a float or a 0-d tensor; not differentiated).
    Returns:
        x, unchanged, whose gradient is scaled by k.
    """
    k = torch.as_tensor(k, dtype=torch.float32, device=x.device).detach()
    if k.numel() != 1:
        raise ValueError(f"`k` must be one number, got shape {tuple(k.shape)}.")
    return _ScaleGradient.apply(x, k.reshape(()))


@torch.no_grad()
def modulate_gradients_(params: Iterable[nn.Parameter], k: Tensor | float, *, noise: bool = True,
                        generator: torch.Generator | None = None) -> None:
    """OGM-GE on stored gradients, in place: g ← k·g + N(0, std(g)²) (noise only with `noise`).

    Call between `loss.backward()` and `optimizer.step()`, once per modality's encoder.

    Args:
        params: the encoder's parameters (those without a gradient are skipped).
        k: the modality's coefficient k_m (from `ogm_ge_coefficients`).
        noise: add the GE term, Gaussian noise with the standard deviation of each gradient.
        generator: optional torch.Generator for the noise.
    """
    for p in params:
        if p.grad is None:
            continue
        g = p.grad
        kg = torch.as_tensor(k, dtype=g.dtype, device=g.device)  # a tensor: no host read of k
        g.mul_(kg)
        if noise and g.numel() > 1:
            std = g.std()
            std = torch.where(kg > 0, std / kg, std)  # the std of the gradient before scaling
            where = g.device if generator is None else generator.device
            eps = torch.randn(g.shape, generator=generator, device=where, dtype=g.dtype)
            eps = eps.to(g.device)
            g.add_(eps * std)
