"""Ctrl-C anywhere in `fit`, then the same call again: the same History and weights, bit for bit.

Each case sends a real SIGINT (what Ctrl-C and Jupyter's "interrupt the kernel" send) from
inside one phase of one step: the forward pass, the backward pass, the optimizer update (before,
after), the temperature clamp, the scheduled read of the logs, an evaluation, the final
evaluation, a user callback, the checkpoint write, the epoch boundary. The run is then resumed
in a "fresh session" (new model, another global RNG state) and compared with a run that was
never interrupted.
"""

from __future__ import annotations

import signal
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.optimizer import (register_optimizer_step_post_hook,
                                  register_optimizer_step_pre_hook)

import mmlab.train.checkpoint as ckpt_module
import mmlab.train.data_order as data_order
import mmlab.train.state as state_module
from mmlab.data import MultimodalDataset
from mmlab.train import Callback, TrainedModelWarning, fit

STEPS, EVAL_EVERY, SAVE_EVERY = 14, 4, 5  # 6 batches per epoch: 14 steps cross two epochs
KW = dict(steps=STEPS, batch_size=16, lr=0.05, eval_every=EVAL_EVERY, checkpoint_every=SAVE_EVERY,
          read_every=3, progress=False)


def ctrl_c() -> None:
    signal.raise_signal(signal.SIGINT)


class Trigger:
    """Sends SIGINT on the n-th time `hit()` is called (n counted from 1), once."""

    def __init__(self, n: int) -> None:
        self.n, self.calls = n, 0

    def hit(self) -> None:
        self.calls += 1
        if self.calls == self.n:
            ctrl_c()


class Net(nn.Module):
    """Two towers with dropout (so resuming needs the RNG state) and a learnable τ with clamp_."""

    def __init__(self) -> None:
        super().__init__()
        self.fa, self.fb = nn.Linear(6, 8), nn.Linear(5, 8)
        self.drop = nn.Dropout(0.3)
        self.logit_scale = nn.Parameter(torch.tensor(2.0))
        self.on_clamp: Trigger | None = None

    def encode(self, batch):
        return {"a": F.normalize(self.fa(self.drop(batch["a"])), dim=-1),
                "b": F.normalize(self.fb(batch["b"]), dim=-1)}

    def forward(self, batch):
        z = self.encode(batch)
        logits = self.logit_scale.exp() * z["a"] @ z["b"].T
        y = torch.arange(len(logits))
        return 0.5 * (F.cross_entropy(logits, y) + F.cross_entropy(logits.T, y))

    def clamp_(self):
        if self.on_clamp is not None:
            self.on_clamp.hit()
        self.logit_scale.data.clamp_(max=4.6)


def data() -> MultimodalDataset:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(96, 6, generator=g)
    return MultimodalDataset({"a": a, "b": a @ torch.randn(6, 5, generator=g)})


def fresh_net(seed: int = 0) -> Net:
    torch.manual_seed(seed)
    return Net()


class Evals:
    """eval_fn: mean cosine of pairs; can interrupt on its n-th call."""

    def __init__(self, trigger: Trigger | None = None) -> None:
        self.trigger = trigger

    def __call__(self, model, eval_data):
        if self.trigger is not None:
            self.trigger.hit()
        with torch.no_grad():
            z = model.encode(eval_data.batch(torch.arange(len(eval_data))))
        return {"cos": float((z["a"] * z["b"]).sum(-1).mean())}


class OnStep(Callback):
    def __init__(self, trigger: Trigger) -> None:
        self.trigger = trigger

    def on_step(self, state) -> None:
        self.trigger.hit()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    model = fresh_net()
    path = tmp_path_factory.mktemp("ref") / "ref.pt"
    history = fit(model, data(), eval_data=data(), eval_fn=Evals(), checkpoint=path, **KW)
    assert [e["step"] for e in history.evals] == [4, 8, 12, 14]
    return history, {k: v.clone() for k, v in model.state_dict().items()}


