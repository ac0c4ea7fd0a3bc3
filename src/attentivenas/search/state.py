"""The evolution's checkpoint: after every generation rank 0 writes ``DIR/search_state.npz``
(atomically) with the population (genes, objectives, constraints, rank and crowding), the archive of
every evaluated arch, pymoo's and the search's generator states, the history and a fingerprint of the
settings that shape the evolution. A search started again with the same settings continues after the
last generation written, and ends with the same files as a search that was never interrupted.

Plain numpy arrays and one JSON document: ``numpy.load(..., allow_pickle=False)`` reads it back; no
pickling anywhere. Rank 0 reads the file and sends its bytes to the other ranks.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pymoo.core.population import Population

from ..config import SearchConfig
from ..distributed import broadcast_bytes, is_main
from ..errors import UserError
from ..io import atomic_write_bytes
from ..rng import generator_state, set_generator_state
from .problem import SearchState

STATE_FORMAT = "attentivenas-search-state"
STATE_VERSION = 1
STATE_NAME = "search_state.npz"
#: settings that do not change the generations already run (more generations continue the evolution)
_NOT_FINGERPRINTED = {("evolution", "generations"), ("accuracy", "device"), ("accuracy", "report_split"),
                      ("published",), ("runtime",), ("accuracy", "batch_size"), ("int8",)}


def fingerprint(config: SearchConfig, extra: dict[str, Any] | None = None) -> str:
    """A hash of the settings that shape the evolution (not the number of generations, the device,
    the ranks, the report split or how INT8 subnets are measured after it)."""
    data = config.to_dict()
    for path in _NOT_FINGERPRINTED:
        node = data
        for key in path[:-1]:
            node = node.get(key, {})
        node.pop(path[-1], None)
    if data.get("precision") == "fp32":  # an fp32 search fingerprints as before the setting existed
        data.pop("precision")
    text = json.dumps({"config": data, "extra": extra or {}}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def save_state(path: Path, algorithm: Any, search: SearchState, rng: np.random.Generator,
               history: list[dict[str, Any]], fp: str) -> None:
    """Write the state after generation ``algorithm.n_gen`` (rank 0 only)."""
    if not is_main():
        return
    pop = algorithm.pop
    genes, values = search.archive.arrays()
    meta = {"format": STATE_FORMAT, "version": STATE_VERSION, "fingerprint": fp, "generation": int(algorithm.n_gen),
            "pymoo_rng": generator_state(algorithm.random_state), "rng": generator_state(rng),
            "history": history, "columns": list(values), "bounds": {c: list(b) for c, b in search.bounds.items()}}
    arrays = {
        "pop_x": np.rint(np.asarray(pop.get("X"), dtype=np.float64)).astype(np.int64),
        "pop_f": np.asarray(pop.get("F"), dtype=np.float64),
        "pop_g": np.asarray(pop.get("G"), dtype=np.float64).reshape(len(pop), -1),
        "pop_rank": _ranks(pop.get("rank"), len(pop)),
        "pop_crowding": _crowding(pop.get("crowding"), len(pop)),
        "archive_genes": genes.astype(np.int64),
        "meta": np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
    }
    for c, v in values.items():
        arrays[f"archive_{c}"] = v
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def _ranks(values: Any, n: int) -> np.ndarray:
    """pymoo's non-dominated ranks of a population; -1 where it gave none (an infeasible individual
    is sorted by its constraint violation and has no rank)."""
    out = np.full(n, -1, dtype=np.int64)
    for i, v in enumerate(list(values) if values is not None else []):
        if v is not None:
            out[i] = int(v)
    return out


def _crowding(values: Any, n: int) -> np.ndarray:
    """pymoo's crowding distances of a population; NaN where it gave none (infeasible individuals)."""
    out = np.full(n, np.nan, dtype=np.float64)
    for i, v in enumerate(list(values) if values is not None else []):
        if v is not None:
            out[i] = float(v)
    return out


