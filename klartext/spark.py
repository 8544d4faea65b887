"""`klartext run --engine spark`: batch decisioning on Apache Spark, one shard per partition.

The driver opens the log, decides what decides (the strategy, or the lifecycle's active
version and its canary), registers it, seals the file's own decisions into a shard (so that
the run's shards continue the log's order), counts the rows of every partition and gives each
partition its range of positions in the log.  It then ships the strategy texts and the model
artifacts to the executors once (a broadcast: executors rebuild the models through the same
checked loader as every other reader, nothing is unpickled from the log).

Each partition reads its rows as Arrow batches (``mapInArrow``), decides them with the same
engine and the same ids as an in-process run (:mod:`klartext.batch`), logs them into a
throw-away DuckDB file of its own and writes them as one Parquet shard with its own hash
chain, hidden until sealed.  When every partition is done, the driver seals the shards'
links into the log and lists them in the manifest (:mod:`decision_log.shards`); a run that
fails leaves nothing: the next writable open removes what was never sealed.

Nothing assumes a cluster: ``--master local[2]`` runs it on this machine.  On a cluster the
log's directory, its key files and the input must be on storage every executor reaches.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from decisioning.errors import InputError, KlartextError, LogError
from klartext.batch import Plan, RunResult, chosen_counts, parts, summary

#: What each partition reports back to the driver.
_RESULT_FIELDS = {"partition": "long", "rows": "long", "name": "string", "first_seq": "long", "last_seq": "long",
                  "decisions": "long", "candidates": "long", "outcomes": "long", "prev": "string", "head": "string",
                  "outcomes_digest": "string", "first_ts": "string", "last_ts": "string", "created": "string", "error": "string", "hint": "string",
                  "chosen": "string", "versions": "string", "seconds": "string"}


def _arrow_schema():
    import pyarrow as pa

    return pa.schema([(k, pa.int64() if v == "long" else pa.string()) for k, v in _RESULT_FIELDS.items()])


#: The largest slice of the input one partition reads (``--partition-mb``): about 250,000 demo
#: customers, so that a partition's memory is bounded whatever the table's size.
PARTITION_MB = 8


def session(master: str, partition_mb: float | None = None):
    """A SparkSession for ``master`` (``local[2]``, ``spark://host:7077``, …) whose Python
    workers run this interpreter."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise InputError("--engine spark needs PySpark, which is not installed.",
                         "Install it with `pip install 'klartext[spark]'` (and Java 17), or run with --engine "
                         "local.") from None
    # PySpark 4.3 warns that it does not know pandas 3 yet: Klartext hands it Arrow only
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    b = (SparkSession.builder.master(master).appName("klartext run")
         .config("spark.ui.enabled", "false")
         .config("spark.ui.showConsoleProgress", "false")
         .config("spark.speculation", "false")
         .config("spark.sql.execution.arrow.maxRecordsPerBatch", "10000")
         .config("spark.sql.session.timeZone", "UTC"))
    spark = b.getOrCreate()
    # runtime settings, so that they also hold for a session this process started before: a
    # small cost per file, so that a table of one file is split across every core (Spark's
    # default of 4 MB keeps a table of up to 4 MB × cores in one partition)
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(int((partition_mb or PARTITION_MB) * 2**20)))
    spark.conf.set("spark.sql.files.openCostInBytes", str(256 * 1024))
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def run_spark(db: str, customers: str, strategy, plan: Plan, master: str = "local[2]", *,
              partition_mb: float | None = None, wait_s: float = 15.0,
              progress: Callable[[str], None] | None = None,
              partitions_done: Callable[[int, int], None] | None = None) -> RunResult:
    """Decide every row of the Parquet table ``customers`` on Spark and log the decisions as
    one shard per partition of the log ``db`` (a file or a log directory).  ``progress`` hears
    each step in words; ``partitions_done(done, total)`` each partition that has finished."""
    from decision_log import lifecycle, shards
    from decision_log.store import DecisionLog

    say = progress or (lambda _msg: None)
    if Path(customers).suffix.lower() != ".parquet":
        raise InputError(f"{customers}: --engine spark reads Parquet tables.",
                         "Convert it first, e.g. `python -c \"import pandas as pd; pd.read_csv('in.csv')"
                         ".to_parquet('in.parquet')\"`, or run it with --engine local.")
    if strategy is None and not DecisionLog.has_shards(db) and not Path(shards.head_path(db)).exists():
        raise InputError(f"No decision log at {db!r}, so there is no strategy deciding yet.",
                         "Pass --strategy FILE for a new log.")
    if db != ":memory:" and not Path(db).suffix and not Path(db).exists():
        Path(db).mkdir(parents=True)  # a new log directory (LOGDIR/log.duckdb and its shards)
    t = time.perf_counter()
    spark = session(master, partition_mb)
    from pyspark.sql import functions as F

    df = spark.read.parquet(customers)
    with DecisionLog.open(db, wait_s=wait_s) as log:
        d = lifecycle.arrangement(log, strategy, ready=False)
        for e in d.engines:
            log.register_strategy(e.strategy)
            log.register_models(e.models)
        if log.con.execute("SELECT count(*) FROM decisions").fetchall()[0][0]:
            say("Sealing the log file's own decisions into a shard first")
            log.archive(datetime(9999, 1, 1, tzinfo=UTC))
        say("Counting the rows of each partition")
        counts = dict(df.groupBy(F.spark_partition_id().alias("p")).count().collect())
        if not counts:
            raise InputError(f"{customers} holds no customer.", "Nothing was decided: pass a table with rows.")
        tail_seq, _ = log.manifest.tail
        first_name = int(log.manifest.next_name())
        plan_p, row_base, name_i = {}, 0, 0
        for p in sorted(counts):
            plan_p[p] = {"rows": counts[p], "row_base": row_base, "seq_base": tail_seq + row_base,
                         "name": f"{first_name + name_i:06d}"}
            row_base += counts[p]
            name_i += 1
        models = [log.model_rows({a: m.version for a, m in e.models.models.items()}) for e in d.engines]
        payload = {
            "run": os.urandom(8).hex(), "plan": plan, "parts": plan_p, "root": str(log.manifest.root),
            "strategies": [e.strategy.text for e in d.engines], "models": models,
            "state": d.state if d.canary is not None else None,
            "key": log._key, "keys_path": None if log.subject_keys is None else str(log.subject_keys.path),
            "standing": log.standing_objections(), "where": log.path,
        }
        log.manifest.root.mkdir(exist_ok=True)
        bc = spark.sparkContext.broadcast(payload)
        say(f"Deciding {row_base:,} customers in {len(plan_p)} partition(s) on {master}")
        schema = ", ".join(f"{k} {v}" for k, v in _RESULT_FIELDS.items())
        group = f"klartext-run-{payload['run']}"
        spark.sparkContext.setJobGroup(group, "klartext run: deciding")
        stop = threading.Event()
        watcher = threading.Thread(target=_watch, args=(spark.sparkContext, group, partitions_done, stop), daemon=True)
        if partitions_done is not None:
            watcher.start()
        try:
            rows = df.mapInArrow(lambda it: _partition(it, bc), schema).collect()
        except Exception:
            shards.recover(log.con, log.manifest)  # what the partitions that finished left pending
            raise
        finally:
            stop.set()
            bc.unpersist()
        if partitions_done is not None:
            watcher.join()
            partitions_done(len(rows), len(rows))
        results = sorted((r.asDict() for r in rows), key=lambda r: r["partition"])
        failed = [r for r in results if r["error"]]
        if failed:
            shards.recover(log.con, log.manifest)  # the pending shards of the other partitions
            raise InputError(failed[0]["error"] + " Nothing was logged.", failed[0]["hint"] or "")
        done = {r["partition"]: r for r in results if r["decisions"]}
        wrong = [p for p, want in plan_p.items() if want["rows"] and done.get(p, {}).get("decisions") != want["rows"]]
        if wrong:
            shards.recover(log.con, log.manifest)
            raise LogError(f"Partition {wrong[0]} decided {done.get(wrong[0], {}).get('decisions', 0):,} rows, "
                           f"{plan_p[wrong[0]]['rows']:,} were counted: the input changed during the run. Nothing was "
                           "logged.", "Run it again on a table that is not being written.")
        new = [shards.Shard(**{k: done[p][k] for k in shards.Shard.__dataclass_fields__ if k not in ("link", "purged")})
               for p in sorted(done)]
        try:
            with log.atomic():
                linked = shards.seal_links(log.con, log.manifest, new)
        except BaseException:
            shards.recover(log.con, log.manifest)
            raise
        shards.publish(log.manifest, linked)
        log._head = None  # the file's next decision follows the last shard
    chosen = [pd.read_json(io.StringIO(r["chosen"]), typ="series") for r in results if r["chosen"]]
    versions: dict[tuple[str, str], int] = {}
    for r in results:
        for key, n in _versions(r).items():
            versions[key] = versions.get(key, 0) + n
    res = summary(chosen, versions, time.perf_counter() - t, [s.name for s in linked])
    res.partitions = [{"partition": r["partition"], "rows": r["rows"], **json.loads(r["seconds"] or "{}")}
                      for r in results]
    return res


