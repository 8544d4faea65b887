"""Import decisions made by other systems into the decision log (generic, Pega v1 / v2).

Imported decisions land in the same ``decisions`` / ``candidates`` tables, with
``source`` = the format, no strategy and no model versions (they cannot be replayed, and
the product says so), the customer pseudonymised with the log's key, and the hash chain
extended over them.  Every view that needs no re-execution works on them.

How a file is read — streaming, with bounded memory:

1. DuckDB scans the file (Parquet or CSV) into a staging table *in the log file* (on disk),
   normalising the format's columns with ``TRY_CAST``; nothing is held in pandas.
2. Rows with a missing or malformed required value are reported with file, row and column;
   their interaction is left out whole (a decision is never logged without all its
   candidates), and the rest imports.
3. Interactions already in the log (same source and interaction id) are skipped, so
   importing a file twice adds nothing.
4. Interactions are written in chunks, each chunk one transaction (decisions, all their
   candidate rows and their chain links), with a progress callback.

Formats (the column meanings of Pega's exports are in ``../shared/data/README.md``):

``pega-v1``
    The explainability extract: the arbitration stage only.  Every row reached
    arbitration; the action ranked 1 (``pxRank``) is the one selected.  The logged
    ``Priority`` is kept and checked against ``FinalPropensity × Value × ContextWeight ×
    Weight``, and ``pxRank`` against the order of priorities: inconsistent rows are reported.
``pega-v2``
    The full-funnel decision export: one row per action per interaction; ``OUTPUT`` rows are
    selected (ranked by priority), ``FILTERED_OUT`` rows stopped at ``Stage_pyStageGroup`` /
    ``Stage_pyName`` and were removed by ``pxComponentName``; Pega's stage groups map onto
    Klartext's stages (:data:`PEGA_STAGES`).
``generic``
    A documented table (``docs/import.md``): decision_id, ts, customer, channel, direction,
    action_id, issue, group, stage, rule, reason, propensity, value, context_weight, lever,
    priority, rank, selected — other column names are mapped with ``mapping``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from decision_log.store import DecisionLog, PreparedBatch
from decisioning.errors import InputError

FORMATS = ("generic", "pega-v1", "pega-v2")

#: Pega stage groups → Klartext stages (others are kept, lower-cased).
PEGA_STAGES = {
    "eligibility": "eligibility",
    "applicability": "applicability",
    "suitability": "suitability",
    "finalactionsprocessing": "contact",
    "contactpolicies": "contact",
    "arbitration": "arbitration",
    "output": "selected",
}

GENERIC_COLUMNS = ("decision_id", "ts", "customer", "channel", "direction", "action_id", "issue", "group", "stage",
                   "rule", "reason", "propensity", "value", "context_weight", "lever", "priority", "rank", "selected")
GENERIC_REQUIRED = ("decision_id", "ts", "customer", "channel", "action_id", "stage")


@dataclass
class BadRow:
    file: str
    row: int  #: 1-based data row (header not counted)
    column: str
    value: str | None
    problem: str


@dataclass
class ImportReport:
    file: str
    format: str
    rows: int = 0
    decisions_added: int = 0
    candidates_added: int = 0
    decisions_already_logged: int = 0
    bad_rows: int = 0
    decisions_left_out: int = 0  #: interactions with a bad row: left out whole, never half-written
    bad_examples: list[BadRow] = field(default_factory=list)
    inconsistent_rows: int = 0
    inconsistent_examples: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def _reader(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix == ".parquet":
        return "read_parquet($file)"
    if suffix in (".csv", ".txt", ".tsv"):
        return "read_csv($file, all_varchar = true, header = true)"
    raise InputError(f"{path}: unknown file type {suffix!r}.", "Import Parquet (.parquet) or CSV (.csv) files.")


def _columns(con, path: str) -> list[str]:
    try:
        return [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {_reader(path)}", {"file": path}).fetchall()]
    except duckdb.Error as exc:
        raise _unreadable(path, exc) from None


def _unreadable(path: str, exc: Exception) -> InputError:
    kind = "Parquet" if Path(path).suffix.lower() == ".parquet" else "CSV"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return InputError(f"{path} cannot be read as {kind}: {first}",
                      f"Check that it is a complete {kind} export (e.g. re-export it, or open it with another "
                      "tool); nothing was imported.")


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _spec(fmt: str, cols: list[str], mapping: dict[str, str], path: str) -> dict[str, str]:
    """SQL expressions (over the source row ``s``) for each normalised column, as text
    (``*_raw``) and typed."""
    def need(*names: str) -> None:
        missing = [n for n in names if n not in cols]
        if missing:
            raise InputError(f"{path}: column {missing[0]!r} is missing for format {fmt}.",
                             f"The file has: {', '.join(cols)}.")

    if fmt == "pega-v1":
        need("pxInteractionID", "pxDecisionTime", "pySubjectID", "pyName", "pyChannel", "FinalPropensity", "Value",
             "ContextWeight", "Weight", "Priority", "pxRank")
        src = {"interaction": "pxInteractionID", "ts": "pxDecisionTime", "customer": "pySubjectID",
               "channel": "pyChannel", "direction": "pyDirection", "action_id": "pyName", "issue": "pyIssue",
               "group": "pyGroup", "propensity": "FinalPropensity", "value": "Value",
               "context_weight": "ContextWeight", "lever": "Weight", "priority": "Priority", "rank": "pxRank"}
    elif fmt == "pega-v2":
        need("pxInteractionID", "pxDecisionTime", "Primary_pySubjectID", "pyName", "pxRecordType",
             "Stage_pyStageGroup")
        src = {"interaction": "pxInteractionID", "ts": "pxDecisionTime", "customer": "Primary_pySubjectID",
               "channel": "Primary_ContainerPayload_Channel", "direction": "Primary_ContainerPayload_Direction",
               "action_id": "pyName", "issue": "pyIssue", "group": "pyGroup", "propensity": "FinalPropensity",
               "value": "Value", "context_weight": "ContextWeight", "lever": "Weight", "priority": "Priority",
               "record_type": "pxRecordType", "stage_group": "Stage_pyStageGroup", "stage_name": "Stage_pyName",
               "stage_order": "Stage_pyOrder", "component": "pxComponentName", "component_type": "pxComponentType"}
    elif fmt == "generic":
        src = {c: mapping.get(c, c) for c in GENERIC_COLUMNS}
        src["interaction"] = src.pop("decision_id")
        need(*[src[c] if c != "decision_id" else src["interaction"] for c in GENERIC_REQUIRED])
    else:
        raise InputError(f"Unknown import format {fmt!r}.", f"Use one of: {', '.join(FORMATS)}.")
    return {k: (_q(v) if v in cols else "NULL") for k, v in src.items()}


_TYPES = {"ts": "TIMESTAMPTZ", "propensity": "DOUBLE", "value": "DOUBLE", "context_weight": "DOUBLE",
          "lever": "DOUBLE", "priority": "DOUBLE", "rank": "INTEGER", "stage_order": "INTEGER", "selected": "BOOLEAN"}
_REQUIRED = {"pega-v1": ("interaction", "ts", "customer", "action_id", "channel", "propensity", "value",
                         "context_weight", "lever", "priority", "rank"),
             "pega-v2": ("interaction", "ts", "customer", "action_id", "record_type", "stage_group"),
             "generic": ("interaction", "ts", "customer", "channel", "action_id", "stage")}


def import_file(log: DecisionLog, fmt: str, path: str, mapping: dict[str, str] | None = None,
                chunk: int = 20_000, progress: Callable[[int, int], None] | None = None,
                max_examples: int = 20, memory_limit: str = "1GB") -> ImportReport:
    """Import one file (see the module docstring).  Returns what was added and what was not."""
    t0 = time.perf_counter()
    if log.read_only:
        raise InputError(f"The log {log.path!r} is open read-only.", "Open it for writing to import.")
    if not Path(path).exists():
        raise InputError(f"No file at {path!r}.", "Check the path.")
    con = log.con
    cols = _columns(con, path)
    spec = _spec(fmt, cols, mapping or {}, path)
    rep = ImportReport(path, fmt)
    name = Path(path).name
    row_no = "file_row_number + 1" if _reader(path).startswith("read_parquet") else "row_number() OVER ()"
    reader = _reader(path).replace("read_parquet($file)", "read_parquet($file, file_row_number = true)")
    select = [f"{row_no} AS row_no"]
    for k, expr in spec.items():
        raw = f"CAST({expr} AS VARCHAR)"
        if k == "customer":  # pseudonymised as it is read: the raw id never reaches a table
            raw = f"{_PSEUDONYM_UDF}({raw})"
        typed = f"TRY_CAST({expr} AS {_TYPES[k]})" if k in _TYPES else raw
        if _TYPES.get(k) == "INTEGER":  # a whole number or nothing: never 1.5 rounded to 2
            typed = (f"CASE WHEN TRY_CAST({raw} AS DOUBLE) = round(TRY_CAST({raw} AS DOUBLE)) "
                     f"THEN TRY_CAST(TRY_CAST({raw} AS DOUBLE) AS INTEGER) END")
        if k == "selected":  # a stated truth value or nothing: never 'maybe' read as false
            typed = (f"CASE WHEN lower(trim({raw})) IN ('true', '1', 'yes', 't', 'y') THEN true "
                     f"WHEN lower(trim({raw})) IN ('false', '0', 'no', 'f', 'n') THEN false END")
        select += [f"{raw} AS {k}_raw", f"{typed} AS {k}"]
    con.execute("SET TimeZone = 'UTC'")  # times without a zone are read as UTC
    # bounded memory: DuckDB spills the staging table and sorts to disk beyond this
    old_limit = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    con.execute(f"SET memory_limit = '{memory_limit}'")
    log.pseudonymise([])  # a log without its key refuses here, before anything is read
    con.create_function(_PSEUDONYM_UDF, lambda ids: _pseudonyms(log, ids), [duckdb.sqltype("VARCHAR")],
                        duckdb.sqltype("VARCHAR"), type="arrow", side_effects=False)
    try:
        # staging in the temporary catalog (memory, spilled outside the log file): nothing of
        # it is written into the log, and a killed import leaves no table behind
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE _k_import AS SELECT {', '.join(select)} FROM {reader} s",
                        {"file": path})
        except (duckdb.IOException, duckdb.InvalidInputException, duckdb.ConversionException) as exc:
            raise _unreadable(path, exc) from None
        rep.rows = con.execute("SELECT count(*) FROM _k_import").fetchall()[0][0]
        # 1. bad rows: a required value missing, or a value that does not parse
        checks = []
        for k in _REQUIRED[fmt]:
            checks.append((k, f"{k} IS NULL AND {k}_raw IS NULL", "missing"))
        for k in spec:
            if k in _TYPES:
                checks.append((k, f"{k} IS NULL AND {k}_raw IS NOT NULL AND trim({k}_raw) <> ''",
                               f"not a valid {_TYPES[k].lower()}"))
        cond = " OR ".join(f"({c})" for _, c, _ in checks)
        con.execute("ALTER TABLE _k_import ADD COLUMN bad BOOLEAN")
        con.execute(f"UPDATE _k_import SET bad = ({cond})")
        rep.bad_rows = con.execute("SELECT count(*) FROM _k_import WHERE bad").fetchall()[0][0]
        if rep.bad_rows:
            for k, c, problem in checks:
                left = max_examples - len(rep.bad_examples)
                if left <= 0:
                    break
                for r, v in con.execute(f"SELECT row_no, {k}_raw FROM _k_import WHERE bad AND ({c}) "
                                        f"ORDER BY row_no LIMIT {int(left)}").fetchall():
                    src_col = spec[k].strip('"') if spec[k] != "NULL" else k
                    rep.bad_examples.append(BadRow(name, int(r), src_col, v, problem))
            rep.bad_examples.sort(key=lambda b: b.row)
        # 2. interactions, oldest first; skip those already logged (same source, same id)
        con.execute("""CREATE OR REPLACE TEMP TABLE _k_import_ids AS
            SELECT row_number() OVER (ORDER BY min(ts), interaction) AS k, interaction,
                   $prefix || interaction AS decision_id
            FROM _k_import GROUP BY interaction
            HAVING NOT bool_or(bad) AND interaction IS NOT NULL""", {"prefix": fmt + ":"})
        rep.decisions_left_out = con.execute(
            "SELECT count(DISTINCT interaction) FROM _k_import WHERE bad AND interaction IS NOT NULL").fetchall()[0][0]
        rep.decisions_already_logged = con.execute(
            "SELECT count(*) FROM _k_import_ids i SEMI JOIN decisions d USING (decision_id)").fetchall()[0][0]
        con.execute("DELETE FROM _k_import_ids WHERE decision_id IN (SELECT decision_id FROM decisions)")
        con.execute("""CREATE OR REPLACE TEMP TABLE _k_import_ids AS
            SELECT row_number() OVER (ORDER BY k) AS k, interaction, decision_id FROM _k_import_ids""")
        total = con.execute("SELECT count(*) FROM _k_import_ids").fetchall()[0][0]
        if fmt == "pega-v1":
            _check_v1(con, rep, name, max_examples)
        stage_sql, rule_sql, reason_sql, rank_sql, sel_sql = _funnel_sql(fmt)
        for start in range(0, total, chunk):
            lo, hi = start + 1, start + chunk
            cand = con.sql(f"""
                WITH r AS (
                    SELECT i.decision_id, c.*
                    FROM _k_import c JOIN _k_import_ids i USING (interaction)
                    WHERE NOT c.bad AND i.k BETWEEN $lo AND $hi)
                SELECT decision_id, min(ts) OVER (PARTITION BY decision_id) AS ts,
                       coalesce(channel, 'unknown') AS channel, action_id, issue, "group",
                       {stage_sql} AS stage, {rule_sql} AS rule, {reason_sql} AS reason,
                       propensity, value, context_weight, lever, priority, {rank_sql} AS rank,
                       {sel_sql} AS selected, NULL::VARCHAR AS model_version,
                       customer, direction
                FROM r ORDER BY decision_id, action_id""", params={"lo": lo, "hi": hi}).to_arrow_table()
            dec = con.sql("""
                SELECT decision_id, min(ts) AS ts, any_value(customer) AS customer,
                       any_value(channel) AS channel, coalesce(any_value(lower(direction)), 'unknown') AS direction,
                       list(action_id ORDER BY rank) FILTER (WHERE selected) AS chosen_actions
                FROM cand GROUP BY decision_id ORDER BY decision_id""").to_arrow_table()
            n = dec.num_rows
            chosen = [x or [] for x in dec.column("chosen_actions").to_pylist()]
            inputs = [json.dumps({"imported": {"format": fmt, "file": name,
                                               "interaction": did.split(":", 1)[1]}})
                      for did in dec.column("decision_id").to_pylist()]
            dtab = pa.table({
                "decision_id": dec.column("decision_id"),
                "ts": dec.column("ts"),
                "customer": dec.column("customer"),  # pseudonymised when it was read
                "channel": dec.column("channel"),
                "direction": dec.column("direction"),
                "trigger": pa.nulls(n, pa.string()),
                "inputs": pa.array(inputs, pa.string()),
                "strategy_version": pa.nulls(n, pa.string()),
                "model_versions": pa.nulls(n, pa.string()),
                "chosen_action": pa.array([c[0] if c else None for c in chosen], pa.string()),
                "chosen_actions": pa.array(chosen, pa.list_(pa.string())),
                "selection_probability": pa.nulls(n, pa.float64()),
                "explored": pa.array([False] * n),
                "latency_us": pa.nulls(n, pa.int64()),
                "source": pa.array([fmt] * n, pa.string()),
            })
            ctab = cand.drop_columns(["customer", "direction"])
            log.append_prepared(PreparedBatch(n, None, dtab, ctab, None))
            rep.decisions_added += n
            rep.candidates_added += ctab.num_rows
            if progress:
                progress(min(hi, total), total)
    finally:
        con.execute("DROP TABLE IF EXISTS temp._k_import")
        con.execute("DROP TABLE IF EXISTS temp._k_import_ids")
        con.remove_function(_PSEUDONYM_UDF)
        con.execute(f"SET memory_limit = '{old_limit}'")
    rep.seconds = time.perf_counter() - t0
    return rep


_PSEUDONYM_UDF = "klartext_pseudonym"


def _pseudonyms(log, ids: pa.Array) -> pa.Array:
    """The log's pseudonyms of a batch of raw ids (NULL stays NULL): DuckDB calls this as it
    reads the file, so only pseudonyms are ever stored."""
    ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    valid = ids.is_valid().to_numpy(zero_copy_only=False)
    out = np.full(len(ids), None, dtype=object)
    raw = ids.to_numpy(zero_copy_only=False)[valid]
    if len(raw):
        out[valid] = log.pseudonymise(raw)
    return pa.array(out, pa.string())


def _funnel_sql(fmt: str) -> tuple[str, str, str, str, str]:
    """stage, rule, reason, rank and selected expressions per format."""
    if fmt == "pega-v1":
        return ("CASE WHEN rank = 1 THEN 'selected' ELSE 'ranked' END", "NULL::VARCHAR", "NULL::VARCHAR", "rank",
                "rank = 1")
    if fmt == "pega-v2":
        mapping = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in PEGA_STAGES.items())
        out = "upper(record_type) = 'OUTPUT'"
        stage = (f"CASE WHEN {out} THEN 'selected' ELSE "
                 f"CASE lower(replace(stage_group, ' ', '')) {mapping} ELSE lower(stage_group) END END")
        rule = f"CASE WHEN {out} THEN NULL ELSE coalesce(component, stage_name, stage_group) END"
        reason = (f"CASE WHEN {out} THEN NULL ELSE stage_group || '/' || coalesce(stage_name, stage_group) || "
                  "' (order ' || coalesce(CAST(stage_order AS VARCHAR), '?') || '): removed by ' || "
                  "coalesce(component, 'an unnamed component') || coalesce(' (' || component_type || ')', '') END")
        rank = f"CASE WHEN {out} THEN row_number() OVER (PARTITION BY decision_id, {out} ORDER BY priority DESC NULLS LAST, action_id) END"
        return stage, rule, reason, rank, out
    return "stage", "rule", "reason", "rank", "coalesce(selected, stage = 'selected')"


def _check_v1(con, rep: ImportReport, name: str, max_examples: int) -> None:
    """The four-factor product and the ranks must agree with the logged priority."""
    q = """
        WITH x AS (
            SELECT row_no, interaction, action_id, priority, rank,
                   propensity * value * context_weight * lever AS product,
                   rank() OVER (PARTITION BY interaction ORDER BY priority DESC) AS by_priority
            FROM _k_import WHERE NOT bad)
        SELECT row_no, interaction, action_id, priority, product, rank, by_priority FROM x
        WHERE abs(priority - product) > 1e-9 * greatest(abs(priority), 1e-300) OR rank <> by_priority
        ORDER BY row_no"""
    rows = con.execute(q).fetchall()
    rep.inconsistent_rows = len(rows)
    for r in rows[:max_examples]:
        problem = []
        if abs(r[3] - r[4]) > 1e-9 * max(abs(r[3]), 1e-300):
            problem.append(f"Priority {r[3]!r} ≠ FinalPropensity × Value × ContextWeight × Weight = {r[4]!r}")
        if r[5] != r[6]:
            problem.append(f"pxRank {r[5]} but rank {r[6]} by Priority")
        rep.inconsistent_examples.append({"file": name, "row": int(r[0]), "interaction": r[1], "action": r[2],
                                          "problem": "; ".join(problem)})