def load_state(path: Path | None, fp: str, warn: Callable[[str], None] | None = None, *,
               widths: tuple[int, int] | None = None, generations: int | None = None) -> dict[str, Any] | None:
    """The state in ``path`` (read by rank 0, sent to every rank), or None when there is none, it is
    unreadable (truncated, or arrays that do not fit together or the search: ``widths`` = (variable
    genes, genes)) or it was written with other settings (then the evolution starts again). A state
    past ``generations`` is refused (:class:`UserError`): continuing it would not be that search, and
    starting again would overwrite it."""
    if path is None:
        return None
    data = None
    if is_main():
        data = path.read_bytes() if path.is_file() else b""
    data = broadcast_bytes(data)
    if not data:
        return None
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
        if not isinstance(meta, dict) or meta.get("format") != STATE_FORMAT or meta.get("version") != STATE_VERSION:
            raise ValueError("not a search state of this version")
        if meta.get("fingerprint") == fp:
            _check_state(meta, arrays, widths)
    except (ValueError, KeyError, TypeError, IndexError, OSError, EOFError, zipfile.BadZipFile) as exc:
        if warn is not None:
            warn(f"{path} is unreadable ({_reason(exc)}); the evolution starts again")
        return None
    if meta.get("fingerprint") != fp:
        if warn is not None:
            warn(f"{path} was written with other search settings; the evolution starts again")
        return None
    if generations is not None and meta["generation"] > generations:
        raise UserError(f"{path} holds generation {meta['generation']} of this search, past evolution.generations="
                        f"{generations}: ask for {meta['generation']} or more to continue it, or move the file away "
                        "to start again")
    return {"meta": meta, **arrays}


def _reason(exc: BaseException) -> str:
    """Why a state is unreadable, in a few words (a zip error's own message may span lines)."""
    text = f"no {exc}" if isinstance(exc, KeyError) else " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _check_state(meta: dict[str, Any], arrays: dict[str, np.ndarray], widths: tuple[int, int] | None) -> None:
    """Raise ValueError unless the arrays and the document of a state fit together (and the search)."""
    gen = meta["generation"]
    if not isinstance(gen, int) or isinstance(gen, bool) or gen < 1:
        raise ValueError(f"generation {gen!r}")
    if not isinstance(meta["history"], list) or len(meta["history"]) != gen:
        raise ValueError(f"a history of {len(meta['history'])} generations for generation {gen}")
    x, f = arrays["pop_x"], arrays["pop_f"]
    n = len(x)
    if x.ndim != 2 or n < 1 or f.ndim != 2 or len(f) != n or len(arrays["pop_g"]) != n or \
            arrays["pop_rank"].shape != (n,) or arrays["pop_crowding"].shape != (n,):
        raise ValueError("population arrays of different lengths")
    genes = arrays["archive_genes"]
    columns = meta["columns"]
    if genes.ndim != 2 or not isinstance(columns, list) or \
            any(arrays[f"archive_{c}"].shape != (len(genes),) for c in columns):
        raise ValueError("archive arrays of different lengths")
    if widths is not None and (x.shape[1] != widths[0] or (len(genes) and genes.shape[1] != widths[1])):
        raise ValueError(f"archs of {x.shape[1]} variable genes; this search has {widths[0]}")
    for key in ("pymoo_rng", "rng"):
        set_generator_state(np.random.default_rng(), meta[key])
    for bound in meta["bounds"].values():
        if len(bound) != 2:
            raise ValueError(f"cost bounds {bound!r}")
        float(bound[0]) + float(bound[1])  # numbers, else TypeError / ValueError


def restore_archive(search: SearchState, state: dict[str, Any]) -> None:
    """The archive of every arch evaluated before the checkpoint, in its order."""
    cols = state["meta"]["columns"]
    genes = state["archive_genes"]
    if len(genes):
        search.archive.add(genes, {c: state[f"archive_{c}"] for c in cols})
    search.bounds = {c: (float(b[0]), float(b[1])) for c, b in state["meta"]["bounds"].items()}


def restore_algorithm(algorithm: Any, state: dict[str, Any], rng: np.random.Generator) -> int:
    """Put a set-up pymoo algorithm where it was after the checkpoint's generation; returns it."""
    meta = state["meta"]
    gen = int(meta["generation"])
    algorithm._initialize()  # pymoo's own start of a run (timer, counters), without its first infill
    pop = Population.new("X", state["pop_x"].astype(np.float64), "F", state["pop_f"], "G", state["pop_g"])
    ranks = [None if r < 0 else int(r) for r in state["pop_rank"]]  # -1: an infeasible individual (no rank)
    crowding = [None if r < 0 else float(c) for r, c in zip(state["pop_rank"], state["pop_crowding"], strict=True)]
    pop.set("rank", np.array(ranks, dtype=object), "crowding", np.array(crowding, dtype=object))
    for ind in pop:
        ind.evaluated.update({"F", "G", "H"})
    algorithm.pop = pop
    algorithm.is_initialized = True
    algorithm.n_iter = gen
    set_generator_state(algorithm.random_state, meta["pymoo_rng"])
    set_generator_state(rng, meta["rng"])
    algorithm._set_optimum()
    algorithm.termination.update(algorithm)
    algorithm.n_iter = gen + 1
    return gen
