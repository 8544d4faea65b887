"""Storage and queries for cached explanations (the ``explanations`` table).

Attributions are derived data: they are keyed by (decision, action, model version), written
once and read back instead of being recomputed.  A log opened read-only (e.g. the dashboard
sharing a finished log) cannot store them; :func:`writable` says whether this connection can.

Every row carries a ``seal``: the SHA-256 of its content (:func:`seal`), checked by
``klartext verify`` and whenever a stored row is read.  A row edited without recomputing it
is caught there; one whose seal was recomputed too is caught when it is shown, because a
decision's explanation is always recomputed from the pinned model on display and compared
with the stored row (see :mod:`explain.api`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from decision_log import schema
from decision_log.subjects import SubjectKeys

COLUMNS = [
    "decision_id", "action_id", "model_version", "algorithm", "output", "library", "background",
    "features", "x", "attributions", "base_value", "raw_output", "residual",
    "propensity_logged", "propensity_rescored", "created", "seal", "x_sealed",
]
#: The columns a seal covers (``created`` is when, not what).
SEALED = COLUMNS[:15] + ["x_sealed"]


def seal(decision_id: str, action_id: str, model_version: str, algorithm: str, output: str, library: str,
         background: str | None, features: Sequence[str], x: Iterable[float], attributions: Iterable[float],
         base_value: float, raw_output: float, residual: float, propensity_logged: float | None,
         propensity_rescored: float, x_sealed: str | None = None) -> str:
    """SHA-256 (hex) of one explanation row: each text length-prefixed, the numbers as
    little-endian float64 (a missing logged propensity as NaN); in a log that seals its
    inputs, ``x`` is empty and ``x_sealed`` (the input values sealed under the customer's
    key, :mod:`decision_log.subjects`) follows."""
    h = hashlib.sha256()
    texts = (decision_id, action_id, model_version, algorithm, output, library,
             "" if background is None else "\x01" + background, *features)
    h.update(len(texts).to_bytes(4, "little"))
    for t in texts:
        b = str(t).encode()
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    h.update(np.asarray(list(x), dtype="<f8").tobytes())
    h.update(np.asarray(list(attributions), dtype="<f8").tobytes())
    p = math.nan if propensity_logged is None else propensity_logged
    h.update(np.asarray([base_value, raw_output, residual, p, propensity_rescored], dtype="<f8").tobytes())
    if x_sealed is not None:
        h.update(b"\x01" + x_sealed.encode())
    return h.hexdigest()


def _none(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def row_seal(r: dict) -> str:
    """:func:`seal` of a row read back (a dict with :data:`SEALED` keys)."""
    return seal(*(_none(r.get(c)) if c in ("background", "propensity_logged", "x_sealed") else r[c] for c in SEALED))


def first_unsealed(con: duckdb.DuckDBPyConnection, chunk: int = 50_000) -> tuple[str, str, str] | None:
    """The first stored explanation (decision, action, problem) whose seal does not match its
    content, or None when every row is intact."""
    if not has_table(con):
        return None
    cols = ", ".join(f'"{c}"' if c != "x_sealed" or schema.has_column(con, "explanations", c) else "NULL"
                     for c in SEALED)
    offset = 0
    while True:
        rows = con.execute(f"SELECT {cols}, seal FROM explanations ORDER BY decision_id, action_id, model_version "
                           f"LIMIT {chunk} OFFSET {offset}").fetchall()
        for r in rows:
            d = dict(zip(SEALED + ["seal"], r))
            if d["seal"] is None:
                return d["decision_id"], d["action_id"], ("it has no seal (written outside Klartext, or by a "
                                                          "release before seals: opening the log writable "
                                                          "drops such rows, which are recomputed on demand)")
            if row_seal(d) != d["seal"]:
                return d["decision_id"], d["action_id"], "its content was changed since it was computed"
        if len(rows) < chunk:
            return None
        offset += chunk


def has_table(con: duckdb.DuckDBPyConnection) -> bool:
    return schema.has_table(con, "explanations")


def writable(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether explanations can be stored through this connection."""
    if not has_table(con):
        return False
    try:
        return not con.execute("SELECT readonly FROM duckdb_databases() WHERE database_name = current_database()"
                               ).fetchall()[0][0]
    except duckdb.Error:
        return False


