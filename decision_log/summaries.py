"""Summaries of the log kept at write time, so the dashboard's figures do not grow with it.

The Overview's and the Funnel's figures are sums over days.  A writer keeps, per day (UTC),
the sums those pages need — decisions per channel, strategy version and whether an action was
chosen (with the churn of those with an outcome); contacts and their outcomes per channel,
issue, group and action; candidate rows per stage and rule; how far each decision got; the
best selected propensity — in the ``summary_*`` tables, which are sealed like every other
table (:mod:`decision_log.seals`).  Each refresh (:func:`refresh`, run by a writer when it
closes the log, by batch jobs after their last write, and by the service every few minutes)
records up to which decision position and which outcome write it counted; only the days
with decisions or outcomes after that are recomputed.

A reader (:func:`rows`) never trusts a summary further than it reaches: the days touched by
decisions or outcomes the last refresh did not count are computed from the rows, in the same
statement, by the same SQL that fills the tables — so a figure from summaries equals the
figure computed from the rows, at any moment (tested against the raw queries).  ``verify``
recomputes every day's summary from the rows it counted and names a day whose stored sums
differ (:func:`check`).

**Shards.**  A log whose older decisions are in shards (:mod:`decision_log.shards`: archived,
or sealed from service workers) keeps one set of summaries in its head file, counted over the
whole log — the head's rows and every kept shard's (:class:`Rows`).  Positions (``seq``) are the
log's, so a decision counted before it was archived stays counted; an outcome in a shard (a
worker's) counts as logged with its shard's last decision.  A reader of the whole log (the
view :func:`decision_log.shards.reader` lays over head, shards and running workers) reads the
stored sums and computes the rest from the rows as above; a writable head, which sees only
its own file's rows, computes from those.  A purge recomputes the days of the shards it
deletes in the transaction that seals its record.

Where summaries cannot stand in for the rows, readers compute from the rows: a writable head
with shards, a log that was never refreshed (an earlier release's, opened read-only), and the
funnel for several issues at once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import duckdb

from decision_log import seals, stages
from decision_log.schema import has_table

#: The day of a row: its time's date in UTC (as the dashboard's period filters).
DAY = "timezone('UTC', {t}.ts)::DATE"

#: kind → (table, key columns, sum columns with how two rows combine)
KINDS: dict[str, tuple[list[str], list[tuple[str, str]]]] = {
    # decisions per channel, strategy version and reach, with the churn of those with an outcome
    "decisions": (["channel", "strategy_version", "reached"],
                  [("decisions", "sum"), ("first_ts", "min"), ("last_ts", "max"), ("with_outcome", "sum"),
                   ("churn_known", "sum"), ("churned", "sum")]),
    # contacts (a selected action of a decision, once) and their outcomes
    "contacts": (["channel", "issue", "group", "action_id"],
                 [("contacts", "sum"), ("with_outcome", "sum"), ("accepted", "sum"), ("revenue", "sum"),
                  ("margin", "sum"), ("propensity", "sum"), ("churn_known", "sum"), ("churned", "sum")]),
    # candidate rows per stage and rule
    "stages": (["channel", "issue", "stage", "rule"], [("rows", "sum")]),
    # decisions with at least one row at a stage (level 'stage') or stage group ('group'), per
    # issue and over all issues (issue NULL, scope 'all')
    "reach": (["channel", "scope", "issue", "level", "key"], [("decisions", "sum")]),
    # decisions by the order of the deepest stage any of their rows reached (per issue / all)
    "depth": (["channel", "scope", "issue", "depth"], [("decisions", "sum")]),
    # decisions by their best selected propensity, in hundredths (NULL: nothing selected)
    "best": (["channel", "bucket"], [("decisions", "sum")]),
    # candidates each model version scored, and when (the Models page)
    "models": (["action_id", "model_version"], [("scored", "sum"), ("first_ts", "min"), ("last_ts", "max")]),
}

_TYPES = {"channel": "VARCHAR", "strategy_version": "VARCHAR", "reached": "BOOLEAN", "issue": "VARCHAR",
          "group": "VARCHAR", "action_id": "VARCHAR", "stage": "VARCHAR", "rule": "VARCHAR", "scope": "VARCHAR",
          "level": "VARCHAR", "key": "VARCHAR", "depth": "INTEGER", "model_version": "VARCHAR", "bucket": "INTEGER", "first_ts": "TIMESTAMPTZ",
          "last_ts": "TIMESTAMPTZ", "revenue": "DOUBLE", "margin": "DOUBLE", "propensity": "DOUBLE"}

#: What the summaries hold (their tables' columns and how they are counted).  A later release
#: that changes them raises it and keeps its own tables (``summary_<kind>_<FORMAT>``): the days
#: of a log summarised under another format are then computed from the rows until a writer
#: refreshes them.
FORMAT = 2


def _q(name: str) -> str:
    return f'"{name}"'


def table(kind: str) -> str:
    return f"summary_{kind}"


DDL = [
    """
    CREATE TABLE IF NOT EXISTS summary_refreshes (
        refresh BIGINT NOT NULL,
        upto_seq BIGINT NOT NULL,
        upto_outcome BIGINT NOT NULL,
        stage_key VARCHAR NOT NULL,
        days INTEGER NOT NULL,
        ts TIMESTAMPTZ NOT NULL,
        seal_seq BIGINT
    )
    """,
    "CREATE TABLE IF NOT EXISTS summary_days (refresh BIGINT NOT NULL, day DATE NOT NULL, seal_seq BIGINT)",
    *[f"CREATE TABLE IF NOT EXISTS {table(k)} (refresh BIGINT NOT NULL, day DATE NOT NULL, "
      + ", ".join(f"{_q(c)} {_TYPES.get(c, 'BIGINT')}" for c in keys + [s for s, _ in sums]) + ", seal_seq BIGINT)"
      for k, (keys, sums) in KINDS.items()],
]

#: The summary tables and the columns a row's seal digest reads (see :mod:`decision_log.seals`).
SEALED: dict[str, list[str]] = {
    "summary_refreshes": ["refresh", "upto_seq", "upto_outcome", "stage_key", "days", "epoch_us(ts)"],
    "summary_days": ["refresh", "day::VARCHAR"],
    **{table(k): ["refresh", "day::VARCHAR"] + [
        f"epoch_us({_q(c)})" if c.endswith("_ts") else _q(c) for c in keys + [s for s, _ in sums]]
       for k, (keys, sums) in KINDS.items()},
}


def _values(con: duckdb.DuckDBPyConnection) -> str:
    """The stage order as a SQL ``VALUES`` list (what the depth and group sums join)."""
    return stages.order_values(stages.known(con))


def stage_key(con: duckdb.DuckDBPyConnection) -> str:
    """A fingerprint of what the sums were counted under: this release's :data:`FORMAT` and
    the stage order (the depth and group sums depend on it)."""
    return hashlib.sha256(f"{FORMAT}|{_values(con)}".encode()).hexdigest()[:16]


# -- what one set of days sums to, from the rows ----------------------------------------------------


def _compute(kind: str, stage_values: str) -> str:
    """SQL for ``kind``'s rows (columns: day, keys, sums) of the days in ``_days(day)``,
    counting decisions with ``seq <= $upto_seq`` and outcomes with ``seal_seq <= $upto_out``
    (NULL bounds: everything).  Needs the CTEs of :func:`_scope`."""
    if kind == "decisions":
        return """
            SELECT d.day, d.channel, d.strategy_version, d.reached, count(*) AS decisions, min(d.ts) AS first_ts,
                   max(d.ts) AS last_ts, count(o.decision_id) AS with_outcome, count(o.churned) AS churn_known,
                   count(*) FILTER (WHERE o.churned) AS churned
            FROM _d d LEFT JOIN (SELECT decision_id, any_value(churned) AS churned FROM _o GROUP BY decision_id) o
                 USING (decision_id)
            GROUP BY ALL"""
    if kind == "contacts":
        return """
            SELECT s.day, s.channel, s.issue, s."group", s.action_id, count(*) AS contacts,
                   count(o.outcome) AS with_outcome, count(*) FILTER (WHERE o.outcome = 'accepted') AS accepted,
                   sum(o.revenue) AS revenue, sum(o.margin) AS margin, sum(s.propensity) AS propensity,
                   count(o.churned) AS churn_known, count(*) FILTER (WHERE o.churned) AS churned
            FROM (SELECT decision_id, day, channel, issue, "group", action_id, max(propensity) AS propensity
                  FROM _c WHERE selected GROUP BY ALL) s
                 LEFT JOIN _o o ON o.decision_id = s.decision_id AND o.action_id = s.action_id
            GROUP BY ALL"""
    if kind == "stages":
        return "SELECT day, channel, issue, stage, rule, count(*) AS rows FROM _c GROUP BY ALL"
    if kind == "reach":
        return f"""
            WITH m(stage, stage_group) AS (SELECT stage, stage_group FROM (VALUES {stage_values}) v(stage, stage_group,
                                                                                                 o, l)),
            p AS (SELECT DISTINCT c.decision_id, c.day, c.channel, c.issue, c.stage, coalesce(m.stage_group, c.stage) AS g
                  FROM _c c LEFT JOIN m USING (stage))
            SELECT day, channel, 'issue' AS scope, issue, 'stage' AS level, stage AS key,
                   count(DISTINCT decision_id) AS decisions FROM p GROUP BY ALL
            UNION ALL SELECT day, channel, 'issue', issue, 'group', g, count(DISTINCT decision_id) FROM p GROUP BY ALL
            UNION ALL SELECT day, channel, 'all', NULL, 'stage', stage, count(DISTINCT decision_id) FROM p GROUP BY ALL
            UNION ALL SELECT day, channel, 'all', NULL, 'group', g, count(DISTINCT decision_id) FROM p GROUP BY ALL"""
    if kind == "depth":
        return f"""
            WITH m(stage, stage_order) AS (SELECT stage, o FROM (VALUES {stage_values}) v(stage, g, o, l)),
            p AS (SELECT c.decision_id, c.day, c.channel, c.issue, max(m.stage_order) AS depth
                  FROM _c c LEFT JOIN m USING (stage) GROUP BY ALL)
            SELECT day, channel, 'issue' AS scope, issue, depth, count(*) AS decisions FROM p GROUP BY ALL
            UNION ALL
            SELECT day, channel, 'all', NULL, depth, count(*)
            FROM (SELECT day, channel, max(depth) AS depth FROM p GROUP BY decision_id, day, channel) GROUP BY ALL"""
    if kind == "best":
        # the bucket b holds b/100 <= best < (b+1)/100, exactly as the comparison `best < low`
        # decides it for every low of k/100 (floor alone can round a value just below k/100 up)
        return """
            WITH b AS (SELECT decision_id, day, channel, max(propensity) FILTER (WHERE selected) AS best
                       FROM _c GROUP BY ALL),
            f AS (SELECT day, channel, best, least(greatest(floor(best * 100), -1), 101)::INTEGER AS b0 FROM b)
            SELECT day, channel, b0 - (best < b0 / 100)::INTEGER + (best >= (b0 + 1) / 100)::INTEGER AS bucket,
                   count(*) AS decisions
            FROM f GROUP BY ALL"""
    if kind == "models":
        return """
            SELECT day, action_id, model_version, count(*) AS scored, min(ts) AS first_ts, max(ts) AS last_ts
            FROM _c WHERE model_version IS NOT NULL AND propensity IS NOT NULL GROUP BY ALL"""
    raise ValueError(kind)


def _scope(days: str, rows: Rows) -> str:
    """CTEs ``_d`` (decisions), ``_c`` (candidates), ``_o`` (outcomes) of the days that
    ``days`` (a SQL condition on ``day``) admits between ``$lo`` and ``$hi``, within the
    bounds ``$upto_seq`` and ``$upto_out`` (and, where not NULL, the positions ``$from_seq``
    to ``$to_seq``: a part of a large day, see :func:`_sums`), each with its ``day``."""
    return f"""
        _d AS (SELECT * FROM (
                   SELECT d.decision_id, {DAY.format(t='d')} AS day, d.ts, d.channel, d.strategy_version,
                          d.chosen_action IS NOT NULL AS reached
                   FROM {rows.decisions} d
                   WHERE d.ts >= $lo AND d.ts < $hi AND ($upto_seq IS NULL OR d.seq <= $upto_seq)
                         AND ($from_seq IS NULL OR d.seq BETWEEN $from_seq AND $to_seq))
               WHERE {days}),
        _c AS (SELECT * FROM (SELECT c.*, {DAY.format(t='c')} AS day FROM {rows.candidates} c
                              WHERE c.ts >= $lo AND c.ts < $hi)
               WHERE {days} AND ($upto_seq IS NULL AND $from_seq IS NULL
                                 OR decision_id IN (SELECT decision_id FROM _d))),
        _o AS (SELECT o.* FROM {rows.outcomes} o SEMI JOIN _d USING (decision_id)
               WHERE ($upto_out IS NULL OR CASE WHEN o.k_upto IS NULL THEN o.seal_seq <= $upto_out
                                                ELSE o.k_upto <= $upto_seq END))"""


def _computed(kind: str, stage_values: str, days: str, rows: Rows) -> str:
    return f"WITH {_scope(days, rows)} SELECT * FROM ({_compute(kind, stage_values)})"


#: Decisions counted by one statement: a larger set of days (a nightly batch of millions on
#: one day) is counted in parts of consecutive positions, and the parts' sums combined.
PART = 250_000


def _parts(con: duckdb.DuckDBPyConnection, rows: Rows, params: dict) -> list[dict]:
    """The parts in which the days of ``params`` (``$lo`` … ``$hi``, ``$chunk``) are counted:
    one (no bounds) where they hold at most :data:`PART` decisions, else runs of consecutive
    positions, each with the time span of its decisions (so that each part reads only its
    stretch of candidate rows)."""
    n, first = con.execute(f"SELECT count(*), min(seq) FROM {rows.decisions} d WHERE d.ts >= $lo AND d.ts < $hi "
                           f"AND list_contains($chunk, {DAY.format(t='d')})",
                           {k: params[k] for k in ("lo", "hi", "chunk")}).fetchall()[0]
    if n <= PART:
        return [{}]
    spans = con.execute(f"""
        SELECT min(seq), max(seq), min(ts), max(ts) FROM {rows.decisions} d
        WHERE d.ts >= $lo AND d.ts < $hi AND list_contains($chunk, {DAY.format(t='d')})
        GROUP BY (seq - $first) // $part ORDER BY 1""",
                        {**{k: params[k] for k in ("lo", "hi", "chunk")}, "first": first, "part": PART}).fetchall()
    return [{"from_seq": a, "to_seq": b, "lo": max(t0, params["lo"]), "hi": min(t1 + timedelta(microseconds=1),
                                                                                    params["hi"])}
            for a, b, t0, t1 in spans]


