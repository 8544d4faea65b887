"""The queries of the governance report (:mod:`analysis.governance`): period figures,
the outcome pairs and score distributions of each model, policy-compliance counts and the
per-decision rows the fairness figures are computed from.

Periods are half-open UTC time ranges ``[start, stop)``; ``actions`` is a DataFrame of the
strategy's per-action figures (action_id, issue, incentive_cost, premium, marketing),
registered for the query's duration.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime

import duckdb
import numpy as np
import pandas as pd


@contextmanager
def _registered(con: duckdb.DuckDBPyConnection, **frames: pd.DataFrame):
    for name, frame in frames.items():
        con.register(name, frame)
    try:
        yield con
    finally:
        for name in frames:
            con.unregister(name)


def period_figures(con: duckdb.DuckDBPyConnection, start: datetime, stop: datetime, actions: pd.DataFrame,
                   by: str | None = None) -> pd.DataFrame:
    """The headline figures of a period, in total (``by`` None) or per ``issue`` or ``channel``.

    Columns: key, decisions, customers, with_action (decisions that showed an action),
    reached (customers shown an action), contacts (actions shown), with_outcome, accepted,
    revenue, margin (realised, of the reported outcomes), incentive_spend (the incentive
    cost of the accepted actions), churned_reached, n_reached, churned_not_reached,
    n_not_reached (decisions with an outcome whose customer churned, with and without an
    action).  Per issue, decisions and customers count those that showed an action of it.
    """
    key = {"issue": "a.issue", "channel": "d.channel", None: "'all'"}[by]
    sql = f"""
        WITH d AS (SELECT decision_id, customer, channel, chosen_action, chosen_actions FROM decisions
                   WHERE ts >= $start AND ts < $stop),
        shown AS (SELECT d.decision_id, d.customer, d.channel, unnest(d.chosen_actions) AS action_id FROM d),
        s AS (SELECT {key} AS key, d.*, o.outcome, o.revenue, o.margin,
                     CASE WHEN o.outcome = 'accepted' THEN a.incentive_cost ELSE 0 END AS incentive
              FROM shown d LEFT JOIN _k_actions a USING (action_id)
              LEFT JOIN outcomes o ON o.decision_id = d.decision_id AND o.action_id = d.action_id),
        per_dec AS (SELECT d.decision_id, any_value(d.channel) AS channel, any_value(d.customer) AS customer,
                           any_value(d.chosen_action) IS NOT NULL AS reached, bool_or(o.churned) AS churned,
                           count(o.decision_id) > 0 AS has_outcome
                    FROM d LEFT JOIN outcomes o USING (decision_id) GROUP BY d.decision_id)
        """
    if by is None or by == "channel":
        k = "'all'" if by is None else "channel"
        q = sql + f"""
        SELECT p.key, p.decisions, p.customers, p.with_action, p.reached, coalesce(c.contacts, 0) AS contacts,
               coalesce(c.with_outcome, 0) AS with_outcome, coalesce(c.accepted, 0) AS accepted,
               coalesce(c.revenue, 0) AS revenue, coalesce(c.margin, 0) AS margin,
               coalesce(c.incentive_spend, 0) AS incentive_spend,
               p.churned_reached, p.n_reached, p.churned_not_reached, p.n_not_reached
        FROM (SELECT {k} AS key, count(*) AS decisions, count(DISTINCT customer) AS customers,
                     count(*) FILTER (WHERE reached) AS with_action,
                     count(DISTINCT customer) FILTER (WHERE reached) AS reached,
                     count(*) FILTER (WHERE reached AND churned) AS churned_reached,
                     count(*) FILTER (WHERE reached AND has_outcome) AS n_reached,
                     count(*) FILTER (WHERE NOT reached AND churned) AS churned_not_reached,
                     count(*) FILTER (WHERE NOT reached AND has_outcome) AS n_not_reached
              FROM per_dec GROUP BY ALL) p
        LEFT JOIN (SELECT {'key' if by else "'all'"} AS key, count(*) AS contacts, count(outcome) AS with_outcome,
                          count(*) FILTER (WHERE outcome = 'accepted') AS accepted, sum(revenue) AS revenue,
                          sum(margin) AS margin, sum(incentive) AS incentive_spend
                   FROM s GROUP BY ALL) c USING (key)
        ORDER BY p.decisions DESC, p.key"""
    else:
        q = sql + """
        SELECT key, count(DISTINCT decision_id) AS decisions, count(DISTINCT customer) AS customers,
               count(DISTINCT decision_id) AS with_action, count(DISTINCT customer) AS reached, count(*) AS contacts,
               count(outcome) AS with_outcome, count(*) FILTER (WHERE outcome = 'accepted') AS accepted,
               coalesce(sum(revenue), 0) AS revenue, coalesce(sum(margin), 0) AS margin,
               coalesce(sum(incentive), 0) AS incentive_spend,
               NULL::BIGINT AS churned_reached, NULL::BIGINT AS n_reached, NULL::BIGINT AS churned_not_reached,
               NULL::BIGINT AS n_not_reached
        FROM s GROUP BY ALL ORDER BY contacts DESC, key"""
    with _registered(con, _k_actions=actions):
        return con.execute(q, {"start": start, "stop": stop}).df()


def daily_figures(con: duckdb.DuckDBPyConnection, start: datetime, stop: datetime) -> pd.DataFrame:
    """Per day of the decision: decisions, contacts, with_outcome, accepted, margin."""
    return con.execute("""
        WITH s AS (SELECT d.ts::DATE AS day, unnest(d.chosen_actions) AS action_id, d.decision_id FROM decisions d
                   WHERE d.ts >= $start AND d.ts < $stop),
        c AS (SELECT s.day, count(*) AS contacts, count(o.outcome) AS with_outcome,
                     count(*) FILTER (WHERE o.outcome = 'accepted') AS accepted, coalesce(sum(o.margin), 0) AS margin
              FROM s LEFT JOIN outcomes o ON o.decision_id = s.decision_id AND o.action_id = s.action_id GROUP BY ALL)
        SELECT d.day, d.decisions, coalesce(c.contacts, 0) AS contacts, coalesce(c.with_outcome, 0) AS with_outcome,
               coalesce(c.accepted, 0) AS accepted, coalesce(c.margin, 0) AS margin
        FROM (SELECT ts::DATE AS day, count(*) AS decisions FROM decisions WHERE ts >= $start AND ts < $stop
              GROUP BY ALL) d LEFT JOIN c USING (day) ORDER BY d.day""", {"start": start, "stop": stop}).df()


def sample_decisions(con: duckdb.DuckDBPyConnection, start: datetime, stop: datetime, size: int,
                     sources: tuple[str, ...] = ("klartext",)) -> tuple[pd.DataFrame, int]:
    """A random sample of ``size`` of a period's decisions, the same one every time (the
    decisions ordered by the MD5 of their id), and how many the period holds.

    Columns: seq, decision_id, customer, channel, strategy_version, chosen_actions, inputs
    (the stored JSON text: sealed or clear), in log order.
    """
    p = {"start": start, "stop": stop, "sources": list(sources)}
    total = con.execute("SELECT count(*) FROM decisions WHERE ts >= $start AND ts < $stop "
                        "AND list_contains($sources, source)", p).fetchall()[0][0]
    pick = "" if total <= size else "ORDER BY md5(decision_id) LIMIT $k"
    rows = con.execute(f"""
        SELECT * FROM (SELECT seq, decision_id, customer, channel, strategy_version, chosen_actions,
                              inputs::VARCHAR AS inputs FROM decisions
                       WHERE ts >= $start AND ts < $stop AND list_contains($sources, source) {pick})
        ORDER BY seq""", p | ({"k": int(size)} if pick else {})).df()
    return rows, int(total)


def decision_outcomes(con: duckdb.DuckDBPyConnection, decision_ids: list[str], actions: pd.DataFrame) -> pd.DataFrame:
    """Per decision (of ``decision_ids``): what it offered and what followed.

    Columns: decision_id, offered (an action was shown), incentive (an action with an
    incentive was shown), incentive_value (the incentive cost of the actions shown: the
    voucher, points or payment terms' cost if accepted), premium (a premium or payment-term
    action was shown), has_outcome (an outcome of a shown action is logged), accepted (one of
    them was accepted).
    """
    ids = pd.DataFrame({"decision_id": pd.Series(decision_ids, dtype=object)})
    with _registered(con, _k_ids=ids, _k_actions=actions):
        return con.execute("""
            WITH s AS (SELECT d.decision_id, unnest(d.chosen_actions) AS action_id FROM decisions d
                       WHERE d.decision_id IN (SELECT decision_id FROM _k_ids)),
            j AS (SELECT s.decision_id, a.incentive_cost, a.premium, o.outcome
                  FROM s LEFT JOIN _k_actions a USING (action_id)
                  LEFT JOIN outcomes o ON o.decision_id = s.decision_id AND o.action_id = s.action_id)
            SELECT i.decision_id, j.decision_id IS NOT NULL AS offered,
                   coalesce(bool_or(j.incentive_cost > 0), false) AS incentive,
                   coalesce(sum(j.incentive_cost), 0)::DOUBLE AS incentive_value,
                   coalesce(bool_or(j.premium), false) AS premium,
                   count(j.outcome) > 0 AS has_outcome,
                   coalesce(bool_or(j.outcome = 'accepted'), false) AS accepted
            FROM _k_ids i LEFT JOIN j USING (decision_id)
            GROUP BY i.decision_id, j.decision_id IS NOT NULL""").df()


def shown_outcomes(con: duckdb.DuckDBPyConnection, start: datetime, stop: datetime) -> dict[str, np.ndarray]:
    """Every shown, scored action of the period with an outcome: action_id, day, propensity,
    accepted — the pairs a model's AUC and calibration on the period are computed from."""
    return con.execute("""
        SELECT c.action_id, c.ts::DATE AS day, c.propensity, o.outcome = 'accepted' AS accepted
        FROM candidates c JOIN outcomes o ON o.decision_id = c.decision_id AND o.action_id = c.action_id
        WHERE c.selected AND c.propensity IS NOT NULL AND c.ts >= $start AND c.ts < $stop
        ORDER BY c.action_id, c.ts, c.decision_id""", {"start": start, "stop": stop}).fetchnumpy()