def fetch(con: duckdb.DuckDBPyConnection, keys: pd.DataFrame, table_known: bool = False) -> pd.DataFrame:
    """Stored explanations for ``keys`` (columns decision_id, action_id, model_version);
    ``table_known``: the caller has checked that the log has an explanations table."""
    if keys.empty or not (table_known or has_table(con)):
        return pd.DataFrame(columns=COLUMNS)
    ids = keys["decision_id"].unique()
    if len(ids) == 1:  # one decision (a page view): a plain filter, no join, rows without .df()
        result = con.execute("SELECT * FROM explanations WHERE decision_id = ?", [str(ids[0])])
        wanted = set(zip(keys["action_id"], keys["model_version"]))
        cols = [c[0] for c in result.description]
        a, v = cols.index("action_id"), cols.index("model_version")
        rows = [r for r in result.fetchall() if (r[a], r[v]) in wanted]
        return pd.DataFrame.from_records(rows, columns=cols)
    con.register("_k_keys", keys[["decision_id", "action_id", "model_version"]])
    try:
        return con.execute(
            "SELECT e.* FROM explanations e SEMI JOIN _k_keys k "
            "ON e.decision_id = k.decision_id AND e.action_id = k.action_id AND e.model_version = k.model_version"
        ).df()
    finally:
        con.unregister("_k_keys")


def store(con: duckdb.DuckDBPyConnection, table: pa.Table) -> int:
    """Insert explanations (an Arrow table with :data:`COLUMNS`); rows already stored are kept."""
    if table.num_rows == 0:
        return 0
    _k_expl = table  # noqa: F841 - read by DuckDB's replacement scan
    try:
        con.execute("INSERT OR IGNORE INTO explanations SELECT " + ", ".join(f'"{c}"' for c in COLUMNS)
                    + " FROM _k_expl")
    except (duckdb.ConstraintException, duckdb.TransactionException):
        # another thread stored the same rows at the same moment (two views of one decision):
        # derived data, identical by construction, so theirs stands
        return 0
    return table.num_rows


def scored_candidates(con: duckdb.DuckDBPyConnection, decision_ids: list[str]) -> pd.DataFrame:
    """The candidates of these decisions that reached scoring, with their decision's inputs.

    Columns: decision_id, action_id, model_version, propensity, channel, customer, inputs,
    strategy_version, model_versions, source.
    """
    con.register("_k_ids", pd.DataFrame({"decision_id": list(decision_ids)}))
    try:
        return con.execute(
            """
            SELECT c.decision_id, c.action_id, c.model_version, c.propensity, d.channel, d.customer,
                   d.inputs, d.strategy_version, d.model_versions, d.source
            FROM candidates c JOIN decisions d USING (decision_id)
            WHERE c.decision_id IN (SELECT decision_id FROM _k_ids) AND c.propensity IS NOT NULL
            ORDER BY c.decision_id, c.action_id
            """
        ).df()
    finally:
        con.unregister("_k_ids")


def missing_keys(con: duckdb.DuckDBPyConnection, decision_ids: list[str]) -> list[str]:
    """Of ``decision_ids``, those with a scored candidate that has no stored explanation."""
    if not has_table(con):
        return list(decision_ids)
    con.register("_k_ids", pd.DataFrame({"decision_id": list(decision_ids)}))
    try:
        rows = con.execute(
            """
            SELECT DISTINCT c.decision_id FROM candidates c
            WHERE c.decision_id IN (SELECT decision_id FROM _k_ids) AND c.propensity IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM explanations e WHERE e.decision_id = c.decision_id
                              AND e.action_id = c.action_id AND e.model_version = c.model_version)
            """
        ).fetchall()
    finally:
        con.unregister("_k_ids")
    return [r[0] for r in rows]


# A segment is read from the explained decision's row (ten million decisions are a small join;
# their 290 million candidate rows are not), the issue from the explained candidate's.
_SEGMENTS = {
    None: "'all'",
    "channel": "d.channel",
    "issue": "c.issue",
    "day": "strftime(date_trunc('day', d.ts), '%Y-%m-%d')",
    "week": "strftime(date_trunc('week', d.ts), '%G-W%V')",
    "month": "strftime(date_trunc('month', d.ts), '%Y-%m')",
}
#: whether the explained candidate's action was shown (one of its decision's chosen actions)
_SELECTED = "list_contains(d.chosen_actions, e.action_id)"


