"""Checkpoints: round trip under weights_only, atomic writes, corrupt files, key mismatches."""

from __future__ import annotations

import torch
import pytest
from torch import nn

from mmlab.train.checkpoint import CheckpointError, load_checkpoint, load_or_train, save_checkpoint
from mmlab.train import History


def _model(width: int = 32, extra_layer: bool = False) -> nn.Module:
    layers = [nn.Linear(8, width), nn.ReLU(), nn.Linear(width, 4)]
    if extra_layer:
        layers.append(nn.Linear(4, 4))
    return nn.Sequential(*layers)


def _trained(steps: int = 3) -> tuple[nn.Module, torch.optim.Optimizer]:
    model = _model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        model(torch.randn(5, 8)).pow(2).mean().backward()
        opt.step()
    return model, opt


def _params(model: nn.Module) -> dict[str, torch.Tensor]:
    # on the CPU: `fit` moves a model to its device (the GPU, where there is one) before it
    # reads the checkpoint; the promise checked here is about the values
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_round_trip_weights_only(tmp_path, monkeypatch):
    model, opt = _trained()
    hist = History(step=[1, 2], epoch=[0, 0], loss=[2.0, 1.5], temperature=[0.07, None],
                   terms=[{"a→b": 1.0}, {"a→b": 0.5}], evals=[{"step": 2, "R@1": 0.5}], seconds=1.5)
    path = save_checkpoint(tmp_path / "sub" / "ck.pt", model, opt, step=2, history=hist, extra={"note": "x"})
    raw = torch.load(path, weights_only=True)  # the file itself is plain
    assert raw["payload"]["step"] == 2

    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k) or real_load(*a, **k))
    fresh = _model()
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=1e-2)
    info = load_checkpoint(path, fresh, fresh_opt)
    assert calls and all(k.get("weights_only") is True for k in calls)
    _assert_same(_params(fresh), _params(model))
    assert info["step"] == 2 and info["extra"] == {"note": "x"}
    assert info["history"] == hist and info["history"].seconds == 1.5
    s1, s2 = fresh_opt.state_dict(), opt.state_dict()
    for pid in s2["state"]:
        for k, v in s2["state"][pid].items():
            assert torch.equal(s1["state"][pid][k], v)
    assert s1["param_groups"] == s2["param_groups"]


def test_extra_must_be_plain(tmp_path):
    with pytest.raises(TypeError, match=r"extra\['obj'\]"):
        save_checkpoint(tmp_path / "ck.pt", _model(), extra={"obj": object()})
    assert not (tmp_path / "ck.pt").exists()


def test_atomic_save_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, _model(), step=1)
    before = path.read_bytes()

    def failing_save(obj, f, *args, **kwargs):
        with open(f, "wb") as fh:
            fh.write(b"partial bytes")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, _trained()[0], step=5)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt"]  # no temporary file left behind


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
def test_corrupt_file_is_refused_and_model_untouched(tmp_path, damage):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, _trained()[0], step=3)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "empty":
        data = bytearray()
    else:  # flip bytes inside the largest tensor's storage (the middle of the file)
        mid = len(data) // 2
        for i in range(mid, mid + 16):
            data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    model = _model()
    before = _params(model)
    with pytest.raises(ValueError, match="corrupt or truncated") as err:
        load_checkpoint(path, model)
    assert str(path) in str(err.value) and "Delete it" in str(err.value)
    _assert_same(_params(model), before)


def test_key_and_shape_mismatch(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, _trained()[0])
    bigger = _model(extra_layer=True)
    before = _params(bigger)
    with pytest.raises(CheckpointError, match=r"missing keys.*3\.bias.*3\.weight"):
        load_checkpoint(path, bigger)
    _assert_same(_params(bigger), before)

    smaller = nn.Sequential(nn.Linear(8, 32))
    with pytest.raises(CheckpointError, match=r"unexpected keys.*2\.weight"):
        load_checkpoint(path, smaller)

    wider = _model(width=16)
    before_wider = _params(wider)
    with pytest.raises(CheckpointError, match=r"0\.weight: checkpoint \(32, 8\) vs model \(16, 8\)"):
        load_checkpoint(path, wider)
    _assert_same(_params(wider), before_wider)  # no layer was copied before the error

    # strict=False loads the matching keys and leaves the new layer alone
    saved = torch.load(path, weights_only=True)["payload"]["model"]
    load_checkpoint(path, bigger, strict=False)
    assert torch.equal(bigger[0].weight, saved["0.weight"])
    assert torch.equal(bigger[3].weight, before["3.weight"])


