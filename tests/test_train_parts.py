"""fit's parts, each on its own: TrainConfig, TrainState, History, FiniteCheck, Evaluator,
Checkpointer and ProgressBar, checked against hand-computed values, brute-force loops and
second, clean runs."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import shutil
import statistics

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mmlab.train.checkpointer as checkpointer_module
from mmlab.data import MultimodalDataset
from mmlab.train import (Callback, Evaluator, FiniteCheck, History, TrainConfig, TrainState, fit,
                         read_checkpoint)
from mmlab.train.optim import TemperatureProbe
from mmlab.train.state import StepRecord

N, D_IN, D = 48, 6, 4  # 48 rows in batches of 16: 3 steps per epoch
FAST = dict(batch_size=16, lr=5e-2, progress=False, device="cpu")
NAN = float("nan")


def _data(n: int = N, seed: int = 0) -> MultimodalDataset:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, D_IN, generator=g)
    return MultimodalDataset({"a": z, "b": z + 0.1 * torch.randn(n, D_IN, generator=g)})


class Towers(nn.Module):
    """Two linear towers with dropout (train and eval mode differ) and a learnable τ."""

    def __init__(self, dropout: float = 0.2) -> None:
        super().__init__()
        self.fa, self.fb = nn.Linear(D_IN, D), nn.Linear(D_IN, D)
        self.drop = nn.Dropout(dropout)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.2)))

    def encode(self, batch):
        return {"a": F.normalize(self.fa(self.drop(batch["a"])), dim=-1),
                "b": F.normalize(self.fb(self.drop(batch["b"])), dim=-1)}

    def forward(self, batch):
        z = self.encode(batch)
        logits = self.logit_scale.exp() * z["a"] @ z["b"].T  # (B, B), InfoNCE written out
        y = torch.arange(len(logits))
        return 0.5 * (F.cross_entropy(logits, y) + F.cross_entropy(logits.T, y))


def _model() -> Towers:
    torch.manual_seed(0)
    return Towers()


class PoisonAt:
    """loss(model, batch): the model's own loss, times NaN on the k-th call (None: never)."""

    def __init__(self, k: int | None) -> None:
        self.k, self.calls = k, 0

    def __call__(self, model, batch):
        self.calls += 1
        out = model(batch)
        return out * NAN if self.calls == self.k else out


class Recorder(Callback):
    """Keeps the config, the optimizer, and a copy of the weights after every step."""

    def __init__(self) -> None:
        self.weights: dict[int, dict] = {}
        self.config = self.optimizer = self.opt_state = None

    def on_start(self, state):
        self.config, self.optimizer = state.config, state.optimizer

    def on_step(self, state):
        self.weights[state.step] = copy.deepcopy(state.model.state_dict())

    def on_end(self, state):
        self.opt_state = copy.deepcopy(state.optimizer.state_dict())


def _assert_equal_states(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], dict):
            _assert_equal_states(a[k], b[k])
        elif isinstance(a[k], torch.Tensor):
            assert torch.equal(a[k], b[k]), k
        else:
            assert a[k] == b[k], k


# ----------------------------------------------------------------------------- TrainConfig
def test_keyword_options_build_the_same_config_and_run():
    rec_kw, rec_cfg = Recorder(), Recorder()
    by_keywords = fit(_model(), _data(), steps=5, callbacks=[rec_kw], **FAST)
    explicit = TrainConfig(steps=5, **FAST)
    by_config = fit(_model(), _data(), explicit, callbacks=[rec_cfg])
    assert rec_kw.config == explicit == rec_cfg.config and by_keywords == by_config
    # options override a config: epochs replaces steps, the caller's config is left alone
    rec = Recorder()
    fit(_model(), _data(), explicit, callbacks=[rec], epochs=1, lr=0.01)
    assert rec.config == dataclasses.replace(explicit, steps=None, epochs=1, lr=0.01)
    assert explicit.steps == 5 and explicit.epochs is None and explicit.lr == 5e-2
    assert TrainConfig.merge(TrainConfig(epochs=2), {"steps": 3}).epochs is None


