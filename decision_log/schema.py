"""The decision log's tables (DuckDB).  All SQL of Klartext lives in this package.

``decisions`` / ``candidates``
    One row per decision, and one row for every action of the catalog in every decision
    (several per action where an imported source has them).  Their columns are defined in
    :mod:`decision_log.record`, which generates their DDL here; the meanings are in
    ``docs/decision-record.md``.
``outcomes``
    What happened after a decision: ``outcome`` (accepted / rejected / ignored / none),
    ``revenue``, realised ``margin`` and ``churned`` (per decision, the same on its rows).
``strategies`` / ``models``
    Every strategy text and model artifact a decision refers to, by version.
``explanations``
    Cached attributions, keyed by (``decision_id``, ``action_id``, ``model_version``):
    the algorithm, library versions and background fingerprint that produced them, the
    model's logged and re-scored propensity, base value and per-feature attributions in
    log-odds (lists in ``features`` order), the additivity residual, and a ``seal`` (SHA-256 of
    the row, checked by ``verify``).  Derived data: not part of the hash chain, safe to delete
    (it is recomputed on demand), and always recomputed and compared when a decision is shown.
``stages``
    The stages imported logs brought (name, stage group, order in the source's flow), one
    row per stage name; Klartext's own stages are fixed in code (:mod:`decision_log.stages`).
``chain``
    The hash chain: per decision the SHA-256 of its row and all its candidate rows, and the
    chained hash over all earlier decisions.
"""

from __future__ import annotations

import time
import warnings

import duckdb
import pyarrow as pa

from decision_log import record

SCHEMA_VERSION = 1

DDL = [
    """
    CREATE TABLE IF NOT EXISTS meta (
        key VARCHAR PRIMARY KEY,
        value VARCHAR
    )
    """,
    *record.create_table("decisions"),
    *record.create_table("candidates"),
    """
    CREATE TABLE IF NOT EXISTS outcomes (
        decision_id VARCHAR NOT NULL,
        action_id VARCHAR,
        outcome VARCHAR NOT NULL,
        revenue DOUBLE,
        margin DOUBLE,
        churned BOOLEAN,
        ts TIMESTAMPTZ NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS strategies (
        version VARCHAR PRIMARY KEY,
        name VARCHAR NOT NULL,
        text VARCHAR NOT NULL,
        first_used TIMESTAMPTZ NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS models (
        version VARCHAR NOT NULL,
        action_id VARCHAR NOT NULL,
        algorithm VARCHAR NOT NULL,
        features VARCHAR[] NOT NULL,
        training_fingerprint VARCHAR NOT NULL,
        metrics JSON NOT NULL,
        artifact BLOB NOT NULL,
        format VARCHAR NOT NULL,
        created TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (version, action_id)
    )
    """,
    # how a model reads its input (NULL: the float model matrix); added after schema 1's first release
    "ALTER TABLE models ADD COLUMN IF NOT EXISTS input JSON",
    # SHA-256 (hex) of the artifact's bytes, checked before the artifact is deserialised
    "ALTER TABLE models ADD COLUMN IF NOT EXISTS artifact_sha256 VARCHAR",
    """
    CREATE TABLE IF NOT EXISTS explanations (
        decision_id VARCHAR NOT NULL,
        action_id VARCHAR NOT NULL,
        model_version VARCHAR NOT NULL,
        algorithm VARCHAR NOT NULL,
        output VARCHAR NOT NULL,
        library VARCHAR NOT NULL,
        background VARCHAR,
        features VARCHAR[] NOT NULL,
        x DOUBLE[] NOT NULL,
        attributions DOUBLE[] NOT NULL,
        base_value DOUBLE NOT NULL,
        raw_output DOUBLE NOT NULL,
        residual DOUBLE NOT NULL,
        propensity_logged DOUBLE,
        propensity_rescored DOUBLE NOT NULL,
        created TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (decision_id, action_id, model_version)
    )
    """,
    # SHA-256 of the row's content (decision_log.explanations.seal); added after schema 1's first release
    "ALTER TABLE explanations ADD COLUMN IF NOT EXISTS seal VARCHAR",
    # the input values of a row in a log that seals inputs (decision_log.subjects); x is then empty
    "ALTER TABLE explanations ADD COLUMN IF NOT EXISTS x_sealed VARCHAR",
    # rows of an older release have no seal: derived data, recomputed (and sealed) on demand
    "DELETE FROM explanations WHERE seal IS NULL",
    # the stages of imported logs (decision_log.stages): name, group and place in the flow
    """
    CREATE TABLE IF NOT EXISTS stages (
        source VARCHAR NOT NULL,
        stage VARCHAR PRIMARY KEY,
        stage_group VARCHAR,
        stage_order INTEGER
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS chain (
        seq BIGINT NOT NULL,
        decision_id VARCHAR NOT NULL,
        record_hash VARCHAR NOT NULL,
        chain_hash VARCHAR NOT NULL
    )
    """,
]

#: Columns of ``decisions`` / ``candidates`` in the order the record hash reads them.
DECISION_HASH_COLUMNS = record.hash_columns("decisions")
CANDIDATE_HASH_COLUMNS = record.hash_columns("candidates")


def while_locked(open_file, wait_s: float):
    """``open_file()``, tried again every 50 ms for up to ``wait_s`` while another process
    holds the file (DuckDB's lock)."""
    end = time.monotonic() + wait_s
    while True:
        try:
            return open_file()
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() >= end:
                raise
            time.sleep(0.05)


def candidate_order(con: duckdb.DuckDBPyConnection) -> str:
    """``ORDER BY`` terms that read a decision's candidate rows in their logged order (a
    read-only log of an earlier release has no ``ordinal``: its rows are in ``action_id``
    order, one per action)."""
    return "decision_id, ordinal" if has_column(con, "candidates", "ordinal") else "decision_id, action_id"


def has_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether the log has ``table`` (a log of an earlier release may lack newer ones)."""
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]
                            ).fetchall()[0][0])


def has_column(con: duckdb.DuckDBPyConnection, table: str, column: str) -> bool:
    """Whether ``table`` has ``column`` (a read-only log of an earlier release may lack it)."""
    return bool(con.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = ? AND "
                            "column_name = ?", [table, column]).fetchall()[0][0])


def arrow_of(result: duckdb.DuckDBPyConnection) -> pa.Table:
    """An executed query's result as Arrow.  ``execute`` binds a query once where ``con.sql``
    binds it twice (~2 ms on a small batch); the extra copy DuckDB warns about is cheaper."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Arrow output on a DB-API result")
        return result.to_arrow_table()


#: The statements that insert a chained batch (:class:`decision_log.rows.Chained`): its tables
#: by the names :func:`execute_over` gives them; candidates by name, their Arrow types are the table's.
INSERT_CHAINED = ("INSERT INTO decisions SELECT * FROM _k_dec; INSERT INTO candidates BY NAME SELECT * FROM _k_cand; "
                  "INSERT INTO chain BY NAME SELECT * FROM _k_chain")


def execute_over(con: duckdb.DuckDBPyConnection, sql: str, *, _k_dec: pa.Table | None = None,
                 _k_cand: pa.Table | None = None, _k_chain: pa.Table | None = None,
                 _k_part: pa.Table | None = None) -> duckdb.DuckDBPyConnection:
    """Execute ``sql``, which reads the Arrow tables given here by the names of these
    parameters: DuckDB's replacement scan finds them among this function's locals.  Not
    ``con.register``: a registered view keeps its table alive until the transaction ends,
    which in a one-transaction import holds every part of the file in memory."""
    return con.execute(sql)
