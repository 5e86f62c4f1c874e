"""Notebook 08 (negatives and objectives): the SigLIP loss and the debiased negative term.

- SigLIP (Zhai et al. 2023): L_ij = S_ij/τ + bias, z_ij = ±1 (diagonal positive),
  loss = −(1/B) Σ_i Σ_j log σ(z_ij L_ij).
- Debiased InfoNCE (Chuang et al. 2020), with p_i = e^{L_ii}, N = B − 1 negatives and the
  prior τ⁺ that a negative shares the anchor's class:
  N_g,i = max( (Σ_{j≠i} e^{L_ij} − N τ⁺ p_i) / (1 − τ⁺), N e^{−1/τ} ),
  ℓ = mean_i −log(p_i / (p_i + N_g,i)), averaged over both directions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmlab.exercises._core import Case, Exercise, Mistake
from mmlab.exercises._inputs import F32, F64, SIZES, label, paired
from mmlab.losses import debiased_info_nce, info_nce, siglip

_IMPORTS = "import math\n\nimport torch\nimport torch.nn.functional as F\n\n\n"


def _siglip_cases(gen: torch.Generator) -> list[Case]:
    out = []
    for (B, D, dtype), tau, bias in zip(SIZES, (0.1, 0.5, 0.2, 0.1, 0.3),
                                        (-10.0, -2.0, 0.5, -5.0, 1.0)):
        a, b = paired(gen, B, D, dtype)
        out.append(Case(label(B=B, D=D, dtype=dtype, temperature=tau, bias=bias),
                        {"a": a, "b": b, "temperature": tau, "bias": bias}, grad=("a", "b")))
    return out


def _sig_logits(a, b, t, bias):
    return F.normalize(a, dim=1) @ F.normalize(b, dim=1).T / t + bias


SIGLIP = Exercise(
    name="siglip", notebook="08", signature="siglip(a, b, temperature, bias) -> 0-d tensor",
    summary="SigLIP: −(1/B) Σ_ij log σ(z_ij (S_ij/τ + bias)), z = +1 on the diagonal, −1 off it.",
    stub=_IMPORTS + '''def siglip(a, b, temperature, bias):
    """The sigmoid loss of SigLIP (Zhai et al. 2023): every pair (i, j) is a binary question.

    a, b: (B, D) float tensors paired row by row (not normalised yet).
    temperature: τ > 0; bias: a float (SigLIP starts at −10).
    Returns a 0-d tensor: −(1/B) Σ_i Σ_j log σ(z_ij L_ij) with L_ij = cos(a_i, b_j)/τ + bias,
    z_ij = +1 if i = j, else −1. (Note: divided by B, not by B².)
    """
    raise NotImplementedError''',
    solution_code=_IMPORTS + '''def siglip(a, b, temperature, bias):
    logits = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T / temperature + bias   # (B, B)
    B = a.shape[0]
    z = 2 * torch.eye(B, dtype=logits.dtype) - 1          # +1 on the diagonal, −1 elsewhere
    return -F.logsigmoid(z * logits).sum() / B''',
    hints=("Build the logits like CLIP's (cosines divided by τ), then add the bias. The labels "
           "z form a (B, B) matrix: +1 on the diagonal, −1 everywhere else.",
           "Use F.logsigmoid(z * logits) (stable, unlike torch.log(torch.sigmoid(...))), sum "
           "over all B² pairs and divide by B."),
    reference=lambda a, b, t, bias: siglip(a, b, t, bias).loss,
    reference_name="mmlab.losses.siglip(a, b, temperature, bias).loss",
    make_cases=_siglip_cases,
    mistakes=(
        Mistake("a mean over all B² pairs: SigLIP sums over the pairs and divides by B only.",
                lambda a, b, t, bias: siglip(a, b, t, bias).loss / a.shape[0]),
        Mistake("a sum over the pairs with no division: divide the sum by B.",
                lambda a, b, t, bias: siglip(a, b, t, bias).loss * a.shape[0]),
        Mistake("τ is missing: your value is the loss at τ = 1. Divide the cosines by τ.",
                lambda a, b, t, bias: siglip(a, b, 1.0, bias).loss),
        Mistake("the bias is missing: add it to every logit, L_ij = S_ij/τ + bias.",
                lambda a, b, t, bias: siglip(a, b, t, 0.0).loss),
        Mistake("no L2 normalisation: your logits use raw dot products. Normalise the rows.",
                lambda a, b, t, bias: siglip(a, b, t, bias, normalize=False).loss),
        Mistake("every pair is treated as a positive (z = +1 everywhere); off the diagonal "
                "z = −1.", lambda a, b, t, bias: -F.logsigmoid(_sig_logits(a, b, t, bias)).sum()
                / a.shape[0]),
    ),
)


def _debiased_cases(gen: torch.Generator) -> list[Case]:
    out = []
    for (B, D, dtype), tau, tp in zip(((8, 5, F64), (3, 4, F32), (2, 3, F64), (16, 8, F32),
                                       (5, 6, F64)), (0.1, 0.5, 0.2, 0.1, 0.3),
                                      (0.1, 0.05, 0.2, 0.1, 0.3)):
        a, b = paired(gen, B, D, dtype)
        out.append(Case(label(B=B, D=D, dtype=dtype, temperature=tau, tau_plus=tp),
                        {"a": a, "b": b, "temperature": tau, "tau_plus": tp}, grad=("a", "b")))
    return out


def _rows(a, b, t, tp, debias=1.0):
    """Mean over rows of −log(p/(p + N_g)) for the rows of a (a plain, independent version)."""
    logits = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T / t
    n = a.shape[0] - 1
    pos = logits.diagonal().exp()
    neg = logits.exp().sum(dim=1) - pos
    ng = (neg - n * tp * pos) / (1 - tp) if debias else neg - n * tp * pos
    ng = torch.clamp(ng, min=n * torch.exp(torch.tensor(-1 / t, dtype=logits.dtype)))
    return -torch.log(pos / (pos + ng)).mean()


DEBIASED_INFO_NCE = Exercise(
    name="debiased_info_nce", notebook="08",
    signature="debiased_info_nce(a, b, temperature, tau_plus) -> 0-d tensor",
    summary="Chuang et al.'s debiased InfoNCE: the negative mass minus N τ⁺ p, both directions.",
    stub=_IMPORTS + '''def debiased_info_nce(a, b, temperature, tau_plus):
    """Debiased contrastive loss (Chuang et al. 2020), symmetric like CLIP's.

    a, b: (B, D) float tensors paired row by row, B ≥ 2 (not normalised yet).
    temperature: τ > 0; tau_plus: τ⁺ in [0, 1), the chance that a negative is a false one.
    With L = S/τ (S the cosines), p_i = exp(L_ii), N = B − 1 and, for every row i,
        N_g,i = max( (Σ_{j≠i} exp(L_ij) − N τ⁺ p_i) / (1 − τ⁺),  N exp(−1/τ) ),
        ℓ(L) = mean_i −log( p_i / (p_i + N_g,i) ),
    return the 0-d tensor ½ [ℓ(L) + ℓ(Lᵀ)].
    """
    raise NotImplementedError''',
    solution_code=_IMPORTS + '''def debiased_info_nce(a, b, temperature, tau_plus):
    logits = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T / temperature   # (B, B)
    N = a.shape[0] - 1                                     # negatives per row

    def one_direction(L):
        pos = L.diagonal().exp()                            # (B,) p_i
        neg = L.exp().sum(dim=1) - pos                      # (B,) Σ_{j≠i} exp(L_ij)
        n_g = (neg - N * tau_plus * pos) / (1 - tau_plus)   # remove the expected false negatives
        n_g = torch.clamp(n_g, min=N * math.exp(-1 / temperature))   # never below its minimum
        return -torch.log(pos / (pos + n_g)).mean()

    return (one_direction(logits) + one_direction(logits.T)) / 2''',
    hints=("Start from InfoNCE written with exponentials: ℓ_i = −log(p_i / (p_i + Σ_{j≠i} "
           "e^{L_ij})). Only the negative sum changes.",
           "Subtract N τ⁺ p_i from the negative sum, divide by 1 − τ⁺, and clamp from below at "
           "N e^{−1/τ} (torch.clamp(x, min=...)). Do it for the rows of L and of L.T, and "
           "average the two."),
    reference=lambda a, b, t, tp: debiased_info_nce(a, b, t, tp).loss,
    reference_name="mmlab.losses.debiased_info_nce(a, b, temperature, tau_plus).loss",
    make_cases=_debiased_cases,
    mistakes=(
        Mistake("τ⁺ is ignored: that is plain InfoNCE. Subtract the expected false-negative "
                "mass N τ⁺ p_i and divide by 1 − τ⁺.",
                lambda a, b, t, tp: info_nce(a, b, t).loss),
        Mistake("only one direction (the rows of L); average it with the same term on Lᵀ.",
                lambda a, b, t, tp: _rows(a, b, t, tp)),
        Mistake("only one direction (the rows of Lᵀ); average it with the same term on L.",
                lambda a, b, t, tp: _rows(b, a, t, tp)),
        Mistake("the division by 1 − τ⁺ is missing from N_g.",
                lambda a, b, t, tp: (_rows(a, b, t, tp, 0) + _rows(b, a, t, tp, 0)) / 2),
        Mistake("τ is missing: your value is the loss at τ = 1.",
                lambda a, b, t, tp: debiased_info_nce(a, b, 1.0, tp).loss),
        Mistake("no L2 normalisation: your logits use raw dot products. Normalise the rows.",
                lambda a, b, t, tp: debiased_info_nce(a, b, t, tp, normalize=False).loss),
    ),
)

EXERCISES = (SIGLIP, DEBIASED_INFO_NCE)