def test_config_defaults_are_the_documented_ones():
    documented = dict(steps=1, epochs=None, batch_size=256, lr=1e-3, weight_decay=0.0,
                      optimizer="adamw", precision="auto", device="auto", seed=0,
                      clip_grad_norm=None, drop_last=True, eval_every=None, checkpoint=None,
                      checkpoint_every=None, resume=True, progress=True, check_finite=True,
                      read_every=None, diagnose=False)
    assert dataclasses.asdict(TrainConfig(steps=1)) == documented
    for name in documented:  # every field is explained in the docstring
        assert f"\n        {name}:" in TrainConfig.__doc__, name


@pytest.mark.parametrize("kwargs, err, name", [
    (dict(steps=0), ValueError, "steps"), (dict(steps=2.5), TypeError, "steps"),
    (dict(steps=True), TypeError, "steps"), (dict(steps=None, epochs=0), ValueError, "epochs"),
    (dict(eval_every=0), ValueError, "eval_every"), (dict(read_every=0), ValueError, "read_every"),
    (dict(read_every=1.5), TypeError, "read_every"),
    (dict(checkpoint="r.pt", checkpoint_every=0), ValueError, "checkpoint_every"),
    (dict(batch_size=True), TypeError, "batch_size"), (dict(lr=NAN), ValueError, "lr"),
    (dict(lr=math.inf), ValueError, "lr"), (dict(lr=-1e-3), ValueError, "lr"),
    (dict(lr="1e-3"), TypeError, "lr"), (dict(weight_decay=-0.1), ValueError, "weight_decay"),
    (dict(weight_decay=NAN), ValueError, "weight_decay"),
    (dict(weight_decay=math.inf), ValueError, "weight_decay"),
    (dict(weight_decay=True), ValueError, "weight_decay"), (dict(seed=1.0), TypeError, "seed"),
    (dict(seed=True), TypeError, "seed"), (dict(clip_grad_norm=0), ValueError, "clip_grad_norm"),
    (dict(clip_grad_norm=math.inf), ValueError, "clip_grad_norm"),
    (dict(drop_last=1), TypeError, "drop_last"), (dict(resume="yes"), TypeError, "resume"),
    (dict(progress=None), TypeError, "progress"), (dict(check_finite=0), TypeError, "check_finite"),
    (dict(diagnose="no"), TypeError, "diagnose"),
])
def test_config_errors_name_the_argument(kwargs, err, name):
    with pytest.raises(err, match=f"`{name}`"):
        TrainConfig(**{"steps": 3, **kwargs})


def test_merge_refuses_unknown_options_and_non_configs():
    with pytest.raises(TypeError, match=r"unknown options \['stepz'\]"):
        TrainConfig.merge(None, {"stepz": 3})
    with pytest.raises(TypeError, match="`config`"):
        TrainConfig.merge({"steps": 3}, {})
    with pytest.raises(ValueError, match="exactly one of `epochs` and `steps`"):
        TrainConfig.merge(None, {})


