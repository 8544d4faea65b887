"""Tamper detection: any changed value, deleted or reordered decision is named by `verify`."""

import duckdb
import pytest

from decision_log.integrity import links
from decision_log.store import DecisionLog


def verify(path):
    with DecisionLog.open(path, read_only=True) as log:
        return log.verify()


def quick(path):
    """The dashboard's quick check (chain links only, inside DuckDB)."""
    with DecisionLog.open(path, read_only=True) as log:
        return links(log.con.cursor())


def pick(path, sql):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()[0]
    finally:
        con.close()


def tamper(path, sql, params=()):
    con = duckdb.connect(str(path))
    con.execute(sql, list(params))
    con.close()


def test_an_untouched_log_verifies(demo_log):
    res = verify(demo_log)
    assert res.ok and res.n_decisions == 2000 and len(res.head_hash) == 64
    q = quick(demo_log)
    assert q.ok and q.n_decisions == 2000 and q.head_hash == res.head_hash


@pytest.mark.parametrize("table,column,expr", [
    ("decisions", "selection_probability", "selection_probability * 0.5"),
    ("decisions", "inputs", "json_merge_patch(inputs, '{\"contacts\": {\"email\": 99}}')"),
    ("decisions", "chosen_action", "'xsell_home'"),
    ("candidates", "propensity", "propensity + 1e-15"),
    ("candidates", "reason", "reason || ' '"),
    ("candidates", "stage", "'selected'"),
    ("candidates", "rank", "rank + 1"),
])
def test_changing_any_single_value_names_that_decision(demo_copy, table, column, expr):
    did, = pick(demo_copy, f"SELECT decision_id FROM {table} WHERE {column} IS NOT NULL "
                           "ORDER BY decision_id LIMIT 1 OFFSET 700")
    action_filter = ""
    if table == "candidates":
        aid, = pick(demo_copy, f"SELECT action_id FROM candidates WHERE decision_id = '{did}' AND {column} IS NOT NULL LIMIT 1")
        action_filter = f" AND action_id = '{aid}'"
    tamper(demo_copy, f"UPDATE {table} SET {column} = {expr} WHERE decision_id = ?{action_filter}", [did])
    res = verify(demo_copy)
    assert not res.ok
    assert res.first_bad_decision == did
    assert res.problem == "its decision row or one of its candidate rows was changed since it was logged"


def test_a_deleted_candidate_row_is_detected(demo_copy):
    did, = pick(demo_copy, "SELECT decision_id FROM decisions WHERE seq = 1500")
    tamper(demo_copy, "DELETE FROM candidates WHERE decision_id = ? AND stage = 'eligibility' "
                      "AND action_id = (SELECT min(action_id) FROM candidates WHERE decision_id = ? AND stage = 'eligibility')",
           [did, did])
    res = verify(demo_copy)
    assert (res.ok, res.first_bad_decision) == (False, did)


def test_a_deleted_decision_is_named(demo_copy):
    did, = pick(demo_copy, "SELECT decision_id FROM decisions WHERE seq = 1234")
    tamper(demo_copy, "DELETE FROM candidates WHERE decision_id = ?", [did])
    tamper(demo_copy, "DELETE FROM decisions WHERE decision_id = ?", [did])
    res = verify(demo_copy)
    assert not res.ok and res.first_bad_decision == did
    assert "deleted, inserted or reordered" in res.problem
    q = quick(demo_copy)
    assert (q.ok, q.first_bad_decision, q.first_bad_seq) == (False, did, 1234)
    assert q.problem == "the chain lists this decision but the log no longer holds it (it was deleted)"


def test_reordered_decisions_are_named(demo_copy):
    a, = pick(demo_copy, "SELECT decision_id FROM decisions WHERE seq = 100")
    tamper(demo_copy, "UPDATE decisions SET seq = CASE seq WHEN 100 THEN 101 ELSE 100 END WHERE seq IN (100, 101)")
    res = verify(demo_copy)
    assert not res.ok and res.first_bad_decision == a and res.first_bad_seq == 100
    q = quick(demo_copy)
    assert (q.ok, q.first_bad_decision, q.first_bad_seq) == (False, a, 100)
    assert q.problem.startswith("the decision at seq 100 of the log is ") and "reordered" in q.problem


def test_a_rewritten_chain_link_is_named(demo_copy):
    did, = pick(demo_copy, "SELECT decision_id FROM chain WHERE seq = 42")
    tamper(demo_copy, "UPDATE chain SET chain_hash = repeat('0', 64) WHERE seq = 42")
    res = verify(demo_copy)
    assert (res.ok, res.first_bad_decision) == (False, did)
    assert res.problem == "its chain link does not follow from the previous decision (the chain was altered)"
    q = quick(demo_copy)
    assert (q.ok, q.first_bad_decision, q.problem) == (False, did, res.problem)