def test_optimizer_mismatch_leaves_model_untouched(tmp_path):
    model, opt = _trained()
    path = save_checkpoint(tmp_path / "ck.pt", model, opt)
    fresh = _model()
    before = _params(fresh)
    wrong_opt = torch.optim.AdamW(list(fresh.parameters())[:2], lr=1e-2)
    with pytest.raises(CheckpointError, match="parameter groups"):
        load_checkpoint(path, fresh, wrong_opt)
    _assert_same(_params(fresh), before)


def test_not_a_checkpoint_and_missing(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not an mmlab checkpoint"):
        load_checkpoint(path, _model())
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt", _model())


def test_load_or_train_trains_once_then_loads(tmp_path):
    path = tmp_path / "cache.pt"
    calls = []
    model = _model()

    def train() -> History:
        calls.append(1)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
        return History(step=[1], epoch=[0], loss=[0.5], temperature=[None], terms=[{}], evals=[])

    h1 = load_or_train(path, train, model)
    assert len(calls) == 1 and path.exists()
    trained = _params(model)
    other = _model()
    h2 = load_or_train(path, train, other)
    assert len(calls) == 1  # loaded, not retrained
    _assert_same(_params(other), trained)
    assert h2 == h1


# ---------------------------------------------------------------- a failed load changes nothing
def _write_raw(path, payload) -> None:
    """A checkpoint with a valid digest around any payload (what a buggy writer could produce)."""
    from mmlab.train.digest import FORMAT, VERSION, digest

    torch.save({"format": FORMAT, "version": VERSION, "sha256": digest(payload),
                "payload": payload}, path)


def _payload(model, **changes) -> dict:
    base = {"model": {k: v.clone() for k, v in model.state_dict().items()}, "optimizer": None,
            "step": 3, "history": History().to_dict(), "rng": {"torch": torch.get_rng_state(),
                                                            "cuda": []}, "extra": None}
    return {**base, **changes}


def test_save_refuses_a_history_that_is_not_one(tmp_path):
    with pytest.raises(ValueError, match="`history` must be a mmlab.train.History"):
        save_checkpoint(tmp_path / "c.pt", _model(), history={"loss": [1.0]})
    assert not (tmp_path / "c.pt").exists()


@pytest.mark.parametrize("changes, match", [
    ({"history": {"loss": [1.0]}}, "'history' must be"),
    ({"step": "three"}, "'step' is 'three'"),
    ({"extra": [1, 2]}, "'extra' is a list"),
    ({"optimizer": {"state": {}, "param_groups": "nope"}}, "not an optimizer state_dict"),
])
def test_a_failed_load_changes_neither_model_nor_optimizer(tmp_path, changes, match):
    saved, _ = _trained()
    _write_raw(tmp_path / "c.pt", _payload(saved, **changes))
    model, opt = _trained(steps=1)
    before, opt_before = _params(model), repr(opt.state_dict())
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(tmp_path / "c.pt", model, opt)
    _assert_same(before, _params(model))
    assert repr(opt.state_dict()) == opt_before


class Net(nn.Module):
    """The smallest model `fit` trains: its forward returns the loss."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, batch):
        return self.lin(batch["x"]).pow(2).mean()


def test_fit_refuses_a_file_without_training_state_before_loading(tmp_path):
    from mmlab.data import MultimodalDataset
    from mmlab.train import fit

    torch.manual_seed(0)
    save_checkpoint(tmp_path / "c.pt", Net())  # saved outside fit: no training state
    model = Net()
    before = _params(model)
    data = MultimodalDataset({"x": torch.randn(32, 4)})
    with pytest.raises(CheckpointError, match="no training state .* nothing was loaded"):
        fit(model, data, steps=2, batch_size=8, progress=False, checkpoint=tmp_path / "c.pt")
    _assert_same(before, _params(model))


def test_an_unreadable_file_is_not_called_corrupt(tmp_path, monkeypatch):
    import builtins

    path = tmp_path / "c.pt"
    save_checkpoint(path, _model())
    real_open = builtins.open

    def denied(file, *args, **kwargs):
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)
    monkeypatch.setattr(builtins, "open", denied)
    with pytest.raises(PermissionError, match="cannot be read .*Permission denied.* do not delete"):
        load_checkpoint(path, _model())


def test_files_get_the_users_umask(tmp_path):
    import os
    import stat

    old = os.umask(0o027)
    try:
        path = save_checkpoint(tmp_path / "c.pt", _model())
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_an_optimizer_buffer_of_another_shape_is_refused_before_loading(tmp_path):
    saved, saved_opt = _trained()
    state = saved_opt.state_dict()
    state["state"][0]["exp_avg"] = torch.zeros(3)  # parameter 0 is (32, 8): step() would fail later
    _write_raw(tmp_path / "c.pt", _payload(saved, optimizer=state))
    model, opt = _trained(steps=1)
    before, opt_before = _params(model), repr(opt.state_dict())
    with pytest.raises(CheckpointError, match=r"parameter 0 'exp_avg': \(3,\), the parameter is "
                                              r"\(32, 8\).*Nothing was loaded"):
        load_checkpoint(tmp_path / "c.pt", model, opt)
    _assert_same(before, _params(model))
    assert repr(opt.state_dict()) == opt_before
    state["state"][0]["exp_avg"] = torch.zeros(32, 8)  # the right shape loads, and steps
    _write_raw(tmp_path / "c.pt", _payload(saved, optimizer=state))
    load_checkpoint(tmp_path / "c.pt", model, opt)
    model(torch.randn(5, 8)).pow(2).mean().backward()
    opt.step()


def _damage(payload, where, value):
    """payload with one field of its training state replaced (rng, rng['torch'], shuffle_state)."""
    import copy

    p = copy.deepcopy(payload)
    if where == "rng":
        p["rng"] = value
    elif where == "shuffle_state":
        p["extra"]["fit"]["shuffle_state"] = value
    else:
        p["rng"] = {k: v for k, v in p["rng"].items() if k != "torch"} if value is None \
            else {**p["rng"], "torch": value}
    return p


@pytest.mark.parametrize("where, value", [
    ("torch", torch.zeros(3, dtype=torch.uint8)),  # a generator state of the wrong size
    ("torch", None),                               # no CPU state at all
    ("rng", [1]),                                  # not a dict
    ("shuffle_state", torch.zeros(2)),             # not a ByteTensor
    ("rng", {"torch": torch.get_rng_state(), "cuda": ["x"]}),
])
def test_fit_refuses_a_damaged_rng_state_before_loading(tmp_path, where, value):
    from mmlab.data import MultimodalDataset
    from mmlab.train import fit
    from mmlab.train.checkpoint import read_checkpoint

    torch.manual_seed(0)
    data = MultimodalDataset({"x": torch.randn(32, 4)})
    fit(Net(), data, steps=2, batch_size=8, progress=False, checkpoint=tmp_path / "f.pt")
    payload = read_checkpoint(tmp_path / "f.pt")
    payload["history"] = payload["history"].to_dict()
    _write_raw(tmp_path / "v.pt", _damage(payload, where, value))
    model = Net()
    before = _params(model)
    with pytest.raises(CheckpointError, match="damaged training state .*nothing was loaded"):
        fit(model, data, steps=4, batch_size=8, progress=False, checkpoint=tmp_path / "v.pt")
    _assert_same(before, _params(model))
