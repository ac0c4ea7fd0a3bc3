"""Peak memory of a search by population and generations (the bound on ``evolution.pop_size``).

Accuracy is an analytic function of the MFLOPs (no supernet), so the number is the search's own
memory: the first population's pool (200 archs per individual), the archive and pymoo's population.
Usage: ``python benchmarks/search_memory.py POP_SIZE GENERATIONS [--space attentivenas]``; one JSON
line (peak resident memory of the process, in MB, as ``getrusage`` reports it).
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np

from attentivenas.config import SearchConfig, parse_model
from attentivenas.costs import CostModel
from attentivenas.search import run_search
from attentivenas.space import get_space


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("pop_size", type=int)
    ap.add_argument("generations", type=int)
    ap.add_argument("--space", default="attentivenas")
    args = ap.parse_args(argv)
    space = get_space(args.space)
    cost = CostModel(space, 1000)

    def accuracy(genes: np.ndarray) -> np.ndarray:
        return 50.0 + 3.0 * np.log(cost.flops(np.atleast_2d(genes)))

    config = parse_model(SearchConfig, {"evolution": {"pop_size": args.pop_size,
                                                      "generations": args.generations}}, "search_memory")
    t = time.perf_counter()
    result = run_search(space, config, accuracy)
    row = {"space": args.space, "pop_size": args.pop_size, "generations": args.generations,
           "evaluations": result.n_evaluations, "seconds": round(time.perf_counter() - t, 1),
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
           "num_genes": int(space.num_genes)}
    print(json.dumps(row))
    return row


if __name__ == "__main__":
    main()
