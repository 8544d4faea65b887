"""Benchmark: explaining logged decisions vs. bare SHAP on the same rows.

Writes a demo log, then explains every scored candidate of N random decisions through the
full path (read the logged inputs, rebuild the model matrix, load the pinned models, TreeSHAP,
fidelity checks, store in DuckDB).  Prints one JSON object:

* ``explain_cold_s``: that full path, nothing cached (model loading included);
* ``explain_cached_s``: the same decisions again, read back from the ``explanations`` table;
* ``baseline_bare_shap_s``: the in-run baseline — ``TreeExplainer.shap_values`` alone on
  exactly the same rows, models already loaded and explainers built;
* the fidelity figures over all explained candidates (largest additivity residual, largest
  re-scoring error).

Usage: ``python benchmarks/bench_explain.py [--customers 20000] [--decisions 1000]``
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
from klartext.pipeline import run_demo


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--decisions", type=int, default=1_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "bench.duckdb")
        run_demo(db, args.customers, seed=args.seed)
        with DecisionLog.open(db) as log:
            ids = sample_ids(log, args.decisions, seed=args.seed)

            t = time.perf_counter()
            summary = Explainer(log).explain_many(ids)
            cold = time.perf_counter() - t

            t = time.perf_counter()
            again = Explainer(log).explain_many(ids)
            cached = time.perf_counter() - t

            # baseline: bare TreeSHAP on the same rows, models loaded, explainers built
            ex = Explainer(log)
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
            t = time.perf_counter()
            for tree, X in prepared:
                tree.shap_values(X, check_additivity=False)
            bare = time.perf_counter() - t

    n = summary["candidates_explained"]
    print(json.dumps({
        "benchmark": "bench_explain",
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version(),
                    "shap": shap.__version__},
        "log_decisions": args.customers,
        "decisions_explained": len(ids),
        "candidates_explained": n,
        "explain_cold_s": round(cold, 3),
        "explain_cold_rows_per_s": round(n / cold),
        "explain_cached_s": round(cached, 3),
        "baseline_bare_shap_s": round(bare, 3),
        "ratio_cold_to_bare_shap": round(cold / bare, 2),
        "max_additivity_residual": summary["max_additivity_residual"],
        "max_rescore_error": summary["max_rescore_error"],
        "failures": len(summary["failures"]),
        "cached_computed_now": again["computed_now"],
    }, indent=2))


if __name__ == "__main__":
    main()
