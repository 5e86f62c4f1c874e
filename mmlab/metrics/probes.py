"""Probes: how much class information the embeddings carry, without fine-tuning the encoder.

- Linear probe: fit a multinomial logistic regression on frozen features and report test
  accuracy (Alain & Bengio, 2016, "Understanding intermediate layers using linear classifier
  probes"; the protocol of Radford et al., 2021, CLIP, which uses L-BFGS logistic regression).
- Zero-shot classification: embed one prompt per class ("a photo of a {class}") and predict
  `ŷ_i = argmax_c cos(x_i, e_c)` (Radford et al., 2021).

Both return a Python float accuracy in [0, 1] and run without grad.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mmlab._checks import (check_class_ids, check_embeddings, check_finite, check_finite_if_cheap,
                           check_int, check_positive)
from mmlab._norm import l2_normalize
from mmlab.metrics.classification import accuracy

__all__ = ["linear_probe", "zero_shot_accuracy"]


def _numpy(x: Tensor) -> np.ndarray:
    return x.detach().to("cpu", torch.float64).numpy()


@torch.no_grad()
def linear_probe(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, *,
                 max_iter: int = 1000, C: float = 1.0) -> float:
    """Test accuracy of a logistic-regression probe on frozen features.

    Fits `p(y = c | x) = softmax_c(W x + β)` by minimising
    `Σ_i −log p(y_i | x_i) + ‖W‖² / (2C)` with L-BFGS (scikit-learn's `LogisticRegression`, on
    CPU in float64; deterministic), then returns `mean_i [argmax_c p(c | x_i) = y_i]` on the test
    set. Features are used as given (normalise them first if you want cosine geometry).
    (Alain & Bengio, 2016; Radford et al., 2021.)

    Args:
        train_x: (N_train, D) features.
        train_y: (N_train,) integer class ids, at least two distinct classes.
        test_x: (N_test, D) features.
        test_y: (N_test,) integer class ids (classes unseen in training count as errors).
        max_iter: L-BFGS iterations, an int ≥ 1.
        C: inverse L2 regularisation strength, > 0 (smaller is stronger).
    Returns:
        Accuracy as a Python float in [0, 1].
    """
    check_embeddings("train_x", train_x)
    check_embeddings("test_x", test_x)
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"`train_x` {tuple(train_x.shape)} and "
                         f"`test_x` {tuple(test_x.shape)} must have the "
                         "same feature width D (dim 1).")
    check_class_ids("train_y", train_y, train_x.shape[0], "train_x")
    check_class_ids("test_y", test_y, test_x.shape[0], "test_x")
    check_int("max_iter", max_iter, minimum=1)
    C = check_positive("C", C)
    check_finite("train_x", train_x)  # always: the features are copied to the CPU anyway
    check_finite("test_x", test_x)
    classes = torch.unique(train_y)
    if classes.numel() < 2:
        raise ValueError(f"`train_y` holds a single class ({classes.tolist()}); "
                         "a probe needs at least two.")
    from sklearn.linear_model import LogisticRegression  # lazy: keeps `import mmlab` fast

    clf = LogisticRegression(C=C, max_iter=max_iter)
    clf.fit(_numpy(train_x), train_y.detach().cpu().numpy())
    pred = clf.predict(_numpy(test_x))  # (N_test,)
    return float(np.mean(pred == test_y.detach().cpu().numpy()))


@torch.no_grad()
def zero_shot_accuracy(x: Tensor, class_embeddings: Tensor, y: Tensor) -> float:
    """Zero-shot accuracy: `mean_i [argmax_c cos(x_i, e_c) = y_i]` (Radford et al., 2021).

    Tied classes count in expectation over a random order (`accuracy`'s rule): all cosines equal
    gives chance, 1 / C. "Zero-shot" in CLIP's sense needs classes or prompts that training never
    saw; with the training captions as class embeddings this measures nearest-caption accuracy.

    Args:
        x: (B, D) embeddings of the samples (e.g. images).
        class_embeddings: (C, D) one embedding per class (e.g. of a prompt "a photo of a {c}").
        y: (B,) integer class ids in [0, C).
    Returns:
        Accuracy as a Python float in [0, 1].
    """
    check_embeddings("x", x)
    check_embeddings("class_embeddings", class_embeddings)
    if x.shape[1] != class_embeddings.shape[1]:
        raise ValueError(f"`x` {tuple(x.shape)} and "
                         f"`class_embeddings` {tuple(class_embeddings.shape)} "
                         "must have the same embedding width D (dim 1).")
    n_classes = class_embeddings.shape[0]
    check_class_ids("y", y, x.shape[0], "x", n_classes=n_classes,
                    classes_in=f"{n_classes} rows of `class_embeddings`")
    check_finite_if_cheap("x", x)
    check_finite_if_cheap("class_embeddings", class_embeddings)
    common = torch.promote_types(x.dtype, class_embeddings.dtype)
    x_hat = l2_normalize(x.to(common), dim=-1)  # (B, D)
    e_hat = l2_normalize(class_embeddings.to(common), dim=-1)  # (C, D)
    return accuracy(x_hat @ e_hat.T, y)  # cosine scores (B, C): top-1 over the classes
