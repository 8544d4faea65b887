"""The decision log's tables (DuckDB).  All SQL of Klartext lives in this package.

``decisions``
    One row per decision: ``seq`` (append order, the hash chain's order), ``decision_id``
    (time-sortable), ``ts``, ``customer`` (keyed HMAC pseudonym), ``channel``,
    ``direction``, ``trigger``, ``inputs`` (JSON: the features, contacts and rejections
    exactly as the engine saw them), ``strategy_version``, ``model_versions`` (JSON: action →
    model version), ``chosen_action`` (first slot, NULL for "no action"),
    ``chosen_actions`` (all selected, in slot order), ``selection_probability`` (probability
    with which ``chosen_action`` was picked, < 1 only under exploration), ``explored``,
    ``latency_us`` (engine time; in batch mode the batch time divided by its size) and
    ``source`` (``klartext`` or the importer that loaded it).
``candidates``
    One row for every action of the catalog in every decision: where it stopped
    (``stage``), the ``rule`` that removed it (NULL if it survived) and a plain-language
    ``reason`` with the tested values; for actions that reached scoring the four priority
    factors, ``priority``, ``rank`` (among those that passed every filter) and ``selected``;
    ``model_version`` of the model that scored it.  ``ts`` and ``channel`` are copied from
    the decision so funnels need no join.  ``ordinal`` (0, 1, … within a decision) is the
    row's place: the order the record hash reads the rows and every view shows them.  A
    decision made by Klartext has one row per action, in ``action_id`` order; an imported one
    keeps its source rows in file order, several per action where the source has them (a
    Pega v2 action passes several strategy components).
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

import duckdb

SCHEMA_VERSION = 1

DDL = [
    """
    CREATE TABLE IF NOT EXISTS meta (
        key VARCHAR PRIMARY KEY,
        value VARCHAR
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS decisions (
        seq BIGINT NOT NULL,
        decision_id VARCHAR NOT NULL,
        ts TIMESTAMPTZ NOT NULL,
        customer VARCHAR NOT NULL,
        channel VARCHAR NOT NULL,
        direction VARCHAR NOT NULL,
        "trigger" VARCHAR,
        inputs JSON NOT NULL,
        strategy_version VARCHAR,
        model_versions JSON,
        chosen_action VARCHAR,
        chosen_actions VARCHAR[] NOT NULL,
        selection_probability DOUBLE,
        explored BOOLEAN NOT NULL,
        latency_us BIGINT,
        source VARCHAR NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS candidates (
        decision_id VARCHAR NOT NULL,
        ts TIMESTAMPTZ NOT NULL,
        channel VARCHAR NOT NULL,
        action_id VARCHAR NOT NULL,
        issue VARCHAR,
        "group" VARCHAR,
        stage VARCHAR NOT NULL,
        rule VARCHAR,
        reason VARCHAR,
        propensity DOUBLE,
        value DOUBLE,
        context_weight DOUBLE,
        lever DOUBLE,
        priority DOUBLE,
        rank INTEGER,
        selected BOOLEAN NOT NULL,
        model_version VARCHAR
    )
    """,
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
    # a candidate row's place within its decision (0, 1, ...): the order every reader and the
    # record hash use; a decision may hold several rows of one action (Pega v2 components)
    "ALTER TABLE candidates ADD COLUMN IF NOT EXISTS ordinal INTEGER",
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
DECISION_HASH_COLUMNS = [
    "seq", "decision_id", "ts", "customer", "channel", "direction", "trigger", "inputs",
    "strategy_version", "model_versions", "chosen_action", "chosen_actions",
    "selection_probability", "explored", "latency_us", "source",
]
CANDIDATE_HASH_COLUMNS = [
    "decision_id", "ts", "channel", "action_id", "issue", "group", "stage", "rule", "reason",
    "propensity", "value", "context_weight", "lever", "priority", "rank", "selected",
    "model_version",
]


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
