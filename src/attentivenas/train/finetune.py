"""Fine-tuning a searched subnet alone: ``attentivenas finetune``.

The subnet is extracted from the supernet as a static network (its BN recalibrated) and trained by itself, with
knowledge distillation from the supernet's max subnet (``distill="kd"``: extracted, BN recalibrated, frozen; the
project's KD loss, :func:`~attentivenas.train.losses.soft_target_ce`), or from the labels (``distill="none"``:
label-smoothed cross-entropy). The default, ``distill="auto"``, chooses from the teacher's margin over the subnet on
the hold-out (:func:`choose_distill`): KD only when the max subnet is at least :data:`AUTO_KD_MARGIN` points better,
since with a smaller margin the labels were measured better (docs/results.md, "Fine-tuning the searched Pareto
subnets").

The data's classes must be the checkpoint classifier's (count, and names where both are known:
:func:`~attentivenas.train.transfer.check_head`), unless ``new_head`` re-initialises the classifier for the data's
classes (then the labels teach it: a teacher's outputs are the old classes). A resumed run must be the same run: the
same supernet file (its sha256), arch and settings that change the result (:meth:`_Run.settings`); with
``init="scratch"`` the subnet starts from a fresh seeded init instead (trained alone, at the recipe's LR and
warm-up: the standalone subnets of a ranking probe, :mod:`attentivenas.accuracy.ranking`). Defaults, after NVIDIA's
practice for fine-tuning searched subnets: half the supernet recipe's learning rate (the checkpoint's ``optim.lr``
with its batch scaling; the authors' recipe for their checkpoints), a cosine to zero without warm-up, a short
schedule (:data:`DEFAULT_EPOCHS` epochs), SGD as in the recipe (momentum, Nesterov, weight decay, gradient
clipping). One process (no DDP), fp32.

It writes, atomically, as ``train`` does::

    DIR/checkpoints/last.pt    the newest checkpoint (plus the last step_<n>.pt): "kind": "subnet"
    DIR/metrics.jsonl          one record per logged step
    DIR/result.json            top-1 / top-5 before and after on the hold-out and the test split

The checkpoint holds the static subnet's weights, its arch and space (``evaluate`` and ``export`` take it:
:func:`attentivenas.nn.load_checkpoint_model`), and the complete state of the run (optimiser, schedule, RNG,
progress, the "before" accuracies), so ``resume="auto"`` continues exactly; the output folder is locked while it
runs. The final checkpoint holds BN statistics recalibrated on the calibration batches."""

from __future__ import annotations

import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..accuracy import evaluate_arch, evaluate_subnet
from ..accuracy.protocol import capped, resolve_data, split_of, stage2_data_config
from ..config import MeasureSettings, checkpoint_kind
from ..config.finetune import RESUME_FREE, FinetuneSettings
from ..costs import count_flops, count_params
from ..data import DataBundle, batches_per_epoch, check_batch_size, describe_pipeline, train_loader
from ..devices import resolve_device, use_channels_last
from ..errors import CheckpointError, ConfigError, UserError
from ..export.folders import file_sha256
from ..io import OutputLock, atomic_write_json, remove_torn_writes
from ..nn import Supernet, cache_calibration_batches, calibrate_bn, load_supernet, subnet_payload
from ..rng import global_rng_state, seed_everything, set_global_rng_state
from ..space import Arch, resolve_arch
from .finetune_settings import AUTO_KD_MARGIN, DEFAULT_LR_FACTOR, RESULT, FinetuneResult, fresh_supernet, recipe_of
from .logging import MetricsLogger, truncate_metrics
from .losses import label_smoothing_ce, soft_target_ce
from .optim import build_optimizer, build_scheduler
from .state import (
    LAST,
    checkpoint_dir,
    describe_differences,
    differing,
    resolve_resume,
    save_training_checkpoint,
    set_aside,
    settings_sha256,
)
from .transfer import bundle_class_names, check_head, checkpoint_class_names, with_new_head


