"""Benchmark: explaining logged decisions vs. bare SHAP on the same rows.

Writes a demo log, then explains every scored candidate of N random decisions through the
full path (read the logged inputs, rebuild the model matrix, load the pinned models, TreeSHAP,
fidelity checks, store in DuckDB).  Prints one JSON object:

* ``single``: one decision at a time (all its scored candidates): the median *cold* time
  (attributions computed now; models already loaded); with the log reopened read-only, as
  the dashboard and ``klartext explain`` open it, the *warm from log* time (record and
  attributions read back from the log's tables, fidelity re-checked) and the *warm* time
  (the same decision again: an explainer on a read-only log keeps what it explained, since
  no process can change the file while it is open read-only); plus the very first call,
  which loads the models it needs;
* ``batch``: ``--batch`` decisions explained in one call, candidates per second;
* ``baseline_bare_treeexplainer``: the in-run baseline — ``TreeExplainer.shap_values`` alone
  on exactly the batch's rows, models loaded and explainers built;
* the fidelity figures over all explained candidates.

Targets: one decision ≤ 50 ms cold and ≤ 5 ms warm; batch ≥ 0.7× the bare explainer.

Usage: ``python benchmarks/bench_explain.py [--customers 30000] [--batch 10000]``
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import shap

from decision_log import explanations as store
from decision_log.replay import sample_ids
from decision_log.store import DecisionLog
from decisioning.models import CHANNEL_FEATURE, model_matrix
from explain.api import Explainer
from klartext.jobs import run_demo


def _bare(log: DecisionLog, ex: Explainer, ids: list[str]) -> tuple[list, int]:
    """Bare TreeExplainer inputs for exactly the rows the explainer computes."""
    rows = store.scored_candidates(log.con.cursor(), ids)
    prepared = []
    for (sv, mv), grp in rows.groupby(["strategy_version", "model_versions"], sort=False):
        strategy = log.load_strategy(sv)
        models = log.load_models(json.loads(mv))
        dec = grp.drop_duplicates("decision_id")
        pos = {d: i for i, d in enumerate(dec["decision_id"])}
        M = model_matrix(strategy, ex._requests(strategy, dec))
        cols = strategy.model_features + (CHANNEL_FEATURE,)
        for aid, g in grp.groupby("action_id", sort=False):
            m = models[aid]
            X = M[np.ix_([pos[d] for d in g["decision_id"]], [cols.index(f) for f in m.features])]
            prepared.append((shap.TreeExplainer(m.estimator, feature_perturbation="tree_path_dependent",
                                                model_output="raw"), X))
    return prepared, len(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=30_000)
    ap.add_argument("--batch", type=int, default=10_000, help="Decisions explained in one batch.")
    ap.add_argument("--single", type=int, default=50, help="Decisions explained one at a time.")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "bench.duckdb")
        run_demo(db, args.customers, seed=args.seed)
        with DecisionLog.open(db) as log:
            ids = sample_ids(log, args.batch + args.single + 1, seed=args.seed)
            batch_ids, single_ids, first_id = ids[:args.batch], ids[args.batch:-1], ids[-1]
            ex = Explainer(log)
            t = time.perf_counter()
            ex.explain(first_id)  # the very first call loads the models it needs
            first_call = time.perf_counter() - t
            ex.explain_many(sample_ids(log, 300, seed=args.seed + 1))  # load every model, build explainers
            cold, warm = [], []
            for did in single_ids:
                t = time.perf_counter()
                ex.explain(did)
                cold.append(time.perf_counter() - t)
            t = time.perf_counter()
            summary = ex.explain_many(batch_ids)
            batch_s = time.perf_counter() - t
            prepared, n_rows = _bare(log, ex, batch_ids)
            t = time.perf_counter()
            for tree, X in prepared:
                tree.shap_values(X, check_additivity=False)
            bare = time.perf_counter() - t
        # warm, as the dashboard and `klartext explain` see it: the log opened read-only, the
        # attributions read back from its explanations table (first pass), then again
        with DecisionLog.open(db, read_only=True) as log:
            ex2 = Explainer(log)
            ex2.explain(first_id)  # load the strategy and models once
            from_log = []
            for did in single_ids:
                t = time.perf_counter()
                ex2.explain(did)
                from_log.append(time.perf_counter() - t)
            for did in single_ids:
                t = time.perf_counter()
                ex2.explain(did)
                warm.append(time.perf_counter() - t)
    n = summary["candidates_explained"]
    print(json.dumps({
        "benchmark": "bench_explain",
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version(),
                    "shap": shap.__version__},
        "log_decisions": args.customers,
        "single": {"decisions": len(single_ids), "first_call_ms": round(first_call * 1000, 1),
                   "cold_median_ms": round(float(np.median(cold)) * 1000, 2),
                   "warm_from_log_median_ms": round(float(np.median(from_log)) * 1000, 2),
                   "warm_median_ms": round(float(np.median(warm)) * 1000, 2)},
        "batch": {"decisions": len(batch_ids), "candidates": n, "seconds": round(batch_s, 3),
                  "candidates_per_s": round(n / batch_s)},
        "baseline_bare_treeexplainer": {"candidates": n_rows, "seconds": round(bare, 3),
                                        "candidates_per_s": round(n_rows / bare)},
        "batch_throughput_vs_bare": round((n / batch_s) / (n_rows / bare), 3),
        "max_additivity_residual": summary["max_additivity_residual"],
        "max_rescore_error": summary["max_rescore_error"],
        "failures": len(summary["failures"]),
        "targets": {"single_cold<=50ms": float(np.median(cold)) <= 0.05,
                    "single_warm<=5ms": float(np.median(warm)) <= 0.005,
                    "batch>=0.7x_bare": (n / batch_s) / (n_rows / bare) >= 0.7},
    }, indent=2))


if __name__ == "__main__":
    main()
