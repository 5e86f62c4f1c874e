"""fit: learning, determinism, NaN stop, temperature clamp, callbacks, and exact interrupt/resume."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmlab.data import MultimodalDataset
from mmlab.train import Callback, History, fit, move_to, retrieval_eval
from mmlab.viz import LivePlot

N, D_IN, D = 48, 6, 4


def _data(n: int = N, seed: int = 0) -> MultimodalDataset:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, D_IN, generator=g)
    return MultimodalDataset({"a": z, "b": z + 0.1 * torch.randn(n, D_IN, generator=g)})


def _clip_loss(za, zb, scale):
    """Symmetric InfoNCE written out here (independent of mmlab.losses)."""
    logits = scale * za @ zb.T  # (B, B)
    y = torch.arange(len(za))
    return 0.5 * (F.cross_entropy(logits, y) + F.cross_entropy(logits.T, y))


class Towers(nn.Module):
    def __init__(self, init_tau: float = 0.2, dropout: float = 0.0) -> None:
        super().__init__()
        self.fa, self.fb = nn.Linear(D_IN, D), nn.Linear(D_IN, D)
        self.drop = nn.Dropout(dropout)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / init_tau)))
        self.calls = 0

    def encode(self, batch):
        return {"a": F.normalize(self.fa(self.drop(batch["a"])), dim=-1),
                "b": F.normalize(self.fb(self.drop(batch["b"])), dim=-1)}

    def forward(self, batch):
        self.calls += 1
        z = self.encode(batch)
        return _clip_loss(z["a"], z["b"], self.logit_scale.exp())


def _model(**kw) -> Towers:
    torch.manual_seed(0)
    return Towers(**kw)


FAST = dict(batch_size=16, lr=5e-2, progress=False, device="cpu")


def test_fit_reduces_loss_and_logs():
    data, model = _data(), _model()
    full = data.batch(torch.arange(N))
    with torch.no_grad():
        before = model(full).item()
    hist = fit(model, data, steps=40, **FAST)
    with torch.no_grad():
        after = model(full).item()
    assert after < before - 0.3
    assert hist.step == list(range(1, 41)) and len(hist.loss) == len(hist.temperature) == len(hist.terms) == 40
    assert hist.epoch == [s // 3 for s in range(40)]  # 48 // 16 = 3 batches per epoch
    assert hist.temperature[-1] == pytest.approx(math.exp(-model.logit_scale.item()), rel=1e-6)
    assert hist.seconds > 0


def test_epochs_mode_and_drop_last():
    hist = fit(_model(), _data(n=40), epochs=2, **FAST)  # 40 // 16 = 2 full batches per epoch
    assert hist.step == [1, 2, 3, 4] and hist.epoch == [0, 0, 1, 1]
    hist = fit(_model(), _data(n=40), epochs=1, drop_last=False, **FAST)
    assert len(hist) == 3


def test_deterministic_bit_for_bit():
    runs = []
    for _ in range(2):
        model = _model(dropout=0.2)
        runs.append((fit(model, _data(), steps=12, **FAST), model.state_dict()))
    assert runs[0][0] == runs[1][0]
    for k, v in runs[0][1].items():
        assert torch.equal(v, runs[1][1][k])
    other = fit(_model(dropout=0.2), _data(), steps=12, seed=1, **FAST)
    assert other.loss != runs[0][0].loss  # the seed changes the data order


def test_iterable_of_batches_and_loss_fn():
    data = _data()
    batches = [data.batch(torch.arange(i, i + 16)) for i in range(0, N, 16)]
    model = _model()

    def loss(m, batch):
        z = m.encode(batch)
        return _clip_loss(z["a"], z["b"], 1 / 0.1)

    hist = fit(model, batches, loss=loss, epochs=2, **FAST)
    assert len(hist) == 6 and model.calls == 0  # the loss function was used, not model(batch)


class NaNAt(Towers):
    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def forward(self, batch):
        out = super().forward(batch)
        return out * float("nan") if self.calls == self.k else out


def test_nan_loss_names_step_and_keeps_last_finite_weights():
    torch.manual_seed(0)
    model = NaNAt(k=3)
    with pytest.raises(FloatingPointError, match=r"step 3 .*τ = .*lr = 0.05.*τ too small.*lr too high"):
        fit(model, _data(), steps=10, **FAST)
    torch.manual_seed(0)
    ref = NaNAt(k=99)
    fit(ref, _data(), steps=2, **FAST)
    for (k, v), w in zip(model.state_dict().items(), ref.state_dict().values()):
        assert torch.equal(v, w), k


def test_temperature_clamp():
    model = _model(init_tau=0.005)  # logit_scale = log 200 > log 100
    hist = fit(model, _data(), steps=3, lr=1e-4, **{k: v for k, v in FAST.items() if k != "lr"})
    assert model.logit_scale.item() <= math.log(100) + 1e-7
    assert min(hist.temperature) >= 0.01 * (1 - 1e-6)

    class WithClamp(Towers):
        clamps = 0

        def clamp_(self):
            WithClamp.clamps += 1

    torch.manual_seed(0)
    fit(WithClamp(init_tau=0.005), _data(), steps=4, **FAST)
    assert WithClamp.clamps == 4


def test_callbacks_eval_stop_and_liveplot():
    seen = []

    class Recorder(Callback):
        def on_step(self, state):
            seen.append(("step", state.step, state.loss))
            if state.step == 5:
                state.stop = True

        def on_eval(self, state):
            seen.append(("eval", state.step, state.metrics["a→b R@1"]))

        def on_end(self, state):
            seen.append(("end", state.step, None))

    plot = LivePlot(every=2, display=False)
    data = _data()
    hist = fit(_model(), data, steps=50, eval_data=data, eval_every=2, callbacks=[Recorder(), plot], **FAST)
    assert len(hist) == 5  # stopped by the callback
    assert [s for kind, s, _ in seen if kind == "eval"] == [2, 4, 5]  # every 2 steps and at the end
    assert [v for kind, _, v in seen if kind == "step"] == hist.loss
    assert seen[-1][0] == "end"
    assert list(plot.figure.data[0].y) == hist.loss and list(plot.figure.data[0].x) == hist.step
    assert list(plot.figure.data[1].y) == hist.temperature


def test_retrieval_eval_matches_brute_force():
    data, model = _data(), _model()
    out = retrieval_eval(model, data)
    with torch.no_grad():
        z = model.encode(data.batch(torch.arange(N)))
    sim = z["a"] @ z["b"].T  # (N, N)
    r1_ab = sum(int(sim[i].argmax() == i) for i in range(N)) / N
    r1_ba = sum(int(sim[:, i].argmax() == i) for i in range(N)) / N
    assert out["a→b R@1"] == pytest.approx(r1_ab) and out["b→a R@1"] == pytest.approx(r1_ba)
    gap = (z["a"].mean(0) - z["b"].mean(0)).norm().item()
    assert out["gap a-b"] == pytest.approx(gap, rel=1e-5)
    assert "uniformity a" in out and model.training


def test_move_to_nested():
    batch = {"x": torch.zeros(2), "text": ["a", "b"], "factors": {"f": torch.ones(2)}, "n": 3}
    out = move_to(batch, "cpu")
    assert out["text"] == ["a", "b"] and out["n"] == 3 and torch.equal(out["factors"]["f"], torch.ones(2))


def test_history_dict_and_frame():
    hist = fit(_model(), _data(), steps=4, eval_data=_data(), **FAST)
    again = History.from_dict(hist.to_dict())
    assert again == hist
    frame = hist.as_frame()
    assert list(frame["loss"]) == hist.loss and {"step", "epoch", "temperature"} <= set(frame.columns)
    assert list(hist.as_frame(evals=True)["step"]) == [4]


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(model="nope"), TypeError, "`model`"),
    (dict(train_data={"a": 1}), TypeError, r"Wrap a single batch"),
    (dict(train_data=3), TypeError, "`train_data`"),
    (dict(steps=None), ValueError, "exactly one of `epochs` and `steps`"),
    (dict(epochs=2), ValueError, "exactly one of `epochs` and `steps`"),
    (dict(batch_size=0), ValueError, "`batch_size`"),
    (dict(lr=0.0), ValueError, "`lr`"),
    (dict(precision="fp8"), ValueError, "`precision`"),
    (dict(optimizer="lion"), ValueError, "`optimizer`"),
    (dict(checkpoint_every=5), ValueError, "`checkpoint`"),
    (dict(eval_every=5), ValueError, "`eval_data`"),
    (dict(device="tpu"), ValueError, r"`device` 'tpu' is not a device torch knows; valid forms: 'auto', 'cpu'"),
    (dict(device=1.5), TypeError, r"`device` must be one of 'auto'"),
])
def test_validation(kwargs, err, match):
    args = dict(model=_model(), train_data=_data(), steps=2, progress=False)
    args.update(kwargs)
    model, data = args.pop("model"), args.pop("train_data")
    with pytest.raises(err, match=match):
        fit(model, data, **args)


class InterruptAt(Callback):
    def __init__(self, k: int) -> None:
        self.k = k

    def on_step(self, state):
        if state.step == self.k:
            raise KeyboardInterrupt


def _resume_case(tmp_path, make_data, interrupt, steps=11):
    kw = dict(steps=steps, checkpoint_every=4, eval_every=3, **FAST)
    ref_model = _model(dropout=0.3)
    ref = fit(ref_model, make_data(), eval_data=_data(), checkpoint=tmp_path / "ref.pt", **kw)
    path = tmp_path / "run.pt"
    model = _model(dropout=0.3)
    with pytest.raises(KeyboardInterrupt):
        fit(model, make_data(), eval_data=_data(), checkpoint=path, callbacks=interrupt(), **kw)
    torch.manual_seed(123)  # a fresh session: different global RNG, fresh weights
    resumed_model = Towers(dropout=0.3)
    hist = fit(resumed_model, make_data(), eval_data=_data(), checkpoint=path, **kw)
    assert hist == ref
    for k, v in ref_model.state_dict().items():
        assert torch.equal(v, resumed_model.state_dict()[k]), k
    return path, kw


def test_interrupt_in_callback_then_resume_is_exact(tmp_path):
    path, kw = _resume_case(tmp_path, _data, lambda: [InterruptAt(6)])
    # a finished run resumes to the same history at once
    again = fit(Towers(dropout=0.3), _data(), eval_data=_data(), checkpoint=path, **kw)
    assert again == fit(_model(dropout=0.3), _data(), eval_data=_data(), checkpoint=tmp_path / "r2.pt", **kw)


class InterruptInForward(Callback):
    """Arms the model so that the forward of step k+1 raises KeyboardInterrupt."""

    def __init__(self, k: int) -> None:
        self.k = k

    def on_step(self, state):
        if state.step == self.k:
            model = state.model
            orig = model.forward

            def boom(batch):
                model.forward = orig
                model.drop(batch["a"])  # consumes RNG like a real forward would, then stops
                raise KeyboardInterrupt
            model.forward = boom


def test_interrupt_in_forward_then_resume_is_exact(tmp_path):
    _resume_case(tmp_path, _data, lambda: [InterruptInForward(7)])


def test_dataloader_resume_is_exact(tmp_path):
    from mmlab.data import collate

    def loader():
        return torch.utils.data.DataLoader(_data(), batch_size=16, shuffle=True, collate_fn=collate)

    _resume_case(tmp_path, loader, lambda: [InterruptAt(5)], steps=8)