def scores(con: duckdb.DuckDBPyConnection, start: datetime, stop: datetime, actions: list[str]) -> dict[str, np.ndarray]:
    """Every model score of the period: ``action`` (its index in ``actions``; -1 for another)
    and ``propensity``."""
    return con.execute("""
        SELECT (coalesce(list_position($actions, action_id), 0) - 1)::INTEGER AS action, propensity FROM candidates
        WHERE propensity IS NOT NULL AND ts >= $start AND ts < $stop""",
                       {"start": start, "stop": stop, "actions": actions}).fetchnumpy()


def score_versions(con: duckdb.DuckDBPyConnection, start: datetime, stop: datetime) -> pd.DataFrame:
    """How many scores each model version gave in the period: action_id, model_version, n."""
    return con.execute("""
        SELECT action_id, model_version, count(*) AS n FROM candidates
        WHERE propensity IS NOT NULL AND ts >= $start AND ts < $stop GROUP BY ALL ORDER BY ALL""",
                       {"start": start, "stop": stop}).df()


def scored_pairs(con: duckdb.DuckDBPyConnection, decision_ids: list[str]) -> pd.DataFrame:
    """Which action each of these decisions scored (columns decision_id, action_id)."""
    ids = pd.DataFrame({"decision_id": pd.Series(decision_ids, dtype=object)})
    with _registered(con, _k_ids=ids):
        return con.execute("SELECT decision_id, action_id FROM candidates WHERE propensity IS NOT NULL "
                           "AND decision_id IN (SELECT decision_id FROM _k_ids)").df()


