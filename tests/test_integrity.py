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