# ----------------------------------------------------------------------------- TrainState, History
def test_train_state_reads_in_one_batch_and_moves_complete_steps_into_history():
    model = Towers()
    state = TrainState(model, torch.optim.SGD(model.parameters(), lr=0.1), TrainConfig(steps=3),
                       TemperatureProbe([model]))
    seen = []
    state.on_read = lambda s, fresh: seen.append([r.step for r in fresh])
    taus = []
    for step, (loss, x, y) in enumerate([(1.5, 0.25, 1.25), (2.5, 0.75, 1.75)], start=1):
        state.record_loss(torch.tensor(loss), {"x": torch.tensor(x), "y": y})  # y: a float
        with torch.no_grad():
            model.logit_scale.fill_(float(step))  # τ after this step's update: exp(−step)
        taus.append(math.exp(-step))
        state.record_temperature()
        state.step = step
    state.record_loss(torch.tensor(9.0), {"x": torch.tensor(0.0), "y": 0.0})  # not complete
    assert state.reads == 0 and len(state.history_read) == 0  # nothing read yet
    fresh = state.read_values()
    assert [r.step for r in fresh] == [1, 2, 3] and seen == [[1, 2, 3]] and state.reads == 1
    h = state.history_read
    assert h.step == [1, 2] and h.loss == [1.5, 2.5]
    assert h.terms == [{"x": 0.25, "y": 1.25}, {"x": 0.75, "y": 1.75}]
    assert h.temperature == pytest.approx(taus, rel=1e-12) and h.epoch == [0, 0]
    assert state.read_values() == [] and state.reads == 1 and seen == [[1, 2, 3]]
    state.record_temperature()  # step 3 completes; state.loss reads its τ (one more read)
    assert state.loss == 9.0 and state.reads == 2 and len(state.history_read) == 3
    state.restore(History(step=[1], epoch=[0], loss=[1.0], temperature=[None], terms=[{}],
                          seconds=100.0))
    assert state.loss == 1.0 and state.elapsed() >= 100.0


def test_history_round_trips_through_json():
    h = History(step=[1, 2, 3], epoch=[0, 0, 1], loss=[2.0, 1.5, 1.25],
                temperature=[0.07, None, 0.05], terms=[{"x": 1.0}, {}, {"x": 0.5}],
                evals=[{"step": 3, "R@1": 0.25}], seconds=4.5, batch_size=16)
    d = json.loads(json.dumps(h.to_dict()))  # plain lists, dicts and numbers only
    back = History.from_dict(d)
    assert back == h and back.seconds == 4.5 and back.batch_size == 16
    d["terms"][0]["x"], d["loss"][0] = 9.0, 9.0  # the History owns its lists
    assert back.terms[0]["x"] == 1.0 and back.loss[0] == 2.0
    assert History(seconds=1.0) == History(seconds=2.0)  # time is not part of equality
    with pytest.raises(ValueError, match=r"missing History fields \['epoch'"):
        History.from_dict({"step": []})


# ----------------------------------------------------------------------------- FiniteCheck
def _kept_step(k: int, read_every: int) -> int:
    """The steps done when the weights that end up in the model were good. Step k's loss is
    read at the scheduled read of step k (before its update) when k is a multiple of n: the
    model still holds the weights after step k − 1. Otherwise updates with a NaN loss ran, and
    the copy kept at the last read before k (steps n, 2n, ...; at the start: step 0) is put back."""
    if k % read_every == 0:
        return k - 1
    return max([0] + [r - 1 for r in range(read_every, k, read_every)])


@pytest.mark.parametrize("read_every, k, steps", [
    (4, 8, 12), (4, 6, 12), (3, 9, 12), (3, 7, 12), (4, 10, 10), (4, 2, 8)],
    ids=["n4-at-read", "n4-between", "n3-at-read", "n3-between", "n4-after-last-read",
         "n4-before-the-first-read"])
def test_sparse_reads_name_the_first_nan_step_and_put_back_the_last_good_weights(
        read_every, k, steps):
    kept = _kept_step(k, read_every)
    rec, model = Recorder(), _model()
    with pytest.raises(FloatingPointError) as err:
        fit(model, _data(), steps=steps, loss=PoisonAt(k), read_every=read_every,
            callbacks=[rec], **FAST)
    msg = str(err.value)
    assert f"The loss is nan at step {k} (epoch {(k - 1) // 3})" in msg
    how = "the last finite step" if k % read_every == 0 else "the last good copy kept"
    assert f"the weights after step {kept}, {how}" in msg
    clean, clean_rec = _model(), Recorder()
    if kept == 0:  # the copy kept at the start: the initial weights, an optimizer without state
        _assert_equal_states(model.state_dict(), clean.state_dict())
        assert rec.optimizer.state_dict()["state"] == {}
        return
    fit(clean, _data(), steps=kept, loss=PoisonAt(None), read_every=1, callbacks=[clean_rec],
        **FAST)
    _assert_equal_states(model.state_dict(), clean.state_dict())
    _assert_equal_states(rec.optimizer.state_dict(), clean_rec.opt_state)


