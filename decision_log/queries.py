"""Read queries over the decision log, used by the CLI and the app.

Every query takes a DuckDB connection (use a cursor per query when sharing one connection
between threads) and returns a DataFrame with the documented columns; user values are always
passed as parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from decision_log import stages, subjects, summaries
from decision_log.schema import has_column
from decision_log.subjects import SubjectKeys
from decisioning.strategy import Strategy


def summary(con: duckdb.DuckDBPyConnection) -> dict:
    """Counts for a log: decisions, candidates, outcomes, strategies, models, first/last time."""
    row = con.execute(
        "SELECT (SELECT count(*) FROM decisions), (SELECT count(*) FROM candidates), "
        "(SELECT count(*) FROM outcomes), (SELECT count(*) FROM strategies), "
        "(SELECT count(*) FROM models), (SELECT min(ts) FROM decisions), (SELECT max(ts) FROM decisions), "
        "(SELECT count(*) FROM decisions WHERE chosen_action IS NULL)").fetchall()[0]
    keys = ["decisions", "candidates", "outcomes", "strategies", "models", "first", "last", "no_action"]
    return dict(zip(keys, row))


def recent_decisions(con: duckdb.DuckDBPyConnection, limit: int = 100, channel: str | None = None) -> pd.DataFrame:
    """Newest decisions first.

    Columns: decision_id, ts, channel, direction, trigger, customer, chosen_action,
    chosen_actions, selection_probability, explored, strategy_version, latency_us.
    """
    return con.execute(
        """
        SELECT decision_id, ts, channel, direction, "trigger", customer, chosen_action,
               chosen_actions, selection_probability, explored, strategy_version, latency_us
        FROM decisions
        WHERE ($channel IS NULL OR channel = $channel)
        ORDER BY seq DESC
        LIMIT $limit
        """,
        {"channel": channel, "limit": int(limit)},
    ).df()


def candidates_of(con: duckdb.DuckDBPyConnection, decision_id: str) -> pd.DataFrame:
    """One row per action of one decision: selected first, then by rank, then by how far it
    got (in the flow's stage order).

    An imported decision may hold several rows per action (a Pega v2 action passes several
    strategy components); the row shown is the one that got furthest — selected at its best
    rank, else the latest stage, else the first logged — and ``rows`` says how many there
    are (:func:`candidate_rows` lists them all).  Extra columns: ``stage_label``,
    ``stage_order``.
    """
    values = stages.order_values(stages.known(con))
    result = con.execute(
        f"""
        WITH o(stage, stage_group, stage_order, label) AS (VALUES {values}),
        r AS (
            SELECT c.action_id, c.issue, c."group", c.stage, c.rule, c.reason, c.propensity, c.value,
                   c.context_weight, c.lever, c.priority, c.rank, c.selected, c.model_version,
                   coalesce(o.label, c.stage) AS stage_label, o.stage_order,
                   count(*) OVER (PARTITION BY c.action_id) AS rows,
                   row_number() OVER (PARTITION BY c.action_id ORDER BY c.selected DESC, c.rank NULLS LAST,
                                      o.stage_order DESC NULLS LAST, {_ordinal(con)}) AS pick
            FROM candidates c LEFT JOIN o USING (stage)
            WHERE c.decision_id = ?)
        SELECT * EXCLUDE (pick) FROM r WHERE pick = 1
        ORDER BY selected DESC, rank NULLS LAST, stage_order DESC NULLS LAST, action_id
        """,
        [decision_id],
    )
    # built from rows: for ~30 rows this is a few ms cheaper than DuckDB's .df()
    return pd.DataFrame.from_records(result.fetchall(), columns=[c[0] for c in result.description])


def candidate_rows(con: duckdb.DuckDBPyConnection, decision_id: str) -> pd.DataFrame:
    """Every candidate row of one decision in its logged order (``ordinal``), with the
    stage's group and order: for an imported decision, the component-level rows."""
    values = stages.order_values(stages.known(con))
    result = con.execute(
        f"""
        WITH o(stage, stage_group, stage_order, label) AS (VALUES {values})
        SELECT {_ordinal(con)} AS ordinal, c.action_id, c.stage, o.stage_group, o.stage_order, c.rule, c.reason,
               c.propensity, c.value, c.context_weight, c.lever, c.priority, c.rank, c.selected
        FROM candidates c LEFT JOIN o USING (stage)
        WHERE c.decision_id = ? ORDER BY 1, c.action_id""",
        [decision_id],
    )
    return pd.DataFrame.from_records(result.fetchall(), columns=[c[0] for c in result.description])


def _ordinal(con: duckdb.DuckDBPyConnection) -> str:
    """A candidate row's place in its decision (a log of an earlier release opened read-only
    has no ``ordinal`` yet: one row per action there, in ``action_id`` order)."""
    return "c.ordinal" if has_column(con, "candidates", "ordinal") else "NULL::INTEGER"


def decision_record(con: duckdb.DuckDBPyConnection, decision_id: str) -> dict | None:
    """The ``decisions`` row of one decision as a dict (None if unknown)."""
    result = con.execute("SELECT * FROM decisions WHERE decision_id = ?", [decision_id])
    row = result.fetchone()
    return None if row is None else dict(zip([c[0] for c in result.description], row))


def contact_history(
    con: duckdb.DuckDBPyConnection, customer: str, strategy: Strategy, now: datetime | None = None,
    decisions: str = "decisions", outcomes: str = "outcomes",
) -> tuple[dict[str, int], dict[str, dict]]:
    """Contact counts per limited channel and recent rejections per action for one customer.

    A contact is a logged decision on that channel that selected an action, within the
    channel's ``period_days``; rejections are ``rejected`` outcomes within the suppression
    window.  Returns the ``contacts`` and ``rejections`` parts of a decision request.
    ``decisions``: where the decisions are (a writer of a sharded log passes
    :meth:`DecisionLog.history_source`, its file's and its recent shards'); ``outcomes``:
    where the outcomes are (a service worker adds the other workers', :mod:`decision_log.peers`).
    """
    now = now or datetime.now(UTC)
    contacts: dict[str, int] = {}
    for lim in strategy.contact_limits:
        since = now - timedelta(days=lim.period_days)
        n = con.execute(
            f"SELECT count(*) FROM {decisions} WHERE customer = ? AND channel = ? AND ts >= ? "
            "AND chosen_action IS NOT NULL", [customer, lim.channel, since]).fetchall()[0][0]
        if n:
            contacts[lim.channel] = int(n)
    rejections: dict[str, dict] = {}
    if strategy.suppression is not None:
        since = now - timedelta(days=strategy.suppression.within_days)
        rows = con.execute(
            f"""
            SELECT o.action_id, count(*) AS n, max(o.ts) AS last
            FROM {outcomes} o JOIN {decisions} d USING (decision_id)
            WHERE d.customer = ? AND o.outcome = 'rejected' AND o.ts >= ? AND o.action_id IS NOT NULL
            GROUP BY o.action_id
            """, [customer, since]).fetchall()
        for action_id, n, last in rows:
            if action_id in strategy.action_ids:
                days = max(0.0, (now - last).total_seconds() / 86400)
                rejections[action_id] = {"count": int(n), "days_since_last": round(days, 3)}
    return contacts, rejections


# -- dashboard queries ---------------------------------------------------------------------------
#
# Every query below takes a :class:`Filters` (period, channels, issues) and passes user values
# as parameters.  Period bounds are dates (UTC); ``end`` is inclusive.


@dataclass(frozen=True)
class Filters:
    start: date | None = None
    end: date | None = None
    channels: tuple[str, ...] = ()
    issues: tuple[str, ...] = ()

    def params(self) -> dict[str, Any]:
        return {
            "start": datetime.combine(self.start, time.min, UTC) if self.start else None,
            "stop": datetime.combine(self.end + timedelta(days=1), time.min, UTC) if self.end else None,
            "channels": list(self.channels) or None,
            "issues": list(self.issues) or None,
        }


#: A summary row's filter (:mod:`decision_log.summaries`): channels and, where it has them, issues.
_S_CH = "($channels IS NULL OR list_contains($channels, channel))"
_S_WHERE = _S_CH + " AND ($issues IS NULL OR list_contains($issues, issue))"


def _summed(con: duckdb.DuckDBPyConnection, kinds, sql: str, f: Filters, fetch: str = "df", **extra):
    """``sql`` over the summaries of ``kinds`` within ``f`` (None: compute from the rows)."""
    p = f.params()
    return summaries.query(con, kinds, sql, {"channels": p["channels"], "issues": p["issues"], **extra},
                           start=f.start, end=f.end, fetch=fetch)


_D_WHERE = """($start IS NULL OR d.ts >= $start) AND ($stop IS NULL OR d.ts < $stop)
    AND ($channels IS NULL OR list_contains($channels, d.channel))"""
_C_WHERE = """($start IS NULL OR c.ts >= $start) AND ($stop IS NULL OR c.ts < $stop)
    AND ($channels IS NULL OR list_contains($channels, c.channel))
    AND ($issues IS NULL OR list_contains($issues, c.issue))"""


#: A contact: a selected action of a decision, once (an action that an imported Pega v2 log
#: presents through several components is one contact), within the filters.
_CONTACTS = f"""(SELECT c.decision_id, c.ts, c.channel, c.issue, c."group", c.action_id,
                       max(c.propensity) AS propensity
                FROM candidates c WHERE c.selected AND {_C_WHERE} GROUP BY ALL)"""
_C_DAY = summaries.DAY.format(t="c")
_D_DAY = summaries.DAY.format(t="d")


def choices(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """What the filters can offer: channels, issues, actions, first and last day."""
    res = summaries.query(con, "decisions", "SELECT list(DISTINCT channel ORDER BY channel), min(day), max(day) "
                                            "FROM s", {}, fetch="all")
    if res is not None:
        ch, first, last = res[0]
        ch = ch or []
    else:
        ch = [r[0] for r in con.execute("SELECT DISTINCT channel FROM decisions ORDER BY 1").fetchall()]
        first, last = con.execute(f"SELECT min({_D_DAY}), max({_D_DAY}) FROM decisions d").fetchall()[0]
    acts = con.execute("SELECT DISTINCT action_id, issue FROM candidates WHERE decision_id = "
                       "(SELECT decision_id FROM decisions ORDER BY seq DESC LIMIT 1) ORDER BY 1").fetchall()
    issues = sorted({r[1] for r in acts if r[1] is not None})
    return {"channels": ch, "issues": issues, "actions": [r[0] for r in acts], "first": first, "last": last}


def kpis(con: duckdb.DuckDBPyConnection, f: Filters) -> dict[str, Any]:
    """Headline figures for the period: decisions, share with an action, contacts, acceptance
    rate (of the contacts with an outcome), revenue and margin of accepted actions (None when no
    outcome is logged), churn of customers reached vs. not reached.

    With an issue filter, contacts/acceptance/revenue/margin count only actions of those issues.
    """
    res = _summed(con, ("decisions", "contacts"), f"""
        SELECT 'd', coalesce(sum(decisions), 0), coalesce(sum(decisions) FILTER (WHERE reached), 0), NULL, NULL, NULL
        FROM s_decisions WHERE {_S_CH}
        UNION ALL
        SELECT 'c', coalesce(sum(contacts), 0), coalesce(sum(with_outcome), 0), coalesce(sum(accepted), 0),
               sum(revenue), sum(margin)
        FROM s_contacts WHERE {_S_WHERE}
        UNION ALL
        SELECT 'r', reached, sum(churned) / nullif(sum(churn_known), 0), sum(with_outcome), NULL, NULL
        FROM s_decisions WHERE {_S_CH} GROUP BY reached HAVING sum(with_outcome) > 0""", f, fetch="all")
    if res is not None:
        parts = {r[0]: r[1:] for r in res if r[0] != "r"}
        d, sel = parts["d"][:2], parts["c"]
        churn = [(r[1], r[2], r[3]) for r in res if r[0] == "r"]
    else:
        d, sel, churn = _kpis_from_rows(con, f)
    ch = {bool(r[0]): (r[1], int(r[2])) for r in churn}
    return {
        "decisions": int(d[0]), "with_action": int(d[1]), "contacts": int(sel[0]), "with_outcome": int(sel[1]),
        "accepted": int(sel[2]),
        # no outcome logged is not "nobody accepted": then there is no rate, revenue or margin
        "acceptance_rate": sel[2] / sel[1] if sel[1] else None, "revenue": sel[3], "margin": sel[4],
        "churn_reached": ch.get(True, (None, 0))[0], "churn_not_reached": ch.get(False, (None, 0))[0],
        "n_reached": ch.get(True, (None, 0))[1], "n_not_reached": ch.get(False, (None, 0))[1],
    }


def _kpis_from_rows(con: duckdb.DuckDBPyConnection, f: Filters) -> tuple:
    p = f.params()
    d = con.execute(f"""
        SELECT count(*) AS decisions, count(chosen_action) AS with_action
        FROM decisions d WHERE {_D_WHERE}""", {k: p[k] for k in ("start", "stop", "channels")}).fetchall()[0]
    # an action presented through several components (an imported Pega v2 log) counts once
    sel = con.execute(f"""
        WITH s AS (SELECT DISTINCT c.decision_id, c.action_id FROM candidates c WHERE c.selected AND {_C_WHERE})
        SELECT count(*) AS contacts, count(o.outcome) AS with_outcome,
               count(*) FILTER (WHERE o.outcome = 'accepted') AS accepted,
               sum(o.revenue) AS revenue, sum(o.margin) AS margin
        FROM s LEFT JOIN outcomes o ON o.decision_id = s.decision_id AND o.action_id = s.action_id""",
                      p).fetchall()[0]
    churn = con.execute(f"""
        SELECT reached, avg(churned::DOUBLE) AS churn, count(*) AS n FROM (
            SELECT d.decision_id, d.chosen_action IS NOT NULL AS reached, any_value(o.churned) AS churned
            FROM decisions d JOIN outcomes o USING (decision_id) WHERE {_D_WHERE} GROUP BY ALL)
        GROUP BY reached""", {k: p[k] for k in ("start", "stop", "channels")}).fetchall()
    return d, sel, churn


def daily(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """Per day: contacts (selected actions), accepted, margin — by issue.

    Columns: day, issue, contacts, accepted, margin.
    """
    res = _summed(con, "contacts", f"""
        SELECT day, issue, sum(contacts)::BIGINT AS contacts, sum(accepted)::BIGINT AS accepted,
               coalesce(sum(margin), 0) AS margin
        FROM s WHERE {_S_WHERE} GROUP BY ALL ORDER BY day, issue""", f)
    if res is not None:
        return res
    return con.execute(f"""
        SELECT {_C_DAY} AS day, c.issue, count(*) AS contacts,
               count(*) FILTER (WHERE o.outcome = 'accepted') AS accepted, coalesce(sum(o.margin), 0) AS margin
        FROM {_CONTACTS} c LEFT JOIN outcomes o ON o.decision_id = c.decision_id AND o.action_id = c.action_id
        GROUP BY ALL ORDER BY day, c.issue""", f.params()).df()


def bar_grain(daily: pd.DataFrame) -> str:
    """The bars a period of per-day rows reads best in: a day each up to three months, a week
    each up to two years, else a month each (three years of days are a thousand bars that
    neither eye nor browser take in)."""
    if daily.empty:
        return "day"
    span = (pd.Timestamp(daily["day"].max()) - pd.Timestamp(daily["day"].min())).days + 1
    return "day" if span <= 92 else "week" if span <= 731 else "month"


def per_period(daily: pd.DataFrame, grain: str) -> pd.DataFrame:
    """:func:`daily`'s rows summed per week (from Monday, as DuckDB's ``date_trunc``) or month
    (from its first), ``day`` the period's first day; ``"day"`` returns them unchanged."""
    if grain == "day" or daily.empty:
        return daily
    day = pd.to_datetime(daily["day"])
    start = (day - pd.to_timedelta(day.dt.weekday, unit="D")) if grain == "week" else day.dt.to_period("M").dt.start_time
    return (daily.assign(day=start.dt.date).groupby(["day", "issue"], as_index=False, sort=True)
            [["contacts", "accepted", "margin"]].sum())


def decisions_per_day(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """Columns: day, channel, decisions, with_action."""
    p = f.params()
    return con.execute(f"""
        SELECT d.ts::DATE AS day, d.channel, count(*) AS decisions, count(d.chosen_action) AS with_action
        FROM decisions d WHERE {_D_WHERE} GROUP BY ALL ORDER BY day, d.channel""",
        {k: p[k] for k in ("start", "stop", "channels")}).df()


def action_mix(con: duckdb.DuckDBPyConnection, f: Filters, by: str = "issue") -> pd.DataFrame:
    """Selected actions by ``issue``, ``group``, ``channel`` or ``action_id``, with outcomes.

    Columns: key, contacts, accepted, acceptance_rate, revenue, margin.
    """
    col = {"issue": "issue", "group": '"group"', "channel": "channel", "action_id": "action_id"}[by]
    res = _summed(con, "contacts", f"""
        SELECT {col} AS key, sum(contacts)::BIGINT AS contacts, sum(accepted)::BIGINT AS accepted,
               sum(accepted) / sum(contacts) AS acceptance_rate,
               coalesce(sum(revenue), 0) AS revenue, coalesce(sum(margin), 0) AS margin
        FROM s WHERE {_S_WHERE} GROUP BY ALL ORDER BY contacts DESC, key""", f)
    if res is not None:
        return res
    return con.execute(f"""
        SELECT c.{col} AS key, count(*) AS contacts, count(*) FILTER (WHERE o.outcome = 'accepted') AS accepted,
               count(*) FILTER (WHERE o.outcome = 'accepted') / count(*) AS acceptance_rate,
               coalesce(sum(o.revenue), 0) AS revenue, coalesce(sum(o.margin), 0) AS margin
        FROM {_CONTACTS} c LEFT JOIN outcomes o ON o.decision_id = c.decision_id AND o.action_id = c.action_id
        GROUP BY ALL ORDER BY contacts DESC, key""", f.params()).df()


def strategy_changes(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The strategy versions in the order they started deciding.

    Columns: version, name, first_used (UTC: its first decision; the registration time for a
    version that has made none yet), registered (UTC), decisions.
    """
    tail = """
        SELECT st.version, st.name, coalesce(d.first_decision, st.first_used) AS first_used,
               st.first_used AS registered, coalesce(d.decisions, 0) AS decisions
        FROM strategies st LEFT JOIN d USING (version) ORDER BY 3, 1"""
    res = summaries.query(con, "decisions", """
        , d AS (SELECT strategy_version AS version, min(first_ts) AS first_decision, sum(decisions)::BIGINT AS decisions
                FROM s WHERE strategy_version IS NOT NULL GROUP BY ALL)""" + tail, {})
    if res is not None:
        return res
    return con.execute("""
        WITH d AS (SELECT strategy_version AS version, min(ts) AS first_decision, count(*) AS decisions
                   FROM decisions WHERE strategy_version IS NOT NULL GROUP BY ALL)""" + tail).df()


def trends(con: duckdb.DuckDBPyConnection, f: Filters, grain: str = "day") -> pd.DataFrame:
    """How acceptance, margin and churn develop, per ``day``, ``week`` or ``month`` (by the
    decision's time).

    Columns: period, decisions, contacts, with_outcome, acceptance_rate (of the contacts with an
    outcome; NaN without one), margin (realised, of accepted actions), churn_reached,
    churn_not_reached (share of the decisions with an outcome whose customer churned, with and
    without an action), n_reached, n_not_reached.  With an issue filter, contacts, acceptance
    and margin count only actions of those issues (as :func:`kpis`).
    """
    if grain not in ("day", "week", "month"):
        raise ValueError(f"Unknown grain {grain!r}: use day, week or month.")
    res = _summed(con, ("decisions", "contacts"), f"""
        WITH dd AS (
            SELECT date_trunc('{grain}', day)::DATE AS period, sum(decisions)::BIGINT AS decisions,
                   sum(churned) FILTER (WHERE reached) / nullif(sum(churn_known) FILTER (WHERE reached), 0)
                       AS churn_reached,
                   sum(churned) FILTER (WHERE NOT reached) / nullif(sum(churn_known) FILTER (WHERE NOT reached), 0)
                       AS churn_not_reached,
                   coalesce(sum(with_outcome) FILTER (WHERE reached), 0)::BIGINT AS n_reached,
                   coalesce(sum(with_outcome) FILTER (WHERE NOT reached), 0)::BIGINT AS n_not_reached
            FROM s_decisions WHERE {_S_CH} GROUP BY ALL),
        aa AS (
            SELECT date_trunc('{grain}', day)::DATE AS period, sum(contacts)::BIGINT AS contacts,
                   sum(with_outcome)::BIGINT AS with_outcome,
                   sum(accepted) / nullif(sum(with_outcome), 0) AS acceptance_rate, coalesce(sum(margin), 0) AS margin
            FROM s_contacts WHERE {_S_WHERE} GROUP BY ALL)
        SELECT period, decisions, coalesce(contacts, 0) AS contacts, coalesce(with_outcome, 0) AS with_outcome,
               acceptance_rate, coalesce(margin, 0) AS margin, churn_reached, churn_not_reached, n_reached,
               n_not_reached
        FROM dd LEFT JOIN aa USING (period) ORDER BY period""", f)
    if res is not None:
        return res
    p = f.params()
    return con.execute(f"""
        WITH d AS (
            SELECT date_trunc('{grain}', d.ts)::DATE AS period, count(*) AS decisions FROM decisions d
            WHERE {_D_WHERE} GROUP BY ALL),
        s AS (
            SELECT date_trunc('{grain}', any_value(c.ts))::DATE AS period, any_value(o.outcome) AS outcome,
                   any_value(o.margin) AS margin
            FROM candidates c LEFT JOIN outcomes o ON o.decision_id = c.decision_id AND o.action_id = c.action_id
            WHERE c.selected AND {_C_WHERE} GROUP BY c.decision_id, c.action_id),
        a AS (
            SELECT period, count(*) AS contacts, count(outcome) AS with_outcome,
                   count(*) FILTER (WHERE outcome = 'accepted') / nullif(count(outcome), 0) AS acceptance_rate,
                   coalesce(sum(margin), 0) AS margin
            FROM s GROUP BY ALL),
        ch AS (
            SELECT period, avg(churned::DOUBLE) FILTER (WHERE reached) AS churn_reached,
                   avg(churned::DOUBLE) FILTER (WHERE NOT reached) AS churn_not_reached,
                   count(*) FILTER (WHERE reached) AS n_reached, count(*) FILTER (WHERE NOT reached) AS n_not_reached
            FROM (SELECT date_trunc('{grain}', any_value(d.ts))::DATE AS period,
                         any_value(d.chosen_action) IS NOT NULL AS reached, any_value(o.churned) AS churned
                  FROM decisions d JOIN outcomes o USING (decision_id) WHERE {_D_WHERE} GROUP BY d.decision_id)
            GROUP BY ALL)
        SELECT period, decisions, coalesce(contacts, 0) AS contacts, coalesce(with_outcome, 0) AS with_outcome,
               acceptance_rate, coalesce(margin, 0) AS margin, churn_reached, churn_not_reached,
               coalesce(n_reached, 0) AS n_reached, coalesce(n_not_reached, 0) AS n_not_reached
        FROM d LEFT JOIN a USING (period) LEFT JOIN ch USING (period) ORDER BY period""", p).df()


def funnel(con: duckdb.DuckDBPyConnection, f: Filters | None = None, by: str = "stage") -> pd.DataFrame:
    """The decision funnel, one row per stage (``by="group"``: per stage group) in the flow's
    order — Klartext's own stages, or an imported source's (e.g. Pega's ``Stage_pyOrder``).

    Columns: ``stage`` (the stage or group), ``label``, ``stage_group``, ``stage_order``,
    ``rows`` (candidate rows that stopped there), ``interactions_stopping`` (decisions with at
    least one row stopping there), ``interactions_reaching`` (decisions with at least one row
    that stopped there or later: an action got at least this far) and ``reaching_share`` (of
    all decisions in the selection).  A stage whose order the log does not know comes last,
    without a reach.
    """
    if by not in ("stage", "group"):
        raise ValueError(f"by must be 'stage' or 'group', not {by!r}")
    f = f or Filters()
    res = _funnel_summed(con, f, by)
    if res is not None:
        return res
    values = stages.order_values(stages.known(con))
    key = "coalesce(o.stage_group, c.stage)" if by == "group" else "c.stage"
    label = "coalesce(o.stage_group, c.stage)" if by == "group" else "coalesce(o.label, c.stage)"
    res = con.execute(f"""
        WITH o(stage, stage_group, stage_order, label) AS (VALUES {values}),
        c AS (SELECT c.decision_id, {key} AS k, {label} AS label, o.stage_group, o.stage_order
              FROM candidates c LEFT JOIN o USING (stage) WHERE {_C_WHERE}),
        per AS (SELECT k, any_value(label) AS label, any_value(stage_group) AS stage_group,
                       min(stage_order) AS stage_order, count(*) AS n_rows, count(DISTINCT decision_id) AS n_int
                FROM c GROUP BY k),
        deep AS (SELECT max(stage_order) AS d FROM c GROUP BY decision_id)
        SELECT 'stage' AS kind, k, stage_group, stage_order, label, n_rows, n_int FROM per
        UNION ALL
        SELECT 'depth', NULL, NULL, d, NULL, count(*), NULL FROM deep GROUP BY d""", f.params()).fetchall()
    return _funnel_frame(res)


def _funnel_summed(con: duckdb.DuckDBPyConnection, f: Filters, by: str) -> pd.DataFrame | None:
    """:func:`funnel` from the summaries (None: several issues, or no summaries: from the rows).
    A decision counts once per stage however many of its rows stopped there, so the counts of
    decisions are kept over all issues and per issue, not for every set of issues."""
    if len(f.issues) > 1:
        return None
    known = stages.known(con)
    values = stages.order_values(known)
    scope = "($issues IS NULL AND scope = 'all' OR scope = 'issue' AND list_contains($issues, issue))"
    key = "coalesce(o.stage_group, t.stage)" if by == "group" else "t.stage"
    label = "coalesce(o.stage_group, t.stage)" if by == "group" else "coalesce(o.label, t.stage)"
    res = _summed(con, ("stages", "reach", "depth"), f"""
        , o(stage, stage_group, stage_order, label) AS (VALUES {values}),
        per AS (SELECT {key} AS k, any_value({label}) AS label, any_value(o.stage_group) AS stage_group,
                       min(o.stage_order) AS stage_order, sum(t."rows")::BIGINT AS n_rows
                FROM s_stages t LEFT JOIN o USING (stage) WHERE {_S_WHERE} GROUP BY ALL),
        r AS (SELECT key AS k, sum(decisions)::BIGINT AS n_int FROM s_reach
              WHERE {_S_CH} AND {scope} AND level = '{by}' GROUP BY ALL)
        SELECT 'stage' AS kind, k, stage_group, stage_order, label, n_rows, n_int FROM per LEFT JOIN r USING (k)
        UNION ALL
        SELECT 'depth', NULL, NULL, depth, NULL, sum(decisions)::BIGINT, NULL FROM s_depth
        WHERE {_S_CH} AND {scope} GROUP BY depth""", f, fetch="all")
    return None if res is None else _funnel_frame(res)


def _funnel_frame(res: list[tuple]) -> pd.DataFrame:
    depth = {r[3]: int(r[5]) for r in res if r[0] == "depth"}
    total = sum(depth.values())
    rows = []
    for kind, k, group, order, lab, n_rows, n_int in res:
        if kind != "stage":
            continue
        reach = sum(n for d, n in depth.items() if d is not None and d >= order) if order is not None else None
        rows.append({"stage": k, "label": lab or k, "stage_group": group or k, "stage_order": order,
                     "rows": int(n_rows), "interactions_stopping": int(n_int), "interactions_reaching": reach,
                     "reaching_share": (reach / total) if (reach is not None and total) else None})
    out = pd.DataFrame(rows, columns=["stage", "label", "stage_group", "stage_order", "rows", "interactions_stopping",
                                      "interactions_reaching", "reaching_share"])
    out["stage_order"] = out["stage_order"].astype("Int64")
    out["interactions_reaching"] = out["interactions_reaching"].astype("Int64")
    return out.sort_values(["stage_order", "stage"], na_position="last", kind="stable").reset_index(drop=True)


def rule_counts(con: duckdb.DuckDBPyConnection, f: Filters, limit: int = 30) -> pd.DataFrame:
    """The rules that removed the most candidates (columns: stage, rule, candidates, share of
    all candidate rows in the filter)."""
    res = _summed(con, "stages", f"""
        SELECT stage, rule, sum("rows")::BIGINT AS candidates,
               sum("rows") / (SELECT sum("rows") FROM s WHERE {_S_WHERE}) AS share
        FROM s WHERE rule IS NOT NULL AND {_S_WHERE}
        GROUP BY ALL ORDER BY candidates DESC, stage, rule LIMIT $limit""", f, limit=int(limit))
    if res is not None:
        return res
    return con.execute(f"""
        SELECT c.stage, c.rule, count(*) AS candidates,
               count(*) / (SELECT count(*) FROM candidates c WHERE {_C_WHERE}) AS share
        FROM candidates c WHERE c.rule IS NOT NULL AND {_C_WHERE}
        GROUP BY ALL ORDER BY candidates DESC, stage, rule LIMIT $limit""", {**f.params(), "limit": int(limit)}).df()


def rule_examples(con: duckdb.DuckDBPyConnection, rule: str, f: Filters, limit: int = 50) -> pd.DataFrame:
    """Example candidates removed by ``rule`` (columns: decision_id, ts, channel, action_id, reason)."""
    p = {**f.params(), "rule": rule, "limit": int(limit)}
    last = con.execute(f"SELECT max(ts) FROM decisions d WHERE {_D_WHERE}",
                       {k: p[k] for k in ("start", "stop", "channels")}).fetchall()[0][0]
    out = None
    # the newest examples first: a day, a week, a month, then everything (a rule that fires
    # daily is found in the newest day's rows, not by sorting every candidate row of the log)
    for days in (1, 7, 31, None):
        since = None if last is None or days is None else last - timedelta(days=days)
        out = con.execute(f"""
            SELECT c.decision_id, c.ts, c.channel, c.action_id, c.reason FROM candidates c
            WHERE c.rule = $rule AND {_C_WHERE} AND ($since IS NULL OR c.ts >= $since)
            ORDER BY c.ts DESC, c.decision_id, c.action_id LIMIT $limit""", {**p, "since": since}).df()
        if len(out) >= limit or since is None:
            break
    return out


def value_finder(con: duckdb.DuckDBPyConnection, f: Filters, low: float = 0.05) -> pd.DataFrame:
    """Per channel: decisions with no action, and with only low-propensity actions (< ``low``).

    Columns: channel, decisions, no_action, only_low, no_action_share, only_low_share.
    """
    k = round(float(low) * 100)
    if k / 100 == float(low):  # the summaries keep the best propensity in hundredths
        res = summaries.query(con, "best", f"""
            SELECT channel, sum(decisions)::BIGINT AS decisions,
                   coalesce(sum(decisions) FILTER (WHERE bucket IS NULL), 0)::BIGINT AS no_action,
                   coalesce(sum(decisions) FILTER (WHERE bucket < $k), 0)::BIGINT AS only_low,
                   coalesce(sum(decisions) FILTER (WHERE bucket IS NULL), 0) / sum(decisions) AS no_action_share,
                   coalesce(sum(decisions) FILTER (WHERE bucket < $k), 0) / sum(decisions) AS only_low_share
            FROM s WHERE {_S_CH} GROUP BY ALL ORDER BY channel""",
                              {"channels": f.params()["channels"], "k": k}, start=f.start, end=f.end)
        if res is not None:
            return res
    p = f.params()
    return con.execute("""
        WITH best AS (
            SELECT c.decision_id, c.channel, max(c.propensity) FILTER (WHERE c.selected) AS best_selected
            FROM candidates c
            WHERE ($start IS NULL OR c.ts >= $start) AND ($stop IS NULL OR c.ts < $stop)
              AND ($channels IS NULL OR list_contains($channels, c.channel))
            GROUP BY ALL)
        SELECT channel, count(*) AS decisions, count(*) FILTER (WHERE best_selected IS NULL) AS no_action,
               count(*) FILTER (WHERE best_selected < $low) AS only_low,
               count(*) FILTER (WHERE best_selected IS NULL) / count(*) AS no_action_share,
               count(*) FILTER (WHERE best_selected < $low) / count(*) AS only_low_share
        FROM best GROUP BY ALL ORDER BY channel""",
        {k: p[k] for k in ("start", "stop", "channels")} | {"low": float(low)}).df()


def find_decisions(con: duckdb.DuckDBPyConnection, *, decision_id: str | None = None, customer: str | None = None,
                   action: str | None = None, f: Filters = Filters(), limit: int = 200) -> pd.DataFrame:
    """Decisions matching an id prefix, a customer pseudonym, a chosen action and filters, newest first.

    Columns: decision_id, ts, channel, customer, chosen_actions, selection_probability, explored.
    """
    p = f.params()
    return con.execute(f"""
        SELECT d.decision_id, d.ts, d.channel, d.customer, d.chosen_actions, d.selection_probability, d.explored
        FROM decisions d
        WHERE {_D_WHERE}
          AND ($id IS NULL OR starts_with(d.decision_id, $id))
          AND ($customer IS NULL OR d.customer = $customer)
          AND ($action IS NULL OR list_contains(d.chosen_actions, $action))
        ORDER BY d.seq DESC LIMIT $limit""",
        {k: p[k] for k in ("start", "stop", "channels")} |
        {"id": decision_id or None, "customer": customer or None, "action": action or None, "limit": int(limit)}).df()


def customer_history(con: duckdb.DuckDBPyConnection, customer: str) -> pd.DataFrame:
    """Every decision about one customer, oldest first, one row each with what followed it.

    Columns: decision_id, ts, channel, direction, trigger, chosen_actions, outcome (each
    reported outcome with its action, in time order; None when nothing was reported),
    accepted (how many of them), revenue, margin, churned, strategy_version.
    """
    return con.execute("""
        SELECT d.decision_id, d.ts, d.channel, d.direction, d."trigger", d.chosen_actions,
               string_agg(o.outcome || coalesce(' (' || o.action_id || ')', ''), ', ' ORDER BY o.ts) AS outcome,
               count(*) FILTER (WHERE o.outcome = 'accepted') AS accepted,
               sum(o.revenue) AS revenue, sum(o.margin) AS margin, bool_or(o.churned) AS churned, d.strategy_version
        FROM decisions d LEFT JOIN outcomes o USING (decision_id)
        WHERE d.customer = ?
        GROUP BY d.seq, d.decision_id, d.ts, d.channel, d.direction, d."trigger", d.chosen_actions, d.strategy_version
        ORDER BY d.seq""", [customer]).df()


def kpi_tradeoff(con: duckdb.DuckDBPyConnection, f: Filters, by: str = "issue",
                 actions: pd.DataFrame | None = None) -> pd.DataFrame:
    """Margin vs retention of the logged decisions, by ``issue`` or ``channel``.

    ``actions`` (columns action_id, net_margin, retention_effect — from the strategy) adds the
    expected margin and expected retention effect of the selected actions (Σ propensity × ...).
    Columns: key, contacts, accepted, margin, margin_per_contact, churn_reached, expected_margin,
    expected_retention.
    """
    col = {"issue": "issue", "channel": "channel"}[by]
    acts = actions if actions is not None else pd.DataFrame(
        {"action_id": pd.Series(dtype=str), "net_margin": pd.Series(dtype=float),
         "retention_effect": pd.Series(dtype=float)})
    # the strategy's figures as literal values: the query runs in the summaries' read transaction
    values = ", ".join(f"({_lit(a)}, {float(m)!r}, {float(r)!r})" for a, m, r in zip(
        acts["action_id"], acts["net_margin"], acts["retention_effect"])) or "(NULL, NULL, NULL)"
    a_cte = f"_k_acts(action_id, net_margin, retention_effect) AS (VALUES {values})"
    res = _summed(con, "contacts", f"""
        WITH {a_cte}
        SELECT {col} AS key, sum(contacts)::BIGINT AS contacts, sum(accepted)::BIGINT AS accepted,
               coalesce(sum(margin), 0) AS margin, coalesce(sum(margin), 0) / sum(contacts) AS margin_per_contact,
               sum(churned) / nullif(sum(churn_known), 0) AS churn_reached,
               sum(propensity * a.net_margin) AS expected_margin,
               sum(propensity * a.retention_effect) AS expected_retention
        FROM s LEFT JOIN _k_acts a USING (action_id) WHERE {_S_WHERE}
        GROUP BY ALL ORDER BY contacts DESC, key""", f)
    if res is not None:
        return res
    return con.execute(f"""
        WITH {a_cte}
        SELECT c.{col} AS key, count(*) AS contacts,
               count(*) FILTER (WHERE o.outcome = 'accepted') AS accepted,
               coalesce(sum(o.margin), 0) AS margin,
               coalesce(sum(o.margin), 0) / count(*) AS margin_per_contact,
               avg(o.churned::DOUBLE) AS churn_reached,
               sum(c.propensity * a.net_margin) AS expected_margin,
               sum(c.propensity * a.retention_effect) AS expected_retention
        FROM {_CONTACTS} c
        LEFT JOIN outcomes o ON o.decision_id = c.decision_id AND o.action_id = c.action_id
        LEFT JOIN _k_acts a ON a.action_id = c.action_id
        GROUP BY ALL ORDER BY contacts DESC, key""", f.params()).df()


def _lit(v: Any) -> str:
    """A SQL string literal (or NULL)."""
    return "NULL" if v is None else "'" + str(v).replace("'", "''") + "'"


def models_registry(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The model registry. Columns: action_id, version, algorithm, n_features, features,
    training_fingerprint, auc, brier, ece, n_train, n_test, created, metrics (JSON text)."""
    return con.execute("""
        SELECT action_id, version, algorithm, len(features) AS n_features, features, training_fingerprint,
               (metrics->>'auc')::DOUBLE AS auc, (metrics->>'brier')::DOUBLE AS brier,
               (metrics->>'ece')::DOUBLE AS ece, (metrics->>'n_train')::BIGINT AS n_train,
               (metrics->>'n_test')::BIGINT AS n_test, created, metrics::VARCHAR AS metrics
        FROM models ORDER BY action_id, created""").df()


def model_usage(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """How many candidates each model version scored, and when. Columns: action_id,
    model_version, scored, first, last."""
    res = summaries.query(con, "models", """
        SELECT action_id, model_version, sum(scored)::BIGINT AS scored, min(first_ts) AS first, max(last_ts) AS last
        FROM s GROUP BY ALL ORDER BY action_id, first, model_version""", {})
    if res is not None:
        return res
    return con.execute("""
        SELECT action_id, model_version, count(*) AS scored, min(ts) AS first, max(ts) AS last
        FROM candidates WHERE model_version IS NOT NULL AND propensity IS NOT NULL
        GROUP BY ALL ORDER BY action_id, first, model_version""").df()


def decision_factors(con: duckdb.DuckDBPyConnection, strategy_version: str, clv_feature: str,
                     action_ids: list[str], channel_ids: list[str], keys: SubjectKeys | None = None,
                     feature_names: list[str] | None = None, seqs: np.ndarray | None = None) -> tuple[dict, dict]:
    """The factors of every decision of one strategy version, for re-arbitration.

    Returns two dicts of numpy arrays: per decision (in log order) ``seq``, ``channel`` (index into ``channel_ids``), ``clv``, ``first`` (index of the first chosen
    action, -1 for none) and ``explored``; per scored candidate, in no particular order,
    ``seq`` (its decision's), ``col`` (index into ``action_ids``), ``propensity``,
    ``context_weight``, ``lever``.

    Where the inputs are sealed (:mod:`decision_log.subjects`) the CLV is read from them
    opened with ``keys`` (``feature_names``: the strategy's features in order, where the CLV
    stands in the compact document); the decisions of erased customers are left out of both
    (there is nothing to re-arbitrate them with).  ``seqs`` keeps only those decisions.
    """
    other = con.cursor()  # the two scans overlap (DuckDB runs without the GIL): ~10% sooner on 2 cores
    if seqs is None:
        return _decision_factors(con, other, strategy_version, clv_feature, action_ids, channel_ids, keys,
                                 feature_names, "")
    only = pd.DataFrame({"seq": np.asarray(seqs, dtype=np.int64)})
    for c in (con, other):
        c.register("_k_seqs", only)
    try:
        return _decision_factors(con, other, strategy_version, clv_feature, action_ids, channel_ids, keys,
                                 feature_names, "AND seq IN (SELECT seq FROM _k_seqs)")
    finally:
        for c in (con, other):
            c.unregister("_k_seqs")


def _decision_factors(con, other, strategy_version, clv_feature, action_ids, channel_ids, keys, feature_names,
                      only: str) -> tuple[dict, dict]:
    from concurrent.futures import ThreadPoolExecutor

    # ``inputs`` of a Klartext decision is DuckDB's own JSON of {"features": {flat struct}, ...}:
    # the features come first and a text value cannot hold an unescaped '"clv":', so the first
    # '"clv":' is the feature's key.  Its raw token is cast (2x faster than parsing the JSON);
    # only where that fails (a null) does the JSON path decide.
    params = {"sv": strategy_version, "clv": "$.features." + clv_feature, "actions": action_ids,
              "channels": channel_ids, "clv_key": _clv_key(clv_feature)}
    # the version's (selected) decisions first, then the work on those rows only: with the
    # filter in the same SELECT DuckDB casts every row's inputs and probes every candidate row
    # against the whole version (a 10M log: 6 s and 7 s for a sample of 250,000, not 0.4 and 3.5)
    chosen = f"""WITH d AS MATERIALIZED (
        SELECT seq, decision_id, ts, customer, channel, inputs, chosen_action, explored FROM decisions
        WHERE strategy_version = $sv AND source = 'klartext' {only})"""
    # a sealed document holds no readable CLV: it is not searched (nor parsed as JSON, the
    # fallback where the pattern finds nothing)
    dec_sql = f"""{chosen},
        t AS (SELECT *, inputs::VARCHAR AS text FROM d),
        s AS (SELECT *, starts_with(text, $sealed) AS is_sealed FROM t)
        SELECT seq, list_position($channels, channel) - 1 AS channel,
               CASE WHEN NOT is_sealed THEN coalesce(TRY_CAST(regexp_extract(text, $clv_key, 1) AS DOUBLE),
                                                     json_extract_string(inputs, $clv)::DOUBLE) END AS clv,
               coalesce(list_position($actions, chosen_action) - 1, -1) AS "first", explored, is_sealed,
               CASE WHEN is_sealed THEN decision_id END AS decision_id,
               CASE WHEN is_sealed THEN customer END AS customer,
               CASE WHEN is_sealed THEN text END AS sealed
        FROM s ORDER BY seq"""
    # a candidate row carries its decision's time: the rows are first narrowed by it (a semi-join
    # on a number: a 10M log's 290M rows in 0.2 s), then joined by decision id (all 290M probed
    # by their text: 1.4 s)
    cand_sql = f"""{chosen},
        c AS MATERIALIZED (
            SELECT decision_id, action_id, propensity, context_weight, lever FROM candidates
            WHERE ts IN (SELECT ts FROM d) AND propensity IS NOT NULL)
        SELECT d.seq, (list_position($actions, c.action_id) - 1)::INTEGER AS col, c.propensity, c.context_weight,
               c.lever
        FROM c JOIN d USING (decision_id)"""
    with ThreadPoolExecutor(max_workers=2) as pool:
        if keys is not None:  # the customers' keys, where not read yet (seconds on millions), meanwhile
            pool.submit(keys.refresh)
        cand = pool.submit(lambda: other.execute(cand_sql, {"sv": strategy_version, "actions": action_ids}).fetchnumpy())
        dec = con.execute(dec_sql, params | {"sealed": subjects.PREFIX}).fetchnumpy()
        # the sealed inputs are opened (in Python) while DuckDB still reads the candidates
        erased = _open_clv(con, dec, keys, clv_feature, feature_names)
        cand = cand.result()
    if erased.any():  # an erased customer's decisions: nothing to re-arbitrate them with
        dec = {k: np.asarray(v)[~erased] for k, v in dec.items()}
        kept = np.isin(np.asarray(cand["seq"]), dec["seq"])
        cand = {k: np.asarray(v)[kept] if not np.ma.isMaskedArray(v) else v[kept] for k, v in cand.items()}
    return dec, cand


def _open_clv(con: duckdb.DuckDBPyConnection, dec: dict, keys: SubjectKeys | None, clv_feature: str,
              feature_names: list[str] | None) -> np.ndarray:
    """Puts into ``dec`` the CLV of its decisions with sealed inputs, read from them opened (in
    place of the query's columns for that); returns which of them did not open (erased)."""
    is_sealed = np.asarray(dec.pop("is_sealed"), dtype=bool)
    ids, customers, sealed = (np.asarray(dec.pop(k), dtype=object)[is_sealed] for k in ("decision_id", "customer",
                                                                                          "sealed"))
    if not is_sealed.any():
        return is_sealed
    plain = [None] * len(sealed) if keys is None else keys.open(customers.tolist(), ids.tolist(), sealed.tolist())
    clv = dec["clv"] = np.asarray(dec["clv"], dtype=np.float64).copy()
    clv[is_sealed] = _clv_of(con, plain, clv_feature, feature_names)
    return is_sealed & np.isnan(clv)


def _clv_key(clv_feature: str) -> str:
    """A pattern whose group is the raw token after the CLV feature's first ``"name":``."""
    return '"' + re.escape(clv_feature) + '":([^,}]*)'


def _clv_of(con: duckdb.DuckDBPyConnection, plain: list[str | None], clv_feature: str,
            feature_names: list[str] | None) -> np.ndarray:
    """The CLV in each opened input document (NaN where there is none: erased, or null), read
    by DuckDB's JSON functions over all of them at once.  A compact document
    (:data:`decision_log.rows.COMPACT`) holds the features in the strategy's order; an older
    one names them (its first ``"clv":`` is the feature's, as in :func:`decision_factors`)."""
    texts = pa.table({"t": pa.array(plain, type=pa.string())})
    at = feature_names.index(clv_feature) if feature_names is not None and clv_feature in feature_names else None
    compact = "json_extract_string(t, $at)" if at is not None else "NULL"
    cur = con.cursor()
    cur.register("_k_opened", texts)
    try:
        out = cur.execute(f"""
            SELECT TRY_CAST(CASE WHEN starts_with(t, '{{"v":1,') THEN {compact}
                                 ELSE nullif(regexp_extract(t, $key, 1), 'null') END AS DOUBLE) AS clv
            FROM _k_opened""", ({"at": f"$.f[{at}]"} if at is not None else {}) |
                              {"key": _clv_key(clv_feature)}).fetchnumpy()["clv"]
    finally:
        cur.unregister("_k_opened")
        cur.close()
    return np.asarray(np.ma.filled(out, np.nan) if np.ma.isMaskedArray(out) else out, dtype=np.float64)


def first_action_outcomes(con: duckdb.DuckDBPyConnection, strategy_version: str,
                          seqs: np.ndarray | None = None) -> dict:
    """Per decision of a strategy version (log order; only those whose ``seqs`` are given):
    ``selection_probability`` of the first chosen action, whether that action was ``accepted``
    (or ``visited``: accepted or a visit without purchase), the ``revenue`` and realised
    ``margin`` of its outcome (0 without an action) and ``churned`` (False where no outcome
    was logged)."""
    cur = con.cursor()
    only = ""
    if seqs is not None:
        cur.register("_k_seqs", pd.DataFrame({"seq": np.asarray(seqs, dtype=np.int64)}))
        only = "AND seq IN (SELECT seq FROM _k_seqs)"
    try:
        return cur.execute(f"""
            WITH d AS MATERIALIZED (
                SELECT seq, decision_id, selection_probability, chosen_action FROM decisions
                WHERE strategy_version = ? AND source = 'klartext' {only}),
            j AS (
                SELECT d.seq, d.selection_probability, d.chosen_action, o.decision_id AS o_id, o.action_id,
                       o.outcome, o.margin, o.revenue, o.churned
                FROM d LEFT JOIN outcomes o ON o.decision_id = d.decision_id)
            SELECT seq, any_value(selection_probability) AS selection_probability,
                   coalesce(any_value(outcome) FILTER (WHERE action_id = chosen_action) = 'accepted', false)
                       AS accepted,
                   coalesce(any_value(outcome) FILTER (WHERE action_id = chosen_action) IN ('accepted', 'visited'),
                            false) AS visited,
                   coalesce(sum(revenue) FILTER (WHERE action_id = chosen_action), 0.0) AS revenue,
                   coalesce(sum(margin) FILTER (WHERE action_id = chosen_action), 0.0) AS margin,
                   coalesce(bool_or(churned), false) AS churned, count(o_id) > 0 AS has_outcome
            FROM j GROUP BY seq ORDER BY seq""", [strategy_version]).fetchnumpy()
    finally:
        cur.close()


def decision_seqs(con: duckdb.DuckDBPyConnection, strategy_version: str, f: Filters):
    """The sequence numbers (log order) of one strategy version's decisions in the period and
    channels of ``f`` (its issues do not select decisions)."""
    p = f.params()
    return con.execute(f"SELECT d.seq FROM decisions d WHERE d.strategy_version = $version AND {_D_WHERE} "
                       "ORDER BY d.seq", {k: p[k] for k in ("start", "stop", "channels")} |
                       {"version": strategy_version}).fetchnumpy()["seq"]


def served_outcomes(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per decision with a chosen action (log order, every source): ``decision_id``,
    ``source``, ``action`` (the first chosen), ``probability`` (its logged selection
    probability; NULL where the source logged none), ``has_outcome``, ``accepted``, ``visited``,
    ``revenue``, ``margin`` (0 where none is logged) and ``churned`` — what off-policy
    evaluation with a stochastic target reads."""
    return con.execute("""
        SELECT d.decision_id, any_value(d.source) AS source, any_value(d.chosen_action) AS action,
               any_value(d.selection_probability) AS probability, count(o.decision_id) > 0 AS has_outcome,
               coalesce(any_value(o.outcome) FILTER (WHERE o.action_id = d.chosen_action) = 'accepted', false)
                   AS accepted,
               coalesce(any_value(o.outcome) FILTER (WHERE o.action_id = d.chosen_action) IN ('accepted', 'visited'),
                        false) AS visited,
               coalesce(sum(o.revenue) FILTER (WHERE o.action_id = d.chosen_action), 0.0) AS revenue,
               coalesce(sum(o.margin) FILTER (WHERE o.action_id = d.chosen_action), 0.0) AS margin,
               coalesce(bool_or(o.churned), false) AS churned
        FROM decisions d LEFT JOIN outcomes o USING (decision_id)
        WHERE d.chosen_action IS NOT NULL
        GROUP BY d.seq, d.decision_id ORDER BY d.seq""").df()


def only_imported(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the log holds decisions but none made by Klartext (no strategy to re-run)."""
    n, own = con.execute("SELECT count(*), count(*) FILTER (WHERE source = 'klartext') FROM decisions").fetchall()[0]
    return n > 0 and own == 0


def imported_factor_rows(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The candidate rows of imported decisions that carry all four priority factors, in log
    order (decision by decision, rows in their logged order): source, decision_id, action_id,
    issue, group, propensity, value, context_weight, lever, and ``logged_first`` (the row of the
    decision's first chosen action; its first such row when the action has several)."""
    return con.execute(f"""
        WITH r AS (
            SELECT d.seq, d.source, c.decision_id, c.action_id, c.issue, c."group", c.propensity, c.value,
                   c.context_weight, c.lever, {_ordinal(con)} AS ordinal,
                   c.selected AND c.action_id = d.chosen_action AS is_chosen
            FROM candidates c JOIN decisions d USING (decision_id)
            WHERE d.source <> 'klartext' AND c.propensity IS NOT NULL AND c.value IS NOT NULL
              AND c.context_weight IS NOT NULL AND c.lever IS NOT NULL)
        SELECT source, decision_id, action_id, issue, "group", propensity, value, context_weight, lever,
               coalesce(is_chosen AND ordinal IS NOT DISTINCT FROM
                        min(ordinal) FILTER (WHERE is_chosen) OVER (PARTITION BY decision_id), false) AS logged_first
        FROM r ORDER BY seq, ordinal, action_id""").df()


def decision_inputs(con: duckdb.DuckDBPyConnection, strategy_version: str, seqs: np.ndarray | None = None
                    ) -> pd.DataFrame:
    """Per decision of a strategy version (log order; ``seqs``: those only): decision_id,
    ts_us, customer, channel, inputs (JSON text)."""
    if seqs is None:
        return con.execute("""
            SELECT decision_id, epoch_us(ts) AS ts_us, customer, channel, inputs::VARCHAR AS inputs FROM decisions
            WHERE strategy_version = ? AND source = 'klartext' ORDER BY seq""", [strategy_version]).df()
    return con.execute("""
        SELECT decision_id, epoch_us(ts) AS ts_us, customer, channel, inputs::VARCHAR AS inputs FROM decisions
        WHERE strategy_version = ? AND source = 'klartext' AND seq IN (SELECT unnest(?::BIGINT[])) ORDER BY seq""",
                       [strategy_version, np.asarray(seqs, dtype=np.int64).tolist()]).df()


def arm_means(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Observed outcomes per logged first action (the arms of an experiment): decisions and
    mean visit, conversion, revenue and margin — the numbers an IPS estimate of "everyone
    gets this action" must agree with.  Columns: action_id, decisions, visit, conversion,
    revenue, margin."""
    return con.execute("""
        SELECT d.chosen_action AS action_id, count(*) AS decisions,
               avg((o.outcome IN ('accepted', 'visited'))::DOUBLE) AS visit,
               avg((o.outcome = 'accepted')::DOUBLE) AS conversion,
               avg(coalesce(o.revenue, 0)) AS revenue, avg(coalesce(o.margin, 0)) AS margin
        FROM decisions d LEFT JOIN outcomes o ON o.decision_id = d.decision_id AND o.action_id = d.chosen_action
        GROUP BY ALL ORDER BY action_id""").df()


def newest_strategy_version(con: duckdb.DuckDBPyConnection) -> str | None:
    """The strategy version of the newest decision made by Klartext (None for import-only logs)."""
    row = con.execute("SELECT strategy_version FROM decisions WHERE strategy_version IS NOT NULL "
                      "ORDER BY seq DESC LIMIT 1").fetchall()
    return row[0][0] if row else None


def newest_customer(con: duckdb.DuckDBPyConnection) -> str | None:
    row = con.execute("SELECT customer FROM decisions ORDER BY seq DESC LIMIT 1").fetchall()
    return row[0][0] if row else None


def decision_count(con: duckdb.DuckDBPyConnection, strategy_version: str | None = None) -> int:
    """The log's decisions, or one strategy version's."""
    if strategy_version is None:
        return int(con.execute("SELECT count(*) FROM decisions").fetchall()[0][0])
    return int(con.execute("SELECT count(*) FROM decisions WHERE strategy_version = ?",
                           [strategy_version]).fetchall()[0][0])


def week_sample(con: duckdb.DuckDBPyConnection, week_start: date, size: int) -> tuple[list[str], int]:
    """A random quality-assurance sample of the decisions of one ISO week (Monday
    ``week_start``): ``size`` of them, the same for everyone who asks (ordered by a hash of
    the decision id and the week), and how many the week holds."""
    start = datetime(week_start.year, week_start.month, week_start.day, tzinfo=UTC)
    params = {"start": start, "stop": start + timedelta(days=7), "seed": week_start.isoformat(), "k": int(size)}
    total = con.execute("SELECT count(*) FROM decisions WHERE ts >= $start AND ts < $stop",
                        {k: params[k] for k in ("start", "stop")}).fetchall()[0][0]
    ids = con.execute("SELECT decision_id FROM decisions WHERE ts >= $start AND ts < $stop "
                      "ORDER BY md5(decision_id || $seed) LIMIT $k", params).fetchall()
    return [r[0] for r in ids], int(total)


def decisions_by_id(con: duckdb.DuckDBPyConnection, decision_ids: list[str]) -> pd.DataFrame:
    """decision_id, ts, channel, chosen_actions, customer of these decisions (time order)."""
    if not decision_ids:
        return pd.DataFrame(columns=["decision_id", "ts", "channel", "chosen_actions", "customer"])
    return con.execute("SELECT decision_id, ts, channel, chosen_actions, customer FROM decisions "
                       "WHERE decision_id IN (SELECT unnest(?)) ORDER BY ts", [decision_ids]).df()


def objection_violations(con: duckdb.DuckDBPyConnection, periods: list, marketing: dict[str, set[str]]) -> pd.DataFrame:
    """Decisions that showed a marketing action to a customer while their objection stood on
    that channel — there must be none.  ``periods``: the register's objection periods;
    ``marketing``: strategy version → its marketing actions.  Columns: decision_id, ts,
    customer, channel, chosen_actions."""
    cols = ["decision_id", "ts", "customer", "channel", "chosen_actions"]
    found = []
    for customer, channels, start, until in periods:
        rows = con.execute("SELECT decision_id, ts, customer, channel, chosen_actions, strategy_version FROM decisions "
                           "WHERE customer = ? AND ts >= ? AND (? IS NULL OR ts < ?)",
                           [customer, start, until, until]).fetchall()
        for r in rows:
            if (channels is None or r[3] in channels) and set(r[4]) & marketing.get(r[5], set()):
                found.append(r[:5])
    return pd.DataFrame(found, columns=cols)
