"""Benchmark: importing a large Pega v2-style export vs. a bare read of the same file.

Generates a ``--rows`` (1,000,000 by default) row Parquet file in the full-funnel (v2) format
— 10 actions per interaction, a mix of OUTPUT and FILTERED_OUT rows at several stages — and
imports it into a fresh log in a child process, whose peak memory is measured.  The in-run
baseline is a bare DuckDB ``count(*)`` over ``read_parquet`` of the same file.  Prints JSON.

Usage: ``python benchmarks/bench_import.py [--rows 1000000]``
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

STAGES = [("Eligibility", "Eligibility", 1500, "EligibilityRule"),
          ("Applicability", "Applicability", 2000, "ApplicabilityRule"),
          ("FinalActionsProcessing", "ContactPoliciesActionLimits", 3900, "ContactPolicyRule"),
          ("Arbitration", "Arbitration", 3950, "PriorityFilter")]


def generate(path: Path, rows: int, per: int = 10, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    writer = None
    block = 200_000
    for start in range(0, rows, block):
        n = min(block, rows - start)
        idx = np.arange(start, start + n)
        inter = idx // per
        out = rng.random(n) < 0.25
        st = rng.integers(0, len(STAGES), n)
        p = rng.uniform(0.001, 0.5, n)
        v, cw, w = rng.uniform(1, 50, n), rng.uniform(0.5, 1.5, n), rng.uniform(0.5, 1.5, n)
        tbl = pa.table({
            "pxInteractionID": pa.array([f"I{i:09d}" for i in inter]),
            "pxDecisionTime": pa.array((1_711_533_600_000_000 + inter * 1000).astype("datetime64[us]")),
            "Primary_pySubjectID": pa.array([f"S{i % 250_000:07d}" for i in inter]),
            "pyIssue": pa.array(np.array(["Sales", "Retention", "Service"])[idx % 3]),
            "pyGroup": pa.array(np.array(["Cards", "Loans", "Proactive", "Reactive"])[idx % 4]),
            "pyName": pa.array([f"ACTION{i % per}" for i in idx]),
            "Primary_ContainerPayload_Channel": pa.array(np.array(["Web", "Mobile", "Email"])[inter % 3]),
            "Primary_ContainerPayload_Direction": pa.array(np.array(["Inbound", "Outbound"])[inter % 2]),
            "FinalPropensity": p, "Value": v, "ContextWeight": cw, "Weight": w, "Priority": p * v * cw * w,
            "Stage_pyStageGroup": pa.array(np.where(out, "Output", np.array([s[0] for s in STAGES])[st])),
            "Stage_pyName": pa.array(np.where(out, "Output", np.array([s[1] for s in STAGES])[st])),
            "Stage_pyOrder": np.where(out, 4000, np.array([s[2] for s in STAGES])[st]).astype(np.int32),
            "pxRecordType": pa.array(np.where(out, "OUTPUT", "FILTERED_OUT")),
            "pxComponentName": pa.array(np.where(out, "OutputComponent", np.array([s[3] for s in STAGES])[st])),
            "pxComponentType": pa.array(["Strategy"] * n),
            "pxStrategyName": pa.array(["NBADStrategy"] * n),
        })
        if writer is None:
            writer = pq.ParquetWriter(path, tbl.schema)
        writer.write_table(tbl)
    writer.close()


CHILD = """
import json, resource, sys, time
from decision_log.importers import import_file
from decision_log.store import DecisionLog
t = time.perf_counter()
with DecisionLog.open(sys.argv[1]) as log:
    rep = import_file(log, "pega-v2", sys.argv[2])
    ok = log.verify().ok if len(sys.argv) > 3 else None
print(json.dumps({"seconds": time.perf_counter() - t, "decisions": rep.decisions_added,
                  "candidates": rep.candidates_added, "bad_rows": rep.bad_rows, "verified": ok,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--verify", action="store_true", help="Also verify the hash chain after importing.")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "export_v2.parquet"
        t = time.perf_counter()
        generate(src, args.rows)
        gen = time.perf_counter() - t
        t = time.perf_counter()
        n = duckdb.connect().execute("SELECT count(*) FROM read_parquet(?)", [str(src)]).fetchall()[0][0]
        bare = time.perf_counter() - t
        db = Path(tmp) / "imported.duckdb"
        cmd = [sys.executable, "-c", CHILD, str(db), str(src)] + (["verify"] if args.verify else [])
        root = Path(__file__).resolve().parent.parent

        def child(c: list[str]) -> dict:
            out = subprocess.run(c, capture_output=True, text=True, check=True, cwd=root).stdout
            return json.loads(out.strip().splitlines()[-1])

        res = child(cmd)
        again = child(cmd[:5])
    print(json.dumps({
        "benchmark": "bench_import",
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "rows": n, "generate_s": round(gen, 2),
        "import_s": round(res["seconds"], 2), "rows_per_s": round(n / res["seconds"]),
        "decisions": res["decisions"], "candidates": res["candidates"], "bad_rows": res["bad_rows"],
        "peak_rss_mb": round(res["peak_rss_mb"]), "chain_verified": res["verified"],
        "baseline_bare_read_parquet_count_s": round(bare, 3),
        "second_import_adds": again["decisions"], "second_import_s": round(again["seconds"], 2),
        "parent_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }, indent=2))


if __name__ == "__main__":
    main()
