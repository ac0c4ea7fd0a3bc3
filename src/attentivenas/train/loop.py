"""Stage 1: train the supernet with the sandwich rule and attentive sampling.

``train(config, out_dir)`` is the whole run, usable without the command line. It works in one
process or under ``torchrun`` (see :mod:`attentivenas.train.distributed`), resumes exactly from
its checkpoints (see :mod:`attentivenas.train.state`), and writes::

    DIR/config.yaml            the resolved config
    DIR/metrics.jsonl          one JSON record per logged step / evaluation
    DIR/tb/                    TensorBoard scalars
    DIR/checkpoints/last.pt    the newest checkpoint (plus the last K step_<n>.pt)
    DIR/predictors/            sampler.estimator=online: the predictors fitted during training
"""

from __future__ import annotations

import os
import signal
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ..config import TrainConfig, save_config
from ..data import (
    DataBundle,
    batches_per_epoch,
    build_data,
    check_batch_size,
    describe_pipeline,
    epoch_batches,
)
from ..distributed import DEFAULT_TIMEOUT_S, DistInfo, barrier, cleanup, init_distributed, is_dist
from ..errors import ConfigError, JobFailure, UserError
from ..host_memory import reuse_freed_memory
from ..io import OutputLock, remove_torn_writes
from ..nn import Supernet
from ..rng import seed_everything
from ..space import SearchSpace, get_space
from .data_lines import announce_data, split_name, split_sizes
from .distributed import all_reduce_sum, broadcast_module
from .logging import MetricsLogger, Progress, truncate_metrics
from .online import OnlinePredictor
from .optim import build_optimizer, build_scheduler
from .sampling import CHOICE_KIND, ArchSampler, choice_record, load_predictor_estimator, record_interval
from .sandwich import SandwichStep, Scorer, StepResult, estimator_scorer, loss_scorer, use_channels_last
from .state import FRESH, LAST, TrainerState, checkpoint_dir, resolve_resume, set_aside
from .transfer import TransferReport, load_init
from .validate import calibration_batches, calibration_seed, validate_arch


class TrainingDiverged(UserError):
    """The loss was not finite for ``runtime.nan_patience`` steps in a row."""


@dataclass
class TrainResult:
    """Where a run wrote its files and how it ended."""

    out_dir: Path
    checkpoint: Path | None
    metrics: Path
    global_step: int
    epoch: int
    status: str  # "completed", "max_steps" or "interrupted"
    final_eval: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0
    model: Supernet | None = None
    predictor: Path | None = None  # sampler.estimator=online: the predictor active at the end


StepCallback = Callable[[int, StepResult], None]


def default_out_dir(config: TrainConfig) -> Path:
    """``runs/train-<space>-<data>-<time>``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    space = Path(config.space).stem if config.space.endswith((".yaml", ".yml")) else config.space
    return Path("runs") / f"train-{space}-{config.data.name}-{stamp}"


def _shared_out_dir(out_dir: str | Path | None, config: TrainConfig) -> Path:
    """The out dir, agreed by all ranks (rank 0 picks the default)."""
    if out_dir is not None:
        return Path(out_dir)
    box = [str(default_out_dir(config))]
    if is_dist():
        dist.broadcast_object_list(box, src=0)
    return Path(box[0])


def _set_threads(config: TrainConfig, info: DistInfo) -> None:
    if config.runtime.threads is not None:
        torch.set_num_threads(config.runtime.threads)
    elif info.device.type == "cpu" and info.world_size > 1:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", info.world_size))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, local)))


def build_training_supernet(cfg: TrainConfig, space: SearchSpace, num_classes: int,
                            device: torch.device) -> tuple[Supernet, bool]:
    """The supernet as training runs it on ``device``, and whether it is in channels-last memory:
    initialised from the config (seeded by the caller), freed host memory kept for reuse where
    ``runtime.reuse_freed_memory`` asks it, moved to the device, channels-last where it pays."""
    net = Supernet(space, num_classes, bn_momentum=cfg.model.bn_momentum, bn_eps=cfg.model.bn_eps,
                   init=cfg.model.init, zero_init_residual=cfg.model.zero_init_residual)
    reuse_freed_memory(cfg.runtime.reuse_freed_memory, device, "runtime.reuse_freed_memory")
    net.to(device)
    channels_last = use_channels_last(cfg.runtime.channels_last, device)
    if channels_last:
        net.to(memory_format=torch.channels_last)
    return net, channels_last


class _StopFlag:
    """SIGINT/SIGTERM ask the loop to stop at the next step boundary (with a checkpoint)."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            self._old = {}
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:  # a second signal: give up at once
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def agreed(self, device: torch.device) -> bool:
        """True on every rank if any rank was asked to stop."""
        if not is_dist():
            return self.requested
        t = torch.tensor([1.0 if self.requested else 0.0], device=device)
        all_reduce_sum(t)
        return t.item() > 0