def contact_limit_breaches(con: duckdb.DuckDBPyConnection, start: datetime, stop: datetime,
                           limits: list[tuple[str, int, int]]) -> pd.DataFrame:
    """Contacts of the period that took a customer over a contact limit, counting every
    logged contact on that channel within the limit's period before it (also before the
    report's period).  ``limits``: (channel, max contacts, period in days).  Columns: channel,
    limit, period_days, contacts (in the report's period on that channel), breaches."""
    out = []
    for channel, most, days in limits:
        row = con.execute("""
            WITH c AS (SELECT customer, ts, count(*) OVER (PARTITION BY customer ORDER BY ts
                                RANGE BETWEEN to_days($days) PRECEDING AND CURRENT ROW) AS n
                       FROM decisions WHERE channel = $channel AND chosen_action IS NOT NULL
                         AND ts >= $start - to_days($days) AND ts < $stop)
            SELECT count(*) FILTER (WHERE ts >= $start), count(*) FILTER (WHERE ts >= $start AND n > $max) FROM c""",
                          {"channel": channel, "days": int(days), "max": int(most), "start": start,
                           "stop": stop}).fetchall()[0]
        out.append({"channel": channel, "limit": most, "period_days": days, "contacts": int(row[0]),
                    "breaches": int(row[1])})
    return pd.DataFrame(out, columns=["channel", "limit", "period_days", "contacts", "breaches"])


