"""The cost of `fit` itself: its steps/s against a bare training loop, and host reads per step.

Two models: two linear towers with a CLIP loss (so small that the loop's own overhead shows),
and the reference tri-modal model (`mmlab.recipes.trimodal_model` on digits, bag-of-words text).
The peer is the loop a learner would write by hand: batch, forward, backward, `opt.step()`,
nothing logged. `fit / bare` is the ratio of their times in the same run (1.0: fit costs
nothing extra). Host reads per step counts `.item()`, `float(t)`, `bool(t)`, `.tolist()`,
`.cpu()`, `.numpy()` on tensors during `fit` (torch.optim's own CPU step counter excluded): on a
GPU each is a sync that stalls the device queue.

This file uses only `fit(model, data, steps=..., batch_size=..., progress=...)`, so it also runs
against older versions of mmlab (that is how BENCHMARKS.md gets its "before" figures).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

import mmlab.train
from benchmarks._timing import sync
from mmlab.data import MultimodalDataset, load
from mmlab.recipes import TriModalConfig, trimodal_model
from mmlab.train import fit

READS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__", "__index__")


class Towers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fa, self.fb = nn.Linear(32, 16), nn.Linear(32, 16)
        self.logit_scale = nn.Parameter(torch.tensor(2.6593))

    def forward(self, batch):
        za = F.normalize(self.fa(batch["a"]), dim=-1)
        zb = F.normalize(self.fb(batch["b"]), dim=-1)
        logits = self.logit_scale.exp() * za @ zb.T
        y = torch.arange(len(za), device=za.device)
        return 0.5 * (F.cross_entropy(logits, y) + F.cross_entropy(logits.T, y))


def _towers_data(n: int) -> MultimodalDataset:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, 32, generator=g)
    return MultimodalDataset({"a": a, "b": a @ torch.randn(32, 32, generator=g)})


def count_reads(fn: Callable[[], object]) -> int:
    """Host reads of computed values while `fn` runs, as a GPU would see them.

    Counted: reads of floating-point and bool tensors (losses, τ, value checks). Not counted:
    integer tensors (batch indices drawn on the host) and torch.optim's CPU step counter. The
    value checks that run only where cheap (`values_are_cheap`) are switched off, as on a GPU.
    """
    count = [0]
    originals = {name: getattr(torch.Tensor, name) for name in READS}
    cheap = [(m, m.values_are_cheap) for m in _cheap_check_modules()]

    def make(name):
        def wrapper(self, *args, **kwargs):
            caller = sys._getframe(1).f_code.co_filename.replace("\\", "/")
            if ((self.is_floating_point() or self.dtype == torch.bool)
                    and "torch/optim/" not in caller):
                count[0] += 1
            return originals[name](self, *args, **kwargs)
        return wrapper
    try:
        for name in READS:
            setattr(torch.Tensor, name, make(name))
        for module, _ in cheap:
            module.values_are_cheap = lambda x: False
        fn()
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)
        for module, original in cheap:
            module.values_are_cheap = original
    return count[0]


def _cheap_check_modules() -> list:
    """The modules that hold a reference to `values_are_cheap` (in this version of mmlab)."""
    return [m for name, m in list(sys.modules.items())
            if name.startswith("mmlab") and hasattr(m, "values_are_cheap")]


def bare_loop(model: nn.Module, ds, steps: int, batch_size: int, device: str) -> None:
    """The peer: the smallest correct loop (no logging, no checks, no clamp)."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen, done = torch.Generator().manual_seed(0), 0
    while done < steps:
        for batch in ds.batches(batch_size, shuffle=True, generator=gen, drop_last=True):
            out = model(batch)
            loss = out if isinstance(out, torch.Tensor) else out.loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            if done == steps:
                break
    sync(device)


def _seconds(fn: Callable[[], object], device: str, reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def run(quick: bool, device: str, steps: int | None = None, reps: int | None = None) -> list[dict]:
    steps = steps or (20 if quick else 300)
    reps = reps or (1 if quick else 3)
    cases = [("two linear towers, B = 64", lambda: Towers(), _towers_data(2048), 64)]
    digits = load("digits", split="train", seed=0)
    if quick:
        digits = digits.subset(torch.arange(256))
    cases.append(("tri-modal reference (digits), B = 128",
                  lambda: trimodal_model(digits, TriModalConfig(embed_dim=64, text="bag-of-words")),
                  digits, 128))
    rows = []
    for name, make, ds, batch in cases:
        ds = ds.to(device)

        def run_fit(progress: bool, **options):
            torch.manual_seed(0)
            fit(make().to(device), ds, steps=steps, batch_size=batch, progress=progress,
                device=device, **options)

        def run_bare():
            torch.manual_seed(0)
            bare_loop(make().to(device), ds, steps, batch, device)
        run_fit(False)  # warm-up
        t_bare = _seconds(run_bare, device, reps)
        t_fit = _seconds(lambda: run_fit(False), device, reps)
        t_bar = _seconds(lambda: run_fit(True), device, reps)
        reads = count_reads(lambda: run_fit(False))
        # the GPU default (read every 25 steps), where this mmlab has the option
        gpu = (count_reads(lambda: run_fit(False, read_every=25)) / steps
               if hasattr(mmlab.train, "TrainConfig") else None)
        rows.append({"model": name, "steps": steps, "bare loop steps/s": steps / t_bare,
                     "fit steps/s": steps / t_fit, "fit / bare": t_fit / t_bare,
                     "fit + progress bar / bare": t_bar / t_bare,
                     "host reads per step": reads / steps,
                     "host reads per step, read_every=25": gpu})
    return rows
