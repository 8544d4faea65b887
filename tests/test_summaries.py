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


def _figures(con, first, last, issues, actions) -> list[tuple[str, object]]:
    """Every dashboard query of the Overview and the Funnel on ``con``, for filters of period,
    channel and issue, by name."""
    out: list[tuple[str, object]] = []
    filters = [Q.Filters(), Q.Filters(first, last), Q.Filters(channels=("email",)),
               Q.Filters(issues=(issues[0],)), Q.Filters(last, last),
               Q.Filters(first + timedelta(days=3), last - timedelta(days=5), ("email", "web"), tuple(issues[:2]))]
    for f in filters:
        out += [(f"kpis {f}", Q.kpis(con, f)), (f"daily {f}", Q.daily(con, f))]
        out += [(f"action_mix {by} {f}", Q.action_mix(con, f, by)) for by in ("issue", "group", "channel", "action_id")]
        out += [(f"trends {grain} {f}", Q.trends(con, f, grain)) for grain in ("day", "week", "month")]
        out += [(f"funnel {by} {f}", Q.funnel(con, f, by)) for by in ("stage", "group")]
        out.append((f"rule_counts {f}", Q.rule_counts(con, f)))
        out += [(f"kpi_tradeoff {by} {f}", Q.kpi_tradeoff(con, f, by, actions)) for by in ("issue", "channel")]
        out += [(f"value_finder {low} {f}", Q.value_finder(con, f, low)) for low in (0.01, 0.05, 0.07, 0.5)]
    out += [("strategy_changes", Q.strategy_changes(con)), ("model_usage", Q.model_usage(con))]
    return out


def _actions(log: DecisionLog) -> pd.DataFrame:
    strategy = log.load_strategy(log.latest_strategy_version())
    return pd.DataFrame({"action_id": [x.id for x in strategy.actions],
                         "net_margin": [x.margin - x.incentive_cost for x in strategy.actions],
                         "retention_effect": [x.retention_effect for x in strategy.actions]})


def _compare(db: Path) -> int:
    """Every dashboard query of the Overview and the Funnel, from summaries and from the rows,
    for filters of period, channel and issue; returns the number of comparisons."""
    raw = _without_summaries(db)
    a, b = duckdb.connect(str(db), read_only=True), duckdb.connect(str(raw), read_only=True)
    try:
        assert summaries.usable(a) and not summaries.usable(b)
        ch = Q.choices(b)
        assert Q.choices(a) == ch
        with DecisionLog.open(db, read_only=True) as log:
            actions = _actions(log)
        want = _figures(b, ch["first"], ch["last"], ch["issues"], actions)
        got = _figures(a, ch["first"], ch["last"], ch["issues"], actions)
        for (what, x), (_, y) in zip(got, want, strict=True):
            _same(x, y, what)
        for rule in Q.rule_counts(b, Q.Filters())["rule"].head(4):  # newest examples, found day by day
            for limit in (5, 50, 10**6):
                want = b.execute("SELECT c.decision_id, c.ts, c.channel, c.action_id, c.reason FROM candidates c "
                                 "WHERE c.rule = ? ORDER BY c.ts DESC, c.decision_id, c.action_id LIMIT ?",
                                 [rule, limit]).df()
                _same(Q.rule_examples(a, rule, Q.Filters(), limit), want, f"rule_examples {rule} {limit}")
        return 6
    finally:
        a.close()
        b.close()


def _compare_whole(db: Path, monkeypatch) -> None:
    """As :func:`_compare`, on a reader of the whole log (a sharded one: head and shards): the
    figures from its summaries against the same figures from its rows (summaries off)."""
    with DecisionLog.open(db, read_only=True) as log:
        assert summaries.usable(log.con)
        ch = Q.choices(log.con)
        actions = _actions(log)
        got = _figures(log.con, ch["first"], ch["last"], ch["issues"], actions)
        monkeypatch.setattr(summaries, "ENABLED", False)
        try:
            assert Q.choices(log.con) == ch
            want = _figures(log.con, ch["first"], ch["last"], ch["issues"], actions)
        finally:
            monkeypatch.setattr(summaries, "ENABLED", True)
    for (what, x), (_, y) in zip(got, want, strict=True):
        _same(x, y, what)


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


# -- a log with shards: one set of summaries in the head, counted over head and shards ----------------


def _archive_half(db: Path):
    """Archive the older half (by day) of the log into a shard; the writer's close refreshes."""
    con = duckdb.connect(str(db), read_only=True)
    lo, hi = con.execute("SELECT min(ts), max(ts) FROM decisions").fetchall()[0]
    con.close()
    mid = lo + (hi - lo) / 2
    with DecisionLog.open(db) as log:
        return log.archive(datetime(mid.year, mid.month, mid.day, tzinfo=UTC))


