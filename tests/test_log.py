"""The decision log: schema, completeness, exact factors, atomic and validated writes."""

import json
import sys

import duckdb
import numpy as np
import pytest

from conftest import decide_one, request
from decision_log import subjects
from decision_log.store import DecisionLog
from decisioning.errors import InputError, LogError
from klartext.jobs import decide_one as decide_and_log_one


def test_schema_has_the_documented_tables_and_columns(demo_log):
    con = duckdb.connect(str(demo_log), read_only=True)
    cols = {t: [r[0] for r in con.execute(f"DESCRIBE {t}").fetchall()]
            for t in ("decisions", "candidates", "outcomes", "strategies", "models", "chain")}
    con.close()
    assert {"decision_id", "ts", "customer", "channel", "direction", "inputs", "strategy_version", "model_versions",
            "chosen_action", "chosen_actions", "selection_probability", "latency_us"} <= set(cols["decisions"])
    assert {"decision_id", "ts", "action_id", "issue", "group", "stage", "rule", "reason", "propensity", "value",
            "context_weight", "lever", "priority", "rank", "selected"} <= set(cols["candidates"])
    assert {"decision_id", "action_id", "outcome", "revenue", "ts"} <= set(cols["outcomes"])
    assert {"version", "text", "first_used"} <= set(cols["strategies"])
    assert {"version", "action_id", "features", "metrics", "artifact"} <= set(cols["models"])


def test_every_decision_has_one_row_per_catalog_action(demo_log):
    con = duckdb.connect(str(demo_log), read_only=True)
    n_dec, n_cand, n_actions = con.execute(
        "SELECT (SELECT count(*) FROM decisions), (SELECT count(*) FROM candidates), "
        "(SELECT count(DISTINCT action_id) FROM candidates)").fetchall()[0]
    per = con.execute("SELECT min(n), max(n) FROM (SELECT count(DISTINCT action_id) n FROM candidates GROUP BY decision_id)").fetchall()[0]
    con.close()
    assert n_dec == 2000 and n_actions == 29
    assert n_cand == n_dec * n_actions
    assert per == (29, 29)


def test_scored_candidates_carry_an_exact_priority_and_filtered_ones_a_reason(demo_log):
    con = duckdb.connect(str(demo_log), read_only=True)
    scored = con.execute("SELECT propensity, value, context_weight, lever, priority FROM candidates "
                         "WHERE propensity IS NOT NULL").fetchnumpy()
    bad_filtered = con.execute(
        "SELECT count(*) FROM candidates WHERE stage NOT IN ('ranked', 'selected') "
        "AND (rule IS NULL OR reason IS NULL OR NOT starts_with(reason, stage || '/' || rule || ': '))").fetchall()[0][0]
    survivors_with_rule = con.execute(
        "SELECT count(*) FROM candidates WHERE stage IN ('ranked', 'selected') AND rule IS NOT NULL").fetchall()[0][0]
    con.close()
    product = scored["propensity"] * scored["value"] * scored["context_weight"] * scored["lever"]
    rel = np.abs(scored["priority"] - product) / np.maximum(np.abs(product), 1e-300)
    assert len(product) > 1000 and rel.max() <= 1e-12
    assert bad_filtered == 0 and survivors_with_rule == 0


def test_inputs_are_logged_exactly_sealed_and_customers_pseudonymised(demo_log):
    con = duckdb.connect(str(demo_log), read_only=True)
    row = con.execute("SELECT decision_id, customer, inputs FROM decisions ORDER BY seq LIMIT 1").fetchall()[0]
    con.close()
    assert len(row[1]) == 32 and not row[1].startswith("C")
    assert row[2].startswith(subjects.PREFIX) and "features" not in row[2]  # sealed under the customer's key
    with DecisionLog.open(demo_log, read_only=True) as log:
        inputs = json.loads(log.open_inputs([row[0]], [row[1]], [row[2]])[0])
    assert {"features", "contacts", "rejections"} <= set(inputs) <= {"features", "contacts", "rejections", "reasons"}
    assert isinstance(inputs["features"]["age"], int) and isinstance(inputs["features"]["cart_value"], float)


def test_outcomes_are_simulated_for_every_decision(demo_log):
    con = duckdb.connect(str(demo_log), read_only=True)
    missing = con.execute("SELECT count(*) FROM decisions ANTI JOIN outcomes USING (decision_id)").fetchall()[0][0]
    kinds = {r[0] for r in con.execute("SELECT DISTINCT outcome FROM outcomes").fetchall()}
    con.close()
    assert missing == 0
    assert {"accepted", "rejected", "ignored", "none"} == kinds


