"""The training loop `fit`: one loop for every model in the course.

Each step: forward under autocast, unpack the loss, backward, optional gradient clipping,
optimizer step, then the temperature clamp of CLIP (Radford et al., 2021): a learnable
`logit_scale = log(1/τ)` is clamped to `MAX_LOGIT_SCALE = log(100)` (τ ≥ 0.01). The step's loss,
τ and loss terms are logged as device tensors and read in batches (`TrainState`), so the loop
never waits for the GPU. Everything else is a callback: evaluation (`Evaluator`), checkpoints,
resume and Ctrl-C (`Checkpointer`), the progress bar (`ProgressBar`); the finite-loss check
(`FiniteCheck`) runs on each read. The settings are a `TrainConfig`.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mmlab.losses import MAX_LOGIT_SCALE
from mmlab.train.callbacks import HOOKS
from mmlab.train.checkpointer import Checkpointer
from mmlab.train.config import OPTIMIZERS, PRECISIONS, READ_EVERY_ACCELERATOR, TrainConfig
from mmlab.train.data_order import epoch_batches, epoch_generator_state
from mmlab.train.diagnose import DiagnoseAtEnd
from mmlab.train.evaluate import Evaluator, retrieval_eval
from mmlab.train.finite import FiniteCheck
from mmlab.train.history import History
from mmlab.train.interrupts import held_interrupts
from mmlab.train.optim import TemperatureProbe, clamp_actions, make_optimizer
from mmlab.train.progress import ProgressBar
from mmlab.train.state import TrainState
from mmlab.utils import get_device, is_dataset, move_to, seed_everything

__all__ = ["fit", "TrainedModelWarning", "PRECISIONS", "OPTIMIZERS", "MAX_LOGIT_SCALE"]


class TrainedModelWarning(UserWarning):
    """`fit` was called on a model that an earlier `fit` call already trained."""


warnings.simplefilter("always", TrainedModelWarning)  # a rerun cell must say it every time


EvalFn = Callable[[nn.Module, Any], Mapping[str, float]]


def fit(model: nn.Module, train_data: Any, config: TrainConfig | None = None, *,
        loss: Callable[[nn.Module, Any], Any] | None = None, callbacks: Sequence[Any] = (),
        eval_data: Any = None, eval_fn: EvalFn | None = None, **options: Any) -> History:
    """Train `model` on `train_data` and return its `History`.

    Args:
        model: the module; `model(batch)` returns a LossOutput or a scalar loss (when `loss` is
            None). fit moves it to the device.
        train_data: a MultimodalDataset (moved to the device once, batches index-sliced there)
            or an iterable of batch dicts such as a DataLoader (moved batch by batch).
        config: a `TrainConfig`; `**options` (its field names: steps, lr, batch_size, ...)
            build one or replace its fields, so `fit(model, data, steps=500)` works.
        loss: optional `loss(model, batch) -> LossOutput | Tensor`. If it is an nn.Module, its
            parameters are trained and checkpointed too.
        callbacks: objects with some of the hooks of `Callback`.
        eval_data: evaluation data for `eval_fn` (default `retrieval_eval`), run every
            `eval_every` steps and at the end, under `fork_rng` (the training RNG is untouched).
        eval_fn: `eval_fn(model, eval_data) -> dict[str, float]`.
    Returns:
        The History (resumed runs include the steps from before the interrupt).
    Raises:
        FloatingPointError: the loss became NaN/Inf (the message names the step, τ and lr).
        KeyboardInterrupt: re-raised after saving a checkpoint of the last completed step
            (when `checkpoint` is set); rerun the same call to resume.
    """
    cfg = TrainConfig.merge(config, options)
    _check_inputs(model, train_data, loss, callbacks, eval_data, eval_fn, cfg)
    device = get_device(str(cfg.device) if isinstance(cfg.device, torch.device) else cfg.device)
    loss_module = loss.to(device) if isinstance(loss, nn.Module) else None
    modules = [model.to(device)] + ([loss_module] if loss_module is not None else [])
    data = train_data.to(device) if is_dataset(train_data) else train_data
    batch_size = min(cfg.batch_size, len(data)) if is_dataset(data) else cfg.batch_size
    optimizer = make_optimizer(cfg.optimizer, modules, cfg.lr, cfg.weight_decay)
    clamps = clamp_actions(modules)
    params = [p for group in optimizer.param_groups for p in group["params"]]  # trainable, once
    probe = TemperatureProbe([model, getattr(model, "loss", None), loss_module])
    state = TrainState(model, optimizer, cfg, probe)
    read_every = cfg.read_every or (1 if device.type == "cpu" else READ_EVERY_ACCELERATOR)
    finite = FiniteCheck(modules, read_every) if cfg.check_finite else None
    state.on_read = finite
    autocast = _autocast(cfg.precision, device)
    state.callbacks = _callbacks(cfg, callbacks, data, batch_size, eval_data, eval_fn,
                                 loss_module, autocast, device)
    forward = model if loss is None else functools.partial(loss, model)
    where = "model(batch)" if loss is None else "loss(model, batch)"
    seed_everything(cfg.seed)
    checkpointer = next((c for c in state.callbacks if isinstance(c, Checkpointer)), None)
    try:
        resumed = checkpointer is not None and checkpointer.restore(state)
        _warn_if_trained_before(model, resumed)
        if finite is not None:
            finite.remember(state)  # the weights to put back if the first steps go non-finite
        state.emit("on_start")
        state.phase = "step"
        while not _finished(state, cfg):
            if state.shuffle_state is None:
                state.shuffle_state = epoch_generator_state(cfg.seed, state.epoch)
            got_any = state.batch_in_epoch > 0
            for batch in epoch_batches(data, is_dataset(data), batch_size, cfg.drop_last,
                                       state.shuffle_state, state.batch_in_epoch):
                got_any = True
                state.emit("on_step_start")
                state.phase = "forward"
                batch = batch if is_dataset(data) else move_to(batch, device)
                with autocast():
                    loss_t, terms = _unpack(forward(batch), where)  # a 0-d tensor, its parts
                _note_batch_size(state, batch)
                state.record_loss(loss_t, terms)
                if (state.step + 1) % read_every == 0:  # one host read: losses, τ, terms
                    state.read_values()  # the finite check runs here
                    if finite is not None:
                        finite.remember(state)
                optimizer.zero_grad(set_to_none=True)
                loss_t.backward()
                if cfg.clip_grad_norm is not None:
                    nn.utils.clip_grad_norm_(params, cfg.clip_grad_norm)
                with held_interrupts():  # Ctrl-C waits: never a half-updated model
                    optimizer.step()
                    with torch.no_grad():
                        for clamp in clamps:
                            clamp()
                    state.record_temperature()
                    state.step, state.batch_in_epoch = state.step + 1, state.batch_in_epoch + 1
                    state.phase = "step"
                state.emit("on_step")
                if state.stop or (cfg.steps is not None and state.step >= cfg.steps):
                    break
            else:
                if not got_any:
                    raise ValueError("`train_data` yielded no batches in an epoch; is it empty, or "
                                     "a one-shot generator? Pass a dataset or a re-iterable "
                                     "DataLoader.")
                with held_interrupts():  # the next epoch starts at its first batch
                    state.epoch, state.batch_in_epoch, state.shuffle_state = (
                        state.epoch + 1, 0, None)
        state.phase = "end"
        state.emit("on_end")
    except KeyboardInterrupt:
        state.emit("on_interrupt")
        raise
    finally:
        model.__dict__["_mmlab_fit_steps"] = state.step  # a later fit call on it warns
        for bar in (c for c in state.callbacks if isinstance(c, ProgressBar)):
            bar.close()  # also when an error stops the run (closing twice is a no-op)
    history = state.history
    history.seconds = state.elapsed()
    return history


def _finished(state: TrainState, cfg: TrainConfig) -> bool:
    return state.stop or (cfg.steps is not None and state.step >= cfg.steps) or (
        cfg.epochs is not None and state.epoch >= cfg.epochs)


def _unpack(out: Any, where: str) -> tuple[Tensor, dict[str, Any]]:
    """(loss, terms) from a LossOutput or a scalar tensor."""
    if isinstance(out, Tensor):
        loss, terms = out, {}
    elif hasattr(out, "loss") and isinstance(getattr(out, "loss"), Tensor):
        loss, terms = out.loss, dict(getattr(out, "terms", None) or {})
    else:
        raise TypeError(f"{where} must return a LossOutput or a scalar tensor, "
                        f"got {type(out).__name__}.")
    if loss.numel() != 1:
        raise ValueError(f"{where} returned a loss of shape {tuple(loss.shape)}; it must be a "
                         "scalar (reduce it with .mean()).")
    return loss.reshape(()), terms


def _note_batch_size(state: TrainState, batch: Any) -> None:
    """History.batch_size: the rows of the first batch (B, for log B: the loss at chance)."""
    history = state.history_read
    if history.batch_size is None and isinstance(batch, Mapping):
        history.batch_size = next((len(v) for v in batch.values()
                                   if isinstance(v, (Tensor, list)) and len(v) > 0), None)


def _autocast(precision: str, device: torch.device) -> Callable[[], Any]:
    """bf16 autocast on CUDA ("auto") or when asked ("bf16"); otherwise none."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def _callbacks(cfg: TrainConfig, user: Sequence[Any], data: Any, batch_size: int,
               eval_data: Any, eval_fn: Any, loss_module: nn.Module | None,
               autocast: Callable[[], Any], device: torch.device) -> list[Any]:
    """The built-in callbacks around the user's, in the order they run."""
    out: list[Any] = []
    if cfg.progress:
        out.append(ProgressBar(_total_steps(cfg, data, batch_size)))
    if eval_data is not None:
        eval_data = eval_data.to(device) if is_dataset(eval_data) else eval_data
        out.append(Evaluator(eval_fn or retrieval_eval, eval_data, cfg.eval_every, autocast))
    out.extend(user)
    if cfg.diagnose:
        out.append(DiagnoseAtEnd(data if is_dataset(data) else None))
    if cfg.checkpoint is not None:
        run_key = {"seed": cfg.seed, "batch_size": batch_size, "drop_last": cfg.drop_last}
        out.append(Checkpointer(cfg.checkpoint, cfg.checkpoint_every, cfg.resume, run_key,
                                loss_module))
    return out


