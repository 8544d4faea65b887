"""Read queries over the decision log, used by the CLI and the app.

Every query takes a DuckDB connection (use a cursor per query when sharing one connection
between threads) and returns a DataFrame with the documented columns; user values are always
passed as parameters.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import pandas as pd

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
    """Every candidate of one decision, selected first, then by rank, then filtered in stage order."""
    return con.execute(
        """
        SELECT action_id, issue, "group", stage, rule, reason, propensity, value, context_weight,
               lever, priority, rank, selected, model_version
        FROM candidates
        WHERE decision_id = ?
        ORDER BY selected DESC, rank NULLS LAST,
                 list_position(['arbitration', 'incentive', 'contact', 'suitability', 'applicability',
                                'eligibility'], stage), action_id
        """,
        [decision_id],
    ).df()


def decision(con: duckdb.DuckDBPyConnection, decision_id: str) -> pd.DataFrame:
    """The ``decisions`` row of one decision (empty if unknown)."""
    return con.execute("SELECT * FROM decisions WHERE decision_id = ?", [decision_id]).df()


def stage_counts(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """How many candidates stopped at each stage (columns: stage, candidates)."""
    return con.execute(
        "SELECT stage, count(*) AS candidates FROM candidates GROUP BY stage ORDER BY candidates DESC").df()


def contact_history(
    con: duckdb.DuckDBPyConnection, customer: str, strategy: Strategy, now: datetime | None = None
) -> tuple[dict[str, int], dict[str, dict]]:
    """Contact counts per limited channel and recent rejections per action for one customer.

    A contact is a logged decision on that channel that selected an action, within the
    channel's ``period_days``; rejections are ``rejected`` outcomes within the suppression
    window.  Returns the ``contacts`` and ``rejections`` parts of a decision request.
    """
    now = now or datetime.now(UTC)
    contacts: dict[str, int] = {}
    for lim in strategy.contact_limits:
        since = now - timedelta(days=lim.period_days)
        n = con.execute(
            "SELECT count(*) FROM decisions WHERE customer = ? AND channel = ? AND ts >= ? "
            "AND chosen_action IS NOT NULL", [customer, lim.channel, since]).fetchall()[0][0]
        if n:
            contacts[lim.channel] = int(n)
    rejections: dict[str, dict] = {}
    if strategy.suppression is not None:
        since = now - timedelta(days=strategy.suppression.within_days)
        rows = con.execute(
            """
            SELECT o.action_id, count(*) AS n, max(o.ts) AS last
            FROM outcomes o JOIN decisions d USING (decision_id)
            WHERE d.customer = ? AND o.outcome = 'rejected' AND o.ts >= ? AND o.action_id IS NOT NULL
            GROUP BY o.action_id
            """, [customer, since]).fetchall()
        for action_id, n, last in rows:
            if action_id in strategy.action_ids:
                days = max(0.0, (now - last).total_seconds() / 86400)
                rejections[action_id] = {"count": int(n), "days_since_last": round(days, 3)}
    return contacts, rejections
