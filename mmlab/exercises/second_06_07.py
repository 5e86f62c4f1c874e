"""Second exercises of notebooks 06 (fusion) and 07 (attention and attribution).

06, OGM-GE's gradient coefficients (Peng et al. 2022, Eq. 9-10):

    ρ_m = s_m / mean_{n≠m} s_n,   k_m = 1 − tanh(α ρ_m) if ρ_m > 1, else 1.

07, gradient-weighted attention relevance (Chefer, Gur & Wolf 2021, Eq. 5-6):

    Ā_l = E_h[(∇A_l ⊙ A_l)⁺],   R ← R + Ā_l R  (from R = I, first layer first).
"""

from __future__ import annotations

import torch

from mmlab.attribution import gradient_attention
from mmlab.exercises._core import Case, Exercise, Mistake
from mmlab.exercises._inputs import F32, F64, label, randn
from mmlab.fusion import ogm_ge_coefficients

_IMPORTS = "import torch\n\n\n"


# ---------------------------------------------------------------------- 06: OGM-GE
def _ogm_reference(scores, alpha):
    names = [f"m{i}" for i in range(len(scores))]
    k = ogm_ge_coefficients(dict(zip(names, scores)), alpha)
    return torch.stack([k[n] for n in names]).to(scores.dtype)


def _ogm_cases(gen: torch.Generator) -> list[Case]:
    out = []
    for M, alpha, dtype in ((2, 0.5, F32), (3, 0.1, F64), (2, 1.0, F32), (4, 0.3, F64),
                            (3, 2.0, F32)):
        s = (0.2 + 20 * torch.rand(M, generator=gen, dtype=F64)).to(dtype)  # confidences s_m > 0
        out.append(Case(label(M=M, alpha=alpha, dtype=dtype), {"scores": s, "alpha": alpha}))
    return out


def _others_mean(s):
    M = len(s)
    return (s.sum() - s) / (M - 1)  # (M,) mean of the other modalities


def _ogm_from_rho(rho, alpha, gate=True, tanh=True):
    k = 1 - (torch.tanh(alpha * rho) if tanh else alpha * rho)
    return torch.where(rho > 1, k, torch.ones_like(rho)) if gate else k


OGM_GE = Exercise(
    name="ogm_ge_coefficients", notebook="06",
    signature="ogm_ge_coefficients(scores, alpha) -> (M,) tensor",
    summary="OGM-GE: slow down the dominant modality, k_m = 1 − tanh(α ρ_m) where ρ_m > 1.",
    stub=_IMPORTS + '''def ogm_ge_coefficients(scores, alpha):
    """OGM-GE's gradient coefficients (Peng et al. 2022): how much to slow each encoder down.

    scores: (M,) float tensor, the confidence s_m > 0 of each modality on the batch (M ≥ 2).
    alpha: α ≥ 0, the strength of the modulation.
    Returns an (M,) tensor k with ρ_m = s_m / (mean of the other modalities' s_n) and
        k_m = 1 − tanh(α ρ_m) where ρ_m > 1 (the dominant modality), else 1.
    """
    raise NotImplementedError''',
    solution_code=_IMPORTS + '''def ogm_ge_coefficients(scores, alpha):
    M = scores.shape[0]
    others = (scores.sum() - scores) / (M - 1)        # (M,) mean of the other modalities
    rho = scores / others                              # (M,) ρ_m: > 1 means m dominates
    slowed = 1 - torch.tanh(alpha * rho)               # (M,) in (0, 1]
    return torch.where(rho > 1, slowed, torch.ones_like(rho))''',
    hints=("ρ_m compares modality m with the *others*: for two modalities ρ_image = s_image / "
           "s_audio. The mean of the others is (Σ_n s_n − s_m)/(M − 1).",
           "Only a dominant modality is slowed: torch.where(rho > 1, 1 − torch.tanh(alpha * "
           "rho), 1)."),
    reference=_ogm_reference,
    reference_name="mmlab.fusion.ogm_ge_coefficients",
    make_cases=_ogm_cases,
    mistakes=(
        Mistake("ρ_m is divided by the mean of all modalities, s_m itself included; OGM-GE "
                "compares m with the others only, ρ_m = s_m / mean_{n≠m} s_n.",
                lambda s, a: _ogm_from_rho(s / s.mean(), a)),
        Mistake("every modality is slowed down: the test ρ_m > 1 is missing. The weaker "
                "modalities keep k_m = 1.",
                lambda s, a: _ogm_from_rho(s / _others_mean(s), a, gate=False)),
        Mistake("the ratio is upside down: ρ_m = s_m / mean_{n≠m} s_n, the modality's own "
                "confidence on top.", lambda s, a: _ogm_from_rho(_others_mean(s) / s, a)),
        Mistake("the tanh is missing: k_m = 1 − tanh(α ρ_m) stays in (0, 1].",
                lambda s, a: _ogm_from_rho(s / _others_mean(s), a, tanh=False)),
    ),
    differentiable=False,
)