def test_single_decision_is_logged_with_contact_history(tmp_path, tiny_strategy, tiny_models):
    with DecisionLog.open(tmp_path / "one.duckdb") as log:
        batch, _ = decide_and_log_one(log, request(customer_id="K9"), tiny_strategy, tiny_models)
        n = log.con.execute("SELECT count(*) FROM candidates WHERE decision_id = ?", [batch.decision_id[0]]).fetchall()[0][0]
        assert n == len(tiny_strategy.actions)
        assert log.verify().ok


def test_bad_input_writes_nothing(tmp_path, tiny_strategy, tiny_models):
    with DecisionLog.open(tmp_path / "bad.duckdb") as log:
        with pytest.raises(InputError) as info:
            decide_and_log_one(log, request(age="forty"), tiny_strategy, tiny_models)
        assert info.value.message == "request: feature 'age' must be a whole number, got 'forty'."
        assert log.con.execute("SELECT count(*) FROM decisions").fetchall()[0][0] == 0
        assert log.con.execute("SELECT count(*) FROM candidates").fetchall()[0][0] == 0


def test_a_failed_write_leaves_nothing_half_written(tmp_path, tiny_engine, tiny_strategy):
    with DecisionLog.open(tmp_path / "atomic.duckdb") as log:
        batch = decide_one(tiny_engine, request())
        log.con.execute("CREATE TABLE blocker AS SELECT 1")
        # sabotage the chain table so the last insert of the transaction fails
        log.con.execute("ALTER TABLE chain ADD COLUMN must_not_be_null INTEGER NOT NULL DEFAULT 1")
        log.con.execute("ALTER TABLE chain ALTER COLUMN must_not_be_null DROP DEFAULT")
        with pytest.raises(LogError) as info:
            log.append(batch, tiny_strategy)
        assert info.value.message.startswith("Writing 1 decisions to ")
        assert log.con.execute("SELECT count(*) FROM decisions").fetchall()[0][0] == 0
        assert log.con.execute("SELECT count(*) FROM candidates").fetchall()[0][0] == 0


def test_missing_log_is_a_clear_error(tmp_path):
    with pytest.raises(LogError) as info:
        DecisionLog.open(tmp_path / "nope.duckdb", read_only=True)
    assert info.value.hint == f"Create one with `klartext demo --db {tmp_path / 'nope.duckdb'}`."


def test_models_are_stored_with_version_features_fingerprint_and_metrics(demo_log):
    con = duckdb.connect(str(demo_log), read_only=True)
    rows = con.execute("SELECT action_id, version, features, training_fingerprint, metrics, format FROM models").fetchall()
    con.close()
    assert len(rows) == 29
    for _action_id, version, features, fp, metrics, fmt in rows:
        m = json.loads(metrics)
        assert len(version) == 16 and len(fp) == 16 and fmt == "skops"
        assert features[-1] == "channel" and "recency_days" in features
        assert m["n_train"] + m["n_test"] == 800 and 100 < m["n_test"] < 220  # 20% held out
        assert 0.0 <= m["auc"] <= 1.0 and 0.0 <= m["ece"] <= 1.0
        assert sum(b["n"] for b in m["calibration"]) == m["n_test"]


def test_rows_prepared_off_the_writer_are_logged_identically(tmp_path, tiny_engine, tiny_strategy, monkeypatch):
    """prepare() types and hashes the decision rows off the writer's thread, up to their
    sequence numbers; the writer numbers and chains them in the order they are appended.
    The inputs' JSON that prepare() writes for a small batch and the one DuckDB writes for a
    larger one hold the same values, and batches appended in another order than they were
    prepared in (another writer came first) are logged alike and verify."""
    import decision_log.rows
    from decision_log.rows import prepare
    from decisioning.inputs import Requests
    from tests.conftest import tiny_customers

    req = Requests.from_frame(tiny_strategy, tiny_customers(60, seed=4))
    batches = [tiny_engine.decide(req.take(np.arange(i, i + 20))) for i in range(0, 60, 20)]
    rows = {}
    for small, order in ((0, 1), (64, 1), (64, -1)):
        monkeypatch.setattr(decision_log.rows, "SMALL_BATCH", small)
        with DecisionLog.open(tmp_path / f"{small}{order}.duckdb") as log:
            prepared = [prepare(b, tiny_strategy, np.asarray(b.requests.customer_id, dtype=object)) for b in batches]
            for p in prepared[::order]:
                log.append_prepared(p)
            assert log.verify().ok
            rows[small, order] = [
                log.con.execute("SELECT * EXCLUDE (inputs, seq) FROM decisions ORDER BY decision_id").fetchall(),
                [json.loads(x) for (x,) in log.con.execute("SELECT inputs FROM decisions ORDER BY decision_id").fetchall()],
                log.con.execute("SELECT * FROM candidates ORDER BY ALL").fetchall()]
    assert rows[0, 1] == rows[64, 1] == rows[64, -1]