def arm(phase: str, n: int, model: Net, monkeypatch) -> tuple[list, Evals, list]:
    """Make `phase` send SIGINT on its n-th occurrence; returns (callbacks, eval_fn, cleanups)."""
    trigger, callbacks, evals, cleanups = Trigger(n), [], Evals(), []
    if phase == "forward":
        model.register_forward_pre_hook(lambda m, args: trigger.hit())
    elif phase == "backward":
        model.fa.weight.register_hook(lambda grad: trigger.hit())  # runs inside loss.backward()
    elif phase in ("optimizer step (before)", "optimizer step (after)"):
        hook = (register_optimizer_step_pre_hook if "before" in phase
                else register_optimizer_step_post_hook)
        cleanups.append(hook(lambda opt, args, kwargs: trigger.hit()).remove)
    elif phase == "clamp":
        model.on_clamp = trigger
    elif phase in ("evaluation", "final evaluation"):
        evals = Evals(trigger)
    elif phase == "callback":
        callbacks.append(OnStep(trigger))
    elif phase == "checkpoint write":
        save = torch.save

        def interrupted_save(obj, f, *args, **kwargs):
            save(obj, f, *args, **kwargs)
            trigger.hit()  # the temporary file is written, not yet renamed over the old one
        monkeypatch.setattr(ckpt_module.torch, "save", interrupted_save)
    elif phase == "epoch boundary":
        start = data_order.epoch_generator_state

        def state_of(seed, epoch):
            if epoch > 0:
                trigger.hit()
            return start(seed, epoch)
        monkeypatch.setattr("mmlab.train.loop.epoch_generator_state", state_of)
    elif phase == "read of the logs":
        read = state_module._to_floats

        def to_floats(values):
            out = read(values)
            trigger.hit()
            return out
        monkeypatch.setattr(state_module, "_to_floats", to_floats)
    else:
        raise ValueError(phase)
    return callbacks, evals, cleanups


def interrupted_run(phase: str, n: int, path, monkeypatch) -> None:
    model = fresh_net()
    callbacks, evals, cleanups = arm(phase, n, model, monkeypatch)
    try:
        with pytest.raises(KeyboardInterrupt):
            fit(model, data(), eval_data=data(), eval_fn=evals, checkpoint=path,
                callbacks=callbacks, **KW)
    finally:
        for cleanup in cleanups:
            cleanup()
        monkeypatch.undo()


CASES = [("forward", 7), ("backward", 9), ("optimizer step (before)", 6),
         ("optimizer step (after)", 11), ("clamp", 3), ("read of the logs", 2),
         ("evaluation", 2), ("final evaluation", 4), ("callback", 8), ("callback", 10),
         ("checkpoint write", 2), ("epoch boundary", 1), ("forward", 1), ("callback", 14)]


@pytest.mark.parametrize("phase, n", CASES, ids=[f"{p}-{n}" for p, n in CASES])
def test_interrupt_anywhere_then_resume_is_exact(phase, n, reference, tmp_path, monkeypatch):
    ref_history, ref_weights = reference
    path = tmp_path / "run.pt"
    interrupted_run(phase, n, path, monkeypatch)
    assert path.exists(), f"no checkpoint after Ctrl-C in {phase}"
    torch.manual_seed(123)  # a fresh session: another global RNG state, other weights
    resumed = Net()
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainedModelWarning)
        history = fit(resumed, data(), eval_data=data(), eval_fn=Evals(), checkpoint=path, **KW)
    assert history == ref_history, phase
    for k, v in ref_weights.items():
        assert torch.equal(v, resumed.state_dict()[k]), (phase, k)


def test_rerunning_a_cell_never_trains_on_top_silently(tmp_path):
    model = fresh_net()
    fit(model, data(), steps=3, batch_size=16, progress=False)
    with pytest.warns(TrainedModelWarning, match="already trained by fit for 3 steps"):
        fit(model, data(), steps=3, batch_size=16, progress=False)
    # with a checkpoint, rerunning a finished run loads it and trains no further, without a word
    path = tmp_path / "run.pt"
    model = fresh_net()
    first = fit(model, data(), steps=3, batch_size=16, progress=False, checkpoint=path)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainedModelWarning)
        again = fit(model, data(), steps=3, batch_size=16, progress=False, checkpoint=path)
    assert again == first
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items())


def test_an_update_is_never_cut_in_half():
    """SIGINT inside the optimizer step is held until the step and its bookkeeping are done."""
    model = fresh_net()
    trigger = Trigger(2)
    handle = register_optimizer_step_pre_hook(lambda o, a, k: trigger.hit())
    seen = []

    class Watch(Callback):
        def on_interrupt(self, state):
            seen.append((state.step, state.phase))
    try:
        with pytest.raises(KeyboardInterrupt):
            fit(model, data(), steps=5, batch_size=16, progress=False, callbacks=[Watch()])
    finally:
        handle.remove()
    assert seen == [(2, "step")]  # step 2 finished (update, clamp, count) before the interrupt