# ---------------------------------------------------------------------- 07: Chefer et al.
def _grad_attention_cases(gen: torch.Generator) -> list[Case]:
    out = []
    for L, B, H, T, dtype in ((2, 2, 2, 5, F64), (1, 1, 1, 3, F32), (3, 2, 3, 4, F64),
                              (4, 1, 2, 6, F32)):
        maps = [torch.softmax(2 * randn(gen, B, H, T, T, dtype=dtype), dim=-1) for _ in range(L)]
        grads = [randn(gen, B, H, T, T, dtype=dtype) for _ in range(L)]
        out.append(Case(label(layers=L, B=B, heads=H, T=T, dtype=dtype),
                        {"attentions": maps, "attention_grads": grads},
                        grad=("attentions", "attention_grads")))
    return out


def _relevance(attentions, grads, fuse, residual=True, normalise=False):
    T = attentions[0].shape[-1]
    eye = torch.eye(T, dtype=attentions[0].dtype)
    r = eye.expand(attentions[0].shape[0], T, T)
    for a, g in zip(attentions, grads):
        a_bar = fuse(a, g)
        if normalise:
            a_bar = (a_bar + eye) / (a_bar + eye).sum(dim=-1, keepdim=True)
            r = a_bar @ r
        else:
            r = r + a_bar @ r if residual else a_bar @ r
    return r


GRADIENT_ATTENTION = Exercise(
    name="gradient_attention", notebook="07",
    signature="gradient_attention(attentions, attention_grads) -> (B, T, T) tensor",
    summary="Chefer et al.'s relevance: R ← R + E_h[(∇A ⊙ A)⁺] R over the layers, from R = I.",
    stub=_IMPORTS + '''def gradient_attention(attentions, attention_grads):
    """Gradient-weighted attention relevance (Chefer, Gur & Wolf 2021, Eq. 5-6).

    attentions: one (B, heads, T, T) tensor per layer, first layer first (rows sum to 1).
    attention_grads: the gradients ∂s/∂A_l of the explained score s, same shapes.
    Start from R = I (B, T, T); for each layer l, first to last:
        Ā_l = mean over heads of the positive part of (∇A_l ⊙ A_l)
        R ← R + Ā_l · R
    Returns R (B, T, T); rows are not normalised.
    """
    raise NotImplementedError''',
    solution_code=_IMPORTS + '''def gradient_attention(attentions, attention_grads):
    B, _, T, _ = attentions[0].shape
    relevance = torch.eye(T, dtype=attentions[0].dtype).expand(B, T, T)   # each token: itself
    for a, g in zip(attentions, attention_grads):                         # first layer first
        a_bar = (g * a).clamp(min=0).mean(dim=1)     # (B, T, T): positive part, heads averaged
        relevance = relevance + a_bar @ relevance    # the residual keeps the old relevance
    return relevance''',
    hints=("Per layer: multiply the map by its gradient element-wise, keep the positive part "
           "(.clamp(min=0)), then average over the heads (dim=1).",
           "Start from R = torch.eye(T) (expanded to (B, T, T)) and update R = R + a_bar @ R "
           "layer after layer; no row normalisation, unlike rollout."),
    reference=lambda attentions, attention_grads: gradient_attention(attentions, attention_grads),
    reference_name="mmlab.attribution.gradient_attention(attentions, attention_grads)",
    make_cases=_grad_attention_cases,
    mistakes=(
        Mistake("the positive part is missing: Ā_l = E_h[(∇A_l ⊙ A_l)⁺] keeps only the "
                "entries that raise the score (.clamp(min=0)) before averaging the heads.",
                lambda att, gr: _relevance(att, gr, lambda a, g: (g * a).mean(dim=1))),
        Mistake("the gradients are not used: that weights each map by nothing; Ā_l = "
                "E_h[(∇A_l ⊙ A_l)⁺] makes the map depend on the score being explained.",
                lambda att, gr: _relevance(att, gr, lambda a, g: a.mean(dim=1))),
        Mistake("the residual term is missing: R ← R + Ā_l R keeps the relevance the skip "
                "connection carries; R ← Ā_l R loses it.",
                lambda att, gr: _relevance(att, gr, lambda a, g: (g * a).clamp(min=0).mean(1),
                                           residual=False)),
        Mistake("the rows are normalised as in rollout; the relevance R ← R + Ā_l R is not "
                "renormalised.",
                lambda att, gr: _relevance(att, gr, lambda a, g: (g * a).clamp(min=0).mean(1),
                                           normalise=True)),
        Mistake("the heads are averaged before the product: average (∇A_l ⊙ A_l)⁺ over the "
                "heads, not ∇A_l and A_l separately.",
                lambda att, gr: _relevance(att, gr, lambda a, g: (g.mean(1) * a.mean(1))
                                           .clamp(min=0))),
        Mistake("the absolute value replaces the positive part: negative evidence must be "
                "dropped (.clamp(min=0)), not flipped.",
                lambda att, gr: _relevance(att, gr, lambda a, g: (g * a).abs().mean(dim=1))),
    ),
)

EXERCISES = (OGM_GE, GRADIENT_ATTENTION)
