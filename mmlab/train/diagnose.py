"""Why is my contrastive model not learning? `diagnose(history, model, data)` reads the symptoms.

Each check compares a run with a number that theory gives, and each finding names the likely
causes and the fix (notebook 11 reproduces every one of them):

- `"loss_at_log_b"`: InfoNCE at chance. If every logit in a row is equal, softmax gives the true
  partner probability 1/B, so `ℓ = −log(1/B) = log B` (van den Oord et al., 2018). A loss that ends
  within 5 % of log B ranks partners no better than guessing: pairs shuffled apart, a tower that
  outputs a constant, or a learning rate so high the embeddings collapsed.
- `"temperature_at_clamp"`: τ = 1/exp(logit_scale) ends on a bound of its clamp, 0.01 ≤ τ ≤ 100
  (CLIP, Radford et al., 2021, clamps the scale at 100). At 0.01 the loss wants sharper logits
  than allowed (unnormalised embeddings, or a τ learning rate that is too high); at 100 it wants
  uniform predictions (the pairs carry no signal).
- `"collapse"`: the embeddings of a modality crowd into one direction (mean pairwise cosine above
  0.9) or span fewer than `min_rank` directions once centred: the effective rank
  `exp H(σ/Σσ)` of `z − mean(z)` (Roy & Vetterli, 2007; dimensional collapse, Jing et al., 2022).
- `"tower_not_learning"`: one tower's gradient, relative to its weights, is zero or a thousandth of
  the others' (a `.detach()`, `torch.no_grad()`, a frozen or dead tower). Needs the gradient log
  of `GradientNorms`, which `fit(..., diagnose=True)` keeps for you.

A finding is a rule of thumb, not a proof: read its evidence, then test the cause it names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from mmlab.losses.output import MAX_LOGIT_SCALE, MIN_LOGIT_SCALE
from mmlab.train.callbacks import Callback
from mmlab.train.encode import encode_dataset
from mmlab.train.history import History
from mmlab.train.state import TrainState

__all__ = ["Finding", "GradientNorms", "DiagnoseAtEnd", "diagnose", "report", "CODES"]

CODES = ("loss_at_log_b", "temperature_at_clamp", "collapse", "tower_not_learning")
TAU_MIN, TAU_MAX = math.exp(-MAX_LOGIT_SCALE), math.exp(-MIN_LOGIT_SCALE)  # 0.01, 100


@dataclass(frozen=True)
class Finding:
    """One symptom: a stable `code` (one of `CODES`), a message naming cause and fix,
    the numbers."""

    code: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


class GradientNorms(Callback):
    """Log ‖∇θ_m‖ and ‖θ_m‖ of each tower m after every optimizer step.

    For a `ContrastiveModel` the towers are the encoders (named by modality) and the projection
    heads (named "<modality> head"), logged apart: a frozen encoder under a trained head is a tower
    that does not learn. For other models: the top-level children. The norms stay on the device
    until read (`norms`), so logging adds no host–device sync per step. A tower whose parameters
    got no gradient logs 0.
    """

    def __init__(self) -> None:
        self._grads: dict[str, list[Tensor]] = {}
        self._params: dict[str, list[Tensor]] = {}

    @staticmethod
    def towers(model: nn.Module) -> dict[str, list[nn.Parameter]]:
        """Tower name → its parameters (encoders and heads of a ContrastiveModel, else children)."""
        encoders = getattr(model, "encoders", None)
        if isinstance(encoders, nn.ModuleDict):
            towers = {m: list(enc.parameters()) for m, enc in encoders.items()}
            heads = getattr(model, "heads", None)
            if isinstance(heads, nn.ModuleDict):
                towers.update({f"{m} head": list(head.parameters()) for m, head in heads.items()})
            return {name: params for name, params in towers.items() if params}
        return {name: list(child.parameters()) for name, child in model.named_children()
                if any(True for _ in child.parameters())}

    def on_step(self, state: TrainState) -> None:  # noqa: D102
        for m, params in self.towers(state.model).items():
            with torch.no_grad():
                grads = [p.grad.detach().float().pow(2).sum() for p in params if p.grad is not None]
                weights = [p.detach().float().pow(2).sum() for p in params]
                zero = torch.zeros((), device=params[0].device) if params else torch.zeros(())
                self._grads.setdefault(m, []).append(
                    torch.stack(grads).sum().sqrt() if grads else zero)
                self._params.setdefault(m, []).append(
                    torch.stack(weights).sum().sqrt() if weights else zero)

    @property
    def norms(self) -> dict[str, list[float]]:
        """Tower → ‖∇θ_m‖ per logged step, as floats."""
        return {m: torch.stack(v).cpu().tolist() for m, v in self._grads.items()}

    @property
    def weight_norms(self) -> dict[str, list[float]]:
        """Tower → ‖θ_m‖ per logged step, as floats."""
        return {m: torch.stack(v).cpu().tolist() for m, v in self._params.items()}


class DiagnoseAtEnd(GradientNorms):
    """`GradientNorms` that prints `report(diagnose(...))` when training ends: what
    `fit(..., diagnose=True)` adds. The collapse check needs a dataset and `model.encode`."""

    def __init__(self, data: Any = None) -> None:
        super().__init__()
        self.data = data

    def on_end(self, state: TrainState) -> None:  # noqa: D102
        embed = self.data is not None and callable(getattr(state.model, "encode", None))
        print(report(diagnose(state.history, state.model if embed else None,
                              self.data if embed else None, grad_norms=self)))


def _tail(values: Sequence[float], fraction: float) -> list[float]:
    n = max(1, math.ceil(len(values) * fraction))
    return list(values[-n:])


def _check_loss(history: History, batch_size: int | None, tolerance: float,
                fraction: float) -> list[Finding]:
    if batch_size is None or batch_size < 2 or not history.loss:
        return []
    log_b = math.log(batch_size)
    end = sum(_tail(history.loss, fraction)) / len(_tail(history.loss, fraction))
    if abs(end - log_b) > tolerance * log_b:
        return []
    return [Finding(
        "loss_at_log_b",
        f"The loss ends at {end:.3f}, within {tolerance:.0%} of log B = log {batch_size} = "
        f"{log_b:.3f}: the model picks the true partner no better than chance (1 in B). Likely "
        "causes: (1) the pairs are misaligned (one modality shuffled on its own: check that "
        "batch[i] of every modality is the same sample), (2) a tower outputs a constant (its "
        "gradient is zero: see tower_not_learning), (3) the learning rate is too high and the "
        "embeddings collapsed (see collapse; try 10x lower).",
        {"final_loss": end, "log_b": log_b, "batch_size": batch_size})]


def _check_temperature(history: History, fraction: float) -> list[Finding]:
    taus = [t for t in history.temperature if t is not None]
    if not taus:
        return []
    tail = _tail(taus, fraction)
    for bound, name in ((TAU_MIN, "lower"), (TAU_MAX, "upper")):
        if all(abs(t - bound) <= 0.01 * bound for t in tail):
            first = len(taus)  # the start of the final stretch on the bound
            while first > 0 and abs(taus[first - 1] - bound) <= 0.01 * bound:
                first -= 1
            why = ("the loss wants sharper logits than the clamp allows: unnormalised embeddings "
                   "(logits grow without bound; L2-normalise before the dot product) or a learning "
                   "rate on τ that is too high. Harmless late in a long CLIP run (CLIP's own scale "
                   "ends at 100) if retrieval still improves." if name == "lower" else
                   "the loss prefers uniform predictions: the pairs carry no signal (check their "
                   "alignment).")
            return [Finding("temperature_at_clamp",
                            f"τ sits on its {name} clamp {bound:g} from step {first + 1} "
                            f"to the end: {why}",
                            {"temperature": tail[-1], "bound": bound, "first_step": first + 1})]
    return []


def _embed(model: nn.Module, data: Any, rows: int) -> dict[str, Tensor]:
    if not callable(getattr(model, "encode", None)):
        raise TypeError("`model` must have an `encode(batch)` method (a ContrastiveModel) to "
                        f"check collapse; got {type(model).__name__}.")
    if not callable(getattr(data, "batch", None)) or not hasattr(data, "__len__"):
        raise TypeError(f"`data` must be a mmlab.data.MultimodalDataset (with `.batch(idx)`), got "
                        f"{type(data).__name__}.")
    batch = data.batch(torch.arange(min(rows, len(data))))
    batch = {k: v for k, v in batch.items() if k != "present"}  # every modality, for every row
    return encode_dataset(model, batch, cpu=True)


def _check_collapse(z: Mapping[str, Tensor], min_rank: float) -> list[Finding]:
    from mmlab.metrics.geometry import effective_rank, mean_pairwise_cosine

    found = []
    for m, x in z.items():
        if x.shape[0] < 3:
            continue
        cos = float(mean_pairwise_cosine(x))
        rank = float(effective_rank(x - x.mean(dim=0)))
        if cos > 0.9 or rank < min_rank:
            shape = (f"crowd into one direction (mean pairwise cosine {cos:.2f} > 0.9)"
                     if cos > 0.9 else
                     f"span only {rank:.1f} directions once centred "
                     f"(effective rank < {min_rank:g})")
            found.append(Finding(
                "collapse",
                f"The {m} embeddings {shape}: they cannot tell samples apart. Likely causes: a "
                "learning rate too high (try 10x lower), a loss without negatives, or no signal in "
                "the pairs (see loss_at_log_b).",
                {"modality": m, "mean_cosine": cos, "centred_effective_rank": rank}))
    return found


def _check_towers(norms: Mapping[str, Sequence[float]],
                  weights: Mapping[str, Sequence[float]] | None,
                  fraction: float) -> list[Finding]:
    ratio = {}
    for m, g in norms.items():
        if not g:
            continue
        g_end = sum(_tail(g, fraction)) / len(_tail(g, fraction))
        w = weights.get(m) if weights else None
        w_end = (sum(_tail(w, fraction)) / len(_tail(w, fraction))) if w else 1.0
        ratio[m] = g_end / w_end if w_end > 0 else 0.0
    if not ratio:
        return []
    top = max(ratio.values())
    found = []
    for m, r in ratio.items():
        if r == 0.0 or r < 1e-3 * top or r < 1e-6:
            found.append(Finding(
                "tower_not_learning",
                f"The {m} tower's gradient is "
                f"{'zero' if r == 0 else f'{r:.1e} of its weight norm'} at the end (largest "
                f"tower: {top:.1e}): it is not learning. Likely causes: a `.detach()` or "
                "`torch.no_grad()` in its forward, parameters frozen (`requires_grad=False`) or "
                "missing from the optimizer, or a dead tower that outputs a constant (e.g. every "
                "ReLU off). Fix the forward pass, then check that its gradient is non-zero.",
                {"tower": m, "grad_over_weight": r, "largest": top}))
    return found


def diagnose(history: History, model: nn.Module | None = None, data: Any = None, *,
             batch_size: int | None = None,
             grad_norms: GradientNorms | Mapping[str, Sequence[float]] | None = None,
             tail: float = 0.1, loss_tolerance: float = 0.05, min_rank: float = 2.0,
             rows: int = 512) -> list[Finding]:
    """Read a run's symptoms and return the findings (an empty list: nothing found).

    Args:
        history: the `History` that `fit` returned.
        model: the trained model; with `data`, its embeddings are checked for collapse.
        data: a `MultimodalDataset` (the first `rows` samples are embedded).
        batch_size: B of the run, for log B (default: `history.batch_size`, recorded by `fit`).
        grad_norms: a `GradientNorms` callback that ran in `fit`, or tower → ‖∇θ‖ per step.
        tail: fraction of the last steps that count as "the end" (default 10 %).
        loss_tolerance: relative distance to log B that counts as "at chance" (default 5 %).
        min_rank: centred effective rank below which the embeddings count as collapsed.
        rows: how many samples of `data` to embed.
    Returns:
        A list of `Finding` (code, message, evidence), in the order of `CODES`.
    """
    if not isinstance(history, History):
        raise TypeError("`history` must be the History that fit returned, got "
                        f"{type(history).__name__}.")
    if not 0 < tail <= 1:
        raise ValueError(f"`tail` must be in (0, 1], got {tail!r}.")
    if (model is None) != (data is None):
        raise ValueError("pass both `model` and `data` (to check collapse) or neither; got "
                         f"model={'None' if model is None else type(model).__name__}, "
                         f"data={'None' if data is None else type(data).__name__}.")
    batch_size = batch_size if batch_size is not None else history.batch_size
    found = (_check_loss(history, batch_size, loss_tolerance, tail)
             + _check_temperature(history, tail))
    if model is not None:
        found += _check_collapse(_embed(model, data, rows), min_rank)
    if grad_norms is not None:
        if isinstance(grad_norms, GradientNorms):
            found += _check_towers(grad_norms.norms, grad_norms.weight_norms, tail)
        elif isinstance(grad_norms, Mapping):
            found += _check_towers(grad_norms, None, tail)
        else:
            raise TypeError("`grad_norms` must be a GradientNorms callback or a dict tower → list "
                            f"of norms, got {type(grad_norms).__name__}.")
    return found


def report(findings: Sequence[Finding]) -> str:
    """The findings as text, one paragraph each ('No problem found.' for none)."""
    if not findings:
        return ("diagnose: no problem found (loss below log B, τ inside its clamp, no collapse, "
                "every tower learning).")
    return "\n".join(f"diagnose: {f}" for f in findings)