class _Run:
    """One fine-tuning run: the pieces and the loop."""

    def __init__(self, supernet: Supernet, meta: dict[str, Any], arch: Arch, bundle: DataBundle,
                 data_config: dict[str, Any], measure: MeasureSettings, settings: FinetuneSettings, out: Path,
                 source: Path, device: torch.device, source_sha256: str = "",
                 class_names: list[str] | None = None) -> None:
        s = settings
        self.supernet, self.meta, self.arch, self.bundle = supernet, meta, arch, bundle
        self.data_config, self.measure, self.s, self.out, self.source = data_config, measure, s, out, source
        self.device, self.source_sha256, self.class_names = device, source_sha256, class_names
        #: the loss in use: kd or none (auto is decided by choose_distill before the first step)
        self.distill = "none" if s.new_head else s.distill
        self.distill_choice: dict[str, Any] | None = None
        recipe, batch, smoothing = recipe_of(meta)
        self.batch = s.batch_size or batch
        n_train = len(bundle.train)  # type: ignore[arg-type]
        check_batch_size(n_train, self.batch)
        steps = batches_per_epoch(n_train, self.batch)
        self.steps_per_epoch = min(steps, s.steps_per_epoch or steps)
        scratch = s.init == "scratch"  # trained alone from a fresh init: the recipe's LR and warm-up
        default_lr = recipe.lr * (1.0 if scratch else DEFAULT_LR_FACTOR)
        warmup = s.warmup_epochs if s.warmup_epochs is not None else (recipe.warmup_epochs if scratch else 0.0)
        self.optim_cfg = recipe.model_copy(update={
            "lr": s.lr if s.lr is not None else default_lr, "epochs": s.epochs,
            "warmup_epochs": warmup, "schedule": "warmup_then_cosine", "warmup_start_factor": 0.0,
            "min_lr": 0.0, "classifier_lr_scale": 1.0,
            "weight_decay": s.weight_decay if s.weight_decay is not None else recipe.weight_decay})
        self.smoothing = s.label_smoothing if s.label_smoothing is not None else smoothing
        seed = int(measure.calib_seed or 0)
        self.calib = cache_calibration_batches(bundle.train, measure.calib_batches, measure.calib_batch_size, seed)
        self.teacher: nn.Module | None = None
        if self.distill in ("kd", "auto"):
            self.teacher = calibrate_bn(supernet.extract(supernet.space.max_arch()).to(device), self.calib).eval()
            for p in self.teacher.parameters():
                p.requires_grad_(False)
        seed_everything(s.seed)
        source = fresh_supernet(supernet, meta) if scratch else supernet  # seeded by s.seed
        self.student = calibrate_bn(source.extract(arch).to(device), self.calib).train()
        self.channels_last = use_channels_last(s.channels_last, device)
        if self.channels_last:
            self.student.to(memory_format=torch.channels_last)
            if self.teacher is not None:
                self.teacher.to(memory_format=torch.channels_last)
        self.optimizer = build_optimizer(self.student, self.optim_cfg, self.batch)
        self.scheduler = build_scheduler(self.optimizer, self.optim_cfg, self.steps_per_epoch)
        self.epoch = self.step_in_epoch = self.global_step = 0
        self.before: dict[str, Any] = {}
        self.logger: MetricsLogger | None = None

    # ----------------------------------------------------------------- measuring
    def loaders(self) -> dict[str, DataLoader | None]:
        """The evaluation batches of the hold-out (None when the data holds nothing out) and the test split."""
        out: dict[str, DataLoader | None] = {}
        for split in ("holdout", "test"):
            try:
                ds = split_of(self.bundle, split)
            except UserError:
                out[split] = None
                continue
            out[split] = DataLoader(capped(ds, self.measure.max_images), batch_size=self.measure.batch_size,
                                    shuffle=False)
        return out

    def measure_before(self) -> dict[str, Any]:
        """The subnet as the supernet holds it (BN recalibrated), on each split."""
        res: dict[str, Any] = {}
        for split, loader in self.loaders().items():
            res[split] = None if loader is None else _accuracy(
                evaluate_arch(self.supernet, self.arch, self.calib, loader, self.device))
        return res

    def choose_distill(self) -> str:
        """``distill="auto"``: KD when the teacher's hold-out top-1 is at least :data:`AUTO_KD_MARGIN` points
        above the subnet's (its "before"), else the labels; labels when nothing is held out. Sets
        :attr:`distill` and :attr:`distill_choice` and returns the one line that says why."""
        loader = self.loaders()["holdout"]
        student = (self.before.get("holdout") or {}).get("top1")
        if loader is None or student is None or self.teacher is None:
            self.distill = "none"
            self.distill_choice = {"requested": "auto", "chosen": "none", "reason": "no hold-out"}
            return ("distill auto: the data holds nothing out to compare the teacher with the subnet on; learning "
                    "from the labels (--distill none; --distill kd forces distillation)")
        teacher = float(evaluate_subnet(self.teacher, loader, self.device)["top1"])
        margin = teacher - float(student)
        self.distill = "kd" if margin >= AUTO_KD_MARGIN else "none"
        self.distill_choice = {"requested": "auto", "chosen": self.distill, "teacher_top1": round(teacher, 4),
                               "student_top1": float(student), "margin": round(margin, 4),
                               "threshold": AUTO_KD_MARGIN, "split": "holdout"}
        how = ("distilling from it (--distill kd; --distill none forces the labels)" if self.distill == "kd" else
               "learning from the labels (--distill none; --distill kd forces distillation)")
        cmp = "at least" if self.distill == "kd" else "under"
        return (f"distill auto: the teacher (max subnet, hold-out top-1 {teacher:.2f}%) is {margin:+.2f} points from "
                f"this subnet ({float(student):.2f}%), {cmp} the {AUTO_KD_MARGIN:g}-point margin: {how}")

    def settings(self) -> dict[str, Any]:
        """What decides the run's result, as a resume compares it: the supernet file, the arch, the data,
        the measurement, the resolved optimiser and the fine-tuning settings (:data:`RESUME_FREE` left out)."""
        ft = {k: v for k, v in self.s.record().items() if k not in RESUME_FREE}
        return {"supernet_sha256": self.source_sha256, "arch": self.arch.to_dict(), "data": self.data_config,
                "measure": {k: v for k, v in self.measure.model_dump(mode="json").items() if k != "batch_size"},
                "optim": self.optim_cfg.to_dict(),
                "batch_size": self.batch, "steps_per_epoch": self.steps_per_epoch, "finetune": ft}

    def measure_after(self) -> dict[str, Any]:
        res: dict[str, Any] = {}
        for split, loader in self.loaders().items():
            res[split] = None if loader is None else _accuracy(evaluate_subnet(self.student, loader, self.device))
        return res

    # ----------------------------------------------------------------- state
    def payload(self, done: bool) -> dict[str, Any]:
        p = subnet_payload(self.student)
        p.update({
            "parent": {"path": str(self.source), "kind": checkpoint_kind(self.meta),
                       "source": self.meta.get("source", "attentivenas"), "sha256": self.source_sha256},
            "class_names": self.class_names,  # what the classifier's outputs mean (None: not known)
            "distill": self.distill, "distill_choice": self.distill_choice,
            "settings": self.settings(), "settings_sha256": settings_sha256(self.settings()),
            "config": {"data": self.data_config, "optim": self.optim_cfg.to_dict(),
                       "finetune": self.s.record()},
            "holdout": dict(self.bundle.holdout),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": global_rng_state(),
            "progress": {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
                         "steps_per_epoch": self.steps_per_epoch, "done": done,
                         "metrics_records": self.logger.records if self.logger is not None else None},
            "before": self.before,
        })
        return p

    def save(self, done: bool = False) -> Path:
        save_training_checkpoint(self.payload(done), self.out, self.global_step, self.s.keep_last)
        return checkpoint_dir(self.out) / LAST

    def load(self, path: Path, obj: dict[str, Any]) -> bool:
        """Restore a run from its checkpoint; True when it had finished training."""
        if obj.get("kind") != "subnet" or obj.get("arch") != self.arch.to_dict():
            raise CheckpointError(f"checkpoint {path} is not a fine-tuning checkpoint of arch {self.arch.to_json()}; "
                                  "choose another --out or pass --resume fresh")
        started = ((obj.get("config") or {}).get("finetune") or {}).get("init", "supernet")
        if started != self.s.init:
            raise ConfigError(f"checkpoint {path} started from --init {started}, these settings --init {self.s.init}: "
                              "resume with the same --init or pass --resume fresh")
        prog = obj["progress"]
        if int(prog.get("steps_per_epoch", self.steps_per_epoch)) != self.steps_per_epoch:
            raise ConfigError(f"checkpoint {path} ran {prog['steps_per_epoch']} steps per epoch, these settings "
                              f"{self.steps_per_epoch}: resume with the same --batch-size and --steps-per-epoch")
        self.check_same_run(path, obj)
        self.student.load_state_dict(obj["model"], strict=True)
        self.optimizer.load_state_dict(obj["optimizer"])
        self.scheduler.load_state_dict(obj["scheduler"])
        set_global_rng_state(obj["rng"])
        self.epoch, self.step_in_epoch = int(prog["epoch"]), int(prog["step_in_epoch"])
        self.global_step = int(prog["global_step"])
        self.before = dict(obj.get("before") or {})
        started_with = ((obj.get("config") or {}).get("finetune") or {}).get("distill")  # an older release's
        self.distill = str(obj.get("distill") or started_with or self.distill)  # the loss the run chose, once
        self.distill_choice = obj.get("distill_choice")
        if self.distill == "none":
            self.teacher = None
        elif self.teacher is None:
            raise ConfigError(f"checkpoint {path} distils from the max subnet: resume it with --distill kd")
        return bool(prog.get("done"))

    def check_same_run(self, path: Path, obj: dict[str, Any]) -> None:
        """Refuse (one line) to continue the run of ``obj`` with another supernet file or other settings
        that change the result; a checkpoint of an older release (no recorded settings) is not compared."""
        saved = obj.get("settings")
        if not isinstance(saved, dict):
            warnings.warn(f"checkpoint {path} records no settings (an older release): only the arch, --init and the "
                          "steps per epoch were compared", RuntimeWarning, stacklevel=3)
            return
        was = saved.get("supernet_sha256")
        if was and self.source_sha256 and was != self.source_sha256:
            parent = (obj.get("parent") or {}).get("path", "?")
            raise CheckpointError(f"checkpoint {path} fine-tunes a subnet of another supernet: {parent} (sha256 "
                                  f"{str(was)[:12]}...), not {self.source} (sha256 {self.source_sha256[:12]}...); "
                                  "resume with the run's --checkpoint, or choose another --out or --resume fresh")
        diffs = [d for d in differing(saved, self.settings()) if d[0] != "supernet_sha256"]
        if diffs:
            raise ConfigError(f"--resume: the settings differ from those of the run of {path} in what they compute "
                              f"({describe_differences(diffs)}); resume with the run's settings (its result.json "
                              "and checkpoint record them), or choose another --out or --resume fresh")

    # ----------------------------------------------------------------- loop
    def step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        self.student.train()
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if self.teacher is not None and self.distill == "kd":
            with torch.no_grad():
                teacher = self.teacher(images)
            loss = soft_target_ce(self.student(images), teacher, self.s.temperature)
        else:
            loss = label_smoothing_ce(self.student(images), labels, self.smoothing)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise UserError(f"fine-tuning stopped: the loss was not finite at step {self.global_step + 1}; the last "
                            f"checkpoint is kept in {checkpoint_dir(self.out)}; lower --lr")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.optim_cfg.grad_clip_value is not None:
            nn.utils.clip_grad_value_(self.student.parameters(), self.optim_cfg.grad_clip_value)
        self.optimizer.step()
        self.scheduler.step()
        return value

    def train(self) -> None:
        s, every = self.s, self.s.checkpoint_every
        assert self.logger is not None
        while self.epoch < s.epochs:
            loader = train_loader(self.bundle.train, self.batch, s.seed, self.epoch, skip_batches=self.step_in_epoch)
            it = iter(loader)
            while self.step_in_epoch < self.steps_per_epoch:
                images, labels = next(it)
                lr = self.optimizer.param_groups[0]["lr"]
                loss = self.step(images.to(self.device), labels.to(self.device))
                self.global_step += 1
                self.step_in_epoch += 1
                if self.global_step % s.log_every == 0 or self.step_in_epoch == self.steps_per_epoch:
                    self.logger.log("train", self.global_step, epoch=self.epoch, loss=loss, lr=lr)
                if every and self.global_step % every == 0 and self.step_in_epoch < self.steps_per_epoch:
                    self.save()
            del it, loader
            self.epoch, self.step_in_epoch = self.epoch + 1, 0
            if self.epoch < s.epochs:
                self.save()


