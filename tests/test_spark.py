"""Batch decisioning on Apache Spark (local mode): one shard per partition, the same decisions
as an in-process run, replayed bit for bit, and a bad row that logs nothing."""

import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from decision_log import shards
from decision_log.replay import replay
from decision_log.store import DecisionLog
from decisioning.scenarios import retail
from klartext import batch, spark
from tests.conftest import copy_log

PLAN = batch.Plan(ts_us=1_790_000_000_000_000, prefix=0x2A7)


@pytest.fixture(scope="module")
def customers(tmp_path_factory) -> Path:
    """6,000 demo customers in one Parquet file of 500-row groups (several partitions)."""
    frame, *_ = retail.generate_interactions(retail.generate_customers(6000, seed=21), retail.load_demo_strategy(),
                                             seed=21)
    path = tmp_path_factory.mktemp("spark") / "customers.parquet"
    frame.to_parquet(path, row_group_size=500)
    return path


@pytest.fixture(scope="module")
def spark_log(demo_log, customers, tmp_path_factory) -> tuple[Path, batch.RunResult]:
    """A copy of the demo log as a log directory, with a Spark run of the customers in it."""
    logdir = tmp_path_factory.mktemp("spark") / "logdir"
    logdir.mkdir()
    copy_log(demo_log, logdir / "log.duckdb")
    res = spark.run_spark(str(logdir), str(customers), None, PLAN, "local[2]", partition_mb=0.1)
    return logdir, res


def _rows(db: Path) -> tuple[pd.DataFrame, pd.DataFrame, list]:
    """The run's decisions (those made at PLAN's time) and their candidate rows, inputs opened."""
    with DecisionLog.open(db, read_only=True) as log:
        dec = log.con.execute("SELECT * EXCLUDE (seq, latency_us) FROM decisions WHERE ts = make_timestamp(?) "
                              "ORDER BY decision_id", [PLAN.ts_us]).df()
        cand = log.con.execute("SELECT * FROM candidates WHERE ts = make_timestamp(?) ORDER BY decision_id, ordinal",
                               [PLAN.ts_us]).df()
        inputs = log.open_inputs(dec["decision_id"].tolist(), dec["customer"].tolist(), dec["inputs"].tolist())
    return dec.drop(columns=["inputs"]), cand, inputs


def test_spark_run_writes_a_shard_per_partition_and_verifies(spark_log, demo_log):
    logdir, res = spark_log
    assert res.decisions == 6000 and len(res.shards) >= 3
    assert sum(p["rows"] for p in res.partitions) == 6000
    manifest = shards.Manifest.load(logdir / "log.duckdb.shards")
    names = [s.name for s in manifest.shards]
    assert names[0] == "000001" and names[1:] == res.shards  # the demo's own decisions were sealed first
    assert all(s.prev == shards.integrity.GENESIS for s in manifest.shards[1:])  # a chain of its own each
    with DecisionLog.open(logdir, read_only=True) as log:
        res_v = log.verify()
        n, lo, hi = log.con.execute("SELECT count(*), min(seq), max(seq) FROM decisions").fetchall()[0]
    assert res_v.ok, res_v.problem
    assert (n, lo, hi) == (2000 + 6000, 1, 8000)
    # the shards are plain Parquet: a run's decisions, counted without Klartext
    plain = duckdb.connect().execute(
        f"SELECT count(*) FROM read_parquet('{logdir}/log.duckdb.shards/0*/decisions.parquet') "
        f"WHERE ts = make_timestamp({PLAN.ts_us})").fetchall()[0][0]
    assert plain == 6000