def test_an_archived_log_reads_its_figures_from_summaries_counted_over_head_and_shards(demo_copy, monkeypatch):
    """Archiving used to turn the summaries off for good (the Overview of a 10M log: 88 s from
    the rows instead of 0.2 s): now the head's sums count the shards' rows too."""
    # outcomes of decisions of five days ago and new decisions, logged by a writer that was
    # killed before it refreshed; then everything before today is archived, and that writer
    # too stops before it refreshes
    then = _more(demo_copy)
    today = datetime.now(UTC).date()
    log = DecisionLog.open(demo_copy)
    shard = log.archive(datetime(today.year, today.month, today.day, tzinfo=UTC))
    log.con.close()
    assert shard is not None and shard.outcomes == 0  # (an archive leaves the outcomes in the head)
    with DecisionLog.open(demo_copy, read_only=True) as log:
        assert log.sharded and summaries.usable(log.con)
        assert summaries.stale_days(log.con, summaries.state(log.con)) == sorted({then.date(), today})
        assert log.con.execute("SELECT count(*) FROM decisions WHERE seq > ?", [shard.last_seq]).fetchall()[0][0] >= 10
    _compare_whole(demo_copy, monkeypatch)
    with DecisionLog.open(demo_copy) as log:  # the writer's close counts them, over head and shard
        pass
    with DecisionLog.open(demo_copy, read_only=True) as log:
        assert summaries.stale_days(log.con, summaries.state(log.con)) == []
        assert Q.kpis(log.con, Q.Filters(then.date(), then.date()))["with_outcome"] > 0
        res = log.verify()
        assert res.ok, res.problem
    _compare_whole(demo_copy, monkeypatch)


def test_the_summaries_of_a_sharded_log_are_checked_against_head_and_shards(demo_copy):
    shard = _archive_half(demo_copy)
    # an edited sum (the seal names the row; the check what it should be)
    edited = demo_copy.with_name("edited.duckdb")
    shutil.copy(demo_copy, edited)
    shutil.copytree(str(demo_copy) + ".shards", str(edited) + ".shards")
    shutil.copy(str(demo_copy) + ".key", str(edited) + ".key")
    con = duckdb.connect(str(edited))
    con.execute("UPDATE summary_decisions SET decisions = decisions + 1 WHERE rowid = (SELECT min(rowid) FROM "
                "summary_decisions)")
    con.close()
    with DecisionLog.open(edited, read_only=True) as log:
        wrong = summaries.check(log.con)
        res = log.verify()
    assert wrong is not None and wrong[0] == "summary_decisions" and "decisions is" in wrong[1], wrong
    assert not res.ok and res.table == "summary_decisions", res
    # the newest decisions deleted from the head with their chain links: the chain alone cannot
    # see it (no checkpoint), the summaries that counted them, over head and shard, can
    con = duckdb.connect(str(demo_copy))
    top = con.execute("SELECT max(seq) FROM decisions").fetchall()[0][0]
    assert top > shard.last_seq + 5
    con.execute(f"DELETE FROM candidates WHERE decision_id IN (SELECT decision_id FROM decisions WHERE seq > {top - 5})")
    con.execute(f"DELETE FROM decisions WHERE seq > {top - 5}")
    con.execute(f"DELETE FROM chain WHERE seq > {top - 5}")
    con.close()
    with DecisionLog.open(demo_copy, read_only=True) as log:
        res = log.verify()
    assert not res.ok and res.table == "summary_decisions" and "does not add up" in res.problem, res


def test_a_purge_recomputes_the_days_it_deleted_and_verify_tells_it_from_tampering(demo_copy, monkeypatch, tmp_path):
    from decision_log import checkpoints

    shard = _archive_half(demo_copy)
    priv, _pub = checkpoints.keygen(tmp_path / "signing.key")
    with DecisionLog.open(demo_copy) as log:
        before = log.con.execute("SELECT count(*) FROM summary_refreshes").fetchall()[0][0]
        record = log.purge(datetime.fromisoformat(shard.last_ts) + timedelta(microseconds=1),
                           checkpoints.load_private(priv), "dpo", "retention", allow_under_six_months=True)
        assert record is not None and record["decisions"] == shard.decisions
        # the purged days were recomputed in the purge's own commit
        assert log.con.execute("SELECT count(*) FROM summary_refreshes").fetchall()[0][0] == before + 1
    with DecisionLog.open(demo_copy, read_only=True) as log:
        res = log.verify()
        assert res.ok, res.problem
        assert summaries.stale_days(log.con, summaries.state(log.con)) == []
        first = log.con.execute("SELECT min(ts) FROM decisions").fetchall()[0][0]
        assert Q.kpis(log.con, Q.Filters())["decisions"] == log.con.execute("SELECT count(*) FROM decisions"
                                                                            ).fetchall()[0][0]
        assert first > datetime.fromisoformat(shard.last_ts)
    _compare_whole(demo_copy, monkeypatch)