def test_finite_check_on_its_own():
    model = nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        opt.zero_grad()
        model(torch.ones(1, 3)).sum().backward()
        opt.step()
    state = TrainState(model, opt, TrainConfig(steps=9, lr=0.1))
    state.step = 7
    check = FiniteCheck([model], read_every=5)
    check.remember(state)
    good, good_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    with torch.no_grad():
        model.weight.fill_(NAN)
    opt.state[model.weight]["momentum_buffer"].fill_(NAN)
    rec = [StepRecord(s, 2, torch.tensor(v), {}, loss_value=v)
           for s, v in ((8, 1.0), (9, NAN), (10, math.inf))]
    check(state, rec[:1])  # finite: nothing happens
    assert model.weight.isnan().all()
    with pytest.raises(FloatingPointError, match=r"nan at step 9 \(epoch 2\) with temperature "
                       r"τ = unknown and lr = 0.1\b.*weights after step 7, the last good copy"):
        state.step = 9  # step 9's update has run: the copy of step 7 goes back
        check(state, rec)
    state.step = 7
    _assert_equal_states(model.state_dict(), good)
    _assert_equal_states(opt.state_dict(), good_opt)
    every_step = FiniteCheck([model], read_every=1)  # keeps no copy: the model is left as is
    every_step.remember(state)
    with pytest.raises(FloatingPointError, match=r"inf at step 10 .*after step 7, the last finite"):
        every_step(state, rec[2:])
    _assert_equal_states(model.state_dict(), good)


# ----------------------------------------------------------------------------- Evaluator
def _brute_force_metrics(za: torch.Tensor, zb: torch.Tensor) -> dict[str, float]:
    """R@1, MRR and median rank by counting, the gap and uniformity as float64 sums."""
    a, b = za.double(), zb.double()
    out = {}
    for name, q, g in (("a→b", a, b), ("b→a", b, a)):
        sim = q @ g.T  # (n, n)
        ranks = [1 + sum(int(sim[i, j] > sim[i, i]) for j in range(len(q))) for i in range(len(q))]
        out[f"{name} R@1"] = sum(r == 1 for r in ranks) / len(ranks)
        out[f"{name} MRR"] = sum(1 / r for r in ranks) / len(ranks)
        out[f"{name} median rank"] = float(statistics.median(ranks))
    out["gap a-b"] = float((a.mean(0) - b.mean(0)).norm())
    for m, z in (("a", a), ("b", b)):
        n = len(z)
        pairs = [math.exp(-2 * float((z[i] - z[j]).pow(2).sum()))
                 for i in range(n) for j in range(n) if i != j]
        out[f"uniformity {m}"] = math.log(sum(pairs) / len(pairs))
    return out


def test_evaluator_metrics_equal_a_direct_computation_at_its_cadence():
    eval_data, rec = _data(n=20, seed=1), Recorder()
    model = _model()
    hist = fit(model, _data(), steps=7, eval_data=eval_data, eval_every=3, callbacks=[rec],
               **FAST)
    assert [e["step"] for e in hist.evals] == [3, 6, 7] and model.training
    for ev in hist.evals:
        ref = Towers()
        ref.load_state_dict(rec.weights[ev["step"]])
        ref.eval()  # dropout off: the evaluation must have encoded in eval mode too
        with torch.no_grad():
            z = ref.encode(eval_data.batch(torch.arange(20)))
        expected = _brute_force_metrics(z["a"], z["b"])
        assert set(ev) == {"step", *expected}
        for key, value in expected.items():
            assert ev[key] == pytest.approx(value, rel=1e-5, abs=1e-6), (ev["step"], key)
    plain = fit(_model(), _data(), steps=7, **FAST)
    assert plain == dataclasses.replace(hist, evals=[])  # evaluating never changed the training


