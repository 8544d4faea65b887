"""Benchmark: the margin/retention frontier over a large log vs. a bare scan of its candidates.

Builds a demo log of ``--decisions`` decisions (1,000,000 by default) unless ``--db`` names
one, then times loading the logged factors and sweeping ``--steps`` (≥ 21) weight settings
by re-arbitration (no model calls).  The in-run baseline is a bare DuckDB scan of the same
candidate columns.  Prints one JSON object; the target is the whole frontier (load + sweep)
in ≤ 10 s.

Usage: ``python benchmarks/bench_tradeoff.py [--decisions 1000000] [--db PATH] [--steps 21]``
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from analysis.tradeoff import load_factors, sweep
from decision_log.store import DecisionLog
from klartext.jobs import run_demo


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--decisions", type=int, default=1_000_000)
    ap.add_argument("--db", default=None)
    ap.add_argument("--steps", type=int, default=21)
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    db = args.db
    if db is None:
        db = str(Path(tmp.name) / "bench_tradeoff.duckdb")
        run_demo(db, args.decisions)
    with DecisionLog.open(db, read_only=True) as log:
        con = log.con.cursor()
        t = time.perf_counter()
        con.execute("SELECT count(*), sum(propensity), sum(context_weight), sum(lever), count(DISTINCT action_id) "
                    "FROM candidates").fetchall()
        bare = time.perf_counter() - t
        t = time.perf_counter()
        f = load_factors(log)
        load = time.perf_counter() - t
        t = time.perf_counter()
        fr = sweep(f, args.steps)
        sw = time.perf_counter() - t
        t = time.perf_counter()
        mismatches = f.check()
        check = time.perf_counter() - t
    tmp.cleanup()
    cur = fr[fr["current"]].iloc[0]
    print(json.dumps({
        "benchmark": "bench_tradeoff",
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "decisions": len(f),
        "settings": args.steps,
        "load_factors_s": round(load, 3),
        "sweep_s": round(sw, 3),
        "frontier_total_s": round(load + sw, 3),
        "baseline_bare_candidate_scan_s": round(bare, 3),
        "ratio_total_to_bare_scan": round((load + sw) / bare, 2),
        "exact_rearbitration_check_s": round(check, 3),
        "greedy_decisions_not_reproduced": mismatches,
        "current_point": {"margin": cur["margin"], "retention": cur["retention"], "changed": cur["changed"]},
        "efficient_points": int(fr["efficient"].sum()),
        "targets": {"frontier<=10s": load + sw <= 10.0},
    }, indent=2))


if __name__ == "__main__":
    main()