@contextmanager
def _sums(con: duckdb.DuckDBPyConnection, kind: str, stage_values: str, days: str, rows: Rows, params: dict,
          parts: list[dict]) -> Iterator[tuple[str, dict]]:
    """(SQL, its parameters) for ``kind``'s sums (columns: day, keys, sums) of ``days``:
    :func:`_computed` where one part counts them; else each part counted into a temporary
    table and the parts' rows combined as :data:`KINDS` says (sum, min, max) — a day's sums
    are the same whichever way its decisions are split, since each decision is in one part."""
    sql = _computed(kind, stage_values, days, rows)
    base = {"from_seq": None, "to_seq": None, **params}
    if len(parts) == 1:
        yield sql, {**base, **parts[0]}
        return
    keys, sums = KINDS[kind]
    part = f"k_part_{kind}"
    for i, bounds in enumerate(parts):
        p = {**base, **bounds}
        con.execute((f"CREATE OR REPLACE TEMP TABLE {part} AS " if i == 0 else f"INSERT INTO {part} ") + sql,
                    {k: v for k, v in p.items() if re.search(rf"\${k}\b", sql)})
    try:
        cols = ", ".join(["day", *map(_q, keys), *[f"{how}({_q(c)}) AS {_q(c)}" for c, how in sums]])
        yield f"SELECT {cols} FROM {part} GROUP BY ALL", {}
    finally:
        con.execute(f"DROP TABLE IF EXISTS {part}")