def _watch(sc, group: str, report: Callable[[int, int], None], stop: threading.Event) -> None:
    """Report the finished tasks of the job group every half second (Spark's status tracker)."""
    tracker = sc.statusTracker()
    while not stop.wait(0.5):
        done = total = 0
        for job in tracker.getJobIdsForGroup(group):
            info = tracker.getJobInfo(job)
            for stage in info.stageIds if info is not None else []:
                si = tracker.getStageInfo(stage)
                if si is not None:
                    done, total = done + si.numCompletedTasks, total + si.numTasks
        if total:
            report(done, total)


def _versions(r: dict) -> dict[tuple[str, str], int]:
    return {tuple(k.split("\t")): v for k, v in json.loads(r["versions"] or "{}").items()}


_ENGINES: dict[str, object] = {}  #: per Python worker: the engines of the broadcast it last built


def _engines(payload: dict):
    """The deciders of the run, built once per Python worker from the broadcast."""
    from decision_log.lifecycle import Deciders
    from decision_log.store import model_from_row
    from decisioning.engine import Engine
    from decisioning.models import ModelSet
    from decisioning.strategy import parse_strategy

    run = payload["run"]
    if run not in _ENGINES:
        engines = []
        for text, rows in zip(payload["strategies"], payload["models"]):
            s = parse_strategy(text, source="the run's strategy")
            engines.append(Engine(s, ModelSet({a: model_from_row(a, row, payload["where"]) for a, row in rows.items()})))
        _ENGINES.clear()
        _ENGINES[run] = (Deciders(payload["state"], *engines) if payload["state"] is not None
                           else Deciders(None, engines[0]))
    return _ENGINES[run]


