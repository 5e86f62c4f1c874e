"""Symile: a contrastive loss for any number of modalities (Saporta et al., NeurIPS 2024).

Symile scores a tuple with the multilinear inner product (MIP), the dot product generalised
to M vectors: MIP(x¹, …, x^M) = Σ_d Π_m x^m_d. A positive tuple is one row i taken from every
modality. Each modality m takes its turn as the anchor: row i of the anchor, x^m_i, must pick
its positive tuple of the other M−1 modalities, (x^k_i)_{k≠m}, among candidate tuples by
cross-entropy. The M cross-entropies are averaged:

    loss = (1/M) Σ_m CE(L^m, positives),   L^m_{i,c} = MIP(x^m_i, candidate c)/τ.

Candidates (following the authors' reference implementation, rajesh-lab/symile):

- `negatives="n_squared"`: all B^(M−1) tuples of rows of the other modalities, so L^m is
  (B, B^(M−1)). Column c = s·B + j pairs row j of the first other modality with rows
  (j − s_k) mod B of the others, where s = (s_1, …, s_{M−2}) is a base-B multi-index of
  shifts (row-major). Shift 0 gives the diagonal tuples (j, …, j), so the positive of row i
  is column i. With M = 2 this is exactly CLIP's `info_nce`.
- `negatives="n"` (the O(B) scheme): for each other modality k ≠ m (in order), one random
  permutation π_k of the B rows; candidate j is the tuple (x^k_{π_k(j)})_{k≠m}, so L^m is
  (B, B), and its diagonal is replaced by the positive MIPs. Each positive thus gets B−1
  shuffled negatives (a false negative is possible by chance). The permutations are drawn as
  `torch.randperm(B, generator=generator)` for m = 0, …, M−1 and, inside, for k = 0, …, M−1,
  k ≠ m, in that order: M(M−1) draws per call. They are drawn on the embeddings' device (on the
  generator's device if one is given, then moved), so no permutation crosses the bus per step.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from mmlab._checks import check_choice, check_embeddings, check_finite_if_cheap, check_same_shape
from mmlab.losses._prep import as_scale, in_float32, prepare, unpack_modalities
from mmlab.losses.chunking import FULL, check_chunk_size, resolve_chunk_size
from mmlab.losses.fused import fused_row_lse_sum
from mmlab.losses.output import DEFAULT_TEMPERATURE, LossOutput
from mmlab.losses.temperature import LearnableTemperature

NEGATIVES = ("n", "n_squared")


def _mip(*xs: Tensor) -> Tensor:
    """MIP of already-validated (B, D) tensors (no checks: used inside the loss)."""
    prod = xs[0]
    for x in xs[1:]:
        prod = prod * x  # (B, D)
    return prod.sum(dim=-1)  # (B,)


def multilinear_inner_product(*xs: Tensor) -> Tensor:
    """MIP(x¹, …, x^M) = Σ_d Π_m x^m_d, row by row: M tensors (B, D) → (B,).

    Args:
        *xs: M ≥ 1 non-empty float tensors of one shape (B, D), paired row by row (on the CPU
            they are also checked for NaN/Inf).
    Returns:
        (B,) the MIP of every row, in the promoted dtype of the inputs.
    """
    if len(xs) == 0:
        raise ValueError("`xs` is empty; pass M ≥ 1 tensors of shape (B, D), e.g. "
                         "multilinear_inner_product(a, b, c).")
    names = [f"xs[{m}]" for m in range(len(xs))]
    for n, x in zip(names, xs):
        check_embeddings(n, x)
    check_same_shape(names, xs)
    for n, x in zip(names, xs):
        check_finite_if_cheap(n, x)
    return _mip(*xs)


def _candidates_n_squared(others: list[Tensor]) -> Tensor:
    """All B^(M−1) element-wise products of rows of `others`, ordered so that column j < B is
    the diagonal tuple (j, …, j). Returns (B^(M−1), D)."""
    n = others[0].shape[0]
    n_cand = n ** len(others)
    c = torch.arange(n_cand, device=others[0].device)  # (B^(M−1),)
    j, shifts = c % n, c // n
    prod = others[0][j]  # (B^(M−1), D)
    for x in others[1:]:
        s_k, shifts = shifts % n, shifts // n
        prod = prod * x[(j - s_k) % n]  # (B^(M−1), D)
    return prod


def _shuffled_product(others: list[Tensor], generator: torch.Generator | None) -> Tensor:
    """(B, D) candidates for "n": row j is Π_k x^k_{π_k(j)}, one permutation π_k per modality k."""
    n = others[0].shape[0]
    device = others[0].device if generator is None else generator.device
    prod = None
    for x in others:
        perm = torch.randperm(n, generator=generator, device=device)  # (B,)
        shuffled = x[perm.to(x.device)]  # (B, D); `.to` copies only for a generator elsewhere
        prod = shuffled if prod is None else prod * shuffled  # (B, D)
    return prod


def _cross_entropy_n(anchor: Tensor, candidates: Tensor, positives: Tensor, scale: float | Tensor,
                     chunk_size: int | None) -> tuple[Tensor, Tensor | None]:
    """CE of L = s·(anchor candidatesᵀ with diagonal `positives`) against the diagonal, and L
    ((B, B), or None on the block path: `mmlab.losses.fused`, loss and gradient in one pass)."""
    if chunk_size is None:
        logits = (anchor @ candidates.T).diagonal_scatter(positives) * scale  # (B, B)
        labels = torch.arange(logits.shape[0], device=logits.device)  # (B,)
        return F.cross_entropy(logits, labels), logits
    pos_scaled = positives * scale  # (B,)
    row_lse_sum = fused_row_lse_sum(anchor * scale, candidates, pos_scaled, chunk_size)
    return row_lse_sum / anchor.shape[0] - pos_scaled.mean(), None


@in_float32
def symile(*embeddings: Any, temperature: float | Tensor = DEFAULT_TEMPERATURE,
           negatives: str = "n", normalize: bool = True,
           generator: torch.Generator | None = None,
           chunk_size: int | str | None = None) -> LossOutput:
    """Symile loss (1/M) Σ_m CE(L^m, positives), L^m_{i,c} = MIP(x^m_i, candidate c)/τ.

    Saporta, Puli, Goldstein, Ranganath 2024 "Contrasting with Symile: Simple Model-Agnostic
    Representation Learning for Unlimited Modalities". The candidates for "n" and "n_squared"
    are described in the module docstring.

    Args:
        *embeddings: M ≥ 2 tensors (B, D), or one dict of modality name → (B, D) tensor.
        temperature: τ > 0, a float or a 0-d tensor.
        negatives: "n" (B−1 shuffled negatives per positive, O(B²·D) work) or "n_squared"
            (all B^(M−1) − 1 tuples, O(B^M·D) work and memory: small B only).
        normalize: L2-normalise every embedding first.
        generator: random source for the "n" permutations (None: the global RNG).
        chunk_size: for "n" only. None: choose (the full (B, B) logits below B = 2,048 on a CPU,
            else blocks; see `mmlab.losses.chunking`); an int K: blocks of K rows, never a
            (B, B) tensor, same permutations and values up to rounding (`logits` is then None);
            "full": always the full logits. "n_squared" accepts None and "full" only.
    Returns:
        LossOutput with `logits` L^0 (the first modality as anchor: (B, B) for "n",
        (B, B^(M−1)) for "n_squared") and one CE term per anchor modality, keyed by its index
        ("0", "1", ...) or its dict key ("image", ...).
    """
    names, keys, xs = unpack_modalities(embeddings)
    check_choice("negatives", negatives, NEGATIVES)
    xs = prepare(names, xs, normalize)
    scale = as_scale(temperature, xs[0])
    n = xs[0].shape[0]
    chunk = None  # "n_squared": always the full (B, B^(M−1)) logits
    if negatives == "n":
        chunk = resolve_chunk_size(chunk_size, n, n, xs[0].device)
    elif check_chunk_size(chunk_size) not in (None, FULL):
        raise ValueError(f"`chunk_size` applies to negatives='n' only, got {chunk_size!r} with "
                         "negatives='n_squared'; pass chunk_size=None or use negatives='n'.")
    labels = torch.arange(n, device=xs[0].device)  # (B,)
    terms: dict[str, Tensor] = {}
    first_logits = None
    positives = _mip(*xs) if negatives == "n" else None  # (B,): the same for every anchor
    for m, anchor in enumerate(xs):
        others = [x for k, x in enumerate(xs) if k != m]
        if negatives == "n_squared":
            logits = (anchor * scale) @ _candidates_n_squared(others).T  # (B, B^(M−1))
            terms[keys[m]] = F.cross_entropy(logits, labels)
        else:
            candidates = _shuffled_product(others, generator)  # (B, D)
            terms[keys[m]], logits = _cross_entropy_n(anchor, candidates, positives, scale, chunk)
        if first_logits is None:
            first_logits = logits
    loss = torch.stack(list(terms.values())).mean()
    return LossOutput(loss, first_logits, terms)


class SymileLoss(LearnableTemperature):
    """Symile with a learnable temperature `logit_scale = log(1/τ)`, for M ≥ 2 modalities at once.

    `multiway = True` tells the model to pass all modalities in one call:
    `loss(x1, x2, x3)` or `loss({"image": ..., "audio": ..., "text": ...})`. The clamp
    `logit_scale ≤ MAX_LOGIT_SCALE` happens in `forward` on the value used; `clamp_()` clamps
    the stored parameter in place.

    Args:
        init_temperature: initial τ.
        learnable: whether `logit_scale` receives gradients.
        negatives: "n" or "n_squared" (see `symile`).
        normalize: L2-normalise inside the loss.
        chunk_size: passed to `symile` (None: choose; an int K: blocks of K rows; "full").
    """

    multiway = True

    def __init__(self, init_temperature: float = DEFAULT_TEMPERATURE, learnable: bool = True,
                 negatives: str = "n", *, normalize: bool = True,
                 chunk_size: int | str | None = None) -> None:
        super().__init__(init_temperature, learnable)
        self.negatives = check_choice("negatives", negatives, NEGATIVES)
        self.normalize = normalize
        self.chunk_size = check_chunk_size(chunk_size)

    def forward(self, *embeddings: Any, generator: torch.Generator | None = None) -> LossOutput:
        """Args: M ≥ 2 (B, D) tensors or one dict of them. Returns: `symile(...)`."""
        return symile(*embeddings, temperature=1.0 / self.scale(), negatives=self.negatives,
                      normalize=self.normalize, generator=generator, chunk_size=self.chunk_size)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature:.4g}, negatives={self.negatives!r}"
