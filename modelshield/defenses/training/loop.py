"""The one training loop behind every method: epochs, validation, early stopping, checkpoints.

Data moves to the model's device once; minibatches are index gathers there, losses are summed
on the device and read back once per epoch, so the loop adds no host round trip per step.
Forwards go through the model adapter, so its normalisation and fast path (bf16 autocast,
channels-last: ``TorchModel.use_fast_path``) apply to training as they do to attacks.

A ``data_observer`` sees what the loop reads (a data-access monitor, such as
``modelshield.monitor.training.DataAccessMonitor``, which this layer does not import): it is given
the training labels before the first epoch, then each batch's positions into them and each epoch's end.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import Tensor

from modelshield.core.datasets import Dataset
from modelshield.core.errors import CapabilityError, InputError
from modelshield.core.model import Model, TorchModel
from modelshield.defenses.training.checkpoint import LoopState, has_checkpoint, load_checkpoint, save_checkpoint
from modelshield.defenses.training.config import TrainConfig
from modelshield.defenses.training.evaluation import accuracies
from modelshield.defenses.training.history import EpochRecord, TrainResult
from modelshield.defenses.training.step import Step, frozen

if TYPE_CHECKING:
    from modelshield.defenses.training.trainer import Trainer


class DataObserver(Protocol):
    """What a training loop reports to a data-access monitor."""

    def start(self, labels: Tensor, epoch: int = 0) -> None:
        """Before the first epoch: the labels of the data trained on (their count is the dataset size), and the
        epoch the loop starts at (a resumed run's checkpoint epoch)."""

    def record_batch(self, indices: Tensor) -> None:
        """One batch, as the positions (on the CPU) of its samples in the training data."""

    def end_epoch(self) -> object:
        """The epoch is over (its checks may run now)."""


def _optimizer(cfg: TrainConfig, module: torch.nn.Module) -> torch.optim.Optimizer:
    params = list(module.parameters())
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _split(n: int, cfg: TrainConfig, has_validation_set: bool) -> tuple[Tensor, Tensor]:
    """Training and held-out indices, drawn from their own seeded generator (independent of training)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed + 7919))
    n_val = 0 if has_validation_set else int(round(n * cfg.val_fraction))
    if n_val and n - n_val < 1:
        raise InputError(f"val-fraction {cfg.val_fraction} leaves no training data out of {n} samples")
    return perm[n_val:], perm[:n_val]


class _Bars:
    """Rich progress bars (epochs and the current epoch's batches), or nothing when disabled."""

    def __init__(self, enabled: bool, method: str, epochs: int, done: int, batches: int) -> None:
        self._progress: Any = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._epochs = self._progress.add_task(f"{method} epochs", total=epochs, completed=done, info="")
        self._batches = self._progress.add_task("batches", total=batches, info="")

    @contextmanager
    def shown(self) -> Iterator[_Bars]:
        if self._progress is None:
            yield self
            return
        with self._progress:
            yield self

    def batch(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._batches)

    def epoch(self, record: EpochRecord) -> None:
        if self._progress is None:
            return
        info = f"loss {record.loss:.3f}"
        if record.robust_accuracy is not None:
            info += f" · val robust {record.robust_accuracy:.1%}"
        elif record.clean_accuracy is not None:
            info += f" · val clean {record.clean_accuracy:.1%}"
        self._progress.update(self._epochs, advance=1, info=info)
        self._progress.reset(self._batches)


def _check(model: Model, train: Dataset, validation: Dataset | None) -> None:
    if not isinstance(model, TorchModel):
        raise CapabilityError(
            f"robust training needs a PyTorch model, got {type(model).__name__}",
            hint="wrap the network in modelshield.core.model.TorchModel",
        )
    model.check_inputs(train.x, train.y)
    if validation is not None:
        model.check_inputs(validation.x, validation.y)
    if not any(True for _ in model.module.parameters()):
        raise InputError("the network has no parameters to train")


def run_training(
    trainer: Trainer,
    model: TorchModel,
    train: Dataset,
    config: TrainConfig | None = None,
    *,
    validation: Dataset | None = None,
    data_observer: DataObserver | None = None,
) -> TrainResult:
    """Train ``model``'s network in place with ``trainer``; see :class:`TrainConfig` for the knobs.

    ``data_observer`` is told every batch read (see :class:`DataObserver`).
    """
    cfg = config or TrainConfig()
    cfg.validate()
    _check(model, train, validation)
    device, module = model.device, model.module
    x_all, y_all = train.x.to(device), train.y.to(device)
    train_idx, val_idx = _split(len(train), cfg, validation is not None)
    train_idx = train_idx.to(device)
    if validation is not None:
        x_val, y_val = validation.x.to(device), validation.y.to(device)
    else:
        x_val, y_val = x_all[val_idx.to(device)], y_all[val_idx.to(device)]
    has_val = x_val.shape[0] > 0
    val_eps = cfg.val_eps if cfg.val_eps is not None else trainer.eps
    if cfg.patience is not None and not has_val:
        raise InputError("early stopping needs validation data: set val-fraction > 0 or pass a validation set")

    fingerprint = {
        "method": trainer.name,
        "params": trainer.params(),
        "config": cfg.trajectory(),
        "data": {
            "n": len(train),
            "shape": list(train.x.shape[1:]),
            "label_sum": int(train.y.sum()),
            "validation": int(x_val.shape[0]),
        },
    }
    shuffle = torch.Generator().manual_seed(cfg.seed)
    optimizer = _optimizer(cfg, module)
    config_record = {k: (str(v) if k == "checkpoint_dir" and v is not None else v) for k, v in asdict(cfg).items()}
    state = LoopState(
        0, TrainResult(trainer.name, trainer.params(), config_record, val_eps=val_eps if has_val else None)
    )
    folder = cfg.checkpoint_dir
    resuming = folder is not None and has_checkpoint(folder)
    if resuming and not cfg.resume:
        raise InputError(
            f"{folder} already holds a training checkpoint", hint="pass resume to continue it, or pick another folder"
        )

    threads = torch.get_num_threads()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    module.train()
    for p in module.parameters():
        p.requires_grad_(True)
    step = Step(model, optimizer)
    n_batches = -(-int(train_idx.shape[0]) // cfg.batch_size)
    try:
        if resuming:
            assert folder is not None
            state, method_tensors = load_checkpoint(
                folder, module=module, optimizer=optimizer, shuffle=shuffle, fingerprint=fingerprint
            )
            state.result.resumed_from_epoch = state.epoch
            state.result.config = config_record
            trainer.load_state_tensors(model, method_tensors)
        else:
            torch.manual_seed(cfg.seed)
            trainer.prepare(model, Dataset(x_all[train_idx], y_all[train_idx], train.name, train.bounds), cfg)
        bars = _Bars(cfg.progress, trainer.name, cfg.epochs, state.epoch, n_batches)
        observer = data_observer
        if observer is not None:
            observer.start(y_all[train_idx].cpu(), epoch=state.epoch)
        with bars.shown():
            while state.epoch < cfg.epochs and not state.result.stopped_early:
                start = time.perf_counter()
                loss, lr = _epoch(trainer, step, cfg, state.epoch, bars, x_all, y_all, train_idx, shuffle, observer)
                clean = robust = None
                if has_val:
                    with frozen(model):
                        clean, robust = accuracies(model, x_val, y_val, eps=val_eps, steps=cfg.val_steps, seed=cfg.seed)
                state.epoch += 1
                record = EpochRecord(state.epoch, loss, clean, robust, lr, round(time.perf_counter() - start, 4))
                state.result.history.append(record)
                if has_val:
                    _track_best(state, cfg, module)
                bars.epoch(record)
                last = state.epoch >= cfg.epochs or state.result.stopped_early
                if folder is not None and (state.epoch % cfg.checkpoint_every == 0 or last):
                    save_checkpoint(
                        folder,
                        module=module,
                        optimizer=optimizer,
                        method_tensors=trainer.state_tensors(),
                        shuffle=shuffle,
                        state=state,
                        fingerprint=fingerprint,
                    )
    finally:
        torch.set_num_threads(threads)
        module.eval()
        for p in module.parameters():
            p.requires_grad_(False)
    if cfg.restore_best and state.best_weights is not None and state.result.best_epoch != state.epoch:
        module.load_state_dict(state.best_weights)
    return state.result


def _epoch(
    trainer: Trainer,
    step: Step,
    cfg: TrainConfig,
    epoch: int,
    bars: _Bars,
    x_all: Tensor,
    y_all: Tensor,
    train_idx: Tensor,
    shuffle: torch.Generator,
    observer: DataObserver | None,
) -> tuple[float, float]:
    """One pass over the training data in shuffled minibatches; returns the mean loss and the last lr."""
    n_train = int(train_idx.shape[0])
    n_batches = -(-n_train // cfg.batch_size)
    positions = shuffled_positions(n_train, shuffle)
    order = train_idx[positions.to(train_idx.device)]
    loss_sum = torch.zeros((), device=x_all.device)
    lr = cfg.lr
    for b in range(n_batches):
        idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
        lr = cfg.lr_at((epoch + b / n_batches) / cfg.epochs)
        for group in step.optimizer.param_groups:
            group["lr"] = lr
        if observer is not None:
            observer.record_batch(positions[b * cfg.batch_size : (b + 1) * cfg.batch_size])
        loss_sum += trainer.train_batch(step, x_all[idx], y_all[idx]) * idx.shape[0]
        bars.batch()
    if observer is not None:
        observer.end_epoch()
    return round(float(loss_sum) / n_train, 6), lr


def shuffled_positions(n: int, generator: torch.Generator) -> Tensor:
    """This epoch's order of the ``n`` training samples (a uniform random permutation, on the CPU)."""
    return torch.randperm(n, generator=generator)


def _track_best(state: LoopState, cfg: TrainConfig, module: torch.nn.Module) -> None:
    """Early stopping on validation robust accuracy (clean accuracy when no ε is set)."""
    record = state.result.history[-1]
    metric = record.robust_accuracy if record.robust_accuracy is not None else record.clean_accuracy
    assert metric is not None
    if state.best_metric is None or metric > state.best_metric + cfg.min_delta:
        state.best_metric, state.bad_epochs = metric, 0
        state.result.best_epoch = record.epoch
        if cfg.restore_best:
            state.best_weights = {k: v.detach().clone() for k, v in module.state_dict().items()}
    else:
        state.bad_epochs += 1
        if cfg.patience is not None and state.bad_epochs >= cfg.patience:
            state.result.stopped_early = True
