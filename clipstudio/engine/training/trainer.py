"""The Trainer: one fine-tuning run from a TrainConfig to a self-describing run folder.

    trainer = Trainer(cfg, callbacks=[on_event], should_stop=lambda: cancel_requested)
    result = trainer.fit()          # TrainResult(status, run_dir, best_metric, history, ...)

Events (``clipstudio.engine.events``): ProgressUpdated while images are decoded/encoded, then
TrainStarted, EvalEnded(epoch=0) for the starting model (not when resuming), per step StepEnded (throttled), per
epoch EvalEnded, EpochEnded and CheckpointSaved, and always TrainEnded last. ``should_stop`` is
checked after every optimizer step and every validation batch; stopping saves checkpoint_latest
and ends with status "cancelled" (not an error). A non-finite loss (or, without loss scaling, a
non-finite gradient norm) ends with "failed" and keeps the last good checkpoint. Errors are
raised after TrainEnded("failed"): ClipStudioError for what the user can fix (data, paths,
settings, a full disk: DiskFullError), anything else is a bug.

GPU out of memory: a batch that runs the GPU out of memory is redone in halves, gradients
accumulated, so it is still one optimizer step over the same images (the contrastive loss then
sees the negatives of each half only). The halved size is kept for the rest of the run, recorded
as ``batch_size_used`` in run.json (only when halved) and used again on resume; the data order, steps per epoch
and learning-rate schedule stay those of ``cfg.batch_size``. At the method's smallest batch (2
images contrastive, 1 for the linear probe) the run fails with a ConfigError.

Several processes (torchrun, ``distributed.py``): every process runs this Trainer on its share of
each global batch; only rank 0 writes the run folder and emits events, and Stop is agreed on once
per step (never inside a step or validation), so all processes stop after the same step.

Cross-validation: pass ``train_indices``/``val_indices`` (sample indices of the dataset, e.g.
from ``kfold_indices``) and an ``output`` per fold; the test split is then up to the caller.
"""

from __future__ import annotations

import dataclasses
import errno
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from clipstudio.engine.config import RECALL_KS, TrainConfig, save_config
from clipstudio.engine.data.dataset import Dataset
from clipstudio.engine.errors import ClipStudioError, ConfigError, DataError, DiskFullError
from clipstudio.engine.events import (
    CheckpointSaved,
    EpochEnded,
    EvalEnded,
    MessageLogged,
    ShouldStop,
    StepEnded,
    TrainEnded,
    TrainingStatus,
    TrainStarted,
    never_stop,
)
from clipstudio.engine.models.base import ImageTextModel
from clipstudio.engine.runs.layout import (
    BEST,
    LATEST,
    SPLITS_FILE,
    append_metrics_line,
    find_checkpoint,
    read_run_info,
    remove_metrics,
    run_config_path,
    truncate_metrics,
    write_history,
    write_run_info,
)
from clipstudio.engine.runtime.threads import OtherProcessesLoad, ThreadTuner, thread_candidates
from clipstudio.engine.training import setup
from clipstudio.engine.training.batches import CLASSES
from clipstudio.engine.training.checkpoint import (
    capture_rng_state,
    load_train_state,
    restore_rng_state,
    save_train_state,
    seed_everything,
    write_checkpoint_folder,
)
from clipstudio.engine.training.distributed import SyncedStop, batch_record, current_ranks, resumed_batch_size
from clipstudio.engine.training.interrupt import StepCancelled, interruptible
from clipstudio.engine.training.methods.auto import resolve_auto_method
from clipstudio.engine.training.methods.base import TrainingMethod
from clipstudio.engine.training.optimizer import AmpPolicy, cosine_lr, make_optimizer, set_lr

_STEP_EVENT_INTERVAL_S = 0.1
# A step record (metrics.jsonl line + StepEnded) at least this often, whatever log_every_steps says:
# at 3-10 s per step on a CPU, 10 steps would leave the app's progress line still for a minute.
_SLOW_WINDOW_S = 2.0
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


@dataclass
class TrainResult:
    status: TrainingStatus
    run_dir: Path
    best_metric: float | None  # best value of the monitored metric; None without validation
    history: dict[str, Any] = field(default_factory=dict)
    epochs_completed: int = 0
    message: str = ""