def _accuracy(res: dict[str, Any]) -> dict[str, Any]:
    return {"top1": round(float(res["top1"]), 4), "top5": round(float(res["top5"]), 4), "samples": int(res["samples"])}


def _applied_measure(p: MeasureSettings, data_cfg: Any) -> str:
    """The measurement as applied to the data (``describe()`` names ImageNet's Resize 256 / CenterCrop
    224, which small images such as Fashion-MNIST's 28x28 do not get)."""
    d = data_cfg if isinstance(data_cfg, dict) else data_cfg.model_dump(mode="json")
    size, resize = int(d.get("image_size") or 0), d.get("eval_resize")
    if resize is None and size >= 64:  # the config's rule: image_size / 0.875 (256 for 224)
        resize = round(size / 0.875)
    prep = (f"{d.get('name')} images resized to {resize} and centre-cropped to {size}" if resize
            else f"{d.get('name')} images whole, at {size}x{size}")
    return (f"split {p.split}; {prep}, resized in the network to the subnet's resolution, {p.interpolation}; "
            f"BN recalibrated on {p.calib_batches} x {p.calib_batch_size} training crops (seed {p.calib_seed})")


def finetune(checkpoint: str | Path, arch: Arch | str, out_dir: str | Path, data: str | None = None,
             settings: FinetuneSettings | None = None, resume: str | Path | None = None,
             space: str | None = None, log: Any = None,
             loaded: tuple[Supernet, dict[str, Any]] | None = None) -> FinetuneResult:
    """Fine-tune the subnet ``arch`` of the supernet checkpoint ``checkpoint`` into ``out_dir``.

    ``data`` as ``evaluate``'s ``--data`` (None: the checkpoint's training data); ``resume`` as
    ``train``'s (``None``: fresh, refusing a folder that holds a run; ``"auto"``; a path; ``"fresh"``).
    ``settings.measure`` sets the BN calibration and the evaluation (interpolation, seed: the checkpoint's
    evaluation by default); ``log(line)`` receives progress lines (default: stderr); ``loaded``: the
    supernet and metadata of ``checkpoint`` already loaded (:func:`attentivenas.nn.load_supernet`).
    """
    s = settings or FinetuneSettings()
    say = log or (lambda line: print(line, file=sys.stderr, flush=True))
    if s.threads is not None:
        torch.set_num_threads(s.threads)
    device = resolve_device(s.device)
    out = Path(out_dir)
    t0 = time.perf_counter()
    with OutputLock(out, "fine-tuning folder"):
        remove_torn_writes(out)
        found = resolve_resume(resume, out)
        if found is None and resume is None and (checkpoint_dir(out) / LAST).exists():
            raise ConfigError(f"{out} already holds a fine-tuning run; pass --resume auto to continue it, "
                              "--resume fresh to start over, or choose another --out")
        run, data_cfg = _prepare(checkpoint, arch, data, s, space, device, loaded, out, say)
        done = run.load(*found) if found is not None else False
        _start_files(run, resume, found)
        try:
            if found is None:
                _measure_before(run, say)
            if not done:
                run.train()
                calibrate_bn(run.student, run.calib)
                last = run.save(done=True)
            else:
                last = checkpoint_dir(out) / LAST
            after = run.measure_after()
            say(f"after:  {result_summary(after)}")
            result = _result(run, checkpoint, last, after, data_cfg, t0)
            run.logger.log("result", run.global_step, before=run.before, after=after)  # type: ignore[union-attr]
        finally:
            run.logger.close()  # type: ignore[union-attr]
        atomic_write_json(out / RESULT, result)
    return FinetuneResult(out, last, result)


