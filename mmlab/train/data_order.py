"""The order of the batches: a function of (seed, epoch) only, so a resumed run sees the same.

Each epoch draws its shuffle from a generator seeded by `epoch_seed(seed, epoch)`; its state is
stored in checkpoints, and a run resumed mid-epoch skips the batches already done.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

__all__ = ["epoch_seed", "epoch_generator_state", "epoch_batches"]


def epoch_seed(seed: int, epoch: int) -> int:
    """A distinct 63-bit seed per (seed, epoch): an affine mix with primes, so nearby seeds and
    epochs do not give nearby generator seeds."""
    return (seed * 1_000_003 + epoch * 7_919 + 12_345) % (2**63 - 1)


def epoch_generator_state(seed: int, epoch: int) -> Tensor:
    """The state of the generator that shuffles `epoch` (what a checkpoint stores)."""
    return torch.Generator().manual_seed(epoch_seed(seed, epoch)).get_state()


def epoch_batches(data: Any, is_ds: bool, batch_size: int, drop_last: bool,
                  gen_state: Tensor, skip: int) -> Iterator[Any]:
    """The batches of one epoch, in an order fixed by `gen_state`, with the first `skip` dropped.

    Datasets shuffle with a generator set to `gen_state`. Other iterables (a DataLoader) are
    started with the global RNG seeded from `gen_state` inside `fork_rng`, so a shuffling
    DataLoader draws the same order for the same (seed, epoch) and the training RNG is untouched.
    """
    gen = torch.Generator()
    gen.set_state(gen_state)
    if is_ds:
        it = iter(data.batches(batch_size, shuffle=True, generator=gen, drop_last=drop_last))
        return itertools.islice(it, skip, None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(2**62, (1,), generator=gen)))
        it = iter(data)
        head = list(itertools.islice(it, skip + 1))[skip:]  # starting it draws the sampler seed
    return itertools.chain(head, it)