def _bounds(day_list: list[date]) -> dict:
    lo = datetime.combine(min(day_list), datetime.min.time(), UTC)
    hi = datetime.combine(max(day_list), datetime.min.time(), UTC) + timedelta(days=1)
    return {"lo": lo, "hi": hi}


# -- the state of the summaries --------------------------------------------------------------------


@dataclass(frozen=True)
class State:
    upto_seq: int
    upto_outcome: int
    stage_key: str
    refreshes: int


#: Readers use the summaries (a benchmark turns this off to time the same pages from the rows).
ENABLED = True

#: The view of every outcome of a sharded log with where it is kept (``k_upto``, see :class:`Rows`),
#: which :func:`decision_log.shards.reader` lays beside its ``outcomes``.
READER_OUTCOMES = "k_summary_outcomes"
#: ``k_upto`` of an outcome that no refresh has counted yet (a running worker's).
NOT_YET = 9223372036854775807


@dataclass(frozen=True)
class Rows:
    """The rows the summaries count, as SQL relations: ``decisions`` and ``candidates`` (the
    whole log's), and ``outcomes`` with a column ``k_upto``: NULL for an outcome in the head
    file (counted by a refresh that reached its seal position), else the position of the last
    decision of the shard that holds it (counted by a refresh that reached that decision:
    a shard is sealed whole, after every decision before it)."""

    decisions: str = "decisions"
    candidates: str = "candidates"
    outcomes: str = "(SELECT *, NULL::BIGINT AS k_upto FROM outcomes)"