def test_spark_made_decisions_replay_bit_for_bit(spark_log):
    logdir, _ = spark_log
    with DecisionLog.open(logdir, read_only=True) as log:
        ids = [r[0] for r in log.con.execute(
            "SELECT decision_id FROM decisions WHERE ts = make_timestamp(?) USING SAMPLE 150 ROWS (reservoir, 7)",
            [PLAN.ts_us]).fetchall()]
        explored = log.con.execute("SELECT count(*) FROM decisions WHERE explored AND ts = make_timestamp(?)",
                                   [PLAN.ts_us]).fetchall()[0][0]
        ids += [r[0] for r in log.con.execute("SELECT decision_id FROM decisions WHERE explored AND "
                                              "ts = make_timestamp(?) LIMIT 20", [PLAN.ts_us]).fetchall()]
        results = replay(log, ids)
    assert explored > 0  # exploration happened, keyed by the decision: it replays too
    bad = [(r.decision_id, r.differences[:2]) for r in results if not r.reproduced]
    assert not bad, bad


def test_spark_decides_exactly_as_this_process(spark_log, demo_log, customers, tmp_path):
    logdir, _ = spark_log
    local = tmp_path / "local.duckdb"
    copy_log(demo_log, local)
    # read in slices of 700 rows (the Spark partitions cut elsewhere): the same numbers, the same decisions
    res = batch.run_local(str(local), batch.Table(str(customers), slice_rows=700), None, PLAN)
    assert res.decisions == 6000
    dec_s, cand_s, in_s = _rows(logdir)
    dec_l, cand_l, in_l = _rows(local)
    assert len(dec_s) == 6000
    pd.testing.assert_frame_equal(dec_s, dec_l)
    pd.testing.assert_frame_equal(cand_s, cand_l)
    assert in_s == in_l


def test_a_bad_row_stops_the_spark_run_and_logs_nothing(demo_log, customers, tmp_path):
    frame = pd.read_parquet(customers)
    frame.loc[4321, "age"] = -7.0
    bad = tmp_path / "bad.parquet"
    frame.to_parquet(bad, row_group_size=500)
    db = tmp_path / "log.duckdb"
    copy_log(demo_log, db)
    with DecisionLog.open(db, read_only=True) as log:
        head = log.verify().head_hash
    with pytest.raises(Exception) as info:
        spark.run_spark(str(db), str(bad), None, PLAN, "local[2]", partition_mb=0.1)
    assert "-7" in info.value.message and "age" in info.value.message and "Nothing was logged" in info.value.message
    root = shards.root_of(str(db))
    assert not list(root.glob(".pending-*"))  # the partitions that had finished left nothing behind
    with DecisionLog.open(db, read_only=True) as log:
        res = log.verify()
        assert res.ok and res.head_hash == head and res.n_decisions == 2000


def test_run_command_with_spark(demo_log, customers, tmp_path):
    from click.testing import CliRunner

    from klartext.cli import main

    def cli(*args):
        return CliRunner().invoke(main, [str(a) for a in args])

    logdir = tmp_path / "logdir"
    logdir.mkdir()
    copy_log(demo_log, logdir / "log.duckdb")
    out = cli("run", "--engine", "spark", "--master", "local[2]", "--customers", customers, "--db", logdir,
              "--partition-mb", "0.2")
    assert out.exit_code == 0, out.stderr[-3000:]
    assert "Logged 6,000 decisions of" in out.stdout and "shard(s)" in out.stdout
    assert "Deciding 6,000 customers in" in out.stderr and " partitions" in out.stderr
    out = cli("verify", "--db", logdir)
    assert out.exit_code == 0 and "8,000 decisions verified" in out.stdout, out.stdout
    csv = tmp_path / "c.csv"
    pd.read_parquet(customers).head(5).to_csv(csv, index=False)
    out = cli("run", "--engine", "spark", "--customers", csv, "--db", logdir)
    assert out.exit_code == 2 and "--engine spark reads Parquet tables" in out.stderr


