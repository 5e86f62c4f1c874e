"""Few-shot and zero-shot evaluation of frozen embeddings, with class names as extra examples.

- **Zero-shot** (Radford et al., 2021, CLIP): embed a name (or prompt) per class, `e_c`, and predict
  `ŷ_i = argmax_c cos(x_i, e_c)`. Averaging the unit embeddings of several prompts per class and
  renormalising is *prompt ensembling*: `e_c = normalize(Σ_t e_{t,c})`.
- **k-shot linear probe**: draw exactly k labelled examples per class, fit a logistic regression on
  their unit-normalised embeddings `x̂ = x / ‖x‖`, and score a disjoint test set. Few-shot numbers
  vary with the draw, so `few_shot_curve` repeats the draw and keeps every accuracy.
- **Cross-modal few-shot** (Lin, Yu, Pathak & Ramanan, CVPR 2023, "Multimodality helps unimodality:
  cross-modal few-shot learning with multimodal models"): in a shared embedding space, the
  embedding of a class *name* is one more training example of that class. The probe is fit on
  `{(x̂_j, y_j)} ∪ {(ê_{t,c}, c)}`: k image (or audio) examples plus the text examples of each
  class. It can help only where the names land near the examples of their class.

All functions run without grad; accuracies are Python floats in [0, 1]. The probes run with one
BLAS thread: on problems this small, more threads cost more in start-up than they save (2-3x
slower on two cores).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import Tensor

from mmlab._checks import (check_class_ids, check_embeddings, check_finite_if_cheap, check_int,
                           check_tensor)
from mmlab._norm import l2_normalize
from mmlab.metrics.probes import linear_probe

__all__ = ["sample_k_shot", "prompt_ensemble", "zero_shot_predict", "few_shot_probe",
           "few_shot_curve"]


def sample_k_shot(labels: Tensor, k: int, *, seed: int,
                  classes: Sequence[int] | None = None) -> Tensor:
    """Indices of exactly `k` rows of each class, drawn without replacement (reproducible by seed).

    Args:
        labels: (N,) integer class ids of the pool to draw from (e.g. a training split).
        k: examples per class, an int ≥ 1.
        seed: seed of the draw (same seed, same indices).
        classes: the classes to draw (default: every class in `labels`, in increasing order).
    Returns:
        (len(classes) · k,) int64 indices into `labels`, grouped by class in `classes` order.
    Raises:
        ValueError: when a class has fewer than k rows.
    """
    if not isinstance(labels, Tensor) or labels.ndim != 1 or labels.numel() == 0:
        raise ValueError(
            "`labels` must be a non-empty (N,) tensor of integer class ids; got "
            f"{tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__}.")
    check_class_ids("labels", labels, labels.shape[0], "labels")
    check_int("k", k, minimum=1)
    check_int("seed", seed, minimum=0)
    y = labels.detach().cpu()
    classes = torch.unique(y).tolist() if classes is None else [int(c) for c in classes]
    gen = torch.Generator().manual_seed(seed)
    picks = []
    for c in classes:
        rows = torch.nonzero(y == c).squeeze(1)  # (N_c,) this class's rows
        if rows.numel() < k:
            raise ValueError(f"class {c} has {rows.numel()} rows in `labels`, fewer than k = {k}; "
                             "lower `k` or use a larger pool.")
        picks.append(rows[torch.randperm(rows.numel(), generator=gen)[:k]])  # (k,)
    return torch.cat(picks)


def prompt_ensemble(prompt_embeddings: Tensor) -> Tensor:
    """Class embeddings from several prompts each: `e_c = normalize(Σ_t normalize(e_{t,c}))`.

    Args:
        prompt_embeddings: (T, C, D) one embedding per prompt template t and class c.
    Returns:
        (C, D) unit class embeddings (Radford et al., 2021, prompt ensembling).
    """
    check_tensor("prompt_embeddings", prompt_embeddings, ndim=3,
                 what="of shape (T, C, D): T prompt templates, C classes, width D")
    check_finite_if_cheap("prompt_embeddings", prompt_embeddings)
    return l2_normalize(l2_normalize(prompt_embeddings, dim=-1).sum(0), dim=-1)  # (C, D)


@torch.no_grad()
def zero_shot_predict(x: Tensor, class_embeddings: Tensor) -> Tensor:
    """Zero-shot predictions `ŷ_i = argmax_c cos(x_i, e_c)` (first class on exact ties).

    Args:
        x: (B, D) embeddings of the samples.
        class_embeddings: (C, D) one embedding per class (e.g. of its name).
    Returns:
        (B,) int64 class ids in [0, C). For accuracy with the tie rule use `zero_shot_accuracy`.
    """
    check_embeddings("x", x)
    check_embeddings("class_embeddings", class_embeddings)
    if x.shape[1] != class_embeddings.shape[1]:
        raise ValueError(f"`x` {tuple(x.shape)} and "
                         f"`class_embeddings` {tuple(class_embeddings.shape)} "
                         "must have the same embedding width D (dim 1).")
    check_finite_if_cheap("x", x)
    check_finite_if_cheap("class_embeddings", class_embeddings)
    common = torch.promote_types(x.dtype, class_embeddings.dtype)
    cos = (l2_normalize(x.to(common), dim=-1)
           @ l2_normalize(class_embeddings.to(common), dim=-1).T)  # (B, C)
    return cos.argmax(dim=1)


@torch.no_grad()
def few_shot_probe(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, *,
                   text_x: Tensor | None = None, text_y: Tensor | None = None, C: float = 1.0,
                   max_iter: int = 1000) -> float:
    """Test accuracy of a logistic-regression probe on unit-normalised embeddings, optionally with
    class-name embeddings as extra training examples (Lin et al., 2023).

    Fits `linear_probe` (L-BFGS logistic regression, penalty `‖W‖² / (2C)`) on
    `[x̂_train; ê_text]` with labels `[train_y; text_y]`, then scores `x̂_test`.

    Args:
        train_x: (N, D) embeddings of the k-shot examples; train_y: (N,) their class ids.
        test_x: (N_test, D) embeddings to classify; test_y: (N_test,) their class ids.
        text_x: optional (N_text, D) text embeddings (e.g. class names), same space and width D.
        text_y: (N_text,) the class id of each row of `text_x` (required with `text_x`).
        C: inverse L2 regularisation strength, > 0.
        max_iter: L-BFGS iterations, an int ≥ 1.
    Returns:
        Accuracy as a Python float in [0, 1].
    """
    check_embeddings("train_x", train_x)
    x, y = l2_normalize(train_x.double(), dim=-1), train_y  # (N, D), (N,)
    if (text_x is None) != (text_y is None):
        raise ValueError("pass `text_x` and `text_y` together "
                         "(text embeddings and their class ids), or neither.")
    if text_x is not None:
        check_embeddings("text_x", text_x)
        if text_x.shape[1] != train_x.shape[1]:
            raise ValueError(f"`text_x` {tuple(text_x.shape)} and "
                             f"`train_x` {tuple(train_x.shape)} must have the "
                             "same width D: embed the class names in the shared space.")
        check_class_ids("text_y", text_y, text_x.shape[0], "text_x")
        x = torch.cat([x, l2_normalize(text_x.double().to(x.device), dim=-1)])  # (N + N_text, D)
        y = torch.cat([train_y.cpu(), text_y.cpu()])  # (N + N_text,)
    check_embeddings("test_x", test_x)
    # tiny fits: threads cost more than they save
    with threadpool_limits(limits=1, user_api="blas"):
        return linear_probe(x, y, l2_normalize(test_x.double(), dim=-1), test_y,
                            max_iter=max_iter, C=C)


def few_shot_curve(pool_x: Tensor, pool_y: Tensor, test_x: Tensor, test_y: Tensor,
                   ks: Sequence[int], *, draws: int, seed: int, text_x: Tensor | None = None,
                   text_y: Tensor | None = None, C: float = 1.0) -> dict[int, np.ndarray]:
    """k-shot probe accuracy for each k, over `draws` independent draws of the shots.

    Draw d for shot count k uses `sample_k_shot(pool_y, k, seed=s)` with `s` derived from
    (seed, k, d), so the unimodal and the cross-modal probe see the same shots for the same
    arguments. The pool and the test set must be disjoint (the caller's split).

    Args:
        pool_x: (N, D) embeddings to draw shots from; pool_y: (N,) their class ids.
        test_x, test_y: (N_test, D) and (N_test,) the evaluation set.
        ks: shot counts, e.g. (1, 2, 5, 10).
        draws: draws per k, an int ≥ 1.
        seed: base seed.
        text_x, text_y: optional class-name examples, as in `few_shot_probe`.
        C: inverse L2 regularisation strength of the probe.
    Returns:
        {k: (draws,) float64 array of test accuracies}.
    """
    check_int("draws", draws, minimum=1)
    curve = {}
    for k in ks:
        accs = []
        for d in range(draws):
            s = int(np.random.SeedSequence([seed, k, d]).generate_state(1)[0])
            idx = sample_k_shot(pool_y, k, seed=s)  # (C · k,)
            accs.append(few_shot_probe(pool_x[idx], pool_y[idx], test_x, test_y, text_x=text_x,
                                       text_y=text_y, C=C))
        curve[int(k)] = np.array(accs)
    return curve