def _reference_row_bytes(rows: list[dict], columns: list[str]) -> list[bytes]:
    """The canonical bytes of each row, written out rule by rule from the module's docstring."""
    import hashlib
    import struct
    from datetime import datetime

    from decision_log.integrity import LABEL_COLUMNS

    out = []
    for row in rows:
        fixed, text = b"", b""
        for c in columns:
            v = row[c]
            fixed += b"\x00" if v is None else b"\x01"
            if c in LABEL_COLUMNS:
                fixed += bytes(8) if v is None else hashlib.blake2b(v.encode(), digest_size=8).digest()
            elif isinstance(v, bool) or c == "selected":
                fixed += bytes([bool(v)])
            elif isinstance(v, float) or c == "propensity":
                fixed += struct.pack("<d", 0.0 if v is None else v)
            elif isinstance(v, datetime) or c == "ts":
                fixed += struct.pack("<q", 0 if v is None else round(v.timestamp() * 1e6))
            elif isinstance(v, int) or c == "rank":
                fixed += struct.pack("<q", 0 if v is None else v)
            else:
                s = "" if v is None else ("\x1f".join(v) if isinstance(v, list) else v)
                fixed += struct.pack("<i", len(s.encode()))
                text += s.encode()
        out.append(fixed + text)
    return out


def test_canonical_bytes_follow_the_documented_layout():
    """The compiled assembly of a row's bytes against the rules written out one by one: every
    kind of column, NULLs in each, dictionary and plain text, a list, non-ASCII text, a
    sliced and a chunked table (the layout is what existing logs were hashed with)."""
    from datetime import UTC, datetime

    import numpy as np
    import pyarrow as pa

    from decision_log.integrity import _parts

    rng = np.random.default_rng(3)
    n = 300
    ts = [datetime(2026, 1, 1, tzinfo=UTC).timestamp() + float(k) for k in rng.integers(0, 10**6, n)]
    rows = [{
        "decision_id": f"D{i:05d}",
        "ts": datetime.fromtimestamp(ts[i], UTC),
        "channel": [None, "web", "app", "e-mail ü"][i % 4],
        "stage": ["eligibility", "ranked", None][i % 3],
        "reason": None if i % 5 == 0 else f"suitability/x: arrears_days={i} > 0 – é",
        "propensity": None if i % 7 == 0 else float(rng.random()) * 10.0 ** float(rng.integers(-300, 300)),
        "rank": None if i % 2 else int(rng.integers(-5, 2**40)),
        "selected": None if i % 11 == 0 else bool(i % 3),
        "chosen_actions": [] if i % 4 == 0 else [f"a{k}" for k in range(i % 4)],
        "inputs": '{"features":{"x":' + str(i) + '}}',
    } for i in range(n)]
    columns = list(rows[0])
    plain = pa.Table.from_pylist(rows)
    dictionary = plain.set_column(plain.column_names.index("stage"), "stage", plain.column("stage").dictionary_encode())
    dictionary = dictionary.set_column(dictionary.column_names.index("reason"), "reason",
                                       dictionary.column("reason").dictionary_encode())
    chunked = pa.concat_tables([dictionary.slice(0, 100), dictionary.slice(100)])
    for table, expect in ((plain, rows), (dictionary, rows), (dictionary.slice(37, 150), rows[37:187]),
                          (chunked, rows), (plain.slice(0, 0), [])):
        fixed, offsets, text = _parts(table, columns)
        got = [fixed[i].tobytes() + text[offsets[i]:offsets[i + 1]].tobytes() for i in range(table.num_rows)]
        assert got == _reference_row_bytes(expect, columns)


def test_candidate_digests_from_the_batch_equal_those_of_its_arrow_rows(tiny_engine, tiny_strategy):
    """prepare() hashes a batch's candidate rows straight from the engine's arrays; the digests
    are those of the Arrow rows it logs (filtered, scored, unscored and selected cells alike)."""
    import numpy as np

    from decision_log import integrity
    from decision_log.rows import _candidate_columns, engine_rows
    from decisioning.inputs import Requests
    from tests.conftest import tiny_customers

    for n, seed in ((1, 1), (7, 2), (300, 3)):
        b = tiny_engine.decide(Requests.from_frame(tiny_strategy, tiny_customers(n, seed=seed)))
        A = len(tiny_strategy.actions)
        assert np.isnan(b.propensity).any() and (b.rule >= 0).any() or n == 1
        starts = np.arange(n, dtype=np.int64) * A
        _, cand = engine_rows(b, tiny_strategy, np.asarray(b.requests.customer_id, dtype=object), "klartext")
        reference = integrity.digests(integrity.assemble(_candidate_columns(b, tiny_strategy), n * A), starts,
                                      starts + A)
        from_batch = integrity.group_digests(_candidate_columns(b, tiny_strategy), n * A, starts, starts + A)
        assert [d.tobytes() for d in from_batch] == reference
        assert [d.tobytes() for d in integrity.candidate_digests(cand, starts, starts + A)] == reference


