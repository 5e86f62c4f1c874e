"""World-size invariance of the distributed losses (2 gloo processes vs 1 process, float64).

The test launches this file under `torchrun --standalone --nproc_per_node=2` (loopback, a free
port chosen by the c10d rendezvous); each rank writes its loss and gradients, and the parent
compares them with brute-force losses on the concatenated batch computed in one process.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mmlab.distributed import (distributed_info_nce, distributed_siglip, gather_with_grad,
                               is_distributed, rank, world_size)

N_PROC, B, D, D_IN = 2, 3, 5, 4
REPO = Path(__file__).resolve().parents[1]


def _data() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1234)
    return {"a": torch.randn(N_PROC * B, D, generator=g, dtype=torch.float64),
            "b": torch.randn(N_PROC * B, D, generator=g, dtype=torch.float64),
            "xa": torch.randn(N_PROC * B, D_IN, generator=g, dtype=torch.float64),
            "xb": torch.randn(N_PROC * B, D_IN, generator=g, dtype=torch.float64)}


def _towers() -> torch.nn.ModuleDict:
    torch.manual_seed(7)
    towers = {"fa": torch.nn.Linear(D_IN, D), "fb": torch.nn.Linear(D_IN, D)}
    return torch.nn.ModuleDict(towers).double()


def _brute_info_nce(a, b, tau):
    """Full-batch InfoNCE by explicit loops over rows (independent of the library)."""
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    n, total = a.shape[0], 0.0
    for i in range(n):
        sa = torch.stack([a[i] @ b[j] for j in range(n)]) / tau
        sb = torch.stack([b[i] @ a[j] for j in range(n)]) / tau
        total = total + (torch.logsumexp(sa, 0) - sa[i]) + (torch.logsumexp(sb, 0) - sb[i])
    return total / (2 * n)


def _brute_siglip(a, b, tau, bias):
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    n, total = a.shape[0], 0.0
    for i in range(n):
        for j in range(n):
            z = 1.0 if i == j else -1.0
            total = total - F.logsigmoid(z * ((a[i] @ b[j]) / tau + bias))
    return total / n


def _worker(out_dir: str) -> None:
    """Run by each torchrun process: compute local losses and gradients, save them."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo")
    r, n = rank(), world_size()
    assert n == N_PROC and is_distributed()
    data, rows = _data(), slice(rank() * B, (rank() + 1) * B)
    res: dict[str, torch.Tensor] = {}

    a, b = data["a"][rows].clone().requires_grad_(), data["b"][rows].clone().requires_grad_()
    tau = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    out = distributed_info_nce(a, b, tau)
    out.loss.backward()
    res.update(nce_loss=out.loss.detach(), nce_ga=a.grad, nce_gb=b.grad, nce_gtau=tau.grad,
               nce_logits_shape=torch.tensor(out.logits.shape),
               gathered=gather_with_grad(data["a"][rows]).detach())

    a, b = data["a"][rows].clone().requires_grad_(), data["b"][rows].clone().requires_grad_()
    tau = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    bias = torch.tensor(-1.0, dtype=torch.float64, requires_grad=True)
    out = distributed_siglip(a, b, tau, bias)
    out.loss.backward()
    res.update(sig_loss=out.loss.detach(), sig_ga=a.grad, sig_gb=b.grad, sig_gtau=tau.grad,
               sig_gbias=bias.grad, sig_pos_plus_neg=(out.terms["pos"] + out.terms["neg"]).detach())

    model = _Pair(_towers())  # DDP's gradient hooks need the forward to run through ddp(...)
    ddp = DistributedDataParallel(model)
    za, zb = ddp(data["xa"][rows], data["xb"][rows])
    distributed_info_nce(za, zb, 0.2).loss.backward()
    for name, p in model.named_parameters():
        res[f"ddp_{name}"] = p.grad.detach().clone()
    torch.save(res, os.path.join(out_dir, f"rank{r}.pt"))
    dist.destroy_process_group()


class _Pair(torch.nn.Module):
    def __init__(self, towers: torch.nn.ModuleDict) -> None:
        super().__init__()
        self.towers = towers

    def forward(self, xa, xb):
        return self.towers["fa"](xa), self.towers["fb"](xb)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict[str, torch.Tensor]]:
    out = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO),
           "MASTER_ADDR": "127.0.0.1",
           "GLOO_SOCKET_IFNAME": os.environ.get("GLOO_SOCKET_IFNAME", "lo")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={N_PROC}", __file__, str(out)]
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "deprecated" not in proc.stderr, proc.stderr[-3000:]  # the gather must not warn
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(N_PROC)]


def test_gather_concatenates_in_rank_order(ranks):
    full = _data()["a"]
    for res in ranks:
        torch.testing.assert_close(res["gathered"], full, rtol=0, atol=0)


def test_info_nce_world_size_invariance(ranks):
    data = _data()
    a, b = data["a"].clone().requires_grad_(), data["b"].clone().requires_grad_()
    tau = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    full = _brute_info_nce(a, b, tau)
    full.backward()
    mean_loss = sum(r["nce_loss"] for r in ranks) / N_PROC
    torch.testing.assert_close(mean_loss, full.detach())
    for i, res in enumerate(ranks):
        rows = slice(i * B, (i + 1) * B)
        assert res["nce_logits_shape"].tolist() == [B, N_PROC * B]
        # all-gather backward sums over ranks: each rank holds N × the full-batch gradient of its
        # rows
        torch.testing.assert_close(res["nce_ga"], N_PROC * a.grad[rows])
        torch.testing.assert_close(res["nce_gb"], N_PROC * b.grad[rows])
    # a temperature held by each rank: the mean of the local gradients is the full gradient
    torch.testing.assert_close(sum(r["nce_gtau"] for r in ranks) / N_PROC, tau.grad)