def _reader_of_shards(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``con`` is a reader of a whole sharded log (not a cursor on its head file)."""
    return bool(con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = ? AND database_name = "
                            "current_database()", [READER_OUTCOMES]).fetchall()[0][0])


def rows_of(con: duckdb.DuckDBPyConnection) -> Rows:
    """The rows a reader's connection counts: a file's own tables, or a sharded log's views."""
    return Rows(outcomes=READER_OUTCOMES) if _reader_of_shards(con) else Rows()


def kept(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the log has the summary tables (a log of an earlier release may lack them)."""
    return has_table(con, "summary_refreshes")


def usable(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether this connection's log keeps summaries that stand for the rows it reads: it has
    the tables, and reads either one file of its own or a whole sharded log."""
    if not ENABLED or not kept(con):
        return False
    if _reader_of_shards(con):
        return True
    # a head file (writable, or a cursor on it) whose older decisions are in shards: its sums
    # count those too, its rows do not; a view of decisions that is not a reader's: not ours
    return not con.execute(
        "SELECT (SELECT count(*) FROM duckdb_views() WHERE view_name = 'decisions' AND NOT internal) "
        "+ (SELECT count(*) FROM meta WHERE starts_with(key, 'shard:'))").fetchall()[0][0]


def state(con: duckdb.DuckDBPyConnection) -> State:
    row = con.execute("SELECT coalesce(max(upto_seq), 0), coalesce(max(upto_outcome), 0), arg_max(stage_key, refresh), "
                      "count(*) FROM summary_refreshes").fetchall()[0]
    return State(int(row[0]), int(row[1]), row[2] or "", int(row[3]))


#: An outcome that the refresh up to decision ``$s`` and outcome write ``$o`` did not count.
_NOT_COUNTED = "CASE WHEN k_upto IS NULL THEN seal_seq IS NULL OR seal_seq > $o ELSE k_upto > $s END"


def stale_days(con: duckdb.DuckDBPyConnection, st: State, key: str | None = None,
               rows: Rows | None = None) -> list[date] | None:
    """The days whose stored sums do not count every decision and outcome (None: all days —
    never refreshed, or the stage order changed since)."""
    if not st.refreshes or (key or stage_key(con)) != st.stage_key:
        return None
    r = rows or rows_of(con)
    found = con.execute(f"""
        SELECT DISTINCT {DAY.format(t='d')} FROM {r.decisions} d WHERE d.seq > $s
        UNION
        SELECT DISTINCT {DAY.format(t='d')} FROM {r.decisions} d
        SEMI JOIN (SELECT decision_id FROM {r.outcomes} WHERE {_NOT_COUNTED}) USING (decision_id)
        ORDER BY 1""", {"s": st.upto_seq, "o": st.upto_outcome}).fetchall()
    return [x[0] for x in found]


# -- keeping them ----------------------------------------------------------------------------------


def refresh(con: duckdb.DuckDBPyConnection, in_transaction: bool = False, rows: Rows | None = None,
            also: list[date] | None = None) -> int:
    """Recompute the summaries of every day with decisions or outcomes the last refresh did not
    count (and the days ``also``: a purge's), counting ``rows`` (default: the connection's
    own tables), as one sealed write per table, in one transaction (the caller's with
    ``in_transaction``).  Returns how many days were refreshed (0: nothing new)."""
    with seals.transaction(con, in_transaction):
        return _refresh(con, rows or Rows(), also or [])


def _refresh(con: duckdb.DuckDBPyConnection, rows: Rows, also: list[date]) -> int:
    st = state(con)
    key = stage_key(con)
    top_seq = con.execute(f"SELECT coalesce(max(seq), 0) FROM {rows.decisions}").fetchall()[0][0]
    top_out = con.execute("SELECT coalesce(max(seal_seq), 0) FROM outcomes").fetchall()[0][0]
    days = stale_days(con, st, key, rows)
    if days is None:
        days = [r[0] for r in con.execute(f"SELECT DISTINCT {DAY.format(t='d')} FROM {rows.decisions} d "
                                          "ORDER BY 1").fetchall()]
    elif also:
        days = sorted(set(days) | set(also))
    if not days and st.refreshes:
        return 0
    rid = con.execute("SELECT coalesce(max(refresh), 0) + 1 FROM summary_refreshes").fetchall()[0][0]
    values = _values(con)
    with seals.sealed_write(con, "summary_refreshes", in_transaction=True, tables=_SEAL_TABLES) as seq:
        con.execute("INSERT INTO summary_refreshes VALUES (?, ?, ?, ?, ?, now(), ?)",
                    [rid, top_seq, top_out, key, len(days), seq])
    if not days:
        return 0
    with seals.sealed_write(con, "summary_days", in_transaction=True, tables=_SEAL_TABLES) as seq:
        con.execute("INSERT INTO summary_days SELECT ?, unnest(?::DATE[]), ?", [rid, days, seq])
    # a week at a time: a first refresh of a large log (or one after a format change) would
    # otherwise hold every day's groups in memory at once (10M decisions: over 4 GB)
    for i in range(0, len(days), CHUNK_DAYS):
        chunk = days[i:i + CHUNK_DAYS]
        params = {**_bounds(chunk), "upto_seq": None, "upto_out": None, "chunk": chunk}
        parts = _parts(con, rows, params)
        for kind in KINDS:
            with _sums(con, kind, values, "list_contains($chunk, day)", rows, params, parts) as (sql, p), \
                    seals.sealed_write(con, table(kind), in_transaction=True, tables=_SEAL_TABLES) as seq:
                text = f"INSERT INTO {table(kind)} BY NAME SELECT {rid} AS refresh, *, {seq} AS seal_seq FROM ({sql})"
                con.execute(text, {k: v for k, v in p.items() if re.search(rf"\${k}\b", text)})
    return len(days)


CHUNK_DAYS = 7  #: days summarised by one statement


_SEAL_TABLES = {**seals.TABLES, **SEALED}


# -- reading them ----------------------------------------------------------------------------------


@contextmanager
def _snapshot(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """One read transaction around a reader's statements (a writer's refresh between them
    would count a day twice or not at all)."""
    try:
        con.execute("BEGIN TRANSACTION")
    except duckdb.TransactionException:  # the caller's transaction
        yield
        return
    try:
        yield
    finally:
        con.execute("COMMIT")


def query(con: duckdb.DuckDBPyConnection, kinds: str | tuple[str, ...], sql: str, params: dict,
          start: date | None = None, end: date | None = None, fetch: str = "df"):
    """Run ``sql`` over ``s_<kind>`` for each of ``kinds`` (one kind: also ``s``): that kind's
    sums per day (columns: day, keys, sums) from ``start`` to ``end`` (inclusive; None: open),
    exact for the log's rows at this moment — stored sums for the days the last refresh
    counted completely, computed from the rows for the others, in one read transaction.
    Returns the result (``fetch``: ``"df"`` a DataFrame, ``"all"`` a list of tuples), or None
    where the log keeps no summaries that stand for its rows (:func:`usable`): the caller
    computes from the rows."""
    kinds = (kinds,) if isinstance(kinds, str) else kinds
    if not usable(con) or not all(has_table(con, table(k)) for k in kinds):
        return None
    rng = "($start IS NULL OR day >= $start) AND ($end IS NULL OR day <= $end)"
    p = {**params, "start": start, "end": end, "upto_seq": None, "upto_out": None, "from_seq": None, "to_seq": None}
    with _snapshot(con):
        values = _values(con)
        rows = rows_of(con)
        stale = stale_days(con, state(con), rows=rows)
        if stale is None:  # nothing stored stands: every day from the rows
            first, last = con.execute(f"SELECT min({DAY.format(t='d')}), max({DAY.format(t='d')}) "
                                      f"FROM {rows.decisions} d").fetchall()[0]
            lo = max(filter(None, [start, first]), default=None)
            hi = min(filter(None, [end, last]), default=None)
            if lo is not None and hi is not None and lo <= hi:
                p |= _bounds([lo, hi])
        else:
            days = [d for d in stale if (start is None or d >= start) and (end is None or d <= end)]
            p["stale"] = days
            if days:
                p |= _bounds(days)
        ctes = []
        for kind in kinds:
            keys, sums = KINDS[kind]
            cols = ", ".join(_q(c) for c in ["day", *keys, *[s for s, _ in sums]])
            if stale is None:
                parts = [f"SELECT {cols} FROM ({_computed(kind, values, rng, rows)})"] if "lo" in p else []
            else:
                parts = [f"""
                    SELECT {cols} FROM {table(kind)}
                    JOIN (SELECT day, max(refresh) AS refresh FROM summary_days GROUP BY day) cur USING (day, refresh)
                    WHERE {rng} AND NOT list_contains($stale, day)"""]
                if days:
                    parts.append(f"SELECT {cols} FROM ({_computed(kind, values, 'list_contains($stale, day)', rows)})")
            if not parts:
                parts = [f"SELECT {cols} FROM {table(kind)} WHERE FALSE"]
            ctes.append(f"s_{kind} AS ({' UNION ALL '.join(parts)})")
        if len(kinds) == 1:
            ctes.append(f"s AS (SELECT * FROM s_{kinds[0]})")
        body = sql.lstrip()
        if body[:5].upper() == "WITH ":  # the caller's CTEs follow the sums'
            body = ", " + body[5:]
        text = f"WITH {', '.join(ctes)} {body}"
        cur = con.execute(text, {k: v for k, v in p.items() if re.search(rf"\${k}\b", text)})
        return cur.fetchall() if fetch == "all" else cur.df()


def check(con: duckdb.DuckDBPyConnection, after_seal: int = 0, rows: Rows | None = None) -> tuple[str, str] | None:
    """Recompute each day's current sums from the rows they counted and compare; the first
    difference (table, in words), or None.  ``after_seal``: only the refreshes sealed after
    that seal entry (an anchored verification re-reads only what came after its anchor).
    ``rows``: what the sums count (default: what the connection reads, where it reads what
    they count — see :func:`usable`)."""
    if rows is None:
        if not usable(con):
            return None
        rows = rows_of(con)
    if not kept(con) or not state(con).refreshes:
        return None
    values = _values(con)
    refreshes = con.execute("""
        SELECT r.refresh, r.upto_seq, r.upto_outcome, list(c.day ORDER BY c.day), r.stage_key
        FROM summary_refreshes r JOIN (SELECT day, max(refresh) AS refresh FROM summary_days GROUP BY day) c
             USING (refresh) WHERE r.seal_seq > ? GROUP BY ALL ORDER BY 1""", [int(after_seal)]).fetchall()
    current = stage_key(con)
    for rid, upto_seq, upto_out, days, key in refreshes:
        if key != current:
            continue  # counted under another stage order; readers recompute those days
        parts = None
        for kind, (keys, sums) in KINDS.items():
            cols = ["day", *keys, *[s for s, _ in sums]]
            sel = ", ".join(_q(c) for c in cols)
            p = {**_bounds(days), "upto_seq": upto_seq, "upto_out": upto_out, "chunk": days}
            stored = con.execute(f"SELECT {sel} FROM {table(kind)} WHERE refresh = {int(rid)} AND "
                                 "list_contains(?, day) ORDER BY ALL", [days]).fetchall()
            if parts is None:
                parts = _parts(con, rows, p)
            with _sums(con, kind, values, "list_contains($chunk, day)", rows, p, parts) as (sql, q):
                text = f"SELECT {sel} FROM ({sql}) ORDER BY ALL"
                fresh = con.execute(text, {k: v for k, v in q.items() if re.search(rf"\${k}\b", text)}).fetchall()
            diff = _first_difference(stored, fresh, cols)
            if diff:
                return table(kind), (f"the dashboard's summary {table(kind)} (refresh {rid}) does not add up to the "
                                     f"decisions and outcomes it counts: {diff}")
    return None


def _first_difference(stored: list[tuple], fresh: list[tuple], cols: list[str]) -> str | None:
    if len(stored) != len(fresh):
        return f"{len(stored)} row(s) stored, {len(fresh)} computed from the log"
    for a, b in zip(stored, fresh):
        for c, x, y in zip(cols, a, b):
            same = x == y or (isinstance(x, float) and isinstance(y, float)
                              and abs(x - y) <= 1e-9 * max(1.0, abs(x), abs(y)))
            if not same:
                return f"day {a[0]}: {c} is {x!r} there, {y!r} from the rows"
    return None
