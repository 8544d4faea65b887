"""The dashboard's summaries (decision_log.summaries): every figure read from them equals the
figure computed from the rows — after a refresh, with decisions and outcomes the last refresh
did not count, and where there are none — and an edited summary is named by verify."""

from __future__ import annotations

import json
import math
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from decision_log import queries as Q
from decision_log import summaries
from decision_log.store import DecisionLog

ROOT = Path(__file__).resolve().parents[1]
CUSTOMER = json.loads((ROOT / "examples" / "customer.json").read_text())


def _without_summaries(db: Path) -> Path:
    """A copy of the log whose summary tables are gone (as a log of an earlier release): its
    queries compute from the rows."""
    raw = db.with_name(db.stem + "-rows.duckdb")
    shutil.copy(db, raw)
    con = duckdb.connect(str(raw))
    for t in summaries.SEALED:
        con.execute(f"DROP TABLE {t}")
    con.close()
    return raw


def _same(x, y, what: str) -> None:
    if isinstance(x, dict):
        assert x.keys() == y.keys()
        for k in x:
            if isinstance(x[k], float) or isinstance(y[k], float):
                assert x[k] is not None and y[k] is not None and math.isclose(x[k], y[k], rel_tol=1e-9), (what, k)
            else:
                assert x[k] == y[k], (what, k, x[k], y[k])
    else:
        pd.testing.assert_frame_equal(x.reset_index(drop=True), y.reset_index(drop=True), check_dtype=False,
                                      rtol=1e-9, obj=what)


def _compare(db: Path) -> int:
    """Every dashboard query of the Overview and the Funnel, from summaries and from the rows,
    for filters of period, channel and issue; returns the number of comparisons."""
    raw = _without_summaries(db)
    a, b = duckdb.connect(str(db), read_only=True), duckdb.connect(str(raw), read_only=True)
    try:
        assert summaries.usable(a) and not summaries.usable(b)
        ch = Q.choices(b)
        assert Q.choices(a) == ch
        first, last, issues = ch["first"], ch["last"], ch["issues"]
        with DecisionLog.open(db, read_only=True) as log:
            strategy = log.load_strategy(log.latest_strategy_version())
        actions = pd.DataFrame({"action_id": [x.id for x in strategy.actions],
                                "net_margin": [x.margin - x.incentive_cost for x in strategy.actions],
                                "retention_effect": [x.retention_effect for x in strategy.actions]})
        filters = [Q.Filters(), Q.Filters(first, last), Q.Filters(channels=("email",)),
                   Q.Filters(issues=(issues[0],)), Q.Filters(last, last),
                   Q.Filters(first + timedelta(days=3), last - timedelta(days=5), ("email", "web"), tuple(issues[:2]))]
        n = 0
        for f in filters:
            _same(Q.kpis(a, f), Q.kpis(b, f), f"kpis {f}")
            _same(Q.daily(a, f), Q.daily(b, f), f"daily {f}")
            for by in ("issue", "group", "channel", "action_id"):
                _same(Q.action_mix(a, f, by), Q.action_mix(b, f, by), f"action_mix {by} {f}")
            for grain in ("day", "week", "month"):
                _same(Q.trends(a, f, grain), Q.trends(b, f, grain), f"trends {grain} {f}")
            for by in ("stage", "group"):
                _same(Q.funnel(a, f, by), Q.funnel(b, f, by), f"funnel {by} {f}")
            _same(Q.rule_counts(a, f), Q.rule_counts(b, f), f"rule_counts {f}")
            for by in ("issue", "channel"):
                _same(Q.kpi_tradeoff(a, f, by, actions), Q.kpi_tradeoff(b, f, by, actions), f"kpi_tradeoff {by} {f}")
            for low in (0.01, 0.05, 0.07, 0.5):
                _same(Q.value_finder(a, f, low), Q.value_finder(b, f, low), f"value_finder {low} {f}")
            n += 1
        _same(Q.strategy_changes(a), Q.strategy_changes(b), "strategy_changes")
        _same(Q.model_usage(a), Q.model_usage(b), "model_usage")
        for rule in Q.rule_counts(b, Q.Filters())["rule"].head(4):  # newest examples, found day by day
            for limit in (5, 50, 10**6):
                want = b.execute("SELECT c.decision_id, c.ts, c.channel, c.action_id, c.reason FROM candidates c "
                                 "WHERE c.rule = ? ORDER BY c.ts DESC, c.decision_id, c.action_id LIMIT ?",
                                 [rule, limit]).df()
                _same(Q.rule_examples(a, rule, Q.Filters(), limit), want, f"rule_examples {rule} {limit}")
        return n
    finally:
        a.close()
        b.close()


def test_the_dashboard_figures_from_summaries_equal_those_from_the_rows(demo_copy):
    with DecisionLog.open(demo_copy, read_only=True) as log:
        st = summaries.state(log.con)
        top = log.con.execute("SELECT max(seq) FROM decisions").fetchall()[0][0]
        assert st.refreshes >= 1 and st.upto_seq == top  # the demo refreshed them when it closed the log
        assert summaries.stale_days(log.con, st) == []
    assert _compare(demo_copy) == 6