def test_siglip_world_size_invariance(ranks):
    data = _data()
    a, b = data["a"].clone().requires_grad_(), data["b"].clone().requires_grad_()
    tau = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    bias = torch.tensor(-1.0, dtype=torch.float64, requires_grad=True)
    full = _brute_siglip(a, b, tau, bias)
    full.backward()
    torch.testing.assert_close(sum(r["sig_loss"] for r in ranks) / N_PROC, full.detach())
    for i, res in enumerate(ranks):
        rows = slice(i * B, (i + 1) * B)
        torch.testing.assert_close(res["sig_ga"], N_PROC * a.grad[rows])
        torch.testing.assert_close(res["sig_gb"], N_PROC * b.grad[rows])
        torch.testing.assert_close(res["sig_pos_plus_neg"], res["sig_loss"])
    torch.testing.assert_close(sum(r["sig_gtau"] for r in ranks) / N_PROC, tau.grad)
    torch.testing.assert_close(sum(r["sig_gbias"] for r in ranks) / N_PROC, bias.grad)


def test_ddp_parameter_gradients_equal_full_batch(ranks):
    data = _data()
    model = _Pair(_towers())
    za, zb = model(data["xa"], data["xb"])
    _brute_info_nce(za, zb, 0.2).backward()
    for name, p in model.named_parameters():
        for res in ranks:  # DDP's average over ranks cancels the all-gather's factor N exactly
            torch.testing.assert_close(res[f"ddp_{name}"], p.grad)


def test_single_process_fallback_matches_brute_force():
    assert not is_distributed() and rank() == 0 and world_size() == 1
    data = _data()
    x = data["a"]
    assert gather_with_grad(x) is x
    a, b = data["a"].clone().requires_grad_(), data["b"].clone().requires_grad_()
    out = distributed_info_nce(a, b, 0.3)
    out.loss.backward()
    a2, b2 = data["a"].clone().requires_grad_(), data["b"].clone().requires_grad_()
    ref = _brute_info_nce(a2, b2, 0.3)
    ref.backward()
    torch.testing.assert_close(out.loss, ref)
    torch.testing.assert_close(a.grad, a2.grad)
    torch.testing.assert_close(b.grad, b2.grad)
    sig = distributed_siglip(data["a"], data["b"], 0.5, -1.0)
    torch.testing.assert_close(sig.loss, _brute_siglip(data["a"], data["b"], 0.5, -1.0))
    torch.testing.assert_close(sig.terms["pos"] + sig.terms["neg"], sig.loss)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_inputs_are_prepared_exactly_as_in_the_losses(dtype):
    """One input preparation (`mmlab.losses._prep`): not distributed, the distributed losses
    give `info_nce` / `siglip`'s values and gradients, also for half precision with a zero row
    and a tiny row (float16: ε = HALF_NORM_EPS, so the gradients stay finite; the old private
    copy used ε = 1e-12 and overflowed) and for mixed dtypes (promoted, not cast to a's)."""
    from mmlab.losses import info_nce, siglip

    g = torch.Generator().manual_seed(5)
    a0, b0 = torch.randn(4, 3, generator=g).to(dtype), torch.randn(4, 3, generator=g).to(dtype)
    a0[1] = 0
    a0[2] = a0[2] * 1e-3
    for mixed in (False, True):
        outs = {}
        for name, fn in (("dist", distributed_info_nce), ("loss", info_nce),
                         ("dist_sig", lambda a, b: distributed_siglip(a, b, 0.1, -2.0)),
                         ("loss_sig", lambda a, b: siglip(a, b, 0.1, -2.0))):
            a = a0.clone().requires_grad_()
            b = (b0.double() if mixed else b0.clone()).requires_grad_()
            out = fn(a, b)
            out.loss.backward()
            outs[name] = (out.loss, a.grad, b.grad, out.terms)
        for x, y in (("dist", "loss"), ("dist_sig", "loss_sig")):
            assert torch.isfinite(outs[x][1]).all() and torch.isfinite(outs[x][2]).all()
            for got, want in zip(outs[x][:3], outs[y][:3]):  # summed in another order: close
                torch.testing.assert_close(got, want)
            assert outs[x][3].keys() == outs[y][3].keys()


def test_validation_errors():
    x = torch.randn(4, 3)
    with pytest.raises(TypeError, match="`x`"):
        gather_with_grad([1, 2])
    with pytest.raises(ValueError, match="`temperature`"):
        distributed_info_nce(x, x, 0.0)
    with pytest.raises(ValueError, match="same"):
        distributed_info_nce(x, torch.randn(5, 3))
    with pytest.raises(ValueError, match="`bias`"):
        distributed_siglip(x, x, 0.1, torch.zeros(2))
    with pytest.raises(ValueError, match="`bias`"):
        distributed_siglip(x, x, 0.1, math.inf)
    with pytest.raises(ValueError, match="`a`.*NaN"):
        distributed_info_nce(torch.full((4, 3), math.nan), x)


@pytest.mark.slow
def test_example_train_ddp_runs_under_torchrun(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO),
           "GLOO_SOCKET_IFNAME": os.environ.get("GLOO_SOCKET_IFNAME", "lo")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(REPO / "examples" / "train_ddp.py"), "--steps", "20", "--global-batch", "16"]
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    losses = [float(line.split("loss")[1].split()[0]) for line in proc.stdout.splitlines()
              if "loss" in line]
    assert losses and all(math.isfinite(v) for v in losses)
    assert losses[-1] < math.log(16) + 0.1  # below chance, log(global batch), after training


if __name__ == "__main__":
    _worker(sys.argv[1])