def test_evaluator_on_its_own_restores_the_mode_and_the_rng():
    model = Towers()
    state = TrainState(model, torch.optim.SGD(model.parameters(), lr=0.1), TrainConfig(steps=9))
    metrics_seen = []

    def eval_fn(m, data):
        m.train(not m.training)  # flips the mode and draws random numbers
        return {"x": float(torch.rand(()))}

    class OnEval(Callback):
        def on_eval(self, s):
            metrics_seen.append(s.metrics)

    ev = Evaluator(eval_fn, None, every=3)
    state.callbacks = [ev, OnEval()]
    before = torch.get_rng_state()
    for step in range(1, 7):
        state.step = step
        ev.on_step(state)
    ev.on_end(state)  # step 6 was just evaluated: not again
    state.step = 7
    ev.on_end(state)  # off the cadence: the final evaluation
    assert [e["step"] for e in state.history.evals] == [3, 6, 7]
    assert model.training and torch.equal(torch.get_rng_state(), before)
    assert metrics_seen == state.history.evals
    model.eval()
    ev.evaluate(state)
    assert not model.training
    resumed = TrainState(model, state.optimizer, state.config)
    resumed.step = 6  # resumed at a step whose evaluation was cut short: it runs first
    Evaluator(eval_fn, None, every=3).on_start(resumed)
    assert [e["step"] for e in resumed.history.evals] == [6]
    with pytest.raises(TypeError, match="`eval_fn` must return a dict"):
        Evaluator(lambda m, d: [1.0], None, every=3).evaluate(resumed)


# ----------------------------------------------------------------------------- Checkpointer
def test_periodic_checkpoints_hold_what_they_claim_and_resume_exactly(tmp_path, monkeypatch):
    saved, real_save = [], checkpointer_module.save_checkpoint

    def keep_a_copy(path, *args, **kwargs):
        real_save(path, *args, **kwargs)
        saved.append(shutil.copy(path, tmp_path / f"copy{len(saved)}.pt"))

    monkeypatch.setattr(checkpointer_module, "save_checkpoint", keep_a_copy)
    run, rec, model = tmp_path / "run" / "run.pt", Recorder(), _model()
    hist = fit(model, _data(), steps=10, checkpoint=run, checkpoint_every=4, callbacks=[rec],
               **FAST)
    assert sorted(p.name for p in run.parent.iterdir()) == ["run.pt"]  # no temporary files
    # step → (epoch, batches of it done), 3 batches per epoch; the last save is the final one
    where = {4: (1, 1), 8: (2, 2), 10: (3, 1)}
    payloads = [read_checkpoint(p) for p in saved]
    assert [p["step"] for p in payloads] == list(where)
    for p in payloads:
        s = p["step"]
        prefix = History(**{k: getattr(hist, k)[:s] for k in ("step", "epoch", "loss",
                                                               "temperature", "terms")},
                         batch_size=hist.batch_size)
        assert p["history"] == prefix
        fit_state = p["extra"]["fit"]
        assert (fit_state["epoch"], fit_state["batch_in_epoch"]) == where[s]
        assert fit_state["config"] == {"seed": 0, "batch_size": 16, "drop_last": True}
        _assert_equal_states(p["model"], rec.weights[s])
    monkeypatch.undo()
    shutil.copy(saved[0], tmp_path / "from4.pt")  # resume from the step-4 save
    torch.manual_seed(123)  # another session: other weights, another global RNG
    resumed = Towers()
    assert fit(resumed, _data(), steps=10, checkpoint=tmp_path / "from4.pt", **FAST) == hist
    _assert_equal_states(resumed.state_dict(), model.state_dict())


def test_without_checkpoint_every_only_the_final_state_is_saved(tmp_path, monkeypatch):
    steps_saved, real_save = [], checkpointer_module.save_checkpoint
    monkeypatch.setattr(checkpointer_module, "save_checkpoint", lambda path, *a, **kw: (
        steps_saved.append(kw["step"]), real_save(path, *a, **kw)))
    fit(_model(), _data(), steps=5, checkpoint=tmp_path / "run.pt", **FAST)
    assert steps_saved == [5]
    fit(_model(), _data(), steps=5, checkpoint=tmp_path / "run.pt", **FAST)  # finished: no save
    assert steps_saved == [5]


