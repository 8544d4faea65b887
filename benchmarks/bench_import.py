"""Benchmark: importing a real-shaped Pega v2 export, and the first funnel, against pdstools.

Generates a full-funnel (v2) export shaped like a real one (``decision_log/samples.py``:
≈ 190 rows per interaction, 1–8 rows per action, five stage groups in Stage_pyOrder; the
default 7,000 interactions make ≈ 1.3M rows, the size of the public sample the shape was
measured on) and, in child processes of their own (so each peak memory is its own, read
from ``VmHWM``), alternately:

- **Klartext**: ``import_file`` into a fresh log (read, check, pseudonymise, hash-chain,
  write) and then the first ``queries.funnel`` (rows stopping at / interactions reaching
  each stage);
- **baseline, pdstools** (the Pega data scientists' toolkit, a reference only: ``pip install
  pdstools polars``): ``DecisionAnalyzer(pl.scan_parquet(file))`` and
  ``aggregates.get_funnel_data()`` on the same file.

Each side runs ``--runs`` times (best and median reported); library imports are not timed.
``--verify`` also verifies the imported log.  Prints JSON.

Usage: ``python benchmarks/bench_import.py [--interactions 7000] [--runs 3] [--verify]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KLARTEXT = """
import json, sys, time
from decision_log import queries
from decision_log.importers import import_file
from decision_log.store import DecisionLog
t0 = time.perf_counter()
with DecisionLog.open(sys.argv[1]) as log:
    rep = import_file(log, "pega-v2", sys.argv[2])
    t1 = time.perf_counter()
    fun = queries.funnel(log.con.cursor())
    t2 = time.perf_counter()
    hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM")][0]  # import + funnel only
    ok = log.verify().ok if len(sys.argv) > 3 else None
print(json.dumps({"import_s": t1 - t0, "funnel_s": t2 - t1, "total_s": t2 - t0, "phases": rep.phases,
                  "decisions": rep.decisions_added, "rows": rep.candidates_added, "bad_rows": rep.bad_rows,
                  "verified": ok, "stages": len(fun), "peak_rss_mb": int(hwm.split()[1]) / 1024}))
"""

PDSTOOLS = """
import json, sys, time
import polars as pl
from pdstools.decision_analyzer.DecisionAnalyzer import DecisionAnalyzer
t0 = time.perf_counter()
da = DecisionAnalyzer(pl.scan_parquet(sys.argv[1]))
t1 = time.perf_counter()
available, passing, filtered = da.aggregates.get_funnel_data()
available.collect()
t2 = time.perf_counter()
hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM")][0]
print(json.dumps({"load_s": t1 - t0, "funnel_s": t2 - t1, "total_s": t2 - t0,
                  "peak_rss_mb": int(hwm.split()[1]) / 1024}))
"""


def _child(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def _has_pdstools() -> bool:
    return subprocess.run([sys.executable, "-c", "import pdstools, polars"], capture_output=True).returncode == 0


def main() -> None:
    from decision_log.samples import pega_v2_export

    ap = argparse.ArgumentParser()
    ap.add_argument("--interactions", type=int, default=7_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--verify", action="store_true", help="Also verify the hash chain after importing.")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "export_v2.parquet"
        t = time.perf_counter()
        rows = pega_v2_export(src, args.interactions, seed=0)
        gen = time.perf_counter() - t
        base = _has_pdstools()
        ours, theirs = [], []
        for i in range(args.runs):
            db = Path(tmp) / f"imported_{i}.duckdb"
            ours.append(_child(KLARTEXT, str(db), str(src), *(["verify"] if args.verify and i == 0 else [])))
            if base:
                theirs.append(_child(PDSTOOLS, str(src)))
        again = _child(KLARTEXT, str(Path(tmp) / "imported_0.duckdb"), str(src))

    def summary(runs: list[dict], key: str) -> dict:
        v = [r[key] for r in runs]
        return {"best": round(min(v), 3), "median": round(statistics.median(v), 3)}

    res = {
        "benchmark": "bench_import",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "export": {"rows": rows, "interactions": args.interactions, "generate_s": round(gen, 1),
                   "rows_per_interaction": round(rows / args.interactions, 1)},
        "klartext": {
            "import_plus_first_funnel_s": summary(ours, "total_s"), "import_s": summary(ours, "import_s"),
            "first_funnel_s": summary(ours, "funnel_s"),
            "phases_s_first_run": {k: round(v, 2) for k, v in ours[0]["phases"].items()},
            "peak_rss_mb": round(max(r["peak_rss_mb"] for r in ours)),
            "decisions": ours[0]["decisions"], "rows": ours[0]["rows"], "bad_rows": ours[0]["bad_rows"],
            "chain_verified": ours[0]["verified"], "second_import_adds": again["decisions"],
        },
    }
    if base:
        res["baseline_pdstools"] = {"load_plus_funnel_s": summary(theirs, "total_s"),
                                    "load_s": summary(theirs, "load_s"), "funnel_s": summary(theirs, "funnel_s"),
                                    "peak_rss_mb": round(max(r["peak_rss_mb"] for r in theirs))}
        res["klartext_over_pdstools_best"] = round(res["klartext"]["import_plus_first_funnel_s"]["best"]
                                                   / res["baseline_pdstools"]["load_plus_funnel_s"]["best"], 2)
    else:
        res["baseline_pdstools"] = "not installed (pip install pdstools polars)"
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
