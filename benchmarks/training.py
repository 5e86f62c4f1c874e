"""Training throughput: samples/s of the reference tri-modal model (image, audio, text), eager, bf16 and compiled.

The model is the course's reference: `mmlab.recipes.trimodal_model`: `ConvEncoder` (image) + `AudioConvEncoder` (waveform →
log-mel inside, computed per batch on the device) + a text encoder (`BagOfWordsEncoder` on
`digits`, `TextTransformer` on `shapes`), a linear `ProjectionHead` each to D = 64, and
`ClipLoss` over all three modality pairs (`ContrastiveModel(..., pairs="all")`), trained with
AdamW. The dataset sits whole on the device (`ds.to(device)`), batches are index slices
(`ds.batches`). Per step we time separately (synchronising on CUDA):

- data: drawing the next batch (index slicing);
- step: forward, loss, backward and the optimiser step.

The texts are tokenised once before training (`mmlab.encoders.pretokenize`): they sit on the
device as token ids (N, L) like the images and waveforms, so no step runs a Python loop per
sample and every batch has the same shapes. The variant "fp32, texts as strings" keeps the
strings and tokenises each batch inside the text encoder, to show what that costs.

Variants: fp32 eager; bf16 autocast (`torch.autocast(device, torch.bfloat16)`; on a CPU without
native bf16 matmuls this can be slower); `torch.compile(model)` (its compile time is reported
apart, and any failure, e.g. no C++ toolchain, is caught and reported). The compiled variant
runs in a subprocess with a time limit, and is skipped with `--quick`.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from benchmarks._timing import sync
from mmlab.data import load
from mmlab.encoders import pretokenize
from mmlab.model import ContrastiveModel
from mmlab.recipes import TriModalConfig, trimodal_model

EMBED_DIM = 64
CONFIGS = (("digits", "bag-of-words"), ("shapes", "transformer"))
COMPILE_TIMEOUT_S = 240
ROOT = Path(__file__).resolve().parents[1]


def build_model(ds, text: str) -> ContrastiveModel:
    """The reference tri-modal model for dataset `ds` (text: "bag-of-words" or "transformer")."""
    return trimodal_model(ds, TriModalConfig(embed_dim=EMBED_DIM, text=text))


def _dataset(name: str, quick: bool):
    if name == "shapes":
        return load("shapes", split="train", n=64 if quick else 1024, seed=0)
    ds = load("digits", split="train", seed=0)
    return ds.subset(torch.arange(64)) if quick else ds


def _batches(ds, batch_size: int) -> Iterator[dict]:
    epoch = 0
    while True:
        gen = torch.Generator().manual_seed(epoch)
        yield from ds.batches(batch_size, shuffle=True, generator=gen, drop_last=True)
        epoch += 1


def measure_throughput(dataset: str, text: str, *, device: str, precision: str = "fp32", compile_model: bool = False,
                       quick: bool = False, strings: bool = False) -> dict:
    """Train the reference model for a few steps and time data and step separately.

    Args:
        dataset: "digits" or "shapes".
        text: "bag-of-words" or "transformer".
        device: "cpu" or "cuda".
        precision: "fp32" or "bf16" (autocast).
        compile_model: wrap the model in `torch.compile` (first steps timed as compile time).
        quick: batch 32, 2 timed steps (full: batch 128, 2 warm-up and 20 timed steps; compiled: 3
            warm-up steps, so that a re-trace after the first step counts as compile time).
        strings: keep the texts as Python strings (tokenised inside the encoder at every step).
    Returns:
        A row: samples/s, ms per step, data fraction, and (compiled) compile seconds.
    """
    torch.manual_seed(0)
    batch_size, warmup, steps = (32, 1, 2) if quick else (128, 3 if compile_model else 2, 20)
    ds = _dataset(dataset, quick)
    model = build_model(ds, text).to(device)
    if not strings:
        ds = pretokenize(ds, model.encoders["text"])
    ds = ds.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    fwd = torch.compile(model) if compile_model else model
    autocast = (torch.autocast(device_type=device, dtype=torch.bfloat16) if precision == "bf16"
                else contextlib.nullcontext())
    it = _batches(ds, batch_size)
    t_data = t_step = 0.0
    row = {"dataset": dataset, "text": text,
           "variant": precision + (" + compile" if compile_model else "") + (", texts as strings" if strings else ""),
           "batch": batch_size}
    t_warm = time.perf_counter()
    for i in range(warmup + steps):
        sync(device)
        t0 = time.perf_counter()
        batch = next(it)
        sync(device)
        t1 = time.perf_counter()
        with autocast:
            loss = fwd(batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.loss.clamp_()
        sync(device)
        t2 = time.perf_counter()
        if i == warmup - 1:
            row["warmup_s" if not compile_model else "compile_and_warmup_s"] = t2 - t_warm
        if i >= warmup:
            t_data += t1 - t0
            t_step += t2 - t1
    total = t_data + t_step
    row.update(samples_per_s=steps * batch_size / total, ms_per_step=1e3 * total / steps,
               data_fraction=t_data / total, loss=float(loss.detach()))
    return row


def _compiled_in_subprocess(dataset: str, text: str, device: str) -> dict:
    code = ("import json, sys; from benchmarks.training import measure_throughput; "
            f"print('RESULT' + json.dumps(measure_throughput({dataset!r}, {text!r}, device={device!r}, "
            "compile_model=True)))")
    base = {"dataset": dataset, "text": text, "variant": "fp32 + compile"}
    try:
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                              timeout=COMPILE_TIMEOUT_S, env=os.environ.copy())
    except subprocess.TimeoutExpired:
        return {**base, "note": f"torch.compile did not finish within {COMPILE_TIMEOUT_S} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[len("RESULT"):])
    err = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    return {**base, "note": "torch.compile failed: " + (err[-1][:160] if err else f"exit code {proc.returncode}")}


def run(quick: bool, device: str) -> list[dict]:
    """Throughput of the reference model on digits and shapes in each variant.

    Args:
        quick: tiny data, batch 32, 2 steps, no compile (a smoke test).
        device: "cpu" or "cuda".
    Returns:
        One row per (dataset, variant), with speed-ups vs fp32 eager on the fp32 row's dataset.
    """
    rows = []
    for dataset, text in CONFIGS:
        base = measure_throughput(dataset, text, device=device, quick=quick)
        group = [measure_throughput(dataset, text, device=device, quick=quick, strings=True), base]
        try:
            group.append(measure_throughput(dataset, text, device=device, precision="bf16", quick=quick))
        except RuntimeError as err:
            group.append({"dataset": dataset, "text": text, "variant": "bf16",
                          "note": f"bf16 autocast failed: {str(err).splitlines()[0][:120]}"})
        if quick:
            group.append({"dataset": dataset, "text": text, "variant": "fp32 + compile",
                          "note": "skipped with --quick"})
        else:
            group.append(_compiled_in_subprocess(dataset, text, device))
        for r in group:
            if "samples_per_s" in r:
                r["speedup_vs_fp32_eager"] = r["samples_per_s"] / base["samples_per_s"]
            print(f"  {dataset} {r['variant']}: {r.get('samples_per_s', float('nan')):.1f} samples/s "
                  f"{r.get('note', '')}", flush=True)
        rows += group
    return rows
