"""The accuracy predictor in the loop of stage 1 (``sampler.estimator=online``).

The paper fits its accuracy predictor offline, on a trained supernet. Here the trainer fits one on
the fly: the first ``start_epoch`` epochs sample the middle subnets uniformly; then, at the end of
epoch ``start_epoch`` and every ``refit_every`` epochs after it, ``num_archs`` subnets spread over
the FLOPs range are extracted, BN-recalibrated on cached training batches and measured on the
validation split; the best predictor kind (cross-validated Kendall tau) is fitted on them, and
BestUp / WorstUp rank the candidates by its predicted accuracy until the next fit.

Files (written by rank 0, atomically)::

    DIR/predictors/archs_epoch_XXX.jsonl   the measured (arch, top-1) records of the fit after epoch XXX
    DIR/predictors/epoch_XXX.json          the fitted predictor (``attentivenas predictor`` format)

Every rank measures its shard of the validation split for every arch (the counts are summed, so
all ranks hold the same accuracies); rank 0 fits and writes; after a collective every rank loads
the same file. The active predictor (a path relative to the run folder) and the epoch of the next
fit are part of the training checkpoint, so ``--resume auto`` continues with the same estimator.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..accuracy import build_arch_dataset, fit_best
from ..config import TrainConfig
from ..data import DataBundle
from ..distributed import DistInfo, barrier
from ..errors import CheckpointError
from ..io import atomic_write_bytes
from ..nn import Supernet
from ..space import Arch, SearchSpace
from .distributed import all_reduce_sum
from .sampling import PredictorEstimator, load_predictor_estimator
from .validate import calibration_batches, calibration_seed, validate_arch

PREDICTOR_DIR = "predictors"


def predictor_file(epochs_done: int) -> str:
    """Path of the predictor fitted after ``epochs_done`` epochs, relative to the run folder."""
    return f"{PREDICTOR_DIR}/epoch_{epochs_done:03d}.json"


def dataset_file(epochs_done: int) -> str:
    """Path of the measured archs of that fit, relative to the run folder."""
    return f"{PREDICTOR_DIR}/archs_epoch_{epochs_done:03d}.jsonl"


def fit_seed(seed: int, epochs_done: int) -> int:
    """Seed of the archs measured (and of the regressors) for the fit after ``epochs_done`` epochs."""
    return int(np.random.SeedSequence([int(seed), 104_729, int(epochs_done)]).generate_state(1)[0])


@dataclass
class OnlineState:
    """What a checkpoint keeps: the active predictor (relative path or None) and the next fit."""

    active: str | None
    next_fit_epoch: int  # number of completed epochs after which the next fit runs
    fits: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"active": self.active, "next_fit_epoch": self.next_fit_epoch, "fits": self.fits}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OnlineState:
        active = d.get("active")
        return cls(str(active) if active else None, int(d["next_fit_epoch"]), int(d.get("fits", 0)))


class OnlinePredictor:
    """Fits, writes and loads the in-the-loop predictor of one run (see the module doc)."""

    def __init__(self, config: TrainConfig, out_dir: Path, space: SearchSpace, num_classes: int,
                 info: DistInfo) -> None:
        self.config = config
        self.cfg = config.sampler.online
        self.out_dir = Path(out_dir)
        self.space = space
        self.num_classes = num_classes
        self.info = info
        self.state = OnlineState(None, self.cfg.start_epoch)
        self.estimator: PredictorEstimator | None = None

    # ----------------------------------------------------------------- schedule
    def due(self, epochs_done: int) -> bool:
        """Fit after ``epochs_done`` epochs? Never after the last epoch (nothing would use it)."""
        return epochs_done == self.state.next_fit_epoch and epochs_done < self.config.optim.epochs

    # ----------------------------------------------------------------- fit
    def fit(self, net: Supernet, data: DataBundle, epochs_done: int) -> dict[str, Any]:
        """Measure, fit, write and activate the predictor after ``epochs_done`` epochs (every rank
        calls this). Returns the metrics record (complete on rank 0)."""
        cfg, on, info = self.config, self.cfg, self.info
        seed = fit_seed(cfg.seed, epochs_done)
        t0 = time.perf_counter()
        batches = calibration_batches(data.calibration_set(), on.calibration_batches or cfg.eval.calib_batches,
                                      cfg.eval.calibration_batch_size or cfg.data.batch_size, calibration_seed(cfg),
                                      info.rank, cfg.data.num_workers)
        max_batches = on.max_batches if on.max_batches is not None else cfg.eval.max_batches

        def evaluate(arch: Arch) -> float:
            return validate_arch(net, arch, batches, data.val, cfg.data.eval_batch_size, info, max_batches,
                                 cfg.data.num_workers, cfg.runtime.channels_last)["top1"]

        dataset = build_arch_dataset(self.space, evaluate, on.num_archs, seed=seed, num_classes=self.num_classes,
                                     progress=False)
        measure_s = time.perf_counter() - t0
        rel = predictor_file(epochs_done)
        record: dict[str, Any] = {"epoch": epochs_done, "path": rel, "n": len(dataset), "measure_s": measure_s}
        error: BaseException | None = None
        if info.is_main:
            try:
                t1 = time.perf_counter()
                dataset.save(self.out_dir / dataset_file(epochs_done))
                predictor, report = fit_best(dataset, on.kinds, on.folds, seed, on.feature_set)
                predictor.save(self.out_dir / rel)
                best = report["kinds"][report["best"]]
                acc = dataset.accuracies()
                record.update(best=report["best"], kendall_tau=best["kendall_tau"],
                              spearman_rho=best["spearman_rho"], rmse=best["rmse"],
                              fit_s=time.perf_counter() - t1, top1_min=float(acc.min()),
                              top1_max=float(acc.max()), top1_mean=float(acc.mean()))
                record.update({f"kendall_tau_{k}": r["kendall_tau"] for k, r in report["kinds"].items()})
            except Exception as exc:  # tell the other ranks before raising
                error = exc
        failed = torch.tensor([1.0 if error is not None else 0.0], device=info.device)
        all_reduce_sum(failed)  # also the barrier: rank 0 has written the file when this returns
        if error is not None:
            raise error
        if failed.item() > 0:
            raise RuntimeError("rank 0 failed to fit the online accuracy predictor (see its error)")
        self.state = OnlineState(rel, epochs_done + on.refit_every, self.state.fits + 1)
        self.activate()
        return record

    # ----------------------------------------------------------------- activation, state
    def activate(self) -> PredictorEstimator | None:
        """Load the active predictor (same file on every rank); None before the first fit."""
        if self.state.active is None:
            self.estimator = None
        else:
            self.estimator = load_predictor_estimator(self.out_dir / self.state.active, self.space)
        return self.estimator

    def state_dict(self) -> dict[str, Any]:
        return self.state.to_dict()

    def load_state_dict(self, state: dict[str, Any] | None, checkpoint: Path) -> None:
        """Restore the state of a checkpoint and load its predictor. A predictor missing from this
        run's folder is copied from the checkpoint's run folder (resuming into a new ``--out``)."""
        if state is None:
            raise CheckpointError(f"checkpoint {checkpoint} was not trained with sampler.estimator=online; "
                                  "resume it with the estimator it was trained with")
        self.state = OnlineState.from_dict(state)
        rel = self.state.active
        if rel is not None:
            here = self.out_dir / rel
            there = Path(checkpoint).resolve().parent.parent / rel
            if not here.is_file():
                if not there.is_file():
                    raise CheckpointError(f"checkpoint {checkpoint} samples with the online predictor {rel}, "
                                          f"which is missing from {self.out_dir} and {there.parent.parent}")
                if self.info.is_main:
                    atomic_write_bytes(here, there.read_bytes())
            barrier()
        self.activate()


__all__ = ["OnlinePredictor", "OnlineState", "predictor_file", "dataset_file", "fit_seed", "PREDICTOR_DIR"]
