"""Callbacks: the on_start hook and EmbeddingSnapshots (steps, values, modes, RNG, resume)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmlab.data import MultimodalDataset
from mmlab.train import Callback, EmbeddingSnapshots, fit

N, D_IN, D = 48, 6, 4
FAST = dict(batch_size=16, lr=5e-2, progress=False, device="cpu")


def _data(n: int = N) -> MultimodalDataset:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(n, D_IN, generator=g)
    return MultimodalDataset({"a": z, "b": z + 0.1 * torch.randn(n, D_IN, generator=g)})


class Towers(nn.Module):
    """Two linear towers with dropout, so train and eval mode encode differently."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fa, self.fb = nn.Linear(D_IN, D), nn.Linear(D_IN, D)
        self.drop = nn.Dropout(0.3)

    def encode(self, batch):
        return {"a": F.normalize(self.fa(self.drop(batch["a"])), dim=-1),
                "b": F.normalize(self.fb(self.drop(batch["b"])), dim=-1)}

    def forward(self, batch):
        z = self.encode(batch)
        logits = 5.0 * z["a"] @ z["b"].T  # (B, B), InfoNCE written out here
        y = torch.arange(len(logits))
        return 0.5 * (F.cross_entropy(logits, y) + F.cross_entropy(logits.T, y))


class Recorder(Callback):
    """Keeps a copy of the weights at the start and after every step, and the mode seen after others ran."""

    def __init__(self) -> None:
        self.weights: dict[int, dict] = {}
        self.events: list[tuple[str, int, bool]] = []

    def on_start(self, state):
        self.weights[state.step] = copy.deepcopy(state.model.state_dict())
        self.events.append(("start", state.step, state.model.training))

    def on_step(self, state):
        self.weights[state.step] = copy.deepcopy(state.model.state_dict())
        self.events.append(("step", state.step, state.model.training))


def _reference(weights: dict, batch: dict) -> dict:
    model = Towers()
    model.load_state_dict(weights)
    model.eval()
    with torch.no_grad():
        return model.encode(batch)


def test_snapshots_at_the_right_steps_equal_direct_encodes():
    data, model = _data(), Towers()
    view = data.batch(torch.arange(N))
    snaps, rec, after = EmbeddingSnapshots(view, every=3, n_view=10), Recorder(), Recorder()
    fit(model, data, steps=10, callbacks=[rec, snaps, after], **FAST)
    assert snaps.steps == [0, 3, 6, 9] and snaps.pair == ("a", "b")
    assert len(snaps.embeddings) == len(snaps.gaps) == 4
    for step, emb, gap in zip(snaps.steps, snaps.embeddings, snaps.gaps):
        ref = _reference(rec.weights[step], view)
        assert set(emb) == {"a", "b"}
        for m in ("a", "b"):
            assert emb[m].shape == (10, D) and emb[m].dtype == torch.float32 and emb[m].device.type == "cpu"
            torch.testing.assert_close(emb[m], ref[m][:10], rtol=0, atol=0)
        # the gap is over all N rows, not the n_view kept: ‖mean(a) − mean(b)‖ in float64 loops
        mean_a = [sum(float(ref["a"][i, d]) for i in range(N)) / N for d in range(D)]
        mean_b = [sum(float(ref["b"][i, d]) for i in range(N)) / N for d in range(D)]
        assert gap == pytest.approx(math.sqrt(sum((x - y) ** 2 for x, y in zip(mean_a, mean_b))), abs=1e-6)
    # the model is back in train mode after every snapshot (the callback after it sees training=True)
    assert all(training for _, _, training in after.events)
    assert after.events[0] == ("start", 0, True)


def test_snapshots_leave_training_unchanged_and_modes_restored():
    data = _data()
    plain = fit(Towers(), data, steps=8, **FAST)  # dropout: training draws from the RNG
    snaps = EmbeddingSnapshots(data, every=2)  # a dataset: every row
    model = Towers()
    with_snaps = fit(model, data, steps=8, callbacks=[snaps], **FAST)
    assert with_snaps == plain  # same losses bit for bit: snapshots never touch the training RNG
    assert snaps.steps == [0, 2, 4, 6, 8] and snaps.embeddings[0]["a"].shape == (N, D)
    # an explicit record keeps eval mode in eval and train mode in train
    model.eval()
    snaps.record(model, 99)
    assert not model.training and snaps.steps[-1] == 99
    model.train()
    snaps.record(model, 100)
    assert model.training
    torch.testing.assert_close(snaps.embeddings[-1]["b"], snaps.embeddings[-2]["b"], rtol=0, atol=0)


def test_at_start_false_explicit_pair_and_trajectory_figure():
    data, model = _data(), Towers()
    snaps = EmbeddingSnapshots(data.batch(torch.arange(12)), every=4, pair=("b", "a"), at_start=False)
    fit(model, data, steps=8, callbacks=[snaps], **FAST)
    assert snaps.steps == [4, 8]
    z = snaps.embeddings[-1]
    assert snaps.gaps[-1] == pytest.approx(float((z["b"].mean(0) - z["a"].mean(0)).norm()), abs=1e-6)
    from mmlab.viz import trajectory_figure
    fig = trajectory_figure(snaps.embeddings, snaps.steps, pair_lines=True, title="t")
    assert len(fig.frames) == 2


def test_on_start_runs_once_before_the_first_step():
    rec = Recorder()
    fit(Towers(), _data(), steps=3, callbacks=[rec], **FAST)
    assert [e[:2] for e in rec.events] == [("start", 0), ("step", 1), ("step", 2), ("step", 3)]

    class OnlyStart:  # duck-typed callbacks with only on_start are accepted
        calls = 0

        def on_start(self, state):
            OnlyStart.calls += 1

    fit(Towers(), _data(), steps=2, callbacks=[OnlyStart()], **FAST)
    assert OnlyStart.calls == 1


def test_snapshots_on_resume(tmp_path):
    data, ckpt = _data(), tmp_path / "run.pt"
    fit(Towers(), data, steps=4, checkpoint=ckpt, **FAST)
    snaps = EmbeddingSnapshots(data, every=3)
    fit(Towers(), data, steps=7, checkpoint=ckpt, callbacks=[snaps], **FAST)
    assert snaps.steps == [4, 6]  # on_start at the resumed step, then every 3 steps


def test_snapshot_errors_name_the_argument():
    batch = _data().batch(torch.arange(4))
    with pytest.raises(ValueError, match="`every`"):
        EmbeddingSnapshots(batch, every=0)
    with pytest.raises(TypeError, match="`every`"):
        EmbeddingSnapshots(batch, every=2.5)
    with pytest.raises(ValueError, match="`n_view`"):
        EmbeddingSnapshots(batch, every=1, n_view=0)
    with pytest.raises(ValueError, match="`pair`"):
        EmbeddingSnapshots(batch, every=1, pair=("a", "a"))
    with pytest.raises(TypeError, match="`batch`"):
        EmbeddingSnapshots([batch], every=1)
    with pytest.raises(TypeError, match="encode"):
        EmbeddingSnapshots(batch, every=1).record(nn.Linear(2, 2), 0)
    with pytest.raises(ValueError, match="`pair`"):
        EmbeddingSnapshots(batch, every=1, pair=("a", "c")).record(Towers(), 0)
