"""Benchmark: `klartext report` on a large log (HTML ≤ 30 s, PDF ≤ 60 s on 1,000,000 decisions)
against the bare DuckDB aggregation of the same figures, measured in the same run.

Builds a demo log of ``--decisions`` decisions (1,000,000 by default; ``--plant`` adds the known
drift and disparity) unless ``--db`` names one.  The report covers the log's second half
(14 days) beside its first half, so every decision is read; each format is made by the real
command in a fresh process (what a person waits for: start-up, imports, the figures, Chromium
for the figures, the PDF), and its wall time and peak memory are reported.  The baseline runs
the report's own aggregation queries (period figures in total, per issue and channel, per day,
the models' outcome pairs and scores, contact limits, rules fired, per-version outcomes) with
nothing else.  Before the reports, a full `klartext verify` runs (timed apart: an operator runs
it nightly); the reports' integrity section starts from it.  Prints one JSON object.

Usage: ``python benchmarks/bench_report.py [--decisions 1000000] [--db PATH] [--plant]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from analysis.governance import Period, _actions_of
from decision_log import monitoring
from decision_log.store import DecisionLog
from klartext.jobs import run_demo

BIN = Path(sys.executable).parent / "klartext"


def bare(db: str, period: Period, previous: Period) -> float:
    with DecisionLog.open(db, read_only=True) as log:
        con = log.con.cursor()
        versions = monitoring.versions_in(con, *period.bounds)["version"].tolist()
        actions, strategy = _actions_of(log, versions)
        limits = [(lim.channel, lim.max_contacts, lim.period_days) for lim in strategy.contact_limits]
        t = time.perf_counter()
        for p in (period, previous):
            for by in (None, "issue", "channel"):
                monitoring.period_figures(con, *p.bounds, actions, by=by)
            monitoring.scores(con, *p.bounds, list(strategy.action_ids))
        monitoring.score_versions(con, *period.bounds)
        monitoring.daily_figures(con, *period.bounds)
        monitoring.shown_outcomes(con, *period.bounds)
        monitoring.contact_limit_breaches(con, *period.bounds, limits)
        monitoring.rules_fired(con, *period.bounds)
        monitoring.version_outcomes(con, *period.bounds, actions)
        return time.perf_counter() - t


def command(db: str, period: Period, out: str, lang: str) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    res = subprocess.run([str(BIN), "report", "--db", db, "--from", str(period.start), "--to", str(period.end),
                          "--lang", lang, "--out", out], capture_output=True, text=True)
    wall = time.perf_counter() - t
    if res.returncode:
        raise SystemExit(res.stderr)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"seconds": round(wall, 2), "peak_mb": round(max(peak, before) / 1024), "kb": round(os.path.getsize(out) / 1024),
            "said": res.stdout.strip()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--decisions", type=int, default=1_000_000)
    ap.add_argument("--db", default=None)
    ap.add_argument("--plant", action="store_true", help="plant the known drift and disparity")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    db = args.db
    if db is None:
        db = str(Path(tmp.name) / "bench_report.duckdb")
        t = time.perf_counter()
        run_demo(db, args.decisions, plant=("drift", "disparity") if args.plant else ())
        print(f"built the log in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    with DecisionLog.open(db, read_only=True) as log:
        n, first, last = log.con.execute("SELECT count(*), min(ts)::DATE, max(ts)::DATE FROM decisions").fetchall()[0]
    period = Period(last - timedelta(days=13), last)
    baseline = bare(db, period, period.previous())
    # what an operator runs nightly; the report's integrity section starts from it
    t = time.perf_counter()
    res = subprocess.run([str(BIN), "verify", "--db", db], capture_output=True, text=True)
    verify_s = time.perf_counter() - t
    if res.returncode:
        raise SystemExit(res.stdout + res.stderr)
    out = {}
    for kind in ("json", "html", "pdf"):
        out[kind] = command(db, period, str(Path(tmp.name) / f"report.{kind}"), "de" if kind == "pdf" else "en")
    tmp.cleanup()
    print(json.dumps({
        "benchmark": "bench_report",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "decisions_in_log": n, "period": period.to_dict(), "compared_with": period.previous().to_dict(),
        "baseline_bare_aggregation_s": round(baseline, 2),
        "full_verify_s": round(verify_s, 1),
        "report": out,
        "html_vs_baseline": round(out["html"]["seconds"] / baseline, 1),
        "pdf_vs_baseline": round(out["pdf"]["seconds"] / baseline, 1),
        "goal": {"html_s": 30, "pdf_s": 60},
        "met": out["html"]["seconds"] <= 30 and out["pdf"]["seconds"] <= 60,
    }, indent=1))


if __name__ == "__main__":
    main()
