"""The training loop `fit`: one loop for every model in the course, with exact resume.

Each step: forward under autocast, loss, (optional) finite check, backward, optional gradient
clipping, optimizer step, then the temperature clamp of CLIP (Radford et al., 2021): a learnable
`logit_scale = log(1/τ)` is clamped to `MAX_LOGIT_SCALE = log(100)` (τ ≥ 0.01) after every
optimizer step. τ itself is what is logged.

Data order is a function of (seed, epoch) only, and the model, optimizer, loss and RNG states
go into the checkpoint, so a run that is interrupted and resumed produces the same history,
bit for bit on CPU, as one that never stopped. Checkpoints live in `mmlab.checkpoint`.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mmlab import _checks
from mmlab.checkpoint import CheckpointError, capture_rng, load_checkpoint, restore_rng, save_checkpoint
from mmlab.train.callbacks import Callback, _overrides
from mmlab.train.diagnose import GradientNorms, report
from mmlab.train.diagnose import diagnose as run_diagnose
from mmlab.train.evaluate import _is_dataset, move_to, retrieval_eval
from mmlab.train.history import History, TrainState
from mmlab.utils import get_device, seed_everything

try:  # the constants live with the losses; same values if that module is unavailable
    from mmlab.losses import MAX_LOGIT_SCALE, MIN_LOGIT_SCALE
except ImportError:  # pragma: no cover
    MAX_LOGIT_SCALE, MIN_LOGIT_SCALE = math.log(100), -math.log(100)

__all__ = ["fit", "PRECISIONS", "OPTIMIZERS"]

PRECISIONS = ("auto", "fp32", "bf16")
OPTIMIZERS = ("adamw", "adam", "sgd")
_FLUSH_EVERY = 25  # steps between reads of the logged loss when check_finite=False (one sync each)


def _temperature(objs: Sequence[Any]) -> Tensor | float | None:
    """τ from `.temperature` or `.logit_scale` on the model, `model.loss` or the loss module."""
    for obj in objs:
        t = getattr(obj, "temperature", None)
        if isinstance(t, (Tensor, int, float)) and not isinstance(t, bool):
            return t.detach().float() if isinstance(t, Tensor) else float(t)
    for obj in objs:
        ls = getattr(obj, "logit_scale", None)
        if isinstance(ls, Tensor) and ls.numel() == 1:
            return torch.exp(-ls.detach().float())
    return None


def _clamp_actions(modules: Sequence[nn.Module]) -> list[Callable[[], None]]:
    """After each step: call `m.clamp_()` on modules that define it; clamp any other parameter
    named `logit_scale` to [MIN_LOGIT_SCALE, MAX_LOGIT_SCALE]."""
    actions: list[Callable[[], None]] = []
    seen: set[int] = set()
    for root in modules:
        for m in root.modules():
            if id(m) in seen:
                continue
            seen.add(id(m))
            if callable(getattr(m, "clamp_", None)):
                actions.append(m.clamp_)
                continue
            p = m._parameters.get("logit_scale")
            if p is not None and p.requires_grad:
                actions.append(lambda p=p: p.data.clamp_(min=MIN_LOGIT_SCALE, max=MAX_LOGIT_SCALE))
    return actions


def _make_optimizer(name: str, modules: Sequence[nn.Module], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Weight decay on matrices only: biases, norms and `logit_scale` are not decayed (as in CLIP)."""
    decay, no_decay, seen = [], [], set()
    for root in modules:
        for pname, p in root.named_parameters():
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            (decay if p.ndim >= 2 and not pname.endswith("logit_scale") else no_decay).append(p)
    if not seen:
        raise ValueError("`model` has no trainable parameters (requires_grad=True); nothing to fit.")
    groups = [g for g in ({"params": decay, "weight_decay": weight_decay},
                          {"params": no_decay, "weight_decay": 0.0}) if g["params"]]
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr)
    return torch.optim.SGD(groups, lr=lr, momentum=0.9)


