"""fit reads values back from the device only every `read_every` steps (no sync per step).

On a GPU every host read of a tensor's value (`.item()`, `float(t)`, `bool(t)`, `.tolist()`,
`.cpu()`, `.numpy()`) waits for the device queue to drain. These tests count such reads on the
CPU, where they can be intercepted, during `fit` runs, and check that the steps between two
scheduled reads make none: the loop can run ahead of the device.
"""

from __future__ import annotations

import contextlib
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mmlab._checks
import mmlab.losses._prep
from mmlab.data import MultimodalDataset
from mmlab.encoders import MLPEncoder, ProjectionHead
from mmlab.losses import ClipLoss
from mmlab.model import ContrastiveModel
from mmlab.train import Callback, fit

READS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__", "__index__")


class ReadCounter(Callback):
    """Counts host reads of tensor values per step (between on_step_start and on_step)."""

    def __init__(self) -> None:
        self.per_step: dict[int, list[str]] = {}
        self.current: int | None = None

    def on_step_start(self, state) -> None:
        self.current = state.step + 1
        self.per_step[self.current] = []

    def on_step(self, state) -> None:
        self.current = None

    def note(self, name: str, caller: str) -> None:
        # torch.optim reads its step counter with .item(): a CPU tensor even when training on a
        # GPU (capturable=False), so no device sync; every other read counts.
        if self.current is not None and "torch/optim/" not in caller.replace("\\", "/"):
            self.per_step[self.current].append(name)


@contextlib.contextmanager
def counting(counter: ReadCounter, monkeypatch):
    for name in READS:
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, _name=name, _original=original, **kwargs):
            counter.note(_name, sys._getframe(1).f_code.co_filename)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, wrapper)
    yield


def _data(n: int = 96) -> MultimodalDataset:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, 6, generator=g)
    return MultimodalDataset({"a": a, "b": a @ torch.randn(6, 5, generator=g)})


class Towers(nn.Module):
    """Two linear towers and a CLIP loss written with plain torch ops (no value checks)."""

    def __init__(self) -> None:
        super().__init__()
        self.fa, self.fb = nn.Linear(6, 4), nn.Linear(5, 4)
        self.logit_scale = nn.Parameter(torch.tensor(2.0))

    def forward(self, batch):
        za, zb = F.normalize(self.fa(batch["a"]), dim=-1), F.normalize(self.fb(batch["b"]), dim=-1)
        logits = self.logit_scale.exp() * za @ zb.T
        y = torch.arange(len(za))
        return 0.5 * (F.cross_entropy(logits, y) + F.cross_entropy(logits.T, y))


def _reads_by_step(model, monkeypatch, read_every: int, steps: int, **kw) -> dict[int, list[str]]:
    counter = ReadCounter()
    kw.setdefault("progress", False)
    with counting(counter, monkeypatch):
        fit(model, _data(), steps=steps, batch_size=16, read_every=read_every,
            callbacks=[counter], **kw)
    return counter.per_step


@pytest.mark.parametrize("progress", [False, True])
def test_no_host_read_between_scheduled_reads(monkeypatch, progress):
    torch.manual_seed(0)
    reads = _reads_by_step(Towers(), monkeypatch, read_every=4, steps=12, progress=progress)
    assert sorted(reads) == list(range(1, 13))
    scheduled = {s for s in reads if s % 4 == 0}
    for step, names in reads.items():
        if step not in scheduled:
            assert names == [], f"step {step} read values from the device: {names}"
    for step in scheduled:  # one batched read (`tolist`) per scheduled step, nothing else
        assert reads[step] == ["tolist"], reads[step]


def test_reading_every_step_is_one_read_per_step(monkeypatch):
    torch.manual_seed(0)
    reads = _reads_by_step(Towers(), monkeypatch, read_every=1, steps=5)
    assert all(names == ["tolist"] for names in reads.values()), reads


def test_contrastive_model_steps_make_no_read_where_checks_are_not_cheap(monkeypatch):
    """On a GPU `values_are_cheap` is False: then the model, heads and loss read nothing."""
    for module in (mmlab._checks, mmlab.losses._prep):
        monkeypatch.setattr(module, "values_are_cheap", lambda x: False)
    torch.manual_seed(0)
    model = ContrastiveModel({"a": MLPEncoder(6, 8, out_dim=8), "b": MLPEncoder(5, 8, out_dim=8)},
                             {"a": ProjectionHead(8, 4), "b": ProjectionHead(8, 4)}, ClipLoss())
    reads = _reads_by_step(model, monkeypatch, read_every=3, steps=9, clip_grad_norm=1.0)
    for step, names in reads.items():
        assert names == ([] if step % 3 else ["tolist"]), (step, names)


def test_the_history_is_complete_and_equal_for_any_read_schedule():
    runs = []
    for read_every in (1, 3, 50):
        torch.manual_seed(0)
        runs.append(fit(Towers(), _data(), steps=10, batch_size=16, read_every=read_every,
                        progress=False))
    assert len(runs[0]) == 10 and runs[0] == runs[1] == runs[2]