def test_a_value_without_json_form_leaves_the_inputs_to_duckdb(tiny_engine, tiny_strategy):
    import pyarrow as pa

    from decision_log.rows import _typed_small, engine_rows

    b = decide_one(tiny_engine, request())
    dec = engine_rows(b, tiny_strategy, np.array(["c"], dtype=object), "klartext")[0]
    assert _typed_small(dec) is not None
    feats = dec.column("features").combine_chunks()
    fields = [feats.field(i) for i in range(feats.type.num_fields)]
    k = next(i for i, f in enumerate(fields) if pa.types.is_floating(f.type))
    fields[k] = pa.array([float("nan")])
    bad = dec.set_column(dec.column_names.index("features"), "features",
                         pa.StructArray.from_arrays(fields, [f.name for f in feats.type]))
    assert _typed_small(bad) is None


def test_pseudonyms_are_the_keyed_hmac_of_the_customer_id(tmp_path):
    """The documented pseudonym (first 32 hex digits of HMAC-SHA256 under the log's key), so a
    customer's id finds their decisions in logs written by any Klartext version."""
    import hashlib
    import hmac

    with DecisionLog.open(tmp_path / "p.duckdb") as log:
        key = bytes.fromhex((tmp_path / "p.duckdb.key").read_text().strip())
        got = log.pseudonymise(["C00000042", 17, "Kundin Ä"])
        many = [f"C{i:08d}" for i in range(300)] + ["", "Kundin Ä", 42, "x" * 500]  # a batch: compiled HMAC
        got_many = log.pseudonymise(many)
    assert list(got) == [hmac.new(key, c.encode(), hashlib.sha256).hexdigest()[:32] for c in ("C00000042", "17", "Kundin Ä")]
    assert list(got_many) == [hmac.new(key, str(c).encode(), hashlib.sha256).hexdigest()[:32] for c in many]


@pytest.mark.parametrize("key_length", [0, 1, 32, 64, 65, 200])
def test_batched_hmac_is_rfc_2104_for_any_key_length(key_length):
    """Keys up to a block are padded, longer ones hashed first (RFC 2104), on the compiled path
    and on hashlib's alike."""
    import hmac

    from decision_log import pseudonyms

    key = bytes(range(256))[:key_length] if key_length <= 256 else b""
    msgs = [f"C{i:08d}" for i in range(100)] + ["", "é – ü", "y" * 1000]
    want = [hmac.new(key, m.encode(), "sha256").hexdigest() for m in msgs]
    assert pseudonyms.hmac_hex(key, msgs) == want
    assert pseudonyms.hmac_hex(key, msgs, 32) == [w[:32] for w in want]
    assert pseudonyms.hmac_hex(key, msgs[:3]) == want[:3]  # small batches: hashlib