def _partition(batches: Iterator, bc) -> Iterator:
    """One partition: decide its rows, log them into a file of its own, write its shard."""
    import pyarrow as pa
    from pyspark import TaskContext

    from decision_log import integrity, shards
    from decision_log.store import DecisionLog
    from decision_log.writer import Writer

    p = TaskContext.get().partitionId()
    payload = bc.value
    mine = payload["parts"].get(p)
    out = dict.fromkeys(_RESULT_FIELDS)
    out.update(partition=p, rows=0, decisions=0)
    if mine is None:
        for _ in batches:
            pass
        yield pa.RecordBatch.from_pylist([out], schema=_arrow_schema())
        return
    plan: Plan = payload["plan"]
    tmp = Path(tempfile.mkdtemp(prefix=f"klartext-part{p}-"))
    chosen, versions = [], {}
    try:
        t_start = time.perf_counter()
        deciders = _engines(payload)
        t_eng = time.perf_counter()
        log = DecisionLog.shard_writer(str(tmp / "part.duckdb"), payload["key"], payload["keys_path"],
                                       mine["seq_base"], payload["standing"])
        try:
            row = mine["row_base"]
            with log.bulk():  # DuckDB on one thread: the partitions beside this one have the other cores
                writer = Writer(log, stop_on_error=True)  # prepares and writes while the next batch is decided
                try:
                    for rb in batches:
                        frame = plan.frame(rb.to_pandas())
                        for engine, rows, req in parts(deciders, log.pseudonymise, frame, plan):
                            log.apply_objections(req, engine.strategy)
                            batch = engine.decide(req, ts_us=np.full(len(req), plan.ts_us, dtype=np.int64),
                                                  decision_ids=plan.ids(row + rows))
                            writer.append(batch, engine.strategy)
                            chosen.append(chosen_counts(engine.strategy, batch.chosen))
                            key = f"{engine.strategy.name}\t{engine.strategy.version}"
                            versions[key] = versions.get(key, 0) + len(rows)
                        row += len(frame)
                finally:
                    writer.close()
            n = row - mine["row_base"]
            t_w = time.perf_counter()
            if n:
                s = shards.write(log.con, Path(payload["root"]), mine["name"], mine["seq_base"] + 1,
                                 mine["seq_base"] + n, integrity.GENESIS)
                out.update(asdict(s))
                out.pop("link", None)
            out["rows"] = n
            out["seconds"] = json.dumps({"engines": t_eng - t_start, "decide_and_log": t_w - t_eng,
                                         "prepare": writer.seconds["prepare"], "write": writer.seconds["log"],
                                         "parquet": time.perf_counter() - t_w})
            counts = pd.concat(chosen).groupby(level=0).sum() if chosen else pd.Series(dtype=np.int64)
            out["chosen"] = counts.to_json()
            out["versions"] = json.dumps(versions)
        finally:
            log.close()
    except KlartextError as exc:  # a bad row: said by name to the driver, which logs nothing
        out.update(error=f"Partition {p}: {exc.message}", hint=exc.hint)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    yield pa.RecordBatch.from_pylist([{k: out.get(k) for k in _RESULT_FIELDS}], schema=_arrow_schema())