def importance(con: duckdb.DuckDBPyConnection, action_id: str | None = None, by: str | None = None,
               selected_only: bool = False) -> pd.DataFrame:
    """Mean |attribution| (log-odds) per action model and feature over the stored explanations.

    ``by`` splits it by segment: ``channel``, ``issue``, ``day``, ``week`` or ``month``.
    Columns: action_id, segment, feature, mean_abs, mean, n (explained rows in the segment).
    """
    if by not in _SEGMENTS:
        raise ValueError(f"Unknown segment {by!r}; use one of: channel, issue, day, week, month.")
    if not has_table(con):
        return pd.DataFrame(columns=["action_id", "segment", "feature", "mean_abs", "mean", "n"])
    seg = _SEGMENTS[by]
    # (an action an imported decision lists through several components counts once)
    issue = ("JOIN (SELECT DISTINCT ON (decision_id, action_id) decision_id, action_id, issue FROM candidates "
             "SEMI JOIN explanations USING (decision_id, action_id)) c USING (decision_id, action_id)"
             if by == "issue" else "")
    # the decisions (ten million rows to probe: 0.1 s) only where a segment or the selection needs them
    decisions = "JOIN decisions d USING (decision_id)" if "d." in seg or selected_only else ""
    return con.execute(
        f"""
        WITH e AS (
            SELECT e.action_id, {seg} AS segment, unnest(e.features) AS feature,
                   unnest(e.attributions) AS phi
            FROM explanations e {decisions} {issue}
            WHERE ($action IS NULL OR e.action_id = $action) {f"AND {_SELECTED}" if selected_only else ""}
        )
        SELECT action_id, segment, feature, avg(abs(phi)) AS mean_abs, avg(phi) AS mean, count(*) AS n
        FROM e GROUP BY ALL ORDER BY action_id, segment, mean_abs DESC
        """,
        {"action": action_id},
    ).df()


def dependence(con: duckdb.DuckDBPyConnection, action_id: str, feature: str, limit: int = 5000,
               keys: SubjectKeys | None = None) -> pd.DataFrame:
    """Feature value vs attribution for one action model (columns: x, phi, channel, selected).
    Where the input values are sealed they are opened with ``keys``; an erased customer's
    rows are left out."""
    if not has_table(con):
        return pd.DataFrame(columns=["x", "phi", "channel", "selected"])
    sealed = schema.has_column(con, "explanations", "x_sealed")
    df = con.execute(
        f"""
        SELECT e.x[list_position(e.features, $f)] AS x,
               e.attributions[list_position(e.features, $f)] AS phi, d.channel, {_SELECTED} AS selected,
               e.decision_id, d.customer, list_position(e.features, $f) AS pos,
               {"e.x_sealed" if sealed else "NULL"} AS x_sealed
        FROM explanations e JOIN decisions d USING (decision_id)
        WHERE e.action_id = $action AND list_contains(e.features, $f)
        ORDER BY e.decision_id
        LIMIT $limit
        """,
        {"action": action_id, "f": feature, "limit": int(limit)},
    ).df()
    if sealed and df["x_sealed"].notna().any():
        idx = np.flatnonzero(df["x_sealed"].notna().to_numpy())
        part = df.iloc[idx]
        if keys is None:
            df.loc[df.index[idx], "x"] = np.nan
        else:
            plain = keys.open(part["customer"].tolist(), part["decision_id"].tolist(), part["x_sealed"].tolist())
            df.loc[df.index[idx], "x"] = [np.nan if p is None else json.loads(p)[int(k) - 1]
                                          for p, k in zip(plain, part["pos"])]
        df = df[df["x"].notna()]
    return df[["x", "phi", "channel", "selected"]].reset_index(drop=True)


def explained_actions(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per action: how many candidates are explained (columns: action_id, n)."""
    if not has_table(con):
        return pd.DataFrame(columns=["action_id", "n"])
    return con.execute("SELECT action_id, count(*) AS n FROM explanations GROUP BY 1 ORDER BY 1").df()