def test_a_periodic_save_of_the_last_step_is_not_written_twice(tmp_path, monkeypatch):
    steps_saved, real_save = [], checkpointer_module.save_checkpoint
    monkeypatch.setattr(checkpointer_module, "save_checkpoint", lambda path, *a, **kw: (
        steps_saved.append((kw["step"], len(kw["history"].evals))), real_save(path, *a, **kw)))
    fit(_model(), _data(), steps=8, checkpoint=tmp_path / "a.pt", checkpoint_every=4, **FAST)
    assert steps_saved == [(4, 0), (8, 0)]
    steps_saved.clear()  # with a final evaluation after the last periodic save: saved again
    hist = fit(_model(), _data(), steps=8, checkpoint=tmp_path / "b.pt", checkpoint_every=4,
               eval_data=_data(n=20, seed=1), eval_every=5, **FAST)
    assert [e["step"] for e in hist.evals] == [5, 8]
    assert steps_saved == [(4, 0), (8, 1), (8, 2)]


# ----------------------------------------------------------------------------- ProgressBar
class FakeBar:
    """Stands in for tqdm: records what the bar was told."""

    def __init__(self, made: list, **kwargs) -> None:
        self.kwargs, self.n, self.postfixes, self.closed = kwargs, kwargs["initial"], [], 0
        made.append(self)

    def update(self, k):
        self.n += k

    def set_postfix(self, refresh=True, **values):
        self.postfixes.append((self.n, values))

    def close(self):
        self.closed += 1


@pytest.fixture
def bars(monkeypatch):
    made: list[FakeBar] = []
    monkeypatch.setattr("tqdm.auto.tqdm", lambda **kw: FakeBar(made, **kw))
    return made


def test_progress_bar_shows_the_values_of_the_last_read(bars):
    hist = fit(_model(), _data(), steps=7, read_every=3, **{**FAST, "progress": True})
    (bar,) = bars
    assert bar.kwargs["total"] == 7 and bar.kwargs["initial"] == 0 and bar.n == 7
    # reads at steps 3 and 6 complete steps 2 and 5 (a step's τ is known after its update)
    assert bar.postfixes == [(s, {"loss": f"{hist.loss[s - 2]:.4f}",
                                  "τ": f"{hist.temperature[s - 2]:.4f}"}) for s in (3, 6)]
    assert bar.closed == 1


@pytest.mark.parametrize("n, options, total", [
    (40, dict(epochs=2), 4), (40, dict(epochs=2, drop_last=False), 6), (40, dict(steps=5), 5)])
def test_progress_bar_total(bars, n, options, total):
    fit(_model(), _data(n=n), **options, **{**FAST, "progress": True})
    assert bars[0].kwargs["total"] == total and bars[0].n == total


def test_progress_bar_closes_on_ctrl_c_and_resumes_at_the_saved_step(bars, tmp_path):
    class CtrlC(Callback):
        def on_step(self, state):
            if state.step == 4:
                raise KeyboardInterrupt

    kw = dict(steps=7, checkpoint=tmp_path / "run.pt", **{**FAST, "progress": True})
    with pytest.raises(KeyboardInterrupt):
        fit(_model(), _data(), callbacks=[CtrlC()], **kw)
    fit(_model(), _data(), **kw)
    assert [b.closed for b in bars] == [1, 1]
    assert bars[1].kwargs["initial"] == 4 and bars[1].n == 7


def test_progress_bar_closes_when_fit_raises(bars):  # fit's finally closes it
    with pytest.raises(FloatingPointError):
        fit(_model(), _data(), steps=5, loss=PoisonAt(2), **{**FAST, "progress": True})
    assert bars[0].closed == 1
