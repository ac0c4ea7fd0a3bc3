"""Training checkpoints: complete state, atomic writes, rotation and ``--resume auto``.

A training checkpoint is a superset of :func:`attentivenas.nn.supernet_payload` (so
``load_supernet`` reads it): the model plus optimiser, scheduler, AMP scaler, sampler (and its
prior), RNG states of python, numpy and torch (CPU and CUDA; :mod:`attentivenas.rng`), the epoch and the step inside it,
and the resolved config. Only tensors, numbers, strings, lists and dicts: loadable with
``torch.load(weights_only=True)``.

Files: ``DIR/checkpoints/step_000000123.pt`` (the last ``keep_last`` kept) and ``last.pt``, a copy
of the newest. Every file is written atomically, so a crash leaves the previous one intact.
:class:`TrainerState` is the trainer's half of it: the payload, its save and a run restored from it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.optim.lr_scheduler import LRScheduler

from ..config import TrainConfig, parse_config
from ..data import DataBundle
from ..distributed import DistInfo, is_dist
from ..errors import CheckpointError, ConfigError
from ..io import atomic_torch_save
from ..nn import FORMAT, VERSION, Supernet, read_checkpoint, sealed, supernet_payload
from ..rng import global_rng_state, set_global_rng_state
from ..space import SearchSpace
from .logging import MetricsLogger
from .online import OnlinePredictor
from .optim import fill_momentum_buffers, follow_config
from .sampling import ArchSampler
from .transfer import bundle_class_names

STEP_FILE = re.compile(r"^step_(\d+)\.pt$")
LAST = "last.pt"
FRESH = "fresh"  #: ``--resume fresh``: start over in a folder that holds checkpoints (they are set aside)
ABANDONED = "abandoned"  #: ``checkpoints/abandoned/<time>/``: checkpoints of branches no longer followed
REQUIRED = ("format", "space", "num_classes", "model", "optimizer", "scheduler", "rng", "progress")
#: config keys (dotted; a trailing dot: a whole section) a resumed run may change: they cannot change what
#: it computes (logging, checkpoint cadence, threads, loader workers, device and memory layout, where it stops)
RESUME_FREE = ("log.", "checkpoint.", "runtime.threads", "runtime.device", "runtime.channels_last",
               "runtime.max_steps", "runtime.dist_timeout_s", "runtime.nan_patience", "runtime.reuse_freed_memory",
               "data.num_workers", "data.pin_memory", "data.eval_batch_size", "sampler.record_every",
               "sampler.record_max")
#: keys a resumed run may change as a change of course, the remedies a divergence message suggests: the
#: optimiser follows them from the step it resumes at (:func:`~attentivenas.train.optim.follow_config`);
#: each change is printed and recorded in the checkpoint's ``config_changes`` (step, key, before, after)
RESUME_COURSE = ("optim.lr", "optim.momentum", "optim.nesterov", "optim.weight_decay", "optim.classifier_lr_scale",
                 "runtime.amp")


# --------------------------------------------------------------------------- files
def checkpoint_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / "checkpoints"


def step_path(out_dir: str | Path, global_step: int) -> Path:
    return checkpoint_dir(out_dir) / f"step_{global_step:09d}.pt"


def step_files(out_dir: str | Path) -> list[tuple[int, Path]]:
    """Step-numbered checkpoints, oldest first."""
    d = checkpoint_dir(out_dir)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := STEP_FILE.match(p.name))]
    return sorted(found)


def save_training_checkpoint(payload: dict[str, Any], out_dir: str | Path, global_step: int,
                             keep_last: int = 3) -> Path:
    """Write ``step_<n>.pt`` and ``last.pt`` atomically, then delete step files beyond the newest
    ``keep_last``. Returns the step file's path."""
    payload = sealed(payload)
    path = atomic_torch_save(payload, step_path(out_dir, global_step))
    atomic_torch_save(payload, checkpoint_dir(out_dir) / LAST)
    files = step_files(out_dir)
    for _, old in files[: max(0, len(files) - keep_last)]:
        old.unlink(missing_ok=True)
    return path