class Trainer(TrainerState):
    """One training run (built by :func:`train`): components, state and the loop (its checkpoints:
    :class:`~attentivenas.train.state.TrainerState`)."""

    def __init__(self, config: TrainConfig, out_dir: Path, info: DistInfo, on_step: StepCallback | None = None,
                 apply_init: bool = True):
        self.config = config
        self.out_dir = out_dir
        self.info = info
        self.on_step = on_step
        cfg = config
        seed_everything(cfg.seed)
        self.space: SearchSpace = get_space(cfg.space)
        self.data: DataBundle = build_data(cfg.data, cfg.seed)
        n_train = len(self.data.train)  # type: ignore[arg-type]
        check_batch_size(n_train, cfg.data.batch_size, info.world_size)
        self.num_classes = cfg.model.num_classes or self.data.num_classes
        if cfg.model.num_classes is not None and cfg.model.num_classes < self.data.num_classes:
            raise ConfigError(f"model.num_classes={cfg.model.num_classes} is below the {self.data.num_classes} "
                              f"classes of data.name={cfg.data.name}")
        steps = batches_per_epoch(n_train, cfg.data.batch_size, info.world_size)
        self.steps_per_epoch = min(steps, cfg.runtime.steps_per_epoch or steps)
        self.total_steps = cfg.optim.epochs * self.steps_per_epoch
        self.choice_interval = record_interval(self.total_steps, cfg.sampler.record_every, cfg.sampler.record_max)
        self.distill_warmup_steps = round(cfg.loss.distill_warmup_epochs * self.steps_per_epoch)

        net, self.channels_last = build_training_supernet(cfg, self.space, self.num_classes, info.device)
        # init_from: a fresh run starts from a trained supernet; a resumed one from its own checkpoint
        self.transfer: TransferReport | None = (load_init(net, cfg.init_from, classifier=cfg.init_classifier)
                                                if cfg.init_from and apply_init else None)
        if self.transfer is not None and info.is_main:
            print(self.transfer.line(), file=sys.stderr, flush=True)
        broadcast_module(net)
        self.net = net
        self.total_batch = cfg.data.batch_size * info.world_size
        self.optimizer = build_optimizer(net, cfg.optim, self.total_batch)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler(info.device.type) if cfg.runtime.amp == "fp16" else None
        self.sampler = ArchSampler.from_config(self.space, cfg.sampler, seed=cfg.seed, num_classes=self.num_classes)
        self.online: OnlinePredictor | None = None
        if cfg.sampler.method != "uniform" and cfg.sampler.estimator == "online":
            self.online = OnlinePredictor(cfg, out_dir, self.space, self.num_classes, info)
            self.sampler.warmup = True  # uniform until the first fit (see train.online)
        self.step_fn = SandwichStep.from_config(cfg, net, self.optimizer, self.sampler, self._scorer(), self.scaler,
                                                channels_last=self.channels_last)
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.nan_streak = 0
        self.last_eval: dict[str, float] = {}
        self.last_checkpoint: Path | None = None
        self.logger: MetricsLogger | None = None
        self.config_changes: list[dict[str, Any]] = []  # changes of course on resume (train/state.py)
        # dropout / drop-connect masks differ per rank
        torch.manual_seed(cfg.seed * 7919 + info.rank + 1)

    def _scorer(self) -> Scorer | None:
        """How the step ranks candidates: mini-batch loss, a predictor file, or (online) none until
        the first fit; uniform sampling needs none."""
        sc = self.config.sampler
        if sc.method == "uniform" or sc.estimator == "online":
            return None
        if sc.estimator == "predictor":
            return estimator_scorer(load_predictor_estimator(sc.predictor, self.space))
        return loss_scorer

    # ----------------------------------------------------------------- pieces
    def validate(self) -> dict[str, float]:
        cfg, info = self.config, self.info
        split = self.data.val if cfg.eval.split == "holdout" else self.data.test
        batches = calibration_batches(self.data.calibration_set(), cfg.eval.calib_batches,
                                      cfg.eval.calibration_batch_size or cfg.data.batch_size,
                                      calibration_seed(cfg), info.rank, cfg.data.num_workers)
        out: dict[str, float] = {}
        for name, arch in (("min", self.space.min_arch()), ("max", self.space.max_arch())):
            res = validate_arch(self.net, arch, batches, split, cfg.data.eval_batch_size, info,
                                cfg.eval.max_batches, cfg.data.num_workers, self.channels_last)
            out.update({f"{name}_top1": res["top1"], f"{name}_top5": res["top5"], f"{name}_loss": res["loss"]})
        return out

    def _use_online_estimator(self) -> None:
        """Score with the online predictor once there is one; uniform sampling before."""
        assert self.online is not None
        est = self.online.estimator
        self.sampler.warmup = est is None
        self.step_fn.scorer = estimator_scorer(est) if est is not None else None

    def _fit_online(self, epochs_done: int, logger: MetricsLogger, progress: Progress) -> None:
        assert self.online is not None
        record = self.online.fit(self.net, self.data, epochs_done)
        self._use_online_estimator()
        logger.log("predictor", self.global_step, **record)
        if self.info.is_main:
            progress.write(
                f"epoch {epochs_done}: predictor {record['best']} fitted on {record['n']} subnets "
                f"(top-1 {record['top1_min']:.1f}-{record['top1_max']:.1f}%, CV Kendall tau "
                f"{record['kendall_tau']:.3f}, Spearman {record['spearman_rho']:.3f}) in "
                f"{record['measure_s'] + record['fit_s']:.1f}s -> {self.out_dir / record['path']}; "
                f"{self.config.sampler.method} ranks candidates with it")

    def _diverged(self, logger: MetricsLogger) -> TrainingDiverged:
        where = f"epoch {self.epoch + 1}, step {self.global_step}"
        kept = (f"the last good checkpoint is kept: {self.last_checkpoint}" if self.last_checkpoint
                else "no checkpoint was written yet")
        logger.log("stopped", self.global_step, reason="non-finite loss", nan_streak=self.nan_streak)
        return TrainingDiverged(f"training stopped: the loss was not finite for {self.nan_streak} steps in a row "
                                f"(at {where}); {kept}; lower optim.lr or try runtime.amp=none")

    # ----------------------------------------------------------------- loop
    def run(self) -> TrainResult:
        cfg, info = self.config, self.info
        t_start = time.perf_counter()
        if info.is_main:  # the run starts (a resume refused in load() says nothing more than why)
            announce_data(cfg, self.data)
        logger = self.logger = MetricsLogger(self.out_dir, info.is_main, cfg.log.tensorboard)
        progress = Progress(info.is_main and cfg.log.progress, self.total_steps, self.global_step)
        if self.global_step == 0:
            logger.log("start", 0, world_size=info.world_size, total_batch=self.total_batch,
                       lr=self.optimizer.param_groups[0]["lr"], steps_per_epoch=self.steps_per_epoch,
                       epochs=cfg.optim.epochs, device=str(info.device), space=self.space.name,
                       num_classes=self.num_classes, estimator=cfg.sampler.estimator,
                       constraint=cfg.sampler.constraint,
                       bin_width=self.sampler.prior.bin_width if self.sampler.prior is not None else None,
                       init_from=self.transfer.to_dict() if self.transfer is not None else None,
                       data_pipeline=describe_pipeline(cfg.data), splits=split_sizes(self.data))
        status = "completed"
        try:
            with _StopFlag() as stop:
                status = self._epochs(logger, progress, stop)
        finally:
            progress.end_epoch()
            logger.close()
        active = self.online.state.active if self.online is not None else None
        return TrainResult(self.out_dir, checkpoint_dir(self.out_dir) / LAST if self.last_checkpoint else None,
                           logger.path, self.global_step, self.epoch, status, dict(self.last_eval),
                           time.perf_counter() - t_start, self.net, self.out_dir / active if active else None)

    def _epochs(self, logger: MetricsLogger, progress: Progress, stop: _StopFlag) -> str:
        cfg, info = self.config, self.info
        every = cfg.checkpoint.every_steps
        while self.epoch < cfg.optim.epochs:
            epoch = self.epoch
            # data.on_device: batches made on the device from the data set held there, else the CPU loader
            loader = epoch_batches(self.data.train, cfg.data, cfg.seed, epoch, info.rank, info.world_size,
                                   self.step_in_epoch, info.device)
            progress.start_epoch(epoch, cfg.optim.epochs, self.steps_per_epoch, self.step_in_epoch)
            it = iter(loader)
            while self.step_in_epoch < self.steps_per_epoch:
                images, labels = next(it)
                t0 = time.perf_counter()
                images = images.to(info.device, non_blocking=True)
                labels = labels.to(info.device, non_blocking=True)
                lr = self.optimizer.param_groups[0]["lr"]
                self.step_fn.labels_only = self.global_step < self.distill_warmup_steps
                result = self.step_fn(images, labels)
                with warnings.catch_warnings():  # fp16: the scaler may skip the first steps; the schedule goes on
                    warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step", category=UserWarning)
                    self.scheduler.step()
                self.global_step += 1
                self.step_in_epoch += 1
                dt = time.perf_counter() - t0
                self._after_step(result, lr, dt, logger, progress)
                if not result.finite and self.nan_streak >= cfg.runtime.nan_patience:
                    raise self._diverged(logger)
                if self.on_step is not None:
                    self.on_step(self.global_step, result)
                done = cfg.runtime.max_steps is not None and self.global_step >= cfg.runtime.max_steps
                halt = stop.agreed(info.device)
                periodic = every and self.global_step % every == 0 and self.nan_streak == 0  # never a bad one
                if done or halt or periodic:
                    self.save()
                if halt:
                    progress.write(f"stopped on request at step {self.global_step}; resume with --resume auto")
                    return "interrupted"
                if done:
                    return "max_steps"
            del it, loader
            progress.end_epoch()
            if cfg.eval.every_epochs and ((epoch + 1) % cfg.eval.every_epochs == 0 or epoch + 1 == cfg.optim.epochs):
                self.last_eval = self.validate()
                logger.log("eval", self.global_step, epoch=epoch + 1, **self.last_eval)
                progress.write(f"epoch {epoch + 1} ({split_name(cfg)}): " + " ".join(
                    f"{k}={v:.2f}" for k, v in self.last_eval.items() if k.endswith(("top1", "loss"))))
            if self.online is not None and self.online.due(epoch + 1):
                self._fit_online(epoch + 1, logger, progress)
            self.epoch, self.step_in_epoch = epoch + 1, 0
            if self.nan_streak == 0:  # a "last good" checkpoint is never written inside a run of bad steps
                self.save()
        return "completed"

    def _after_step(self, result: StepResult, lr: float, dt: float, logger: MetricsLogger,
                    progress: Progress) -> None:
        cfg = self.config
        mflops = result.mflops
        mid_mflops = float(np.mean(mflops[1:-1])) if len(mflops) > 2 else float("nan")
        ips = self.total_batch / max(dt, 1e-9)
        if not result.finite:
            self.nan_streak += 1
            progress.write(f"warning: non-finite loss at step {self.global_step} ({self.nan_streak} in a row); "
                           "step skipped")
            logger.log("nan", self.global_step, epoch=self.epoch, losses=[float(v) for v in result.losses])
        else:
            self.nan_streak = 0
        progress.update(result.loss if result.finite else float("nan"), lr, mid_mflops, ips)
        choice = choice_record(self.sampler, self.global_step, self.choice_interval, cfg.sampler.estimator)
        if choice is not None:  # what attentive sampling picked (sampler.record_every / record_max)
            logger.log(CHOICE_KIND, self.global_step, **choice)
        if self.global_step % cfg.log.every_steps == 0 or self.step_in_epoch == self.steps_per_epoch:
            losses = result.losses
            logger.log(
                "train", self.global_step, epoch=self.epoch, step=self.step_in_epoch, loss=result.loss,
                loss_max=losses[0], loss_min=losses[-1],
                loss_middle=float(np.mean(losses[1:-1])) if len(losses) > 2 else float("nan"),
                lr=lr, mflops_middle=mid_mflops, mflops=mflops, images_per_s=ips, step_s=dt,
            )


