"""Benchmark: `klartext run --engine spark` against the in-process batch job, and how Spark scales.

Prints one JSON object:

* ``compare``: the same customer table (``--compare`` rows, default 1,000,000) decided by
  ``klartext run`` in this machine's process (the in-run baseline) and by ``klartext run
  --engine spark --master local[2]``, each into its own copy of one demo log, as a user runs
  them (a command each, timed from start to exit): seconds, decisions/s, the peak memory of
  the command's whole process tree (Spark's JVM and its Python workers included), and
  ``spark_over_local`` (decisions/s, Spark over in-process);
* ``scaling``: the Spark run at each of ``--sizes`` (default 100,000 and 1,000,000): seconds,
  microseconds per decision, peak memory and memory per decision, and the shards it wrote;
* ``machine``: CPUs and memory (on 2 cores Spark's two partitions compete with its JVM and
  with each other's writers: the ratio says what Spark costs on one small machine; the
  gain is across machines).

The customer tables are written in 250,000-row chunks (one Parquet file of 50,000-row
groups per size), so building a 10,000,000-row table takes bounded memory.

Usage: ``python benchmarks/bench_spark.py [--compare 1000000] [--sizes 100000,1000000,10000000]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 250_000


def customers(path: Path, n: int, seed: int = 5) -> Path:
    """``n`` demo customers in one Parquet file, built chunk by chunk."""
    from decisioning.scenarios import retail

    if path.exists():
        return path
    strategy = retail.load_demo_strategy()
    writer = None
    for k, start in enumerate(range(0, n, CHUNK)):
        m = min(CHUNK, n - start)
        frame, *_ = retail.generate_interactions(retail.generate_customers(m, seed=seed + k), strategy,
                                                 seed=seed + k)
        frame["customer_id"] = [f"C{start + i + 1:09d}" for i in range(m)]
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=50_000)
    writer.close()
    return path


def tree_rss_kb(pid: int) -> int:
    """The resident memory of a process and all its descendants, in KB."""
    total, todo = 0, [pid]
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass
        todo += children.get(p, [])
    return total


def timed(cmd: list[str], cwd: Path) -> dict:
    """Run a command; its wall time and the peak memory of its process tree (sampled every 0.2 s)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss_kb(proc.pid))
            time.sleep(0.2)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t
    th.join()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    return {"seconds": round(wall, 1), "peak_mb": round(peak[0] / 1024), "stdout": out}


def fresh_log(base: Path, work: Path, name: str) -> Path:
    d = work / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir()
    for suffix in ("", ".key", ".subject-keys"):
        shutil.copy(str(base) + suffix, str(d / "log.duckdb") + suffix)
    return d


def compare(n: int, work: Path, base: Path, klartext: str, master: str) -> dict:
    """The same table decided in-process (the baseline) and on Spark."""
    table = customers(work / f"customers_{n}.parquet", n)
    local = timed([klartext, "run", "--customers", str(table), "--db", str(fresh_log(base, work, "local"))], work)
    spark = timed([klartext, "run", "--engine", "spark", "--master", master, "--customers", str(table),
                   "--db", str(fresh_log(base, work, "spark"))], work)
    for r in (local, spark):
        r["decisions_per_s"] = round(n / r["seconds"])
        r.pop("stdout")
    for name in ("local", "spark"):
        shutil.rmtree(work / name)
    return {"decisions": n, "in_process": local, "spark": spark, "master": master,
            "spark_over_local": round(spark["decisions_per_s"] / local["decisions_per_s"], 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--compare", type=int, default=1_000_000, help="Rows of the comparison (0: skip it).")
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--work", default=None, help="Folder for the tables and logs (default: a temporary one).")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="klartext-bench-spark-"))
    work.mkdir(parents=True, exist_ok=True)
    klartext = str(Path(sys.executable).parent / "klartext")
    base = work / "base.duckdb"
    if not base.exists():
        subprocess.run([klartext, "demo", "--customers", "1000", "--explain", "0", "--no-app", "--db", str(base)],
                       check=True, capture_output=True)
    out: dict = {"machine": {"cpus": os.cpu_count(), "memory_gb": round(os.sysconf("SC_PAGE_SIZE") *
                                                                      os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
                             "python": platform.python_version()}}
    n = args.compare
    if n:
        out["compare"] = compare(n, work, base, klartext, args.master)
    out["scaling"] = []
    for size in [int(x) for x in args.sizes.split(",") if x]:
        table = customers(work / f"customers_{size}.parquet", size)
        r = timed([klartext, "run", "--engine", "spark", "--master", args.master, "--customers", str(table),
                   "--db", str(fresh_log(base, work, f"scale_{size}"))], work)
        shards = len(list((work / f"scale_{size}" / "log.duckdb.shards").glob("0*")))
        out["scaling"].append({"decisions": size, "seconds": r["seconds"], "us_per_decision": round(
            r["seconds"] / size * 1e6, 1), "peak_mb": r["peak_mb"], "peak_kb_per_decision": round(
            r["peak_mb"] * 1024 / size, 3), "shards": shards})
        shutil.rmtree(work / f"scale_{size}")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