def read_training_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and check a training checkpoint (``weights_only=True``); :class:`CheckpointError` if it
    is missing, corrupt, or not a training checkpoint of ours."""
    p = Path(path)
    obj = read_checkpoint(p)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {p} is not an attentivenas checkpoint")
    if int(obj.get("version", 0)) > VERSION:
        raise CheckpointError(f"checkpoint {p} has format version {obj['version']}; this release reads up to {VERSION}")
    missing = [k for k in REQUIRED if k not in obj]
    if missing:
        raise CheckpointError(f"checkpoint {p} has no training state (missing {missing}); it cannot be resumed")
    return obj


def _try_read(p: Path) -> dict[str, Any] | None:
    """The checkpoint at ``p``, or None (with a warning naming it and why) when it cannot be used."""
    if not p.is_file():
        return None
    try:
        return read_training_checkpoint(p)
    except CheckpointError as exc:
        warnings.warn(f"skipping {exc}", RuntimeWarning, stacklevel=3)
        return None


def find_resumable(out_dir: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest valid checkpoint of a run, or ``None`` if it has none yet.

    ``last.pt`` normally is the newest; a step file with a higher number (a crash between the two
    writes) or, when ``last.pt`` is unreadable, the newest readable step file wins.
    """
    last_path = checkpoint_dir(out_dir) / LAST
    last = _try_read(last_path)
    last_step = int(last["progress"]["global_step"]) if last is not None else -1
    for n, p in reversed(step_files(out_dir)):
        if n <= last_step:
            break
        obj = _try_read(p)
        if obj is not None:
            return p, obj
    return (last_path, last) if last is not None else None


def _checkpoint_files(out_dir: str | Path) -> list[Path]:
    last = checkpoint_dir(out_dir) / LAST
    return [p for _, p in step_files(out_dir)] + ([last] if last.is_file() else [])