def train(config: TrainConfig, out_dir: str | Path | None = None, resume: str | Path | None = None,
          on_step: StepCallback | None = None) -> TrainResult:
    """Train a supernet as ``config`` says; see the module doc for the files written.

    ``resume``: ``None`` (fresh; refuses a dir that already has checkpoints), ``"auto"`` (the newest
    valid checkpoint in ``out_dir``, or fresh if none) or a checkpoint path. ``on_step(global_step,
    result)`` is called on every rank after every step (tests, custom logging).
    Under torchrun every rank calls this; the process group is set up and torn down here.
    """
    info = init_distributed(config.runtime.device, config.runtime.dist_timeout_s)
    locks: list[OutputLock] = []
    try:
        return _train(config, out_dir, resume, on_step, info, locks)
    except RuntimeError as exc:
        if info.distributed and "timed out" in str(exc).lower():
            timeout = config.runtime.dist_timeout_s or DEFAULT_TIMEOUT_S[dist.get_backend()]
            raise JobFailure(f"rank {info.rank}: another rank stopped answering for {timeout} s "
                             "(runtime.dist_timeout_s), so the job ends; resume it with --resume auto") from None
        raise
    finally:
        for lock in locks:
            lock.release()
        cleanup(info)


def _train(config: TrainConfig, out_dir: str | Path | None, resume: str | Path | None,
           on_step: StepCallback | None, info: DistInfo, locks: list[OutputLock]) -> TrainResult:
    """:func:`train` inside the process group: lock, pick the checkpoint, build, load, run."""
    _set_threads(config, info)
    out = _shared_out_dir(out_dir, config)
    lock = _lock_out_dir(out, info)
    if lock is not None:
        locks.append(lock)
        remove_torn_writes(out)  # temporary files of writes a kill interrupted
    found = resolve_resume(resume, out)
    if found is None and resume is None and (checkpoint_dir(out) / LAST).exists():
        raise ConfigError(f"{out} already holds a run; pass --resume auto to continue it, --resume {FRESH} to "
                          "start over, or choose another --out")
    trainer = Trainer(config, out, info, on_step, apply_init=found is None)  # resume wins over init_from
    if found is not None:
        trainer.load(*found)  # refuses settings it cannot continue before any file of the run changes
    barrier()  # every rank has read its checkpoint before rank 0 sets an abandoned branch aside
    if info.is_main and (found is not None or str(resume).lower() == FRESH):
        set_aside(out, int(found[1]["progress"]["global_step"]) if found is not None else None)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        # a finished run trains 0 steps: its records stay as they are (a folder it is resumed into gets one)
        if found is None or not trainer.finished() or not (out / "config.yaml").is_file():
            save_config(config, out / "config.yaml")
        if found is not None:
            truncate_metrics(out / "metrics.jsonl", trainer.global_step, found[1]["progress"].get("metrics_records"))
    return trainer.run()


def _lock_out_dir(out: Path, info: DistInfo) -> OutputLock | None:
    """Rank 0 holds the run folder's lock; every rank stops when it cannot be had."""
    lock, error = None, None
    if info.is_main:
        try:
            lock = OutputLock(out, "run folder").acquire()
        except UserError as exc:
            error = exc
    failed = torch.tensor([1.0 if error is not None else 0.0], device=info.device)
    all_reduce_sum(failed)
    if error is not None:
        raise error
    if failed.item() > 0:
        raise UserError(f"run folder {out} is in use by another attentivenas process (rank 0 could not lock it)")
    return lock