def test_compiled_hashing_gives_the_reference_digests_and_chain(monkeypatch):
    """The writer hashes with OpenSSL from compiled code; the digests, record hashes and chain
    are those of the reference assembly and hashlib, for groups of any size (empty ones
    too), and the same when the compiled path is unavailable."""
    import hashlib
    import sys

    import numpy as np

    from decision_log import _native, integrity

    if sys.platform.startswith("linux"):
        assert _native.available()  # OpenSSL found: the fast path is the one in use
    rng = np.random.default_rng(5)
    n = 500
    texts = ["", "a", "é – ü", "x" * 5000] + [f"reason {i}" for i in range(40)]
    cols = [
        integrity.fixed_column(rng.integers(-2**62, 2**62, n)),
        integrity.text_column(rng.integers(-1, len(texts), n).astype(np.int32), texts),
        integrity.label_column(rng.integers(-1, 3, n).astype(np.int32), ["web", "app", "e-mail"]),
        integrity.fixed_column(rng.random(n), rng.random(n) < 0.8),
        integrity.fixed_column(rng.random(n) < 0.5),
        integrity.text_column(np.arange(n, dtype=np.int32), [f"D{i:06d}" for i in range(n)]),
    ]
    cuts = np.sort(rng.integers(0, n, 60))
    starts, ends = np.concatenate([[0], cuts]), np.concatenate([cuts, [n]])  # some groups empty
    reference = integrity.digests(integrity.assemble(cols, n), starts, ends)
    fast = integrity.group_digests(cols, n, starts, ends)
    assert [d.tobytes() for d in fast] == reference
    shuffled = rng.permutation(len(starts))  # groups in any order, not adjoining (as verify() reads them)
    assert [d.tobytes() for d in integrity.group_digests(cols, n, starts[shuffled], ends[shuffled])] == \
        [reference[k] for k in shuffled]
    row, cand = fast[:40], fast[20:60]
    records, chained = integrity.record_and_chain(row, cand, integrity.GENESIS)
    expect = integrity.combine(row, cand)
    assert [r.tobytes().decode() for r in records] == expect
    assert [c.tobytes().decode() for c in chained] == integrity.chain(integrity.GENESIS, expect)
    assert integrity.hex_strings(chained).to_pylist() == integrity.chain(integrity.GENESIS, expect)
    assert expect[0] == hashlib.sha256(row[0].tobytes() + cand[0].tobytes()).hexdigest()

    monkeypatch.setattr(_native, "_AVAILABLE", False)  # hashlib: the same answers
    assert [d.tobytes() for d in integrity.group_digests(cols, n, starts, ends)] == reference
    slow_records, slow_chained = integrity.record_and_chain(row, cand, integrity.GENESIS)
    assert np.array_equal(slow_records, records) and np.array_equal(slow_chained, chained)


@pytest.mark.parametrize("case", ["link at a chunk's end", "link at a chunk's start", "deleted at a chunk's start",
                                  "untouched"])
def test_the_quick_check_in_chunks_finds_what_one_pass_finds_and_reports_progress(demo_copy, case):
    """The dashboard's quick check runs a million decisions per statement with a progress bar;
    a change at a chunk's edge is named as in one pass over the whole chain."""
    if case == "link at a chunk's end":
        tamper(demo_copy, "UPDATE chain SET chain_hash = repeat('0', 64) WHERE seq = 100")
    elif case == "link at a chunk's start":
        tamper(demo_copy, "UPDATE chain SET chain_hash = repeat('0', 64) WHERE seq = 101")
    elif case == "deleted at a chunk's start":  # the decision with its chain entry: the next link breaks
        did, = pick(demo_copy, "SELECT decision_id FROM decisions WHERE seq = 101")
        tamper(demo_copy, "DELETE FROM candidates WHERE decision_id = ?", [did])
        tamper(demo_copy, "DELETE FROM decisions WHERE seq = 101")
        tamper(demo_copy, "DELETE FROM chain WHERE seq = 101")
    whole = quick(demo_copy)
    steps = []
    with DecisionLog.open(demo_copy, read_only=True) as log:
        chunked = links(log.con.cursor(), progress=lambda done, total: steps.append((done, total)), chunk=100)
    assert (chunked.ok, chunked.first_bad_seq, chunked.first_bad_decision, chunked.problem, chunked.head_hash) == \
        (whole.ok, whole.first_bad_seq, whole.first_bad_decision, whole.problem, whole.head_hash)
    expect = {"untouched": (True, None), "link at a chunk's end": (False, 100),
              "link at a chunk's start": (False, 101), "deleted at a chunk's start": (False, 102)}[case]
    assert (chunked.ok, chunked.first_bad_seq) == expect
    dones = [d for d, _ in steps]
    assert dones == sorted(dones) and all(t == whole.n_decisions for _, t in steps)
    if case == "untouched":
        assert len(steps) == 20 and dones[-1] == 2000
    else:  # it stops in the chunk of the change: only the chunks before it were reported done
        assert len(steps) == (0 if expect[1] == 100 else 1)
