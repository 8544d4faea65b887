"""Benchmark: deciding with full candidate logging vs. the propensity models alone.

Prints one JSON object:

* ``batch``: decisions/s of the pipelined engine + DuckDB logging (every candidate row, hash
  chain) on the demo scenario, and the same split into engine-only and logging-only time
  (registering the strategy and the model artifacts in the log, once per log, is timed
  on its own);
* ``baseline_models_only_s``: the time the propensity models alone take to score exactly the
  (decision, action) rows that reached scoring in that run — the in-run baseline;
* how both were timed: ``--repeat`` times each (default 3), a pipelined run (each into a
  new log file) and a baseline run taking turns, so a slow phase of the machine meets both
  sides.  As ``timeit`` does, the best of each side is the figure (noise only ever adds
  time); every run is listed, and ``paired_ratios`` gives each pipelined run over the
  baseline run next to it;
* ``single``: p50 / p99 latency of one decision in-process, validated, decided and committed
  to the log on its own (a transaction per decision);
* ``sealing``: the pipelined run with inputs sealed under per-customer keys (the default)
  against the same run storing them in clear, taking turns, with the file sizes;
* ``targets``: batch >= 5,000 decisions/s; engine + logging <= 3x the bare model time;
  sealed within 15% of clear.

Usage: ``python benchmarks/bench_decide.py [--decisions 100000] [--single 500] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

import klartext  # noqa: F401  (first: the process settings the CLI runs with, see klartext/__init__.py)
from decision_log.integrity import compile_assembly
from decision_log.store import DecisionLog
from decision_log.writer import decide_and_log
from decisioning.engine import Engine
from decisioning.inputs import Requests
from decisioning.models import model_matrix, train_models
from decisioning.scenarios import retail


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--decisions", type=int, default=100_000)
    ap.add_argument("--single", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3,
                    help="timed runs of each side (pipelined, models alone), taking turns; the best counts")
    args = ap.parse_args()

    strategy = retail.load_demo_strategy()
    models = train_models(strategy, retail.simulate_history(strategy, 8000, seed=args.seed), seed=args.seed)
    people = retail.generate_customers(args.decisions, seed=args.seed + 1)
    frame, contacts, rej, days = retail.generate_interactions(people, strategy, seed=args.seed + 1)
    req = Requests.from_frame(strategy, frame, contacts=contacts, rejections=rej, days_since_rejection=days)
    engine = Engine(strategy, models)
    engine.decide(req.take(np.arange(100)))  # warm-up: prepare tables, load OpenMP pools, compile scoring
    compile_assembly()  # ... and the hashing (numba's cache: a first run after installing compiles)
    ts = np.full(len(req), time.time_ns() // 1000, dtype=np.int64)

    with tempfile.TemporaryDirectory() as tmp:
        # 1. pipelined engine + logging (what `klartext demo` does), taking turns with
        # 2. the baseline: the models alone on exactly the rows that reached scoring
        pipelined_runs, models_runs, clear_runs = [], [], []
        X = scored = None

        def pipelined_run(k: int, sealed: bool) -> tuple[float, float, list, int, int]:
            path = Path(tmp) / f"bench{k}{'s' if sealed else 'c'}.duckdb"
            log = DecisionLog.open(path, seal_inputs=sealed)
            # registering the strategy and the 29 model artifacts happens once per log, not
            # per decision: timed on its own
            t = time.perf_counter()
            log.register_strategy(strategy)
            log.register_models(models)
            register = time.perf_counter() - t
            t = time.perf_counter()
            batches = decide_and_log(log, engine, req, ts)
            took = time.perf_counter() - t
            n_cand = log.con.execute("SELECT count(*) FROM candidates").fetchall()[0][0]
            log.close()
            size = path.stat().st_size
            for f in (path, Path(f"{path}.wal"), Path(f"{path}.key"), Path(f"{path}.subject-keys"),
                      Path(f"{path}.subject-keys.lock")):
                f.unlink(missing_ok=True)
            return took, register, batches, n_cand, size

        for k in range(max(1, args.repeat)):
            # inputs sealed under per-customer keys (the default) and in clear, taking turns
            took, register, batches, n_cand, size_sealed = pipelined_run(k, True)
            pipelined_runs.append(took)
            took_clear, _, _, _, size_clear = pipelined_run(k, False)
            clear_runs.append(took_clear)

            if X is None:
                X = model_matrix(strategy, req, engine.columns_)
                scored = np.concatenate([~np.isnan(b.propensity) for b in batches])
            t = time.perf_counter()
            for a, action in enumerate(strategy.actions):
                rows = np.flatnonzero(scored[:, a])
                if len(rows):
                    models[action.id].predict(X[np.ix_(rows, engine.feature_idx_[action.id])])
            models_runs.append(time.perf_counter() - t)
        pipelined, models_only = min(pipelined_runs), min(models_runs)

        # 3. the same work, not overlapped: engine alone, then logging alone (diagnostics)
        t = time.perf_counter()
        for start in range(0, len(req), 10_000):
            engine.decide(req.take(np.arange(start, min(len(req), start + 10_000))))
        engine_only = time.perf_counter() - t
        log2 = DecisionLog.open(Path(tmp) / "bench2.duckdb")
        log2.register_models(models)
        pseudo = [log2.pseudonymise(b.requests.customer_id) for b in batches]
        t = time.perf_counter()
        with log2.bulk():
            for b, p in zip(batches, pseudo):
                log2.append(b, strategy, customers=p)
        logging_only = time.perf_counter() - t
        log2.close()

        # 4. single decisions, each validated, decided and committed on its own
        log3 = DecisionLog.open(Path(tmp) / "single.duckdb")
        log3.register_models(models)
        items = [req.to_dict(strategy, i) for i in range(min(args.single, len(req)))]
        lat = []
        for item in items:
            t = time.perf_counter()
            one = Requests.from_dicts(strategy, [item])
            b = engine.decide(one)
            log3.append(b, strategy)
            lat.append(time.perf_counter() - t)
        log3.close()

    n = len(req)
    lat_ms = np.array(lat) * 1000
    result = {
        "benchmark": "bench_decide",
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "decisions": n,
        "catalog_actions": len(strategy.actions),
        "candidate_rows": int(n_cand),
        "scored_rows": int(scored.sum()),
        "timing": f"best of {len(pipelined_runs)} runs per side, pipelined and baseline runs taking turns",
        "batch": {
            "pipelined_s": round(pipelined, 3),
            "pipelined_runs_s": [round(x, 3) for x in pipelined_runs],
            "decisions_per_s": round(n / pipelined),
            "engine_only_s": round(engine_only, 3),
            "logging_only_s": round(logging_only, 3),
            "register_strategy_and_models_s": round(register, 3),
        },
        "sealing": {
            "what": "the same pipelined run with each decision's inputs sealed under its customer's key "
                    "(AES-256-GCM, a compact document; the default) vs stored in clear; runs taking turns",
            "sealed_s": round(pipelined, 3),
            "clear_s": round(min(clear_runs), 3),
            "clear_runs_s": [round(x, 3) for x in clear_runs],
            "clear_decisions_per_s": round(n / min(clear_runs)),
            "sealed_over_clear": round(pipelined / min(clear_runs), 3),
            "paired": [round(a / b, 3) for a, b in zip(pipelined_runs, clear_runs)],
            "file_mb_sealed": round(size_sealed / 2**20, 1),
            "file_mb_clear": round(size_clear / 2**20, 1),
        },
        "baseline_models_only_s": round(models_only, 3),
        "baseline_runs_s": [round(x, 3) for x in models_runs],
        "ratio_engine_and_logging_to_models": round(pipelined / models_only, 2),
        "paired_ratios": [round(p / m, 2) for p, m in zip(pipelined_runs, models_runs)],
        "single": {
            "decisions": len(lat),
            "p50_ms": round(float(np.percentile(lat_ms, 50)), 2),
            "p99_ms": round(float(np.percentile(lat_ms, 99)), 2),
        },
        "targets": {
            "batch_decisions_per_s>=5000": n / pipelined >= 5000,
            "engine_and_logging<=3x_models": pipelined <= 3 * models_only,
            "sealed_within_15%_of_clear": pipelined <= 1.15 * min(clear_runs),
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