def _more(db: Path) -> datetime:
    """Log 40 decisions of five days ago and refresh; then log their outcomes and 10 decisions
    now, and leave the file as a writer that has not refreshed yet (a service running, a
    crash).  Returns the time of the 40."""
    from decisioning.engine import Engine
    from decisioning.inputs import Requests

    then = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=5)
    with DecisionLog.open(db) as log:
        strategy = log.load_strategy(log.latest_strategy_version())
        engine = Engine(strategy, log.latest_models_for(strategy))
        log.append(engine.decide(Requests.from_dicts(strategy, [CUSTOMER] * 40),
                                 ts_us=[int(then.timestamp() * 1e6)] * 40), strategy)
    log = DecisionLog.open(db)
    picked = log.con.execute("SELECT decision_id, action_id FROM candidates WHERE selected AND ts = ? ORDER BY ALL",
                             [then]).fetchall()
    assert picked
    now_us = int(datetime.now(UTC).timestamp() * 1e6)
    k = len(picked)
    log.append_outcomes(pd.DataFrame({
        "decision_id": [d for d, _ in picked], "action_id": [a for _, a in picked],
        "outcome": ["accepted" if i % 3 else "rejected" for i in range(k)],
        "revenue": [20.0 + i for i in range(k)], "margin": [7.25 + i for i in range(k)],
        "churned": [i % 4 == 0 for i in range(k)], "ts_us": [now_us] * k}))
    log.append(engine.decide(Requests.from_dicts(strategy, [CUSTOMER] * 10)), strategy)
    log.con.close()  # not log.close(): that would refresh
    return then


def test_decisions_and_outcomes_the_last_refresh_did_not_count_are_read_from_the_rows(demo_copy):
    then = _more(demo_copy)
    today = datetime.now(UTC).date()
    with DecisionLog.open(demo_copy, read_only=True) as log:
        # the day of the new outcomes (its decisions counted already) and today's new decisions
        assert summaries.stale_days(log.con, summaries.state(log.con)) == sorted({then.date(), today})
        on_then = Q.kpis(log.con, Q.Filters(then.date(), then.date()))
    assert on_then["with_outcome"] > 0 and on_then["margin"] is not None
    _compare(demo_copy)
    with DecisionLog.open(demo_copy) as log:  # a writer refreshes what changed when it closes
        pass
    with DecisionLog.open(demo_copy, read_only=True) as log:
        assert summaries.stale_days(log.con, summaries.state(log.con)) == []
        assert log.con.execute("SELECT days FROM summary_refreshes ORDER BY refresh DESC LIMIT 1"
                               ).fetchall()[0][0] == len({then.date(), today})  # only the days that changed
        _same(Q.kpis(log.con, Q.Filters(then.date(), then.date())), on_then, "kpis after the refresh")
        assert log.verify().ok
    _compare(demo_copy)


def test_a_log_never_refreshed_is_read_from_the_rows(demo_copy):
    con = duckdb.connect(str(demo_copy))
    for t in summaries.SEALED:  # (as a log written before summaries, then opened by a writer)
        con.execute(f"DELETE FROM {t}")
    con.close()
    with DecisionLog.open(demo_copy, read_only=True) as log:
        assert summaries.stale_days(log.con, summaries.state(log.con)) is None
    _compare(demo_copy)


def test_an_edited_summary_is_named_by_verify(demo_copy):
    con = duckdb.connect(str(demo_copy))
    con.execute("UPDATE summary_contacts SET margin = margin + 1000 WHERE rowid = (SELECT min(rowid) FROM "
                "summary_contacts WHERE margin IS NOT NULL)")
    wrong = summaries.check(con)
    con.close()
    assert wrong is not None and wrong[0] == "summary_contacts" and "margin" in wrong[1], wrong
    with DecisionLog.open(demo_copy, read_only=True) as log:
        res = log.verify()
    assert not res.ok and res.table == "summary_contacts", res


def test_a_dropped_summary_table_is_named_by_verify(demo_copy):
    con = duckdb.connect(str(demo_copy))
    con.execute("DROP TABLE summary_stages")
    con.close()
    with DecisionLog.open(demo_copy, read_only=True) as log:
        res = log.verify()
    assert not res.ok and res.table == "summary_stages" and "is gone" in res.problem, res


@pytest.mark.parametrize("low", [0.049999999999999996, 0.05, 0.0500000001])
def test_the_weak_offer_threshold_is_exact_at_and_between_hundredths(demo_copy, low):
    raw = _without_summaries(demo_copy)
    a, b = duckdb.connect(str(demo_copy), read_only=True), duckdb.connect(str(raw), read_only=True)
    _same(Q.value_finder(a, Q.Filters(), low), Q.value_finder(b, Q.Filters(), low), "value_finder")


def test_a_demo_in_cohorts_is_in_time_order_summarised_and_verifies(tmp_path):
    """More customers than one cohort: the cohorts follow each other in time (the log stays in
    time order), their customers are new ones, and each cohort's days are summarised as the
    demo goes (the benchmark's 10-million-decision log is built this way, streamed)."""
    from klartext.jobs import run_demo

    db = str(tmp_path / "cohorts.duckdb")
    res = run_demo(db, 2500, cohort=1000, history_per_action=1500)
    assert res.decisions == 2500
    with DecisionLog.open(db, read_only=True) as log:
        con = log.con
        assert con.execute("SELECT count(*) FROM (SELECT ts < lag(ts) OVER (ORDER BY seq) AS back FROM decisions) "
                           "WHERE back").fetchall()[0][0] == 0
        days = con.execute(f"SELECT count(DISTINCT {summaries.DAY.format(t='d')}) FROM decisions d").fetchall()[0][0]
        assert 3 * 28 - 3 <= days <= 3 * 28  # three cohorts of 28 days each
        last = con.execute("SELECT max(ts) FROM decisions").fetchall()[0][0]
        assert last.date() <= datetime.now(UTC).date()
        assert summaries.stale_days(con, summaries.state(con)) == []
        assert con.execute("SELECT count(*) FROM summary_refreshes").fetchall()[0][0] >= 3
        assert log.verify().ok
    _compare(Path(db))