def _unpack(out: Any, where: str) -> tuple[Tensor, dict[str, Any]]:
    if isinstance(out, Tensor):
        loss, terms = out, {}
    elif hasattr(out, "loss") and isinstance(getattr(out, "loss"), Tensor):
        loss, terms = out.loss, dict(getattr(out, "terms", None) or {})
    else:
        raise TypeError(f"{where} must return a LossOutput or a scalar tensor, got {type(out).__name__}.")
    if loss.numel() != 1:
        raise ValueError(f"{where} returned a loss of shape {tuple(loss.shape)}; it must be a scalar "
                         "(reduce it with .mean()).")
    return loss.reshape(()), terms


def _rows(batch: Any) -> int | None:
    """Rows of a batch dict (the first tensor's or list's length), or None."""
    for value in (batch.values() if isinstance(batch, Mapping) else ()):
        if isinstance(value, (Tensor, list)) and len(value) > 0:
            return len(value)
    return None


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7_919 + 12_345) % (2**63 - 1)


def _epoch_iterator(data: Any, is_ds: bool, batch_size: int, drop_last: bool,
                    gen_state: Tensor, skip: int) -> Iterator[Any]:
    """The batches of one epoch, in an order fixed by `gen_state`, with the first `skip` dropped.

    Datasets shuffle with a generator set to `gen_state`. Other iterables (a DataLoader) are
    started with the global RNG seeded from `gen_state` inside `fork_rng`, so a shuffling
    DataLoader draws the same order for the same (seed, epoch) and the training RNG is untouched.
    """
    if is_ds:
        gen = torch.Generator()
        gen.set_state(gen_state)
        it = iter(data.batches(batch_size, shuffle=True, generator=gen, drop_last=drop_last))
        return itertools.islice(it, skip, None)
    with torch.random.fork_rng(devices=[]):
        gen = torch.Generator()
        gen.set_state(gen_state)
        torch.manual_seed(int(torch.randint(2**62, (1,), generator=gen)))
        it = iter(data)
        head = list(itertools.islice(it, skip + 1))[skip:]  # starting it draws the sampler seed
    return itertools.chain(head, it)


def _validate(model, train_data, loss, epochs, steps, batch_size, lr, weight_decay, optimizer, precision,
              callbacks, seed, eval_data, eval_fn, eval_every, checkpoint, checkpoint_every, clip_grad_norm):
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}.")
    if isinstance(train_data, (Mapping, Tensor, str, bytes)) or not (
            _is_dataset(train_data) or isinstance(train_data, Iterable)):
        hint = " Wrap a single batch in a list: `[batch]`." if isinstance(train_data, Mapping) else ""
        raise TypeError("`train_data` must be a mmlab.data.MultimodalDataset or an iterable of batch "
                        f"dicts (e.g. a DataLoader), got {type(train_data).__name__}.{hint}")
    if loss is not None and not callable(loss):
        raise TypeError(f"`loss` must be None or a callable loss(model, batch), got {type(loss).__name__}.")
    if (epochs is None) == (steps is None):
        raise ValueError(f"Pass exactly one of `epochs` and `steps` (got epochs={epochs!r}, steps={steps!r}); "
                         "e.g. fit(model, data, steps=500).")
    if epochs is not None:
        _checks.check_int("epochs", epochs)
    if steps is not None:
        _checks.check_int("steps", steps)
    _checks.check_int("batch_size", batch_size)
    _checks.check_positive("lr", lr, hint="Typical Adam learning rates are 1e-4 to 1e-2.")
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) or not weight_decay >= 0:
        raise ValueError(f"`weight_decay` must be a number ≥ 0, got {weight_decay!r}.")
    _checks.check_choice("optimizer", optimizer, OPTIMIZERS)
    _checks.check_choice("precision", precision, PRECISIONS)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"`seed` must be an int, got {type(seed).__name__}.")
    for i, cb in enumerate(callbacks):
        if not any(callable(getattr(cb, n, None)) for n in ("on_start", "on_step", "on_eval", "on_end")):
            raise TypeError(f"`callbacks[{i}]` ({type(cb).__name__}) has none of on_start/on_step/on_eval/on_end; "
                            "subclass mmlab.train.Callback.")
    if eval_fn is not None and not callable(eval_fn):
        raise TypeError(f"`eval_fn` must be callable eval_fn(model, eval_data) -> dict, got {type(eval_fn).__name__}.")
    if eval_every is not None:
        _checks.check_int("eval_every", eval_every)
        if eval_data is None:
            raise ValueError("`eval_every` is set but `eval_data` is None; pass eval_data=... .")
    if checkpoint_every is not None:
        _checks.check_int("checkpoint_every", checkpoint_every)
        if checkpoint is None:
            raise ValueError("`checkpoint_every` is set but `checkpoint` is None; pass checkpoint='run.pt'.")
    if clip_grad_norm is not None:
        _checks.check_positive("clip_grad_norm", clip_grad_norm)