def resolve_resume(resume: str | Path | None, out_dir: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """``None``/``"none"``/``"fresh"``: a fresh start; ``"auto"``: the newest valid checkpoint in
    ``out_dir`` (a fresh start if the folder has none; an error if it has some but none can be read);
    a path: that checkpoint (must be valid)."""
    if resume is None or str(resume).lower() in ("", "none", "no", "false", FRESH):
        return None
    if str(resume).lower() == "auto":
        found = find_resumable(out_dir)
        files = _checkpoint_files(out_dir)
        if found is None and files:
            names = ", ".join(p.name for p in files)
            raise CheckpointError(
                f"no checkpoint in {checkpoint_dir(out_dir)} can be resumed: every one is damaged or unsafe ({names}); "
                f"pass --resume {FRESH} to start over (they are moved to checkpoints/{ABANDONED}/)"
            )
        return found
    p = Path(resume)
    return p, read_training_checkpoint(p)


def set_aside(out_dir: str | Path, after_step: int | None) -> list[Path]:
    """Move the checkpoints of an abandoned branch into ``checkpoints/abandoned/<time>/``: the step files
    after ``after_step`` (every one when None) and ``last.pt`` when it is among them. A run that
    rewinds (``--resume PATH`` into its own folder) or starts over (``--resume fresh``) calls this, so
    that ``--resume auto`` and the rotation only ever see the current branch. Returns the new paths."""
    d = checkpoint_dir(out_dir)
    move = [p for n, p in step_files(out_dir) if after_step is None or n > after_step]
    last = d / LAST
    if last.is_file():
        try:
            step = int(read_training_checkpoint(last)["progress"]["global_step"])
        except CheckpointError:
            step = None  # a damaged last.pt belongs to no branch worth keeping in place
        if after_step is None or step is None or step > after_step:
            move.append(last)
    if not move:
        return []
    dest = d / ABANDONED / time.strftime("%Y%m%d-%H%M%S")
    while dest.exists():
        dest = dest.with_name(dest.name + "_")
    dest.mkdir(parents=True)
    moved = []
    for p in move:
        os.replace(p, dest / p.name)
        moved.append(dest / p.name)
    return moved


# --------------------------------------------------------------------------- settings a resume may not change
def flat_settings(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested dict as ``{"a.b.c": value}`` (lists and scalars are values)."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(flat_settings(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def differing(saved: dict[str, Any], current: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """The dotted keys whose values differ between two nested dicts: ``(key, saved, current)``, sorted."""
    a, b = flat_settings(saved), flat_settings(current)
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def settings_sha256(settings: dict[str, Any]) -> str:
    """A sha256 of settings (canonical JSON: keys sorted)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def describe_differences(diffs: list[tuple[str, Any, Any]], limit: int = 4) -> str:
    """``key: saved -> current`` for the first ``limit`` differences (and how many more)."""
    shown = "; ".join(f"{k}: {a!r} in the run, {b!r} now" for k, a, b in diffs[:limit])
    return shown + (f"; and {len(diffs) - limit} more" if len(diffs) > limit else "")


def _matches(key: str, names: tuple[str, ...]) -> bool:
    return any(key == n or (n.endswith(".") and key.startswith(n)) for n in names)


def resume_changes(path: Path, saved: Any, config: TrainConfig) -> list[tuple[str, Any, Any]]:
    """The changes of course (:data:`RESUME_COURSE`) ``config`` makes to the run of checkpoint ``path``;
    :class:`ConfigError` (one line naming the keys) for any other change that alters the result (seed,
    space, init, data, model, loss, optim, sampler, eval); :data:`RESUME_FREE` keys may change."""
    if not isinstance(saved, dict):
        raise ConfigError(f"checkpoint {path} records no training config; it cannot be resumed safely: pass "
                          f"--resume {FRESH} or choose another --out")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # a run of an older release: its old key names
            before = parse_config(saved, f"the config of {path}").to_dict()
    except ConfigError as exc:
        raise ConfigError(f"checkpoint {path} holds a config this release cannot read ({exc}); resume it with the "
                          f"release that wrote it, or pass --resume {FRESH}") from None
    diffs = [d for d in differing(before, config.to_dict()) if not _matches(d[0], RESUME_FREE)]
    refused = [d for d in diffs if not _matches(d[0], RESUME_COURSE)]
    if refused:
        raise ConfigError(f"--resume: the settings differ from the checkpoint's run {path} in what they compute "
                          f"({describe_differences(refused)}); resume with the run's settings (its config.yaml), "
                          f"or start another run (another --out, or --resume {FRESH})")
    return diffs


# --------------------------------------------------------------------------- the trainer's state
class TrainerState:
    """The checkpoint half of :class:`~attentivenas.train.loop.Trainer`: its payload, :meth:`save`
    and :meth:`load` (the attributes below are set by the trainer)."""

    config: TrainConfig
    out_dir: Path
    info: DistInfo
    space: SearchSpace
    data: DataBundle
    num_classes: int
    net: Supernet
    optimizer: torch.optim.Optimizer
    scheduler: LRScheduler
    scaler: torch.amp.GradScaler | None
    sampler: ArchSampler
    online: OnlinePredictor | None
    total_batch: int
    steps_per_epoch: int
    epoch: int
    step_in_epoch: int
    global_step: int
    nan_streak: int
    last_eval: dict[str, float]
    last_checkpoint: Path | None
    logger: MetricsLogger | None
    config_changes: list[dict[str, Any]]  # changes of course on resume (RESUME_COURSE), oldest first

    def _use_online_estimator(self) -> None:
        """Score with the online predictor once there is one (the trainer's)."""
        raise NotImplementedError

    def _rank_rngs(self) -> list[dict[str, Any]]:
        """Every rank's torch (CPU and CUDA) RNG states, gathered (one entry without a process group)."""
        mine = {"torch": torch.get_rng_state(),
                "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else []}
        if not is_dist():
            return [mine]
        out: list[Any] = [None] * self.info.world_size
        dist.all_gather_object(out, mine)
        return out

    def payload(self) -> dict[str, Any]:
        """The training checkpoint: the supernet's payload plus the whole state of the run."""
        p = supernet_payload(self.net)
        p.update({
            "kind": "training",
            "config": self.config.to_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "sampler": self.sampler.state_dict(),
            "rng": global_rng_state(),
            "rng_ranks": self._rank_rngs(),
            "progress": {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
                         "global_step": self.global_step, "nan_streak": self.nan_streak,
                         "steps_per_epoch": self.steps_per_epoch, "world_size": self.info.world_size,
                         "metrics_records": self.logger.records if self.logger is not None else None},
            "metrics": dict(self.last_eval),
            "holdout": dict(self.data.holdout),  # which training images were held out (stage 2 checks it)
            "class_names": bundle_class_names(self.data),  # what the classifier's outputs mean (finetune checks it)
            "config_changes": list(self.config_changes),
            "online": self.online.state_dict() if self.online is not None else None,
        })
        return p

    def save(self) -> None:
        """All ranks take part (RNG states are gathered); rank 0 writes."""
        payload = self.payload()
        if self.info.is_main:
            save_training_checkpoint(payload, self.out_dir, self.global_step, self.config.checkpoint.keep_last)
        self.last_checkpoint = checkpoint_dir(self.out_dir) / LAST

    def load(self, path: Path, obj: dict[str, Any]) -> None:
        """Restore everything from a training checkpoint; refuses settings that would change what the
        run computes (:func:`resume_changes`), after the checks of each part."""
        try:
            self.net.load_state_dict(obj["model"], strict=True)
        except RuntimeError as exc:
            raise ConfigError(f"checkpoint {path} does not fit this config's supernet (space "
                              f"'{self.space.name}', {self.num_classes} classes): {str(exc).splitlines()[0]}") from None
        if len(obj["optimizer"].get("param_groups", [])) != len(self.optimizer.param_groups):
            raise ConfigError(f"checkpoint {path} has {len(obj['optimizer'].get('param_groups', []))} parameter groups, "
                              f"this config {len(self.optimizer.param_groups)}: optim.classifier_lr_scale cannot "
                              "switch between 1 and another value when a run resumes; keep the run's value")
        self.optimizer.load_state_dict(obj["optimizer"])
        fill_momentum_buffers(self.optimizer)
        self.scheduler.load_state_dict(obj["scheduler"])
        follow_config(self.optimizer, self.scheduler, self.config.optim, self.total_batch)
        if self.scaler is not None and obj.get("scaler"):
            self.scaler.load_state_dict(obj["scaler"])
        self.sampler.load_state_dict(obj["sampler"])
        if self.online is not None:
            self.online.load_state_dict(obj.get("online"), path)
            self._use_online_estimator()
        else:
            self.sampler.warmup = False  # e.g. an online run resumed with another estimator
        prog = obj["progress"]
        self.epoch, self.step_in_epoch = int(prog["epoch"]), int(prog["step_in_epoch"])
        self.global_step, self.nan_streak = int(prog["global_step"]), int(prog.get("nan_streak", 0))
        self.last_eval = dict(obj.get("metrics") or {})
        set_global_rng_state(obj["rng"])
        ranks = obj.get("rng_ranks") or []
        if len(ranks) == self.info.world_size:
            torch.set_rng_state(ranks[self.info.rank]["torch"])
            cuda = ranks[self.info.rank].get("cuda") or []
            if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(cuda)
        else:
            torch.manual_seed(self.config.seed * 7919 + self.info.rank + 1 + self.global_step)
        if int(prog.get("steps_per_epoch", self.steps_per_epoch)) != self.steps_per_epoch or \
                int(prog.get("world_size", self.info.world_size)) != self.info.world_size:
            warnings.warn(f"resuming {path} with another world size or epoch length: the data order differs "
                          "from an uninterrupted run", stacklevel=2)
        changes = resume_changes(path, obj.get("config"), self.config)
        self.config_changes = list(obj.get("config_changes") or [])
        if changes:
            self.config_changes.append({"step": self.global_step, "changes": {k: [a, b] for k, a, b in changes}})
            if self.info.is_main:
                print(f"resuming at step {self.global_step} with a change of course: "
                      f"{describe_differences(changes, len(changes))} (recorded in the checkpoint's config_changes)",
                      file=sys.stderr, flush=True)
        self.last_checkpoint = path

    def finished(self) -> bool:
        """Whether the run has trained all its epochs (a resume then trains 0 steps)."""
        return self.epoch >= self.config.optim.epochs