def test_checkpoint_evidence_and_proofs_on_a_spark_log(spark_log, tmp_path):
    from decision_log import checkpoints

    logdir, res = spark_log
    priv, pub = checkpoints.keygen(tmp_path / "signing.key")
    with DecisionLog.open(logdir, read_only=True) as log:
        ckpt = checkpoints.make(log.con.cursor(), checkpoints.load_private(priv), "logdir", log.verify())
        assert ckpt["decisions"] == 8000 and ckpt["head_seq"] == 8000
        assert checkpoints.check(log.con.cursor(), ckpt, checkpoints.load_public(pub)) is None
        manifest = log.manifest
        first, last = manifest.shards[1], manifest.shards[-1]
        # a decision that starts a Spark shard links to the shard's own start, not to the decision before it
        did = log.con.execute("SELECT decision_id FROM decisions WHERE seq = ?", [first.first_seq]).fetchall()[0][0]
        status = checkpoints.record_status(log.con.cursor(), did)
        assert status["record_intact"] and status["link_intact"] and status["previous_chain_hash"] == first.prev
        with pytest.raises(Exception, match=f"followed by shard {manifest.shards[2].name}"):
            checkpoints.prove(log.con.cursor(), did, ckpt)
        newest = log.con.execute("SELECT decision_id FROM decisions WHERE seq = ?", [last.first_seq + 3]
                                 ).fetchall()[0][0]
        proof = checkpoints.prove(log.con.cursor(), newest, ckpt)
    assert checkpoints.check_proof(proof, checkpoints.load_public(pub))["decision_id"] == newest


def test_a_writer_counts_the_contacts_of_a_recent_spark_run(demo_log, customers, tmp_path):
    """Contact caps hold across engines: tomorrow's real-time decision sees tonight's batch."""
    from klartext.jobs import decide_one

    frame = pd.read_parquet(customers).head(400).assign(channel="email", email_consent=True)
    table = tmp_path / "email.parquet"
    frame.to_parquet(table)
    db = tmp_path / "log.duckdb"
    copy_log(demo_log, db)
    spark.run_spark(str(db), str(table), None, batch.Plan.now(), "local[2]")
    with DecisionLog.open(db, read_only=True) as log:
        contacted = log.con.execute(
            "SELECT customer FROM decisions WHERE channel = 'email' AND chosen_action IS NOT NULL "
            "AND ts > now() - INTERVAL 1 HOUR").fetchall()
        pseudo = dict(zip(log.pseudonymise(frame["customer_id"].tolist()), frame["customer_id"]))
    raw = pseudo[contacted[0][0]]
    row = frame[frame["customer_id"] == raw].iloc[0].to_dict()
    item = {"customer_id": raw, "channel": "email",
            "features": {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()
                         if k not in ("customer_id", "channel")}}
    with DecisionLog.open(db) as log:  # a writer: its file holds none of the run's decisions
        assert log.con.execute("SELECT count(*) FROM decisions").fetchall()[0][0] == 0
        batch_, _ = decide_one(log, item)
        did = str(batch_.decision_id[0])
    with DecisionLog.open(db, read_only=True) as log:
        stored = log.con.execute("SELECT decision_id, customer, inputs FROM decisions WHERE decision_id = ?",
                                 [did]).fetchall()[0]
        inputs = json.loads(log.open_inputs([stored[0]], [stored[1]], [stored[2]])[0])
    assert inputs["contacts"].get("email") == 1


def test_a_table_read_in_slices_logs_nothing_when_a_row_of_its_last_slice_is_bad(demo_log, customers, tmp_path):
    """Every slice is checked before the first is decided: a bad row anywhere logs nothing."""
    from decisioning.errors import InputError

    local = tmp_path / "local.duckdb"
    copy_log(demo_log, local)
    frame = pd.read_parquet(customers).head(1000).astype({"age": object})
    frame.loc[990, "age"] = "old"
    frame.to_csv(tmp_path / "customers.csv", index=False)
    table = batch.Table(str(tmp_path / "customers.csv"), slice_rows=300)
    with pytest.raises(InputError) as err:
        batch.run_local(str(local), table, None, PLAN)
    assert err.value.message == "row 991: feature 'age' must be a number, got 'old'."  # its row in the file
    with DecisionLog.open(local, read_only=True) as log:
        assert log.con.execute("SELECT count(*) FROM decisions").fetchall()[0][0] == 2000
    strategy = retail.load_demo_strategy()
    new = tmp_path / "new.duckdb"
    with pytest.raises(InputError, match="^row 991: feature 'age'"):
        batch.run_local(str(new), table, strategy, PLAN)
    assert not new.exists()  # checked before the log is made