def test_outcomes_sealed_in_a_workers_shard_are_counted_with_its_decisions(demo_copy, monkeypatch):
    """A service worker's file, sealed into a shard, holds its own decisions and every outcome it
    took — also of a decision the head made: the head's summaries count them once sealed."""
    from decisioning.engine import Engine
    from decisioning.inputs import Requests

    with DecisionLog.open(demo_copy) as log:
        strategy = log.load_strategy(log.latest_strategy_version())
        models = log.latest_models_for(strategy)
        fid, key = log.issue_worker_file(1), log._key
        keys = str(log.subject_keys.path) if log.seals_inputs else None
        then = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0) - timedelta(days=3)
        log.append(Engine(strategy, models).decide(Requests.from_dicts(strategy, [CUSTOMER] * 5),
                                                   ts_us=[int(then.timestamp() * 1e6)] * 5), strategy)
        old = log.con.execute("SELECT decision_id, action_id, timezone('UTC', ts)::DATE FROM candidates "
                              "WHERE selected AND ts = ? ORDER BY ALL LIMIT 1", [then]).fetchall()[0]
    w = DecisionLog.worker(str(demo_copy), 1, key, keys, fid)
    batch = Engine(strategy, models).decide(Requests.from_dicts(strategy, [CUSTOMER] * 12))
    w.append(batch, strategy)
    mine = w.con.execute("SELECT decision_id, action_id FROM candidates WHERE selected ORDER BY ALL").fetchall()
    now_us = int(datetime.now(UTC).timestamp() * 1e6)
    w.append_outcomes(pd.DataFrame({
        "decision_id": [d for d, _ in mine] + [old[0]], "action_id": [a for _, a in mine] + [old[1]],
        "outcome": ["accepted"] * (len(mine) + 1), "revenue": [12.0] * (len(mine) + 1),
        "margin": [4.5] * (len(mine) + 1), "churned": [None] * (len(mine) + 1), "ts_us": [now_us] * (len(mine) + 1)}),
        elsewhere=True)  # (a worker checks an outcome of another's decision against the whole log first)
    w.close()
    log = DecisionLog.open(demo_copy)
    (*_, shard) = log.seal_workers()
    assert shard.outcomes == len(mine) + 1
    log.con.close()  # sealed, not yet counted
    with DecisionLog.open(demo_copy, read_only=True) as log:
        stale = summaries.stale_days(log.con, summaries.state(log.con))
        assert old[2] in stale and datetime.now(UTC).date() in stale
    _compare_whole(demo_copy, monkeypatch)
    with DecisionLog.open(demo_copy) as log:
        pass
    with DecisionLog.open(demo_copy, read_only=True) as log:
        assert summaries.stale_days(log.con, summaries.state(log.con)) == []
        on_old = Q.kpis(log.con, Q.Filters(old[2], old[2]))
        res = log.verify()
        assert res.ok, res.problem
    _compare_whole(demo_copy, monkeypatch)
    assert on_old["with_outcome"] >= 1


def test_a_large_day_is_counted_in_parts_with_the_same_sums(demo_copy, monkeypatch):
    """A nightly batch of millions of decisions lands on one day: counting it in one statement
    took 7 GB for 1M (a Spark run's peak went from 4.0 to 6.9 GB).  A day of more than PART
    decisions is counted in runs of consecutive positions and their sums combined: the same
    sums as one statement, and verify's recount splits the same way."""
    whole = demo_copy.with_name("whole.duckdb")
    from tests.conftest import copy_log

    copy_log(demo_copy, whole)

    def recount(db: Path) -> None:  # every day counted again, in a new refresh
        with DecisionLog.open(db) as log:
            days = [r[0] for r in log.con.execute("SELECT DISTINCT day FROM summary_days").fetchall()]
            assert summaries.refresh(log.con, rows=log.summary_rows(), also=days) == len(days)

    recount(whole)
    calls = []
    real = summaries._parts
    monkeypatch.setattr(summaries, "PART", 150)
    monkeypatch.setattr(summaries, "_parts", lambda *a: calls.append(real(*a)) or calls[-1])
    recount(demo_copy)
    assert max(len(c) for c in calls) > 3  # (the demo's weeks hold 300-600 decisions)
    for kind in summaries.KINDS:
        a, b = duckdb.connect(str(demo_copy), read_only=True), duckdb.connect(str(whole), read_only=True)
        q = (f"SELECT * EXCLUDE (refresh, seal_seq) FROM {summaries.table(kind)} WHERE refresh = "
             "(SELECT max(refresh) FROM summary_refreshes) ORDER BY ALL")
        _same(a.execute(q).df(), b.execute(q).df(), kind)
        a.close()
        b.close()
    calls.clear()
    with DecisionLog.open(demo_copy, read_only=True) as log:
        res = log.verify()
    assert res.ok, res.problem
    assert max(len(c) for c in calls) > 3  # verify recounted in parts too
    monkeypatch.setattr(summaries, "PART", 250_000)
    _compare(demo_copy)
