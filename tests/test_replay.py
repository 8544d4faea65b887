"""Replay re-executes logged decisions with the pinned strategy and models, exactly."""

import duckdb

from decision_log.replay import replay, sample_ids
from decision_log.store import DecisionLog


def test_every_sampled_decision_is_reproduced_exactly(demo_log):
    with DecisionLog.open(demo_log, read_only=True) as log:
        ids = sample_ids(log, 500, seed=1)
        results = replay(log, ids)
    assert len(results) == 500
    assert [r.decision_id for r in results if not r.reproduced] == []
    assert all(r.chosen_logged == r.chosen_replayed for r in results)


def test_replay_reports_what_differs(demo_copy):
    con = duckdb.connect(str(demo_copy))
    did, aid, p = con.execute("SELECT decision_id, action_id, propensity FROM candidates "
                              "WHERE propensity IS NOT NULL LIMIT 1 OFFSET 333").fetchall()[0]
    con.execute("UPDATE candidates SET propensity = ? WHERE decision_id = ? AND action_id = ?", [p + 0.01, did, aid])
    con.close()
    with DecisionLog.open(demo_copy, read_only=True) as log:
        (res,) = replay(log, [did])
    assert not res.reproduced
    diff = [d for d in res.differences if d.field == "propensity"]
    assert len(diff) == 1 and diff[0].action_id == aid
    assert diff[0].logged == p + 0.01 and diff[0].replayed == p


def test_sample_is_repeatable(demo_log):
    with DecisionLog.open(demo_log, read_only=True) as log:
        assert sample_ids(log, 20, seed=4) == sample_ids(log, 20, seed=4)
