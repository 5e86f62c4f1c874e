"""Loss kernels: forward + backward time and peak memory of mmlab's losses vs open_clip, PML and symile.

Families (D = 512, τ = 0.07 for InfoNCE and Symile, 1/τ = 10 and bias = −10 for SigLIP):

- InfoNCE / CLIP: `mmlab.losses.info_nce(a, b, τ)` vs `open_clip.loss.ClipLoss()(â, b̂, 1/τ)`
  and pytorch-metric-learning's `NTXentLoss(τ)` in its cross-modal form. PML's
  `loss(a, y, ref_emb=b, ref_labels=y)` with y = arange(B) is the one-directional CE(S/τ, I),
  i.e. mmlab's term "a_to_b"; the symmetric CLIP loss is the mean of that call and the one with
  a and b swapped, which is what is timed. Pitfall: `ref_labels` must be a different tensor
  object from `labels` (here `y.clone()`); when `ref_labels is labels`, PML assumes a
  self-similarity matrix, removes the diagonal positives and returns 0. PML builds a
  (B, B(B−1)) matrix of negatives (O(B³) memory), so its rows stop where that would pass
  `PML_MAX_BYTES`.
- SigLIP: `mmlab.losses.siglip(a, b, τ, bias)` vs `open_clip.loss.SigLipLoss()(â, b̂, 1/τ, bias)`.
- Symile (M = 3, O(B) negatives "n"): `mmlab.losses.symile(x, y, z, temperature=τ)` vs
  `symile.Symile("n")([x̂, ŷ, ẑ], 1/τ)`. The shuffles of both come from torch's global RNG in
  the same order, so with the same seed both compute the same loss.

Peers do not normalise (except PML), so their timed function includes `F.normalize`, as a user
would have to: every row computes the same quantity from the same raw (B, D) inputs. Before
any timing, `check_agreement` compares each loss and its input gradients with the peer in
float64. On CUDA, bfloat16 inputs are timed too (mmlab computes losses in float32 from bf16
inputs; the peers compute in bf16).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmarks._timing import INTERLEAVE_MAX_S, MIB, interleaved_min, max_rel_grad_diff, measure, rel_diff
from mmlab.losses import info_nce, siglip, symile

D = 512
TAU = 0.07
SIGLIP_TAU, SIGLIP_BIAS = 0.1, -10.0
SIZES = (256, 1024, 4096, 16384)
QUICK_SIZES = (64, 128)
SYMILE_M = 3
SYMILE_MAX_B_CPU = 4096  # three (B, B) softmaxes per step: B = 16,384 alone would take minutes on 2 cores
PML_MAX_BYTES = 2 * 2**30
AGREE_RTOL = 1e-5

LossFn = Callable[..., Tensor]


@dataclass
class Impl:
    """One implementation of a loss family: a function of raw (B, D) inputs, or why it is missing."""

    family: str
    name: str
    fn: LossFn | None
    missing: str = ""
    max_bytes_per_b3: float = 0.0  # memory ∝ B³ (PML): bytes per B³, 0 = not applicable


def _open_clip() -> tuple[LossFn | None, LossFn | None, str]:
    try:
        from open_clip.loss import ClipLoss, SigLipLoss
    except ImportError as err:
        return None, None, f"open_clip not installed ({err.msg})"
    clip, sig = ClipLoss(), SigLipLoss()

    def clip_fn(a: Tensor, b: Tensor) -> Tensor:
        return clip(F.normalize(a, dim=-1), F.normalize(b, dim=-1), 1.0 / TAU)

    def sig_fn(a: Tensor, b: Tensor) -> Tensor:
        return sig(F.normalize(a, dim=-1), F.normalize(b, dim=-1), 1.0 / SIGLIP_TAU, SIGLIP_BIAS)

    return clip_fn, sig_fn, ""


def _pml() -> tuple[LossFn | None, str]:
    try:
        from pytorch_metric_learning.losses import NTXentLoss
    except ImportError as err:
        return None, f"pytorch-metric-learning not installed ({err.msg})"
    ntx = NTXentLoss(temperature=TAU)

    def fn(a: Tensor, b: Tensor) -> Tensor:
        y = torch.arange(a.shape[0], device=a.device)  # (B,): row i of a is paired with row i of b
        y_ref = y.clone()  # NOT `y` itself: PML drops the diagonal positives when `ref_labels is labels`
        return 0.5 * (ntx(a, y, ref_emb=b, ref_labels=y_ref) + ntx(b, y, ref_emb=a, ref_labels=y_ref))

    return fn, ""


def _symile_pkg() -> tuple[LossFn | None, str]:
    try:
        from symile import Symile
    except ImportError as err:
        return None, f"symile not installed ({err.msg})"
    loss = Symile("n")

    def fn(*xs: Tensor) -> Tensor:
        return loss([F.normalize(x, dim=-1) for x in xs], 1.0 / TAU)

    return fn, ""


def implementations() -> list[Impl]:
    """Every implementation, mmlab first in each family; missing peers carry the reason."""
    clip_fn, sig_fn, why_oc = _open_clip()
    pml_fn, why_pml = _pml()
    sym_fn, why_sym = _symile_pkg()
    return [
        Impl("info_nce", "mmlab", lambda a, b: info_nce(a, b, TAU).loss),
        Impl("info_nce", "open_clip ClipLoss", clip_fn, why_oc),
        # two calls, each with a (B, B(B−1)) float matrix and ~3 temporaries of that size
        Impl("info_nce", "PML NTXentLoss (both directions)", pml_fn, why_pml, max_bytes_per_b3=4 * 4.0),
        Impl("siglip", "mmlab", lambda a, b: siglip(a, b, SIGLIP_TAU, SIGLIP_BIAS).loss),
        Impl("siglip", "open_clip SigLipLoss", sig_fn, why_oc),
        Impl("symile", "mmlab", lambda *xs: symile(*xs, temperature=TAU, negatives="n").loss),
        Impl("symile", "symile package", sym_fn, why_sym),
    ]


def _inputs(family: str, n: int, dtype: torch.dtype, device: str, seed: int = 0) -> list[Tensor]:
    g = torch.Generator().manual_seed(seed)
    m = SYMILE_M if family == "symile" else 2
    return [torch.randn(n, D, generator=g, dtype=torch.float64).to(device=device, dtype=dtype).requires_grad_()
            for _ in range(m)]


def _value_and_grads(fn: LossFn, xs: list[Tensor], seed: int) -> tuple[float, list[Tensor]]:
    for x in xs:
        x.grad = None
    torch.manual_seed(seed)  # the symile "n" shuffles
    loss = fn(*xs)
    grads = torch.autograd.grad(loss, xs)
    return float(loss.detach()), list(grads)


def check_agreement(n: int = 64, device: str = "cpu", seed: int = 0) -> list[dict]:
    """Compare every peer with mmlab in float64: loss (relative) and input gradients (max-relative).

    Also checks the exact relation to PML (one call = mmlab's "a_to_b" term) and Symile's
    "n_squared" negatives (M = 3, B = 16) against the symile package.

    Returns:
        One row per peer: loss family, peer, B, both losses, rel_diff, grad_rel_diff, ok.
    """
    rows = []
    impls = implementations()
    for fam in ("info_nce", "siglip", "symile"):
        mine = next(i for i in impls if i.family == fam and i.name == "mmlab")
        # Symile's "n" negatives are random permutations: mmlab draws them on the embeddings'
        # device, the symile package on the CPU, so one seed gives both the same draws on the CPU
        # only (on CUDA the two losses differ by their draws: 1e-4 in value on an H200).
        dev = "cpu" if fam == "symile" else device
        xs = _inputs(fam, n, torch.float64, dev, seed)
        ref, ref_g = _value_and_grads(mine.fn, xs, seed)
        for peer in (i for i in impls if i.family == fam and i.name != "mmlab"):
            if peer.fn is None:
                rows.append({"loss": fam, "peer": peer.name, "B": n, "ok": None, "note": peer.missing})
                continue
            val, g = _value_and_grads(peer.fn, xs, seed)
            grad_diff = max(max_rel_grad_diff(gp, gm) for gp, gm in zip(g, ref_g))
            rows.append({"loss": fam, "peer": peer.name, "B": n, "device": dev, "mmlab": ref, "peer_value": val,
                         "rel_diff": rel_diff(val, ref), "grad_rel_diff": grad_diff,
                         "ok": rel_diff(val, ref) <= AGREE_RTOL and grad_diff <= AGREE_RTOL})
    rows += _extra_checks(device, seed)
    return rows


def _extra_checks(device: str, seed: int) -> list[dict]:
    rows = []
    pml_fn, _ = _pml()
    if pml_fn is not None:
        from pytorch_metric_learning.losses import NTXentLoss

        a, b = _inputs("info_nce", 32, torch.float64, device, seed)
        y = torch.arange(32, device=device)
        one = float(NTXentLoss(temperature=TAU)(a, y, ref_emb=b, ref_labels=y.clone()).detach())
        term = float(info_nce(a, b, TAU).terms["a_to_b"].detach())
        rows.append({"loss": "info_nce term a_to_b", "peer": "PML NTXentLoss(a, y, ref_emb=b, ref_labels=y)",
                     "B": 32, "mmlab": term, "peer_value": one, "rel_diff": rel_diff(one, term),
                     "ok": rel_diff(one, term) <= AGREE_RTOL})
    try:
        from symile import Symile
    except ImportError as err:
        return rows + [{"loss": "symile n_squared", "peer": "symile package", "ok": None, "note": err.msg}]
    xs = _inputs("symile", 16, torch.float64, device, seed)
    ref, ref_g = _value_and_grads(lambda *x: symile(*x, temperature=TAU, negatives="n_squared").loss, xs, seed)
    peer = Symile("n_squared")
    val, g = _value_and_grads(lambda *x: peer([F.normalize(v, dim=-1) for v in x], 1.0 / TAU), xs, seed)
    grad_diff = max(max_rel_grad_diff(gp, gm) for gp, gm in zip(g, ref_g))
    rows.append({"loss": "symile n_squared", "peer": "symile package", "B": 16, "mmlab": ref, "peer_value": val,
                 "rel_diff": rel_diff(val, ref), "grad_rel_diff": grad_diff,
                 "ok": rel_diff(val, ref) <= AGREE_RTOL and grad_diff <= AGREE_RTOL})
    return rows


def _step(fn: LossFn, xs: list[Tensor]) -> Callable[[], None]:
    def run() -> None:
        for x in xs:
            x.grad = None
        fn(*xs).backward()
    return run


def _skip_reason(impl: Impl, n: int, dtype: torch.dtype, device: str) -> str:
    if impl.fn is None:
        return impl.missing
    if impl.max_bytes_per_b3 and impl.max_bytes_per_b3 * n ** 3 * dtype.itemsize / 4 > PML_MAX_BYTES:
        need = impl.max_bytes_per_b3 * n ** 3 * dtype.itemsize / 4 / MIB
        return f"skipped: needs ~{need:,.0f} MiB (O(B³) negatives matrix)"
    if impl.family == "symile" and device == "cpu" and n > SYMILE_MAX_B_CPU:
        return f"skipped on CPU above B = {SYMILE_MAX_B_CPU} (run time)"
    return ""


def run(quick: bool, device: str) -> list[dict]:
    """Check agreement with the peers in float64, then time forward + backward at each size.

    Args:
        quick: B ∈ {64, 128} and short timing (a smoke test; numbers not meant to be read).
        device: "cpu" or "cuda" (CUDA also times bfloat16 inputs).
    Returns:
        Agreement rows first ("check" = "agreement"), then one row per (loss, dtype, B,
        implementation): ms, peak MiB, and for mmlab the ratios to the fastest / leanest peer.
    """
    agree = check_agreement(device=device)
    for r in agree:
        status = {True: "agrees", False: "DISAGREES", None: "not checked"}[r["ok"]]
        grads = f", grads {r['grad_rel_diff']:.2e}" if "grad_rel_diff" in r else ""
        print(f"  float64 agreement {r['loss']:<20} vs {r['peer']:<45} {status}: "
              f"rel. diff {r.get('rel_diff', float('nan')):.2e}{grads}", flush=True)
    rows: list[dict] = [{"check": "agreement (float64)", "loss": r["loss"], "impl": r["peer"], "B": r.get("B"),
                         "rel_diff": r.get("rel_diff"), "grad_rel_diff": r.get("grad_rel_diff"),
                         "ok": r["ok"], "note": r.get("note", "")} for r in agree]
    sizes = QUICK_SIZES if quick else SIZES
    dtypes = [torch.float32] + ([torch.bfloat16] if device == "cuda" else [])
    min_time, max_reps = (0.05, 3) if quick else (1.0, 5)
    impls = implementations()
    for fam in ("info_nce", "siglip", "symile"):
        for dtype in dtypes:
            for n in sizes:
                group, steps = [], {}
                for impl in (i for i in impls if i.family == fam):
                    row = {"check": "fwd+bwd", "loss": fam, "impl": impl.name,
                           "dtype": str(dtype).removeprefix("torch."), "B": n}
                    why = _skip_reason(impl, n, dtype, device)
                    if why:
                        row["note"] = why
                    else:
                        xs = _inputs(fam, n, dtype, device)
                        try:
                            s, reps, peak = measure(_step(impl.fn, xs), device, min_time=min_time, max_reps=max_reps)
                            row.update(ms=s * 1e3, runs=reps, peak_MiB=peak, timing="median")
                            steps[len(group)] = _step(impl.fn, xs)
                        except (RuntimeError, TypeError) as err:  # e.g. an op without a bf16 kernel
                            row["note"] = f"failed: {type(err).__name__}: {str(err).splitlines()[0][:80]}"
                        del xs
                    group.append(row)
                short = [i for i in steps if group[i]["ms"] < 1e3 * INTERLEAVE_MAX_S]
                if not quick and len(short) >= 2:
                    # short calls: re-time those implementations interleaved (min of rounds), so
                    # that a change in machine load cannot favour one of them
                    best = interleaved_min([steps[i] for i in short], device)
                    for i, s in zip(short, best):
                        group[i].update(ms=s * 1e3, runs=15, timing="min of 15 interleaved rounds")
                steps.clear()
                _ratios(group)
                rows += group
                print(f"  {fam} {dtype} B={n}: " + ", ".join(
                    f"{r['impl']} {r['ms']:.1f} ms" for r in group if "ms" in r), flush=True)
    return rows


def _ratios(group: list[dict]) -> None:
    mine = group[0]
    peers = [r for r in group[1:] if "ms" in r]
    if "ms" not in mine or not peers:
        return
    fastest = min(peers, key=lambda r: r["ms"])
    mine["time_ratio_vs_fastest_peer"] = mine["ms"] / fastest["ms"]
    mems = [r["peak_MiB"] for r in peers if r.get("peak_MiB")]
    if mine.get("peak_MiB") is not None and mems:
        mine["mem_ratio_vs_leanest_peer"] = mine["peak_MiB"] / min(mems)
