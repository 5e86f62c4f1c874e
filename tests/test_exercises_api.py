"""The exercise API: a check never raises, reports what went wrong, is deterministic and leaves
torch's global random state alone; stubs are "not attempted"; solutions pass; hints and listing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mmlab.exercises as ex

REQUIRED = {"info_nce", "alignment", "uniformity", "modality_gap", "recall_at_1", "siglip",
            "symile_mip"}


def _clip(a, b, t):
    logits = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T / t
    labels = torch.arange(len(a))
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def _check(name, fn, capsys):
    ok = ex.get(name).check(fn)
    return ok, " ".join(capsys.readouterr().out.split())


def test_listing_covers_the_required_exercises_and_every_notebook():
    assert REQUIRED <= set(ex.names())
    assert sorted(ex.by_notebook()) == [f"{n:02d}" for n in range(1, 12)]
    assert ex.names("2") == ex.names("02") == ["info_nce", "recall_at_1"]
    with pytest.raises(KeyError, match="info_nce"):
        ex.get("infonce")


@pytest.mark.parametrize("name", ex.names())
def test_solution_passes_and_stub_is_not_attempted(name, capsys):
    q = ex.get(name)
    for code in (q.solution_code, q.stub):
        assert f"def {name}(" in code
        assert all(len(line) <= 100 for line in code.splitlines())
    solved, stub = {}, {}
    exec(q.solution_code, solved)  # noqa: S102 - our own reference code
    exec(q.stub, stub)  # noqa: S102
    assert "NotImplementedError" not in q.solution_code
    assert q.check(solved[name]) is True
    assert q.check(stub[name]) is False
    out = capsys.readouterr().out
    assert "not attempted yet" in out
    assert q.template == q.stub and len(q.hints) >= 2 and len(q.mistakes) >= 2


def test_exception_wrong_shape_and_wrong_type_are_reported_not_raised(capsys):
    def raises(a, b, t):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    ok, out = _check("info_nce", raises, capsys)
    assert not ok and "RuntimeError: mat1 and mat2" in out and "On input" not in out[:10]
    ok, out = _check("info_nce", lambda a, b, t: _clip(a, b, t).reshape(1), capsys)
    assert not ok and "returns shape (1,)" in out
    ok, out = _check("info_nce", lambda a, b, t: float(_clip(a, b, t)), capsys)
    assert not ok and "returns a Python float" in out
    ok, out = _check("info_nce", lambda a, b, t: _clip(a, b, t).numpy(force=True), capsys)
    assert not ok and "numpy.ndarray" in out
    ok, out = _check("info_nce", lambda a, b, t: _clip(a, b, t).float(), capsys)
    assert not ok and "dtype float32" in out
    ok, out = _check("info_nce", lambda a, b, t: None, capsys)
    assert not ok and "NoneType" in out
    ok, out = _check("info_nce", "not a function", capsys)
    assert not ok and "Expected a function" in out


def test_a_sys_exit_in_the_answer_is_reported_and_ctrl_c_still_stops(capsys):
    import sys

    ok, out = _check("info_nce", lambda a, b, t: sys.exit(1), capsys)
    assert not ok and "SystemExit" in out

    def interrupted(a, b, t):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # the learner's Ctrl-C stops the check
        ex.get("info_nce").check(interrupted)
    ok, out = _check("recall_at_1", lambda s: torch.tensor(0.5), capsys)
    assert not ok and "expected a Python float" in out
    ok, out = _check("zero_shot_predict", lambda x, e: (x @ e.T).softmax(1), capsys)
    assert not ok and "integer class ids" in out


def test_gradient_that_does_not_flow_is_diagnosed(capsys):
    with_numpy = lambda a, b, t: torch.as_tensor(_clip(a, b, t).detach().numpy())  # noqa: E731
    ok, out = _check("info_nce", with_numpy, capsys)
    assert not ok and "no gradient flows" in out

    def partly_detached(a, b, t):  # value right, no gradient reaches b
        return _clip(a, b.detach(), t)

    ok, out = _check("info_nce", partly_detached, capsys)
    assert not ok and "gradient with respect to `b`" in out

    def needs_plain_tensors(a, b, t):  # .numpy() raises on tensors that require grad
        return torch.as_tensor(np.asarray(_clip(a, b, t).numpy()))

    ok, out = _check("info_nce", needs_plain_tensors, capsys)
    assert not ok and "require gradients" in out


def test_check_leaves_the_global_rng_alone_and_is_deterministic(capsys):
    torch.manual_seed(123)
    before = torch.random.get_rng_state()

    def draws_from_global_rng(a, b, t):
        torch.rand(3)  # even a learner's own draws must not move the notebook's stream
        return _clip(a, b, t) + 0 * torch.randn(())

    for fn in (_clip, draws_from_global_rng, lambda a, b, t: 2 * _clip(a, b, t)):
        ex.get("info_nce").check(fn)
    assert torch.equal(torch.random.get_rng_state(), before)
    capsys.readouterr()
    verdicts = []
    for _ in range(2):
        ex.get("uniformity").check(lambda x: torch.pdist(x).pow(2).mul(-2).exp().mean().log())
        verdicts.append(capsys.readouterr().out)
    assert verdicts[0] == verdicts[1] and "no L2 normalisation" in verdicts[0]


def test_inputs_written_into_by_the_learner_do_not_change_the_reference(capsys):
    def overwrites(sim):  # a learner who overwrites the input after use
        hits = (sim.argmax(dim=1) == torch.arange(len(sim))).double().mean().item()
        sim.zero_()
        return hits

    assert ex.get("recall_at_1").check(overwrites) is True

    def normalises_in_place(a, b, t):  # fine without autograd, an error on leaves that need grad
        a /= a.norm(dim=1, keepdim=True)
        return _clip(a, b, t)

    ok, out = _check("info_nce", normalises_in_place, capsys)
    assert not ok and "in-place operation" in out and "require gradients" in out


def test_hint_solution_and_repr_are_plain_text(capsys):
    q = ex.get("siglip")
    q.hint()
    q.hint(2)
    q.hint(99)  # past the last: the last hint
    q.solution()
    out = capsys.readouterr().out
    assert "Hint 1 of" in out and "Hint 2 of" in out and "def siglip(" in out
    assert "<" not in out.replace("<=", "")  # no HTML
    assert "siglip(a, b, temperature, bias)" in repr(q)
