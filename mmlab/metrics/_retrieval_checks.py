"""Input checks of the retrieval metrics (`mmlab.metrics.retrieval`): shapes, labels, options.

Each check raises a ValueError/TypeError naming the argument, what it got and what to pass.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from mmlab._checks import check_class_ids, check_finite_if_cheap, check_int, check_tensor


def check_width(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    """Two embedding batches must share their width D to be compared."""
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"`{name_a}` {tuple(a.shape)} and `{name_b}` {tuple(b.shape)} must have "
                         f"the same embedding width D (dim 1) to be compared; got {a.shape[1]} "
                         f"and {b.shape[1]}.")


def check_label_pair(names: tuple[str, str], labels: tuple[object, object],
                     sizes: tuple[int, int],
                     of: tuple[str, str]) -> tuple[Tensor, Tensor] | None:
    """Labels come both or neither; returns the checked pair or None."""
    given = [lab is not None for lab in labels]
    if any(given) and not all(given):
        missing = names[given.index(False)]
        raise ValueError(f"`{missing}` is None but `{names[given.index(True)]}` is given; pass "
                         "labels for both queries and gallery (class-level retrieval) or for "
                         "neither (paired).")
    if not any(given):
        return None
    return (check_class_ids(names[0], labels[0], sizes[0], of[0]),
            check_class_ids(names[1], labels[1], sizes[1], of[1]))


def check_coverage(name_q: str, labels_q: Tensor, name_g: str, labels_g: Tensor) -> None:
    """Every query label must occur in the gallery, or the query has no true match to rank."""
    missing = ~torch.isin(labels_q, labels_g.to(labels_q.device))  # (B_q,)
    if bool(missing.any()):
        i = int(missing.nonzero()[0])
        raise ValueError(f"`{name_q}`[{i}] = {int(labels_q[i])} occurs nowhere in `{name_g}`, so "
                         f"query {i} has no true match; every query label needs at least one "
                         f"gallery item with it ({int(missing.sum())} queries lack one).")


def check_sim(sim: object, labels_query: object,
              labels_gallery: object) -> tuple[Tensor, tuple | None]:
    """A (B_query, B_gallery) score matrix, square unless labels say which items match."""
    sim = check_tensor("sim", sim, ndim=2, what="of shape (B_query, B_gallery)")
    if sim.shape[1] == 0:
        raise ValueError(f"`sim` is empty (shape {tuple(sim.shape)}); the gallery needs at least "
                         "one item.")
    check_finite_if_cheap("sim", sim)
    pair = check_label_pair(("labels_query", "labels_gallery"), (labels_query, labels_gallery),
                            (sim.shape[0], sim.shape[1]), ("sim (rows)", "sim (columns)"))
    if pair is not None:
        check_coverage("labels_query", pair[0], "labels_gallery", pair[1])
    if pair is None and sim.shape[0] != sim.shape[1]:
        raise ValueError(f"`sim` has shape {tuple(sim.shape)}; without labels the true match of "
                         "query i is gallery item i, so `sim` must be square (B, B). For a "
                         "rectangular matrix pass `labels_query` and `labels_gallery`.")
    return sim, pair


def check_ks(ks: object) -> tuple[int, ...]:
    """The cut-offs k of R@k: an int or a non-empty sequence of ints ≥ 1."""
    if isinstance(ks, int) and not isinstance(ks, bool):
        ks = (ks,)
    if not isinstance(ks, Iterable) or isinstance(ks, (str, bytes)):
        raise TypeError(f"`ks` must be a sequence of ints ≥ 1 such as (1, 5, 10), "
                        f"got {type(ks).__name__}.")
    ks = tuple(ks)
    if not ks:
        raise ValueError("`ks` is empty; pass at least one k, e.g. ks=(1, 5, 10).")
    for k in ks:
        check_int("ks[...]", k, minimum=1)
    return ks


def check_names(names: object) -> tuple[str, str]:
    """Two display names, e.g. ("image", "text")."""
    if (not isinstance(names, (tuple, list)) or len(names) != 2
            or not all(isinstance(n, str) for n in names)):
        raise TypeError(f"`names` must be two strings such as ('image', 'text'), got {names!r}.")
    return names[0], names[1]
