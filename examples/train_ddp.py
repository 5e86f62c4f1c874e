"""Distributed contrastive training with DDP and the gathered "local" InfoNCE loss.

The same script runs on one process or many:

    python examples/train_ddp.py --steps 200
    torchrun --standalone --nproc_per_node=2 examples/train_ddp.py --steps 200

(gloo on CPU, nccl when every process has a GPU). Each rank takes its own slice of every global
batch, embeds it with a DistributedDataParallel two-tower model, gathers the embeddings of all
ranks with gradients (`mmlab.distributed.gather_with_grad`) and computes InfoNCE of its rows
against the global batch (`distributed_info_nce`; open_clip's local loss). The mean loss over
ranks equals the one-process loss on the concatenated batch, and DDP's gradient average gives
the parameters exactly the one-process gradient (see `mmlab.distributed`).

The data are synthetic: two noisy linear views of a shared latent code, so the script needs no
downloads. Rank 0 prints the loss and τ; the temperature is learnable (`logit_scale`, clamped to
log 100 after every step, as in CLIP).
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mmlab.distributed import distributed_info_nce, is_distributed, rank, world_size

MAX_LOGIT_SCALE = math.log(100)


@dataclass
class Config:
    steps: int = 200
    global_batch: int = 64      # split evenly across ranks
    latent_dim: int = 8
    input_dim: int = 32
    embed_dim: int = 16
    lr: float = 3e-3
    seed: int = 0


class TwoTower(nn.Module):
    """Two MLP encoders and a learnable `logit_scale = log(1/τ)` (init log(1/0.07))."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.tower_a = nn.Sequential(nn.Linear(cfg.input_dim, 64), nn.GELU(), nn.Linear(64, cfg.embed_dim))
        self.tower_b = nn.Sequential(nn.Linear(cfg.input_dim, 64), nn.GELU(), nn.Linear(64, cfg.embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, xa: torch.Tensor, xb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        za = F.normalize(self.tower_a(xa), dim=-1)  # (B, D)
        zb = F.normalize(self.tower_b(xb), dim=-1)  # (B, D)
        return za, zb, torch.exp(-self.logit_scale)  # τ


def synthetic_batch(cfg: Config, step: int, mix: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The global batch of `step` (identical on every rank: seeded by (seed, step))."""
    g = torch.Generator().manual_seed(cfg.seed * 100_003 + step)
    z = torch.randn(cfg.global_batch, cfg.latent_dim, generator=g)  # (N·B, latent)
    xa = z @ mix[0] + 0.1 * torch.randn(cfg.global_batch, cfg.input_dim, generator=g)  # (N·B, input)
    xb = z @ mix[1] + 0.1 * torch.randn(cfg.global_batch, cfg.input_dim, generator=g)  # (N·B, input)
    return xa, xb


def main(cfg: Config) -> float:
    """Train and return the last loss (averaged over ranks)."""
    if "RANK" in os.environ and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    device = torch.device("cpu")
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    n, r = world_size(), rank()
    if cfg.global_batch % n:
        raise ValueError(f"global_batch={cfg.global_batch} must be divisible by the number of processes {n}.")
    local = cfg.global_batch // n

    torch.manual_seed(cfg.seed)  # same initial weights on every rank (DDP also broadcasts them)
    mix = (torch.randn(cfg.latent_dim, cfg.input_dim), torch.randn(cfg.latent_dim, cfg.input_dim))
    model = TwoTower(cfg).to(device)
    ddp = DistributedDataParallel(model) if is_distributed() else model
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)

    last = float("nan")
    for step in range(1, cfg.steps + 1):
        xa, xb = synthetic_batch(cfg, step, mix)
        xa, xb = xa[r * local:(r + 1) * local].to(device), xb[r * local:(r + 1) * local].to(device)  # this rank's rows
        za, zb, tau = ddp(xa, xb)
        out = distributed_info_nce(za, zb, tau, normalize=False)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()  # DDP averages parameter gradients over ranks
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(max=MAX_LOGIT_SCALE)
        if step % max(1, cfg.steps // 10) == 0 or step == cfg.steps:
            loss = out.loss.detach().clone()
            if is_distributed():
                dist.all_reduce(loss)
                loss /= n
            last = float(loss)
            if r == 0:
                print(f"step {step:5d}  loss {last:.4f}  τ {float(tau):.4f}  (global batch {cfg.global_batch}, "
                      f"{n} process{'es' if n > 1 else ''})", flush=True)
    del ddp  # release DDP's reducer before the process group goes (else gloo may abort at exit)
    if dist.is_initialized():
        dist.barrier()  # every rank done before the connections close
        dist.destroy_process_group()
    return last


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=Config.steps)
    parser.add_argument("--global-batch", type=int, default=Config.global_batch)
    parser.add_argument("--lr", type=float, default=Config.lr)
    parser.add_argument("--seed", type=int, default=Config.seed)
    args = parser.parse_args()
    main(Config(steps=args.steps, global_batch=args.global_batch, lr=args.lr, seed=args.seed))