def _result(run: _Run, checkpoint: str | Path, last: Path, after: dict[str, Any], data_cfg: Any,
            t0: float) -> dict[str, Any]:
    """What ``result.json`` records of a finished run."""
    supernet, a, p, meta, s = run.supernet, run.arch, run.measure, run.meta, run.s
    return {
        "arch": a.to_dict(), "checkpoint": str(last), "supernet": str(checkpoint),
        "supernet_sha256": run.source_sha256, "num_classes": supernet.num_classes, "new_head": s.new_head,
        "mflops": count_flops(supernet.space, a, supernet.num_classes),
        "params_m": count_params(supernet.space, a, supernet.num_classes) / 1e6,
        "distill": run.distill, "distill_requested": s.distill, "distill_choice": run.distill_choice,
        "init": s.init, "epochs": s.epochs, "steps": run.global_step, "batch_size": run.batch,
        "lr": run.optimizer.param_groups[0]["initial_lr"], "measure": _applied_measure(p, data_cfg),
        "seed": s.seed, "data": data_cfg.model_dump(mode="json"), "data_pipeline": describe_pipeline(data_cfg),
        "supernet_config": (meta.get("config") if isinstance(meta.get("config"), dict) else None),
        "before": run.before, "after": after, "wall_s": round(time.perf_counter() - t0, 3),
    }


