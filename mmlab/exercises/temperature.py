"""Notebook 03 (temperature): the gradient weight on each negative, and tolerance.

- Gradient weights (Wang & Liu 2021): with P = softmax_j(S_ij/τ) and ℓ_i = −log P_ii,
  ∂ℓ_i/∂S_ij = (P_ij − 1[i = j]) / τ.
- Tolerance (Wang & Liu 2021): the mean cosine over pairs i ≠ j of the same class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmlab.exercises._core import Case, Exercise, Mistake
from mmlab.exercises._inputs import F32, F64, SIZES, label, paired, rows

_IMPORTS = "import torch\nimport torch.nn.functional as F\n\n\n"
TEMPERATURES = (0.1, 0.5, 0.07, 0.2, 0.05)


def _weights_by_autograd(sim, temperature):
    """B × ∂(mean_i ℓ_i)/∂S: autograd through the library-style cross-entropy (the reference)."""
    s = sim.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(s / temperature, torch.arange(s.shape[0]), reduction="sum")
    (grad,) = torch.autograd.grad(loss, s)
    return grad  # (B, B): row i is ∂ℓ_i/∂S_i·


def _sim_cases(gen: torch.Generator) -> list[Case]:
    out = []
    for (B, D, dtype), tau in zip(SIZES, TEMPERATURES):
        a, b = paired(gen, B, D, F64)
        sim = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T  # (B, B) cosines
        out.append(Case(label(B=B, dtype=dtype, temperature=tau),
                        {"sim": sim.to(dtype), "temperature": tau}))
    return out


def _softmax_rows(sim, t):
    return torch.softmax(sim / t, dim=1)


GRADIENT_WEIGHTS = Exercise(
    name="gradient_weights", notebook="03",
    signature="gradient_weights(sim, temperature) -> (B, B) tensor",
    summary="∂ℓ_i/∂S_ij = (P_ij − 1[i=j])/τ: how hard the InfoNCE loss pushes on every pair.",
    stub=_IMPORTS + '''def gradient_weights(sim, temperature):
    """The gradient of each anchor's InfoNCE term with respect to every similarity.

    sim: (B, B) float tensor of cosines S_ij; row i is anchor i, its positive is column i.
    temperature: τ > 0, a float.
    Returns a (B, B) tensor W with W_ij = ∂ℓ_i/∂S_ij, where ℓ_i = −log P_ii and
    P_ij = exp(S_ij/τ) / Σ_k exp(S_ik/τ). Work it out by hand; do not call autograd.
    """
    raise NotImplementedError''',
    solution_code=_IMPORTS + '''def gradient_weights(sim, temperature):
    p = torch.softmax(sim / temperature, dim=1)            # (B, B): P_ij, each row sums to 1
    eye = torch.eye(sim.shape[0], dtype=sim.dtype)         # 1 where j = i (the positive)
    return (p - eye) / temperature''',
    hints=("ℓ_i = −S_ii/τ + log Σ_k exp(S_ik/τ). Differentiate both terms with respect to S_ij: "
           "the log-sum-exp gives a softmax.",
           "∂ℓ_i/∂S_ij = P_ij/τ for a negative (j ≠ i) and (P_ii − 1)/τ for the positive. "
           "The softmax runs along each row (dim=1); subtract torch.eye(B) and divide by τ."),
    reference=_weights_by_autograd,
    reference_name="autograd through the cross-entropy of S/τ",
    make_cases=_sim_cases, differentiable=False,
    mistakes=(
        Mistake("the 1/τ in front is missing: the chain rule through S/τ brings a factor 1/τ, "
                "so W = (P − I)/τ.",
                lambda s, t: _softmax_rows(s, t) - torch.eye(s.shape[0], dtype=s.dtype)),
        Mistake("the positive's −1 is missing: ∂ℓ_i/∂S_ii = (P_ii − 1)/τ, because ℓ_i also "
                "contains −S_ii/τ. Subtract the identity before dividing by τ.",
                lambda s, t: _softmax_rows(s, t) / t),
        Mistake("the softmax runs down the columns (dim=0); anchor i's softmax is over its own "
                "row, P_ij = exp(S_ij/τ) / Σ_k exp(S_ik/τ) (dim=1).",
                lambda s, t: (torch.softmax(s / t, dim=0) - torch.eye(s.shape[0],
                                                                       dtype=s.dtype)) / t),
        Mistake("the sign is flipped: the loss grows with a negative's similarity, so "
                "W_ij = +P_ij/τ for j ≠ i.",
                lambda s, t: (torch.eye(s.shape[0], dtype=s.dtype) - _softmax_rows(s, t)) / t),
    ),
)


def _tolerance(x, labels):
    """The reference: mean over i ≠ j with y_i = y_j of x̂_i·x̂_j."""
    x_hat = F.normalize(x, dim=1)
    same = (labels[:, None] == labels[None, :]) & ~torch.eye(len(labels), dtype=torch.bool)
    return (x_hat @ x_hat.T)[same].mean()


def _labelled_cases(gen: torch.Generator) -> list[Case]:
    out = []
    for N, D, C, dtype in ((9, 5, 3, F64), (6, 4, 2, F32), (2, 3, 1, F64), (16, 8, 4, F32)):
        x = rows(gen, N, D, F64)
        y = torch.arange(N) % C  # every class at least twice (C ≤ N/2)
        y = y[torch.randperm(N, generator=gen)]
        centres = rows(gen, C, D, F64)
        x = x + centres[y]  # same-class rows lean the same way
        out.append(Case(label(N=N, D=D, classes=C, dtype=dtype), {"x": x.to(dtype), "labels": y},
                        grad=("x",)))
    return out


TOLERANCE = Exercise(
    name="tolerance", notebook="03", signature="tolerance(x, labels) -> 0-d tensor",
    summary="Wang & Liu's tolerance: the mean cosine over pairs i ≠ j of the same class.",
    stub=_IMPORTS + '''def tolerance(x, labels):
    """Tolerance (Wang & Liu 2021): mean of x̂_i·x̂_j over pairs i ≠ j with labels_i = labels_j.

    x: (N, D) float tensor (not normalised yet); labels: (N,) int64 class ids (every class
        present at least twice).
    Returns a 0-d tensor: high when samples of one class are kept close together.
    """
    raise NotImplementedError''',
    solution_code=_IMPORTS + '''def tolerance(x, labels):
    x_hat = F.normalize(x, dim=1)                                   # (N, D)
    cos = x_hat @ x_hat.T                                           # (N, N)
    same = labels[:, None] == labels[None, :]                       # (N, N) same class
    same = same & ~torch.eye(len(labels), dtype=torch.bool)         # ... and i ≠ j
    return cos[same].mean()''',
    hints=("labels[:, None] == labels[None, :] is an (N, N) mask of same-class pairs.",
           "Remove the diagonal from that mask (i = j is not a pair), then average the cosine "
           "matrix of the normalised rows over the mask: cos[mask].mean()."),
    reference=_tolerance, reference_name="the same-class mean cosine of notebook 03",
    make_cases=_labelled_cases,
    mistakes=(
        Mistake("you included i = j (cos = 1) among the same-class pairs; leave the diagonal out.",
                lambda x, y: (F.normalize(x, dim=1) @ F.normalize(x, dim=1).T)[
                    y[:, None] == y[None, :]].mean()),
        Mistake("no L2 normalisation: your value averages dot products, not cosines.",
                lambda x, y: (x @ x.T)[(y[:, None] == y[None, :])
                                       & ~torch.eye(len(y), dtype=torch.bool)].mean()),
        Mistake("the labels are ignored: that is the mean over all pairs i ≠ j (the cone "
                "measure); keep only the pairs of the same class.",
                lambda x, y: _tolerance(x, torch.zeros_like(y))),
    ),
)

EXERCISES = (GRADIENT_WEIGHTS, TOLERANCE)