def _total_steps(cfg: TrainConfig, data: Any, batch_size: int) -> int | None:
    if cfg.steps is not None:
        return cfg.steps
    if is_dataset(data):
        per_epoch = len(data) // batch_size if cfg.drop_last else -(-len(data) // batch_size)
        return cfg.epochs * per_epoch
    return cfg.epochs * len(data) if hasattr(data, "__len__") else None


def _warn_if_trained_before(model: nn.Module, resumed: bool) -> None:
    done = model.__dict__.get("_mmlab_fit_steps", 0)
    if done and not resumed:
        warnings.warn(f"This model was already trained by fit for {done} steps; this call trains "
                      "it further from those weights, not from scratch. To start over, build a "
                      "fresh model; to resume a run exactly, pass checkpoint='run.pt' (a rerun "
                      "then continues where it stopped).", TrainedModelWarning, stacklevel=3)


def _check_inputs(model: Any, train_data: Any, loss: Any, callbacks: Sequence[Any],
                  eval_data: Any, eval_fn: Any, cfg: TrainConfig) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}.")
    if isinstance(train_data, (Mapping, Tensor, str, bytes)) or not (
            is_dataset(train_data) or isinstance(train_data, Iterable)):
        hint = (" Wrap a single batch in a list: `[batch]`."
                if isinstance(train_data, Mapping) else "")
        raise TypeError("`train_data` must be a mmlab.data.MultimodalDataset or an iterable of "
                        f"batch dicts (e.g. a DataLoader), got {type(train_data).__name__}.{hint}")
    if loss is not None and not callable(loss):
        raise TypeError(f"`loss` must be None or a callable loss(model, batch), got "
                        f"{type(loss).__name__}.")
    for i, cb in enumerate(callbacks):
        if not any(callable(getattr(cb, n, None)) for n in HOOKS):
            raise TypeError(f"`callbacks[{i}]` ({type(cb).__name__}) has none of {list(HOOKS)}; "
                            "subclass mmlab.train.Callback.")
    if eval_fn is not None and not callable(eval_fn):
        raise TypeError("`eval_fn` must be callable eval_fn(model, eval_data) -> dict, got "
                        f"{type(eval_fn).__name__}.")
    if cfg.eval_every is not None and eval_data is None:
        raise ValueError("`eval_every` is set but `eval_data` is None; pass eval_data=... .")