@dataclass
class _Position:
    """Where the run is; saved in checkpoint_latest so a resume continues exactly here."""

    epoch: int = 1  # the epoch in progress (1-based)
    batch_pos: int = 0  # batches of that epoch already trained
    step: int = 0  # optimizer steps done in the whole run
    loss_sum: float = 0.0  # image-weighted training loss / accuracy sums of the epoch so far
    acc_sum: float = 0.0
    seen: int = 0
    elapsed: float = 0.0  # wall seconds of earlier sessions
    best: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0


class Trainer:
    """Fine-tunes a model as ``cfg`` says. One Trainer runs ``fit`` once.

    callbacks: each gets every event (see the module docstring).
    should_stop: polled after each optimizer step and validation batch; True cancels cleanly.
    model: the already-loaded model of ``cfg.model.spec`` (GUI, tests); it is trained in place
        (LoRA injects its adapters into it). None: loaded from the spec (or the resumed run's).
    dataset: an already-read dataset; None: read from ``cfg.data``.
    train_indices, val_indices: explicit sample indices (a cross-validation fold) instead of
        the dataset's splits.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        *,
        callbacks: Sequence[Callable[[object], None]] = (),
        should_stop: ShouldStop = never_stop,
        model: ImageTextModel | None = None,
        dataset: Dataset | None = None,
        train_indices: list[int] | None = None,
        val_indices: list[int] | None = None,
    ) -> None:
        cfg.validate()
        self.cfg = cfg
        self.callbacks = list(callbacks)
        self.ranks = current_ranks()  # several processes (torchrun): see distributed.py
        self._local_stop = should_stop
        # Several processes agree on Stop once per step and stop together, never inside a step or validation.
        self.should_stop = SyncedStop(should_stop) if self.ranks.distributed else should_stop
        self._stop_within = never_stop if self.ranks.distributed else should_stop
        self._model, self._dataset = model, dataset
        self._train_indices, self._val_indices = train_indices, val_indices
        self.run_dir: Path | None = None
        self.history: dict[str, Any] = {}
        self.pos = _Position()
        self.method: TrainingMethod | None = None
        self.threads: ThreadTuner | None = None  # CPU runs: see _thread_tuner
        self._others_load: OtherProcessesLoad | None = None
        self._session_start: float | None = None  # when this session's training began

    @property
    def steps_done(self) -> int:
        """Optimizer steps done so far in the whole run (resumed steps included)."""
        return self.pos.step

    # --- events ----------------------------------------------------------------------------------
    def _emit(self, event: object) -> None:
        if not self.ranks.is_main:
            return
        for callback in self.callbacks:
            callback(event)

    def _log(self, text: str, level: str = "info") -> None:
        self._emit(MessageLogged(level=level, text=text))

    def _end(self, status: TrainingStatus, message: str) -> TrainResult:
        run_dir = str(self.run_dir) if self.run_dir else ""
        self._emit(TrainEnded(status=status, run_dir=run_dir, best_metric=self.pos.best, message=message))
        return TrainResult(
            status=status,
            run_dir=self.run_dir or Path(),
            best_metric=self.pos.best,
            history=self.history,
            epochs_completed=len(self.history.get("train_loss", [])),
            message=message,
        )

    # --- the run ---------------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        """Train until done, stopped early, cancelled or failed; see the module docstring."""
        threads = torch.get_num_threads()  # the thread tuner's changes end with the run
        try:
            return self._fit()
        except Exception as exc:
            # The UI learns the run is over either way; the exception carries the details.
            error = self._user_error(exc)
            if error is not None or isinstance(exc, ClipStudioError):
                message = str(error or exc)
            else:
                message = f"Training failed: {exc!r}"
            self._end(TrainingStatus.FAILED, message)
            if error is not None:
                raise error from exc
            raise
        finally:
            torch.set_num_threads(threads)

    def _user_error(self, exc: Exception) -> ClipStudioError | None:
        """The ClipStudioError a user-fixable OS or GPU failure stands for; None for anything else."""
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            where = self.run_dir or exc.filename or self.cfg.output
            return DiskFullError(
                f"The disk is full: can't write to {where}. Free some space, then resume the run; "
                "its last checkpoint is kept."
            )
        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return ConfigError(
                "The GPU ran out of memory outside a training batch; use a smaller model or img_size, "
                'or train on the CPU (model.device "cpu").'
            )
        return None

    def _fit(self) -> TrainResult:
        cfg = self.cfg
        self.run_dir, resume = setup.prepare_run_dir(cfg)
        seed_everything(cfg.seed)
        device = setup.training_device(cfg)
        resume_info = read_run_info(resume) if resume else None
        data = setup.load_training_data(
            cfg,
            self._dataset,
            train_indices=self._train_indices,
            val_indices=self._val_indices,
            resume_info=resume_info,
        )
        if resume_info is not None:  # another number of processes keeps the run's global batch
            batch, note = resumed_batch_size(cfg.batch_size, resume_info, self.ranks.world_size)
            if note:
                self._log(note)
                cfg = self.cfg = dataclasses.replace(cfg, batch_size=batch)
        # Images per forward pass: cfg.batch_size until the GPU runs out of memory (see the module docstring).
        self.batch_used = min(cfg.batch_size, int((resume_info or {}).get("batch_size_used", cfg.batch_size)))
        for note in data.notes:
            self._log(note)
        # Method "auto": the method it picks from here on.
        cfg = self.cfg = resolve_auto_method(cfg, data.dataset, data.train_indices, self._emit)
        model = (
            self._model if self._model is not None else setup.load_start_model(cfg, data.start_spec, device)
        )
        model.to(device)
        self.method = setup.build_method(
            cfg, model, data, callback=self._emit, should_stop=self._local_stop, device=device
        )
        if self.method is None:
            return self._end(
                TrainingStatus.CANCELLED, "Cancelled while preparing the images; nothing was trained."
            )
        for note in self.method.notes:
            self._log(note, "warning")
        fixed = self.method.fixed_epochs
        if fixed is not None and fixed != cfg.epochs:
            self._log(f"This method trains nothing: {fixed} epoch builds it (the epochs setting, {cfg.epochs}, is not used).")
            cfg = self.cfg = dataclasses.replace(cfg, epochs=fixed)
        self.amp: AmpPolicy = self.method.amp
        # A run that sets no rate takes the model's recommended one for the method, else the method's default,
        # and records it (config.json) so a resume keeps it. A run from before models recommended rates
        # recorded none: it resumes at the method's default, the rate it started with.
        recommended = model.recommended_learning_rates if resume_info is None else {}
        self.base_lr = cfg.resolved_learning_rate(recommended)
        if cfg.learning_rate is None and not self.method.full_batch:
            source = "the model's recommended rate" if cfg.method in recommended else "the method's default"
            self._log(f"Learning rate {self.base_lr:g}: {source} (set a learning rate to change it).")
            cfg = self.cfg = dataclasses.replace(cfg, learning_rate=self.base_lr)
        self.optimizer = make_optimizer(
            self.method.trainable(), lr=self.base_lr, weight_decay=cfg.weight_decay, layer_decay=cfg.layer_decay
        )
        self.scaler = torch.amp.GradScaler(device.type) if self.amp.use_scaler else None
        self.threads = self._thread_tuner(device) if self.method.tune_threads else None
        self.batches_per_epoch = self.method.micro_batches_per_epoch
        if self.batches_per_epoch < 1:
            raise DataError("Training needs at least 2 readable training images.")
        self.steps_per_epoch = math.ceil(self.batches_per_epoch / cfg.grad_accum)
        self.total_steps = cfg.epochs * self.steps_per_epoch
        self.monitor_higher = cfg.early_stopping.monitor == "val_acc"
        self.has_val = self.method.n_val > 0
        if cfg.early_stopping.patience is not None and not self.has_val:
            raise ConfigError("Early stopping needs validation images; set data.val_fraction above 0.")

        self._run_info = setup.run_info(cfg, data, self.method) | batch_record(
            cfg.batch_size, self.batch_used, self.ranks.world_size
        )
        # The run's length, for whoever follows it from the folder (the app's multi-process runs).
        self._run_info |= {"steps_per_epoch": self.steps_per_epoch, "total_steps": self.total_steps}
        if self.ranks.is_main:
            save_config(setup.recorded_config(cfg, data), run_config_path(self.run_dir))
            write_run_info(self.run_dir, self._run_info)
            setup.write_splits(self.run_dir / SPLITS_FILE, data, self.method)
            setup.write_run_corrections(self.run_dir, data)
            self.method.save_run_files(self.run_dir)

        if resume:
            self._restore(resume)
        else:
            self.history = _empty_history(cfg, data.kind)
            if self.ranks.is_main:
                remove_metrics(self.run_dir)
        self._emit(
            TrainStarted(
                run_dir=str(self.run_dir),
                method=cfg.method,
                epochs=cfg.epochs,
                steps_per_epoch=self.steps_per_epoch,
                total_steps=self.total_steps,
                n_train=self.method.n_train,
                n_val=self.method.n_val,
                device=str(device),
                start_epoch=self.pos.epoch,
                start_step=self.pos.step,
                precision=self.amp.description,
            )
        )
        self._session_start = time.monotonic()
        # A run stopped during its first validation resumes by finishing that; later resumes skip it.
        if not resume or (self.pos.step == 0 and "initial" not in self.history):
            initial = self.method.evaluate(self._stop_within, self._emit)
            if initial is None:
                return self._cancel("Cancelled during the first validation; nothing was trained.")
            if initial:
                self.history["initial"] = initial
                self._emit(EvalEnded(epoch=0, metrics=_pairs(initial)))
        return self._epochs()

    def _epochs(self) -> TrainResult:
        cfg = self.cfg
        while self.pos.epoch <= cfg.epochs:
            epoch = self.pos.epoch
            started = time.monotonic()
            outcome = self._train_epoch(epoch)
            if outcome == TrainingStatus.CANCELLED:
                return self._cancel(f"Cancelled in epoch {epoch} after {self.pos.step} steps.")
            if outcome == TrainingStatus.FAILED:
                return self._end(
                    TrainingStatus.FAILED,
                    f"The training loss or its gradient became NaN or infinite in epoch {epoch} "
                    f"(step {self.pos.step + 1}); "
                    "the last good checkpoint is kept. Try a lower learning rate or amp off.",
                )
            metrics = self.method.evaluate(self._stop_within, self._emit)
            if metrics is None:
                return self._cancel(f"Cancelled during validation of epoch {epoch}.")
            improved = self._record_epoch(epoch, metrics, time.monotonic() - started)
            self.pos = _Position(
                epoch=epoch + 1,
                step=self.pos.step,
                elapsed=self.pos.elapsed,
                best=self.pos.best,
                best_epoch=self.pos.best_epoch,
                bad_epochs=self.pos.bad_epochs,
            )
            if improved and cfg.save_best:
                self._save(BEST, epoch)
            self._save(LATEST, epoch)
            patience = cfg.early_stopping.patience
            if patience is not None and self.pos.bad_epochs >= patience and epoch < cfg.epochs:
                return self._end(
                    TrainingStatus.EARLY_STOPPED,
                    f"Stopped early after epoch {epoch}: no improvement of {cfg.early_stopping.monitor} "
                    f"for {patience} epoch(s); best was epoch {self.pos.best_epoch}.",
                )
        return self._end(TrainingStatus.COMPLETED, f"Finished {cfg.epochs} epoch(s).")

    def _cancel(self, message: str) -> TrainResult:
        self._save(LATEST, self.pos.epoch)
        return self._end(TrainingStatus.CANCELLED, message)

    def _thread_tuner(self, device: torch.device) -> ThreadTuner | None:
        """On the CPU, a tuner that moves torch's thread count to whatever runs fastest now (see runtime.threads)."""
        candidates = thread_candidates(torch.get_num_threads())
        if device.type != "cpu" or len(candidates) < 2:
            return None

        def changed(threads: int, rates: dict[int, float]) -> None:
            if not rates:
                self._log(f"Training on all {threads} CPU threads again: other programs have quietened down.")
                return
            measured = ", ".join(f"{n} thread(s) {r:.1f} images/s" for n, r in rates.items())
            self._log(
                f"Training on {threads} CPU thread(s) while other programs use the CPU: "
                f"the fastest now ({measured})."
            )

        self._others_load = OtherProcessesLoad()
        return ThreadTuner(candidates, torch.set_num_threads, on_change=changed)

    # --- one epoch -------------------------------------------------------------------------------
    def _train_epoch(self, epoch: int) -> TrainingStatus | None:
        if self.method.full_batch:
            return self._solve_epoch(epoch)
        cfg, method, pos = self.cfg, self.method, self.pos
        params = [p for _, p in method.trainable()]
        n_batches, accum = self.batches_per_epoch, cfg.grad_accum
        window = {"loss": 0.0, "batches": 0, "images": 0, "start": time.monotonic()}
        last_event = -math.inf
        method.set_train_mode()
        with method.batches(epoch, pos.batch_pos) as batches:
            stream = iter(batches)
            while pos.batch_pos < n_batches:
                step_start, rng = time.monotonic(), capture_rng_state()
                group_end = min(n_batches, (pos.batch_pos // accum + 1) * accum)
                group = group_end - pos.batch_pos
                self.optimizer.zero_grad(set_to_none=True)
                try:
                    with interruptible(method.interruptible_module, self._stop_within):
                        stats = self._backward_group([next(stream)[1] for _ in range(group)])
                except StepCancelled:
                    # Half a step is dropped: the checkpoint stands after the last whole step.
                    self.optimizer.zero_grad(set_to_none=True)
                    restore_rng_state(rng)
                    return TrainingStatus.CANCELLED
                if stats is None:
                    return TrainingStatus.FAILED
                for value, acc, n in stats:
                    pos.loss_sum += value * n
                    pos.acc_sum += acc * n
                    pos.seen += n
                    window["loss"] += value
                    window["batches"] += 1
                    window["images"] += n * self.ranks.world_size
                lr = cosine_lr(
                    pos.step,
                    base_lr=self.base_lr,
                    total_steps=self.total_steps,
                    warmup_steps=cfg.warmup_steps,
                )
                set_lr(self.optimizer, lr)
                if self.scaler:
                    self.scaler.unscale_(self.optimizer)
                if cfg.grad_clip:
                    norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                    # The scaler skips such steps itself; without it they would write NaN into the weights.
                    if not self.scaler and not math.isfinite(float(norm)):
                        return TrainingStatus.FAILED
                if self.scaler:
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                else:
                    self.optimizer.step()
                if self.threads is not None:
                    images = sum(n for _, _, n in stats)
                    self.threads.observe(time.monotonic() - step_start, images, self._others_load())
                pos.step += 1
                pos.batch_pos = group_end
                now = time.monotonic()
                slow = now - window["start"] >= _SLOW_WINDOW_S  # slow CPU steps: never silent for long
                if pos.step % cfg.log_every_steps == 0 or pos.batch_pos == n_batches or slow:
                    seconds = max(now - window["start"], 1e-9)
                    record = {
                        "epoch": epoch,
                        "step": pos.step,
                        "loss": window["loss"] / max(window["batches"], 1),
                        "lr": lr,
                        "images_per_s": window["images"] / seconds,
                    }
                    if self.ranks.is_main:
                        append_metrics_line(self.run_dir, record)
                    if now - last_event >= _STEP_EVENT_INTERVAL_S or pos.batch_pos == n_batches:
                        last_event = now
                        self._emit(StepEnded(total_steps=self.total_steps, **record))
                    window = {"loss": 0.0, "batches": 0, "images": 0, "start": now}
                if self.should_stop():
                    return TrainingStatus.CANCELLED
        return None

    def _solve_epoch(self, epoch: int) -> TrainingStatus | None:
        """A full-batch method's epoch: one exact solve, counted as one step (no optimizer, no batches)."""
        if self.ranks.distributed and self.should_stop():  # several processes agree on Stop between solves
            return TrainingStatus.CANCELLED
        pos, started = self.pos, time.monotonic()
        fit = self.method.solve_epoch(epoch, self._stop_within)
        if fit is None:
            return TrainingStatus.CANCELLED
        if not math.isfinite(fit.loss):
            return TrainingStatus.FAILED
        pos.loss_sum += fit.loss * fit.images
        pos.acc_sum += fit.accuracy * fit.images
        pos.seen += fit.images
        pos.step += 1
        pos.batch_pos = self.batches_per_epoch
        set_lr(self.optimizer, fit.value)  # the history's "lr" column holds the epoch's setting
        seconds = max(time.monotonic() - started, 1e-9)
        record = {
            "epoch": epoch,
            "step": pos.step,
            "loss": fit.loss,
            "lr": fit.value,
            "images_per_s": fit.images / seconds,
        }
        if self.ranks.is_main:
            append_metrics_line(self.run_dir, record)
        self._emit(StepEnded(total_steps=self.total_steps, **record))
        self._log(fit.note)
        return None

    def _backward_group(self, batches: list[Any]) -> list[tuple[float, float, int]] | None:
        """Gradients of one optimizer step's batches; (loss, accuracy, images) per batch, None if a loss is not finite.

        A GPU out-of-memory error redoes the whole group in halves (see the module docstring).
        """
        while True:
            try:
                return self._backward_parts(batches)
            except torch.cuda.OutOfMemoryError:
                pass  # handled below, outside the except block: its traceback pins the activations
            self.optimizer.zero_grad(set_to_none=True)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            failed = min(self.batch_used, max(self.method.images_in(b) for b in batches))
            smallest = self.method.min_batch_size
            if self.ranks.distributed:  # every process would have to halve at the same step
                raise ConfigError(
                    f"A GPU ran out of memory at batch size {failed}; set a smaller batch size (per GPU)."
                )
            if failed <= smallest:
                raise ConfigError(
                    f"The GPU ran out of memory even at batch size {failed}; use a smaller model or "
                    'img_size, or train on the CPU (model.device "cpu").'
                )
            self.batch_used = max(smallest, failed // 2)
            self._log(
                f"GPU out of memory at batch size {failed}; retrying with {self.batch_used}.", "warning"
            )
            self._run_info["batch_size_used"] = self.batch_used
            write_run_info(self.run_dir, self._run_info)

    def _backward_parts(self, batches: list[Any]) -> list[tuple[float, float, int]] | None:
        group, stats = len(batches), []
        for batch in batches:
            parts = self.method.split_batch(batch, self.batch_used)
            total = self.method.images_in(batch)
            loss_sum = acc_sum = 0.0
            for part in parts:
                loss, acc, n = self.method.step_loss(part)
                value = float(loss.detach())
                if not math.isfinite(value):
                    return None
                scaled = loss / group if n == total else loss * (n / total) / group
                (self.scaler.scale(scaled) if self.scaler else scaled).backward()
                loss_sum += value * n
                acc_sum += acc * n
            if len(parts) == 1:
                stats.append((value, acc, total))
            else:
                stats.append((loss_sum / total, acc_sum / total, total))
        return stats

    def _record_epoch(self, epoch: int, metrics: dict[str, float], seconds: float) -> bool:
        """Append the epoch to the history, emit EvalEnded/EpochEnded; True when the monitored metric improved."""
        pos, h = self.pos, self.history
        train_loss = pos.loss_sum / max(pos.seen, 1)
        train_acc = pos.acc_sum / max(pos.seen, 1)
        group = self.optimizer.param_groups[0]
        lr = group["lr"] / group.get("lr_scale", 1.0)  # the schedule's rate, before any layer-wise multiplier
        wall = pos.elapsed + time.monotonic() - self._session_start
        h["epoch"].append(epoch)
        h["train_loss"].append(train_loss)
        h["train_acc"].append(train_acc)
        h["lr"].append(lr)
        h["wall_time"].append(wall)
        for key in h["val_keys"]:
            h[key].append(metrics.get(key))
        if metrics:
            self._emit(EvalEnded(epoch=epoch, metrics=_pairs(metrics)))
        self._emit(
            EpochEnded(
                epoch=epoch,
                train_loss=train_loss,
                train_acc=train_acc,
                val_loss=metrics.get("val_loss"),
                val_acc=metrics.get("val_acc"),
                val_balanced_acc=metrics.get("val_balanced_acc"),
                val_mean_recall=metrics.get("val_mean_recall"),
                lr=lr,
                seconds=seconds,
            )
        )
        value = metrics.get(h["monitor_key"]) if metrics else None
        improved = False
        if value is not None and math.isfinite(value):
            delta = self.cfg.early_stopping.min_delta
            if pos.best is None:
                improved = True
            elif self.monitor_higher:
                improved = value > pos.best + delta
            else:
                improved = value < pos.best - delta
        if improved:
            pos.best, pos.best_epoch, pos.bad_epochs = value, epoch, 0
        elif value is not None:
            pos.bad_epochs += 1
        h["best_epoch"], h["best_metric"] = pos.best_epoch, pos.best
        if self.ranks.is_main:
            write_history(self.run_dir, h)
        return improved

    # --- checkpoints -----------------------------------------------------------------------------
    def _save(self, kind: str, epoch: int) -> None:
        if not self.ranks.is_main:
            return
        state = {"kind": kind, "epoch": epoch, "step": self.pos.step, "method": self.cfg.method}
        if kind == LATEST:
            state.update(
                position=vars(self.pos) | {"elapsed": self.pos.elapsed + self._elapsed_this_session()},
                history=self.history,
                optimizer=self.optimizer.state_dict(),
                scaler=self.scaler.state_dict() if self.scaler else None,
                rng=capture_rng_state(),
            )
        else:
            state.update(best_metric=self.pos.best, monitor=self.cfg.early_stopping.monitor)

        def write(folder: Path) -> None:
            self.method.save_model(folder)
            save_train_state(folder, state)

        path = write_checkpoint_folder(self.run_dir / kind, write)
        self._emit(
            CheckpointSaved(
                path=str(path), kind=kind.removeprefix("checkpoint_"), epoch=epoch, step=self.pos.step
            )
        )

    def _elapsed_this_session(self) -> float:
        start = self._session_start
        return 0.0 if start is None else time.monotonic() - start

    def _restore(self, resume: Path) -> None:
        checkpoint = find_checkpoint(resume, LATEST)
        if checkpoint is None:
            raise ConfigError(f"{resume} has no checkpoint_latest to resume from.")
        state = load_train_state(checkpoint)
        if state.get("method") != self.cfg.method:
            raise ConfigError(
                f"{resume} was trained with method {state.get('method')!r}; resume it with that method."
            )
        self.method.load_weights(checkpoint)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scaler and state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            self.pos = _Position(**state["position"])
            self.history = state["history"]
            restore_rng_state(state["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ConfigError(
                f"{checkpoint}: the training state is incomplete or does not fit this run ({exc!r}); "
                "it can't be resumed."
            ) from None
        if self.ranks.is_main:
            truncate_metrics(self.run_dir, self.pos.step)
        self._log(f"Resuming {resume} at epoch {self.pos.epoch}, step {self.pos.step}.")


def _empty_history(cfg: TrainConfig, kind: str) -> dict[str, Any]:
    if kind == CLASSES or cfg.method == "linear_probe":
        val_keys = ["val_loss", "val_acc", "val_balanced_acc"]
        monitor_key = "val_balanced_acc"
    else:
        recalls = [f"val_{d}_R@{k}" for d in ("i2t", "t2i") for k in RECALL_KS]
        val_keys = ["val_loss", "val_acc", "val_mean_recall", *recalls]
        monitor_key = "val_mean_recall"
    if cfg.early_stopping.monitor == "val_loss":
        monitor_key = "val_loss"
    history: dict[str, Any] = {
        "epoch": [],
        "train_loss": [],
        "train_acc": [],
        "lr": [],
        "wall_time": [],
        "val_keys": val_keys,
        "monitor": cfg.early_stopping.monitor,
        "monitor_key": monitor_key,
        "best_epoch": None,
        "best_metric": None,
    }
    history.update({key: [] for key in val_keys})
    return history


def _pairs(metrics: dict[str, float]) -> tuple[tuple[str, float], ...]:
    return tuple((k, float(v)) for k, v in metrics.items() if v is not None)


__all__ = ["Trainer", "TrainResult"]
