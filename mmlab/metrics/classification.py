"""Classification accuracy from logits or scores: top-1 and top-k.

The standard read-out of a classifier (and of zero-shot or retrieval scoring over a fixed set of
candidates): predict `ŷ_i = argmax_c s_ic` and count hits. Top-k accuracy (as reported for
ImageNet since Krizhevsky, Sutskever & Hinton, 2012) counts a hit when the true class is among
the k highest-scoring classes.

Tie rule: classes with equal scores are put in a uniformly random order, and accuracy is the
expectation over that order (the honest rule: a model that scores every class alike gets chance,
k / C, not the share of class 0). With h classes scoring strictly above the true class y and n
other classes tied with it,

    hit_i(k) = P(true class among the top k) = clamp((k − h) / (n + 1), 0, 1),   y = labels_i,

    accuracy@k = mean_i hit_i(k)   ∈ [0, 1].

Without ties (n = 0) this is the plain 0/1 hit, and top-1 equals `scores.argmax(1) == labels`.

Accuracy is an evaluation number: it runs without grad and returns a Python float.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mmlab._checks import check_class_ids, check_finite_if_cheap, check_int, check_tensor

__all__ = ["accuracy"]


@torch.no_grad()
def accuracy(scores: Tensor, labels: Tensor, *, k: int = 1) -> float:
    """Top-k accuracy `mean_i [true class among the k best-scoring classes]` (top-1 = argmax).

    Tied classes count in expectation over a random order (see the module docstring): all scores
    equal gives k / C. Without ties `k=1` agrees with `scores.argmax(1) == labels`. k larger than
    the number of classes is allowed and gives 1.0.

    Args:
        scores: (N, C) float logits, probabilities or similarity scores, one row per sample.
        labels: (N,) integer class ids in [0, C).
        k: how many top classes count as a hit, an int ≥ 1.
    Returns:
        The accuracy as a Python float in [0, 1].
    """
    check_tensor("scores", scores, ndim=2,
                 what="of shape (N, C): one row of class scores per sample")
    if scores.shape[1] == 0:
        raise ValueError(f"`scores` has shape {tuple(scores.shape)}: no classes; "
                         "pass (N, C) with C ≥ 1.")
    n_classes = scores.shape[1]
    check_class_ids("labels", labels, scores.shape[0], "scores", n_classes=n_classes,
                    classes_in=f"{n_classes} columns of `scores`")
    check_int("k", k, minimum=1)
    check_finite_if_cheap("scores", scores)
    y = labels.to(scores.device)  # (N,)
    true = scores.gather(1, y[:, None])  # (N, 1) the true class's score
    above = (scores > true).sum(dim=1)  # (N,) h: classes strictly ahead
    tied = (scores == true).sum(dim=1)  # (N,) n + 1: the true class and the classes tied with it
    hits = ((k - above).double() / tied.double()).clamp(0, 1)  # (N,) P(in the top k)
    return float(hits.mean())