def rules_fired(con: duckdb.DuckDBPyConnection, start: datetime, stop: datetime) -> pd.DataFrame:
    """How often each rule removed an action in the period, and from how many decisions.
    Columns: stage, rule, candidates, decisions."""
    return con.execute("""
        SELECT stage, rule, count(*) AS candidates, count(DISTINCT decision_id) AS decisions FROM candidates
        WHERE rule IS NOT NULL AND ts >= $start AND ts < $stop GROUP BY ALL ORDER BY stage, candidates DESC""",
                       {"start": start, "stop": stop}).df()


def version_outcomes(con: duckdb.DuckDBPyConnection, start: datetime, stop: datetime,
                     actions: pd.DataFrame) -> pd.DataFrame:
    """Per decision of the period: strategy_version, ts, offered, incentive_offered (the
    incentive cost of the actions shown, were they accepted), accepted (its first shown
    action), margin (realised, all shown actions), incentive (incentive cost of accepted
    actions) — what a strategy change's before/after effect is measured on."""
    with _registered(con, _k_actions=actions):
        return con.execute("""
            SELECT d.strategy_version, any_value(d.ts) AS ts, any_value(d.chosen_action) IS NOT NULL AS offered,
                   (SELECT coalesce(sum(x.incentive_cost), 0) FROM _k_actions x
                    WHERE list_contains(any_value(d.chosen_actions), x.action_id))::DOUBLE AS incentive_offered,
                   coalesce(bool_or(o.outcome = 'accepted' AND o.action_id = d.chosen_action), false) AS accepted,
                   coalesce(sum(o.margin), 0)::DOUBLE AS margin,
                   coalesce(sum(CASE WHEN o.outcome = 'accepted' THEN a.incentive_cost ELSE 0 END), 0)::DOUBLE
                       AS incentive,
                   count(o.decision_id) > 0 AS has_outcome
            FROM decisions d LEFT JOIN outcomes o USING (decision_id) LEFT JOIN _k_actions a ON a.action_id = o.action_id
            WHERE d.ts >= $start AND d.ts < $stop AND d.strategy_version IS NOT NULL
            GROUP BY d.seq, d.strategy_version ORDER BY d.seq""", {"start": start, "stop": stop}).df()


def versions_in(con: duckdb.DuckDBPyConnection, start: datetime, stop: datetime) -> pd.DataFrame:
    """The strategy versions that decided in the period, in the order they started, with
    the version deciding just before the period.  Columns: version, first, last, decisions,
    in_period."""
    return con.execute("""
        WITH v AS (SELECT strategy_version AS version, min(ts) AS first, max(ts) AS last,
                          count(*) FILTER (WHERE ts >= $start AND ts < $stop) AS decisions
                   FROM decisions WHERE strategy_version IS NOT NULL AND ts < $stop GROUP BY ALL)
        SELECT version, first, last, decisions, decisions > 0 AS in_period FROM v
        WHERE decisions > 0 OR version = (SELECT strategy_version FROM decisions WHERE ts < $start
                                          AND strategy_version IS NOT NULL ORDER BY seq DESC LIMIT 1)
        ORDER BY first""", {"start": start, "stop": stop}).df()


def model_offers(con: duckdb.DuckDBPyConnection, start: datetime, stop: datetime, action_id: str,
                 limit: int = 200) -> pd.DataFrame:
    """The newest shown offers of one action in the period, with their outcome: decision_id,
    ts, channel, propensity, outcome (NULL: none reported yet)."""
    return con.execute("""
        SELECT c.decision_id, c.ts, c.channel, c.propensity, o.outcome FROM candidates c
        LEFT JOIN outcomes o ON o.decision_id = c.decision_id AND o.action_id = c.action_id
        WHERE c.selected AND c.action_id = $a AND c.ts >= $start AND c.ts < $stop
        ORDER BY c.ts DESC LIMIT $k""", {"a": action_id, "start": start, "stop": stop, "k": int(limit)}).df()