def _prepare(checkpoint: str | Path, arch: Arch | str, data: str | None, s: FinetuneSettings, space: str | None,
             device: torch.device, loaded: tuple[Supernet, dict[str, Any]] | None, out: Path,
             say: Any) -> tuple[_Run, Any]:
    """The run of ``arch`` (supernet, data and measurement resolved; the head checked or new) and its data config."""
    supernet, meta = loaded if loaded is not None else load_supernet(checkpoint, space, device=device)
    supernet.to(device)
    a = arch if isinstance(arch, Arch) else resolve_arch(str(arch), supernet.space)
    supernet.space.validate(a)
    p = s.measure.resolved(meta)
    data_cfg = stage2_data_config(data, supernet.space, meta, interpolation=p.interpolation)
    bundle = resolve_data(data, supernet.space, meta, seed=int(p.calib_seed or 0), interpolation=p.interpolation)
    names = bundle_class_names(bundle)
    if s.new_head:  # the data's classes on a fresh, seeded classifier
        seed_everything(s.seed)
        supernet = with_new_head(supernet, bundle.num_classes)
        say(f"new head: the classifier re-initialised for the data's {bundle.num_classes} classes (the checkpoint's "
            f"has {meta.get('num_classes', '?')}); it learns from the labels")
    else:
        note = check_head(str(checkpoint), supernet.num_classes, checkpoint_class_names(meta),
                          bundle.num_classes, names)
        if note is not None:
            say(f"note: {note}")
    run = _Run(supernet, meta, a, bundle, data_cfg.model_dump(mode="json"), p, s, out, Path(checkpoint), device,
               file_sha256(checkpoint), names)
    return run, data_cfg


