"""Two modalities query a third: multi-way (Symile) and summed pairwise (CLIP) scores.

With three modalities a model can be asked "which gallery item z^q_j goes with the pair
(x_i, y_i)?". Symile (Saporta et al., NeurIPS 2024, "Contrasting with Symile") answers with the
multilinear inner product, the score its loss was trained on; a pairwise (CLIP-style) model can
only add its two pairwise similarities:

    multiway:   S_ij = MIP(x_i, y_i, g_j) = Σ_d x_id · y_id · g_jd      ((x ⊙ y) gᵀ)
    pairwise:   S_ij = x_i · g_j + y_i · g_j                            ((x + y) gᵀ)

The embeddings are used as given (pass the model's L2-normalised embeddings, as
`ContrastiveModel.encode` returns them, to get MIPs and cosines). The result is a
(B_query, B_gallery) score matrix for `recall_at_k` or `accuracy` (argmax over candidates).
"""

from __future__ import annotations

import torch
from torch import Tensor

from mmlab._checks import check_embeddings, check_finite_if_cheap, check_same_shape

__all__ = ["multiway_scores"]


def multiway_scores(x: Tensor, y: Tensor, gallery: Tensor, *, multiway: bool = True) -> Tensor:
    """Scores of query pairs (x_i, y_i) against gallery items g_j: MIP or summed dot products.

    `multiway=True`: `S_ij = Σ_d x_id y_id g_jd` (Symile's multilinear inner product);
    `multiway=False`: `S_ij = x_i·g_j + y_i·g_j` (the sum of the two pairwise similarities).
    Differentiable; embeddings are not normalised here.

    Args:
        x: (B, D) embeddings of the first query modality.
        y: (B, D) embeddings of the second query modality, paired with `x` row by row.
        gallery: (N, D) embeddings of the candidates in the third modality.
        multiway: score with the MIP (True) or with the summed dot products (False).
    Returns:
        (B, N) scores in the promoted dtype of the inputs.
    """
    check_embeddings("x", x)
    check_embeddings("y", y)
    check_same_shape(("x", "y"), (x, y), dims="query batch size and width")
    check_embeddings("gallery", gallery)
    if gallery.shape[1] != x.shape[1]:
        raise ValueError(f"`gallery` {tuple(gallery.shape)} "
                         "must have the same width D as `x` and `y` "
                         f"{tuple(x.shape)}; got {gallery.shape[1]} and {x.shape[1]}.")
    if not isinstance(multiway, bool):
        raise TypeError("`multiway` must be True (Symile's MIP) or False (summed pairwise), "
                        f"got {multiway!r}.")
    for name, t in (("x", x), ("y", y), ("gallery", gallery)):
        check_finite_if_cheap(name, t)
    query = x * y if multiway else x + y  # (B, D)
    common = torch.promote_types(query.dtype, gallery.dtype)
    return query.to(common) @ gallery.to(common).T  # (B, N)