@pytest.mark.parametrize("failing", ["decide", "prepare", "write"])
def test_a_failing_pipeline_stage_stops_the_job_and_keeps_only_whole_chunks(tmp_path, tiny_engine, tiny_strategy,
                                                                           monkeypatch, failing):
    """The batch job's stages run on their own threads; the third chunk's failure (while
    deciding, preparing or writing it) is raised to the caller, the log holds exactly the
    chunks written before it, and it verifies."""
    import decision_log.writer as writer
    from decisioning.inputs import Requests
    from tests.conftest import tiny_customers

    req = Requests.from_frame(tiny_strategy, tiny_customers(100, seed=6))
    ts = np.arange(100, dtype=np.int64) + 1_700_000_000_000_000
    calls = []

    def boom(original):
        def wrapped(*args, **kwargs):
            calls.append(1)
            if len(calls) == 3:
                raise OSError("disk full (simulated)")
            return original(*args, **kwargs)
        return wrapped

    if failing == "decide":
        monkeypatch.setattr(tiny_engine, "decide", boom(tiny_engine.decide))
    elif failing == "prepare":
        monkeypatch.setattr(writer, "prepare", boom(writer.prepare))
    else:
        monkeypatch.setattr(DecisionLog, "append_prepared", boom(DecisionLog.append_prepared))
    with DecisionLog.open(tmp_path / "p.duckdb") as log:
        threads = log.con.execute("SELECT current_setting('threads')").fetchall()[0][0]
        with pytest.raises(OSError, match="disk full"):
            writer.decide_and_log(log, tiny_engine, req, ts, chunk=20)
        written = writer._chunks(100, 20)[1][1]  # the first two chunks
        assert 0 < written < 100
        assert log.con.execute("SELECT count(*) FROM decisions").fetchall()[0][0] == written
        assert log.con.execute("SELECT count(*) FROM candidates").fetchall()[0][0] == written * len(tiny_strategy.actions)
        assert log.verify().ok
        assert log.con.execute("SELECT current_setting('threads')").fetchall()[0][0] == threads  # bulk settings undone


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="threads are reniced on Linux only")
def test_the_batch_job_runs_the_writer_ahead_of_the_other_stages(tmp_path, tiny_engine, tiny_strategy, monkeypatch):
    """The DuckDB write is the longest stage: the deciding and preparing threads run at a
    lower OS priority than the writer, and the caller's thread keeps its own."""
    import os
    import threading

    import decision_log.writer as writer
    from decisioning.inputs import Requests
    from tests.conftest import tiny_customers

    def nice() -> tuple[str, int]:
        return threading.current_thread().name, os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    seen = {}

    def spy(name, original):
        def wrapped(*args, **kwargs):
            seen[name] = nice()
            return original(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(tiny_engine, "decide", spy("decide", tiny_engine.decide))
    monkeypatch.setattr(writer, "prepare", spy("prepare", writer.prepare))
    monkeypatch.setattr(DecisionLog, "append_prepared", spy("write", DecisionLog.append_prepared))
    before = nice()
    req = Requests.from_frame(tiny_strategy, tiny_customers(60, seed=7))
    with DecisionLog.open(tmp_path / "n.duckdb") as log:
        writer.decide_and_log(log, tiny_engine, req, np.arange(60, dtype=np.int64) + 1_700_000_000_000_000,
                                         chunk=20)
        assert log.verify().ok
    base = before[1]
    assert seen["decide"] == ("klartext-decide", min(19, base + writer._UPSTREAM_NICE))
    assert seen["prepare"] == ("klartext-log-prepare", min(19, base + writer._UPSTREAM_NICE))
    assert seen["write"] == ("klartext-log-writer", base)
    assert nice() == before


def test_rejection_histories_are_written_as_json_dumps_writes_them():
    """The decision rows' rejection histories are formatted in one pass; the text is exactly
    json.dumps of the history (keys that need escaping, tiny, huge and whole numbers, and the
    NaN that json.dumps spells its own way)."""
    from decision_log.rows import _rejections_json

    rng = np.random.default_rng(1)
    aids = tuple(f"a{i}" for i in range(7)) + ('we"ird', "ü")
    count = (rng.random((300, 9)) < 0.15) * rng.integers(1, 5, (300, 9))
    days = rng.random((300, 9)) * 100
    days[3], days[4], days[5] = 1e-7, 12345678912.5, 3.0
    for d in (days, np.where(count > 0, np.nan, days)):
        want = [json.dumps({aids[j]: {"count": int(count[r, j]), "days_since_last": float(d[r, j])}
                            for j in np.flatnonzero(count[r])}) for r in range(300)]
        assert list(_rejections_json(count, d, aids)) == want


def test_a_suspended_reader_lets_a_writer_in_and_says_when_one_is_still_writing(tmp_path, tiny_strategy, tiny_models):
    """The dashboard's log between page runs: suspended, another process can write the file;
    resuming while a writer still holds it names the file and the next step."""
    import subprocess

    from decisioning.errors import LogInUse

    db = tmp_path / "s.duckdb"
    with DecisionLog.open(db) as log:
        log.register_models(tiny_models)
    reader = DecisionLog.open(db, read_only=True)
    reader.suspend()
    writer = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('held', flush=True); time.sleep(30)", str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "held"  # the write lock was free
        with pytest.raises(LogInUse) as err:
            reader.resume(wait_s=0.2)
        assert err.value.message == f"The decision log {str(db)!r} is being written by another process."
        assert err.value.hint == ("A Klartext command is writing it (e.g. `klartext decide` or `explain --sample`): "
                                  "reload the page when it is done.")
    finally:
        writer.kill()
        writer.wait()
    reader.resume(wait_s=5)  # the writer is gone: reading goes on, with what was cached
    assert reader.con.execute("SELECT count(*) FROM decisions").fetchall() == [(0,)]
    reader.close()