def _start_files(run: _Run, resume: str | Path | None, found: tuple[Path, dict[str, Any]] | None) -> None:
    """Set a run aside (fresh or resumed), cut its metrics (or remove the old run's files); open the log."""
    out = run.out
    if str(resume).lower() == "fresh" or found is not None:
        set_aside(out, int(found[1]["progress"]["global_step"]) if found is not None else None)
    out.mkdir(parents=True, exist_ok=True)
    if found is not None:
        truncate_metrics(out / "metrics.jsonl", run.global_step, found[1]["progress"].get("metrics_records"))
    else:  # a fresh start: the files of a run set aside go too
        for name in ("metrics.jsonl", RESULT):
            (out / name).unlink(missing_ok=True)
    run.logger = MetricsLogger(out, True, tensorboard=False)


def _measure_before(run: _Run, say: Any) -> None:
    """A fresh run's "before" accuracies, its ``distill="auto"`` choice, and the start record."""
    run.before = run.measure_before()
    say(f"before: {result_summary(run.before)}")
    if run.distill == "auto":
        say(run.choose_distill())
    if run.distill == "none":
        run.teacher = None
    assert run.logger is not None
    run.logger.log("start", 0, arch=run.arch.to_dict(), steps_per_epoch=run.steps_per_epoch, epochs=run.s.epochs,
                   lr=run.optimizer.param_groups[0]["lr"], distill=run.distill, distill_choice=run.distill_choice,
                   before=run.before)


def result_summary(res: dict[str, Any]) -> str:
    return ", ".join(f"{k} top-1 {v['top1']:.2f}%" if v is not None else f"{k} -" for k, v in res.items())
