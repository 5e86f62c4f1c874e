"""`xor`: the higher-order (XOR) dataset of Symile (Saporta et al., NeurIPS 2024).

    a, b ~ Uniform{0, 1}^bits,  i ~ Bernoulli(p),  c = a ⊕ b if i = 1 else a.

b is independent of a and of c separately: I(b; a) = I(b; c) = 0 for every p (c is uniform and
independent of b whatever p is). The pair (a, c) is *not* independent when p < 1, since c = a
with probability 1 − p; all three pairs are independent only at p = 1. Yet at p = 1 the triple
is fully dependent, I(b; (a, c)) = bits · ln 2 nats, because b = a ⊕ c. So a pairwise
contrastive objective (CLIP) can learn a–c for p < 1 but gets no signal about b from either
other modality; a higher-order one (Symile) can predict b from (a, c). `xor_joint` enumerates
the exact joint distribution and `mutual_information` computes MI from it, in nats, for tests
and notebooks. `bayes_accuracy` is the best accuracy any predictor of b from (a, c) can reach,
2^-bits + (1 − 2^-bits)·p.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import Tensor

from mmlab._checks import check_choice, check_int, check_probability
from mmlab.data.dataset import MultimodalDataset
from mmlab.data.limits import check_dataset_bytes
from mmlab.data.registry import SPLITS, register

DEFAULT_N = {"train": 10_000, "val": 2_000, "test": 2_000}


def bits_to_int(x: Tensor) -> Tensor:
    """Read rows of bits (..., bits) as integers, most significant bit first: [1, 0, 1] → 5."""
    bits = x.shape[-1]
    weights = 2 ** torch.arange(bits - 1, -1, -1, device=x.device)  # (bits,)
    return (x.round().long() * weights).sum(-1)


def xor_joint(bits: int = 3, p: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The exact joint distribution of (a, b, c), by enumerating a, b and i.

    Args:
        bits: width of each bit vector.
        p: P(i = 1).
    Returns:
        `(codes, prob)`: int64 `(K, 3)` rows (a, b, c) as integers (a ⊕ b is `a ^ b`) and float64
        `(K,)` probabilities summing to 1; each (a, b, c) appears once.
    """
    check_int("bits", bits)
    check_probability("p", p)
    m = 2 ** bits
    table: dict[tuple[int, int, int], float] = {}
    for a, b in itertools.product(range(m), range(m)):
        for i, pi in ((1, p), (0, 1.0 - p)):
            if pi == 0:
                continue
            key = (a, b, a ^ b if i else a)
            table[key] = table.get(key, 0.0) + pi / (m * m)
    codes = np.array(list(table), dtype=np.int64)
    return codes, np.array(list(table.values()), dtype=np.float64)


def bayes_accuracy(bits: int = 3, p: float = 1.0) -> float:
    """The Bayes-optimal accuracy of predicting b from (a, c) under `xor_joint(bits, p)`.

    The best predictor picks `argmax_b p(a, b, c)` for every (a, c), so its accuracy is
    `Σ_{(a, c)} max_b p(a, b, c)`. With m = 2^bits: if c ≠ a, only b = a ⊕ c is possible
    (p(a, b, c) = p/m²; m(m − 1) such (a, c)); if c = a, b = 0 has 1/m² (i = 1 gives a ⊕ 0 = a,
    i = 0 gives c = a) and every other b has (1 − p)/m². Summing,

        bayes_accuracy = (m − 1)·p/m + 1/m = 2^-bits + (1 − 2^-bits)·p,

    from chance 2^-bits at p = 0 to 1 at p = 1 (1/8 + 7p/8 for 3 bits).

    Args:
        bits: width of each bit vector, an int ≥ 1.
        p: P(c = a ⊕ b), in [0, 1].
    Returns:
        The accuracy as a Python float in [2^-bits, 1].
    """
    check_int("bits", bits)
    check_probability("p", p)
    chance = 2.0 ** -bits
    return chance + (1.0 - chance) * float(p)


def mutual_information(prob: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """I(X; Y) = Σ p(x, y) ln(p(x, y) / (p(x) p(y))) in nats, from an enumerated joint.

    Args:
        prob: float `(K,)` probabilities of K outcomes.
        x, y: `(K,)` or `(K, k)` integer codes of X and Y in each outcome (several columns
            are one joint variable, e.g. `codes[:, [0, 2]]` for (a, c)).
    Returns:
        The mutual information in nats (divide by ln 2 for bits).
    """
    prob = np.asarray(prob, dtype=np.float64)
    x = np.asarray(x).reshape(len(prob), -1)
    y = np.asarray(y).reshape(len(prob), -1)
    _, xi = np.unique(x, axis=0, return_inverse=True)
    _, yi = np.unique(y, axis=0, return_inverse=True)
    xi, yi = xi.reshape(-1), yi.reshape(-1)
    pxy = np.zeros((xi.max() + 1, yi.max() + 1))
    np.add.at(pxy, (xi, yi), prob)
    px, py = pxy.sum(1, keepdims=True), pxy.sum(0, keepdims=True)
    nz = pxy > 0
    return float((pxy[nz] * np.log(pxy[nz] / (px @ py)[nz])).sum())


@register("xor")
def load_xor(split: str = "train", bits: int = 3, p: float = 1.0, n: int | None = None,
             seed: int = 0) -> MultimodalDataset:
    """Symile's XOR dataset: modalities "a", "b", "c", float32 (N, bits) in {0, 1}.

    Args:
        split: "train", "val" or "test" (independent random streams).
        bits: width of each bit vector.
        p: probability that c = a ⊕ b (otherwise c = a).
        n: number of samples (default 10000 / 2000 / 2000).
        seed: base seed.
    Returns:
        A `MultimodalDataset`; label = the integer value of b (0..2^bits − 1, MSB first),
        factors {"i"}; classes are the bit strings of b.
    """
    check_choice("split", split, SPLITS)
    check_int("bits", bits)
    if bits > 20:
        raise ValueError(f"`bits` must be ≤ 20 (labels have 2^bits classes), got {bits}.")
    check_probability("p", p)
    n = DEFAULT_N[split] if n is None else check_int("n", n)
    # a, b, c as int64 then float32 (36 bytes a bit), i and its draws, the label: per sample
    check_dataset_bytes(n, 36 * bits + 24, "`n` and `bits`")
    check_int("seed", seed, minimum=0)
    rng = np.random.default_rng([seed, SPLITS.index(split), 0x0A])
    a = rng.integers(0, 2, size=(n, bits))
    b = rng.integers(0, 2, size=(n, bits))
    i = (rng.random(n) < p).astype(np.int64)  # (N,)
    c = np.where(i[:, None] == 1, a ^ b, a)  # (N, bits)
    at, bt, ct = (torch.from_numpy(v).float() for v in (a, b, c))
    label = bits_to_int(bt)
    classes = [format(v, f"0{bits}b") for v in range(2 ** bits)]
    meta = {"name": "xor", "split": split, "seed": seed, "bits": bits, "p": p}
    return MultimodalDataset({"a": at, "b": bt, "c": ct}, label=label,
                             factors={"i": torch.from_numpy(i)}, classes=classes, meta=meta)