def fit(model: nn.Module, train_data: Any, *, loss: Callable[[nn.Module, Any], Any] | None = None,
        epochs: int | None = None, steps: int | None = None, batch_size: int = 256, lr: float = 1e-3,
        weight_decay: float = 0.0, optimizer: str = "adamw", device: str | torch.device = "auto",
        precision: str = "auto", callbacks: Sequence[Any] = (), seed: int = 0, eval_data: Any = None,
        eval_fn: Callable[[nn.Module, Any], dict[str, float]] | None = None, eval_every: int | None = None,
        checkpoint: str | Path | None = None, checkpoint_every: int | None = None, resume: bool = True,
        progress: bool = True, check_finite: bool = True, clip_grad_norm: float | None = None,
        drop_last: bool = True, diagnose: bool = False) -> History:
    """Train `model` on `train_data` and return its `History`.

    Args:
        model: the module; `model(batch)` returns a LossOutput or a scalar loss (when `loss` is None).
            fit moves it to the device.
        train_data: a MultimodalDataset (moved to the device once, batches index-sliced there) or
            an iterable of batch dicts such as a DataLoader (moved batch by batch).
        loss: optional `loss(model, batch) -> LossOutput | Tensor`. If it is an nn.Module, its
            parameters are trained and checkpointed too.
        epochs: number of passes over the data (give exactly one of epochs/steps).
        steps: number of optimizer steps (epochs repeat as needed).
        batch_size: rows per batch for datasets (capped at the dataset size); ignored for iterables.
        lr: learning rate (constant).
        weight_decay: decoupled weight decay on weight matrices (not biases, norms, logit_scale).
        optimizer: "adamw", "adam" or "sgd" (momentum 0.9).
        device: "auto" (`mmlab.get_device()`) or a device.
        precision: "auto" (bf16 autocast on CUDA, fp32 elsewhere), "fp32" or "bf16".
        callbacks: objects with optional on_start/on_step/on_eval/on_end(state) (see `Callback`).
        seed: seeds torch at the start and fixes the data order of every epoch.
        eval_data: evaluation data for `eval_fn` (default `retrieval_eval`).
        eval_fn: `eval_fn(model, eval_data) -> dict[str, float]`, run every `eval_every` steps and
            at the end; it runs under `fork_rng`, so it never changes the training RNG stream.
        eval_every: steps between evaluations.
        checkpoint: file to save to (every `checkpoint_every` steps, at the end and on Ctrl-C).
        checkpoint_every: steps between checkpoints.
        resume: if `checkpoint` exists, continue from it (a finished run returns at once).
        progress: show a tqdm progress bar with the loss and τ.
        check_finite: stop with FloatingPointError on a NaN/Inf loss. Reads the loss every step
            (one device sync per step on a GPU); with False, losses are read every 25 steps.
        clip_grad_norm: clip the total gradient norm to this value.
        drop_last: drop a ragged last batch of each epoch (datasets only; contrastive losses
            are noisy on tiny batches).
        diagnose: log each tower's gradient norm and, at the end, print what
            `mmlab.train.diagnose` finds (loss at log B, τ at its clamp, collapse, a tower not
            learning); call `diagnose(history, model, data, grad_norms=...)` yourself for the list.
            Like any on_step callback it makes fit read the loss every step (a device sync on GPUs).
    Returns:
        The History (resumed runs include the steps from before the interrupt).
    Raises:
        FloatingPointError: the loss became NaN/Inf (the message names the step, τ and lr).
        KeyboardInterrupt: re-raised after saving a checkpoint of the last completed step
            (when `checkpoint` is set); rerun the same call to resume.
    """
    callbacks = list(callbacks)
    if not isinstance(diagnose, bool):
        raise TypeError(f"`diagnose` must be True or False, got {diagnose!r}.")
    grad_log = GradientNorms() if diagnose else None
    if grad_log is not None:
        callbacks.append(grad_log)
    _validate(model, train_data, loss, epochs, steps, batch_size, lr, weight_decay, optimizer, precision,
              callbacks, seed, eval_data, eval_fn, eval_every, checkpoint, checkpoint_every, clip_grad_norm)
    dev = get_device(device if not isinstance(device, torch.device) else str(device))
    bf16 = precision == "bf16" or (precision == "auto" and dev.type == "cuda")
    autocast = (lambda: torch.autocast(device_type=dev.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    if eval_data is not None and eval_fn is None:
        eval_fn = retrieval_eval

    model.to(dev)
    loss_module = loss if isinstance(loss, nn.Module) else None
    if loss_module is not None:
        loss_module.to(dev)
    modules = [model] + ([loss_module] if loss_module is not None else [])
    is_ds = _is_dataset(train_data)
    data = train_data.to(dev) if is_ds else train_data
    if is_ds:
        batch_size = min(batch_size, len(data))
    if eval_data is not None and _is_dataset(eval_data):
        eval_data = eval_data.to(dev)
    opt = _make_optimizer(optimizer, modules, lr, weight_decay)
    clamps = _clamp_actions(modules)
    config = {"seed": seed, "batch_size": batch_size, "drop_last": drop_last}

    history, step, epoch, in_epoch, gen_state = History(), 0, 0, 0, None
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and resume and ckpt.exists():
        info = load_checkpoint(ckpt, model, opt)
        fit_state = (info["extra"] or {}).get("fit")
        if fit_state is None:
            raise CheckpointError(f"'{ckpt}' has no training state (saved outside fit); pass resume=False "
                                  "to start over, or load it with load_checkpoint.")
        if loss_module is not None and fit_state.get("loss_state") is not None:
            loss_module.load_state_dict(fit_state["loss_state"])
        saved = fit_state["config"]
        if saved != config:
            warnings.warn(f"Resuming '{ckpt}' saved with {saved} but called with {config}: the data order "
                          "differs from the original run, so the resumed run will not match it exactly.")
        history = info["history"] or History()
        step, epoch, in_epoch = info["step"], fit_state["epoch"], fit_state["batch_in_epoch"]
        gen_state = fit_state["shuffle_state"]
        restore_rng(info["rng"])
    else:
        seed_everything(seed)

    state = TrainState(model=model, optimizer=opt, history=history, step=step, epoch=epoch, lr=lr)
    pending: list[tuple] = []  # (step, epoch, loss, τ, terms) not yet read back from the device
    step_callbacks = [cb for cb in callbacks if _overrides(cb, "on_step") or not isinstance(cb, Callback)]
    total = steps if steps is not None else (epochs * (len(data) // batch_size) if is_ds and drop_last else
                                             epochs * len(data) if hasattr(data, "__len__") and not is_ds else None)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=total, initial=step, desc="fit", unit="step", dynamic_ncols=True)

    def flush() -> None:
        for s, e, lv, tv, terms in pending:
            history.step.append(s)
            history.epoch.append(e)
            history.loss.append(float(lv))
            history.temperature.append(None if tv is None else float(tv))
            history.terms.append({k: float(v) for k, v in terms.items()})
        pending.clear()
        if history.loss:
            state.loss, state.temperature = history.loss[-1], history.temperature[-1]
            if bar is not None:
                tau = state.temperature
                bar.set_postfix(loss=f"{state.loss:.4f}", τ="–" if tau is None else f"{tau:.4f}", refresh=False)

    def evaluate() -> None:
        flush()
        was_training = model.training
        with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []), autocast():
            metrics = eval_fn(model, eval_data)
        model.train(was_training)
        if not isinstance(metrics, Mapping):
            raise TypeError(f"`eval_fn` must return a dict of floats, got {type(metrics).__name__}.")
        history.evals.append({"step": step, **{k: float(v) for k, v in metrics.items()}})
        state.metrics = dict(history.evals[-1])
        for cb in callbacks:
            if callable(getattr(cb, "on_eval", None)):
                cb.on_eval(state)

    def save(rng: dict | None = None) -> None:
        flush()
        history.seconds = seconds0 + time.perf_counter() - t0
        extra = {"fit": {"epoch": epoch, "batch_in_epoch": in_epoch, "shuffle_state": gen_state,
                         "config": config,
                         "loss_state": loss_module.state_dict() if loss_module is not None else None}}
        save_checkpoint(ckpt, model, opt, step=step, history=history, extra=extra, rng=rng)

    seconds0, t0 = history.seconds, time.perf_counter()
    start_step, phase, rng_before = step, "done", None
    model.train()
    for cb in callbacks:
        if callable(getattr(cb, "on_start", None)):
            cb.on_start(state)
    try:
        while (steps is None or step < steps) and (epochs is None or epoch < epochs) and not state.stop:
            if gen_state is None:
                gen_state = torch.Generator().manual_seed(_epoch_seed(seed, epoch)).get_state()
            got_any = in_epoch > 0
            for batch in _epoch_iterator(data, is_ds, batch_size, drop_last, gen_state, in_epoch):
                got_any, phase = True, "forward"
                rng_before = capture_rng() if ckpt is not None else None
                if not is_ds:
                    batch = move_to(batch, dev)
                with autocast():
                    out = model(batch) if loss is None else loss(model, batch)
                loss_t, terms = _unpack(out, "model(batch)" if loss is None else "loss(model, batch)")
                if history.batch_size is None:
                    history.batch_size = _rows(batch)
                lv: Any = loss_t.detach()
                if check_finite:
                    lv = float(lv)
                    if not math.isfinite(lv):
                        tau = _temperature([model, getattr(model, "loss", None), loss_module])
                        tau_s = "unknown" if tau is None else f"{float(tau):.4g}"
                        raise FloatingPointError(
                            f"The loss is {lv} at step {step + 1} (epoch {epoch}) with temperature τ = "
                            f"{tau_s} and lr = {lr:g}. Likely causes: τ too small (logits overflow; clamp "
                            "or raise τ), lr too high (lower it, or set clip_grad_norm=1.0), or NaN in "
                            "the inputs. The model holds the weights of the last finite step.")
                opt.zero_grad(set_to_none=True)
                loss_t.backward()
                if clip_grad_norm is not None:
                    nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], clip_grad_norm)
                phase = "update"
                opt.step()
                with torch.no_grad():
                    for clamp in clamps:
                        clamp()
                phase = "done"
                step, in_epoch = step + 1, in_epoch + 1
                tau = _temperature([model, getattr(model, "loss", None), loss_module])
                pending.append((step, epoch, lv,
                                tau.detach() if isinstance(tau, Tensor) else tau,
                                {k: (v.detach() if isinstance(v, Tensor) else v) for k, v in terms.items()}))
                state.step, state.epoch = step, epoch
                if bar is not None:
                    bar.update(1)
                if step_callbacks or step % _FLUSH_EVERY == 0 or (check_finite and bar is not None):
                    flush()
                if eval_every is not None and step % eval_every == 0:
                    evaluate()
                for cb in step_callbacks:
                    if callable(getattr(cb, "on_step", None)):
                        cb.on_step(state)
                if checkpoint_every is not None and step % checkpoint_every == 0:
                    save()
                if (steps is not None and step >= steps) or state.stop:
                    break
            else:
                if not got_any:
                    raise ValueError("`train_data` yielded no batches in an epoch; is it empty, or a "
                                     "one-shot generator? Pass a dataset or a re-iterable DataLoader.")
                epoch, in_epoch, gen_state = epoch + 1, 0, None
                state.epoch = epoch
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        if ckpt is not None:
            if phase == "update":
                warnings.warn(f"Interrupted inside an optimizer update; the weights are half-updated, so "
                              f"'{ckpt}' keeps its last periodic save.")
            else:
                save(rng_before if phase == "forward" else None)
        flush()
        raise
    flush()
    if eval_fn is not None and eval_data is not None and (not history.evals or history.evals[-1]["step"] != step):
        evaluate()
    history.seconds = seconds0 + time.perf_counter() - t0
    if ckpt is not None and (step != start_step or not ckpt.exists()):
        save()
    if bar is not None:
        bar.close()
    for cb in callbacks:
        if callable(getattr(cb, "on_end", None)):
            cb.on_end(state)
    if grad_log is not None:
        embed = is_ds and callable(getattr(model, "encode", None))  # collapse needs embeddings of a dataset
        print(report(run_diagnose(history, model if embed else None, data if embed else None, grad_norms=grad_log)))
    return history

