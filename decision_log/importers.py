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
4. Interactions are written in chunks of about :data:`CHUNK_ROWS` rows (never splitting an
   interaction), each chunk one transaction (decisions, all their candidate rows in file
   order, their chain links and any outcomes), with a progress callback.

Formats (the column meanings of Pega's exports are in ``docs/import.md``):

``pega-v1``
    The explainability extract: the arbitration stage only.  Every row reached
    arbitration; the action ranked 1 (``pxRank``) is the one selected.  The logged
    ``Priority`` is kept and checked against ``FinalPropensity × Value × ContextWeight ×
    Weight``, and ``pxRank`` against the order of priorities: inconsistent rows are reported.
``pega-v2``
    The full-funnel decision export: one row per action and strategy component per
    interaction (several per action; every row is kept in file order, ``ordinal``);
    ``OUTPUT`` rows are selected (ranked by priority), ``FILTERED_OUT`` rows stopped at
    ``Stage_pyName`` and were removed by ``pxComponentName``; Pega's stages, stage groups and
    ``Stage_pyOrder`` are kept as they are (the sealed ``stages`` table).
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
import pyarrow.compute as pc

from decision_log import seals, stages
from decision_log.rows import prepare_imported
from decision_log.schema import arrow_of, execute_over
from decision_log.store import MAX_AMOUNT, DecisionLog
from decision_log.store import memory_limit as limited
from decisioning.errors import InputError

FORMATS = ("generic", "pega-v1", "pega-v2")

#: Rows written per transaction: memory is bounded by rows, whatever an interaction holds.
CHUNK_ROWS = 50_000

GENERIC_COLUMNS = ("decision_id", "ts", "customer", "channel", "direction", "action_id", "issue", "group", "stage",
                   "rule", "reason", "propensity", "value", "context_weight", "lever", "priority", "rank", "selected",
                   "stage_group", "stage_order", "probability", "outcome", "revenue", "margin", "churned")
#: Outcome values the generic format reads (a click log's 1 / 0 is accepted / ignored).
OUTCOMES = {"accepted": "accepted", "rejected": "rejected", "ignored": "ignored", "none": "none", "visited": "visited",
            "1": "accepted", "true": "accepted", "yes": "accepted", "0": "ignored", "false": "ignored", "no": "ignored"}
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
    outcomes_added: int = 0
    decisions_already_logged: int = 0
    bad_rows: int = 0
    decisions_left_out: int = 0  #: interactions with a bad row: left out whole, never half-written
    bad_examples: list[BadRow] = field(default_factory=list)
    inconsistent_rows: int = 0
    inconsistent_examples: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: Seconds per phase: reading the file, building the rows, hashing and writing them.
    phases: dict[str, float] = field(default_factory=dict)


def _reader(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix == ".parquet":
        return "read_parquet($file)"
    if suffix in (".csv", ".txt", ".tsv"):
        return "read_csv($file, all_varchar = true, header = true)"
    raise InputError(f"{path}: unknown file type {suffix!r}.", "Import Parquet (.parquet) or CSV (.csv) files.")


def _column_types(con, path: str) -> dict[str, str]:
    """The file's columns and their types (CSV columns are all text)."""
    try:
        return {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {_reader(path)}", {"file": path}).fetchall()}
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
               "stage_order": "Stage_pyOrder", "component": "pxComponentName", "component_type": "pxComponentType",
               "strategy_name": "pxStrategyName", "treatment": "pyTreatment"}
    elif fmt == "generic":
        src = {c: mapping.get(c, c) for c in GENERIC_COLUMNS}
        src["interaction"] = src.pop("decision_id")
        need(*[src[c] if c != "decision_id" else src["interaction"] for c in GENERIC_REQUIRED])
    else:
        raise InputError(f"Unknown import format {fmt!r}.", f"Use one of: {', '.join(FORMATS)}.")
    return {k: (_q(v) if v in cols else "NULL") for k, v in src.items()}


_OUTCOME_MAP = "MAP {" + ", ".join(f"'{a}': '{b}'" for a, b in OUTCOMES.items()) + "}"
_TYPES = {"ts": "TIMESTAMPTZ", "propensity": "DOUBLE", "value": "DOUBLE", "context_weight": "DOUBLE",
          "lever": "DOUBLE", "priority": "DOUBLE", "rank": "INTEGER", "stage_order": "INTEGER", "selected": "BOOLEAN",
          "probability": "DOUBLE", "revenue": "DOUBLE", "margin": "DOUBLE", "churned": "BOOLEAN"}
_REQUIRED = {"pega-v1": ("interaction", "ts", "customer", "action_id", "channel", "propensity", "value",
                         "context_weight", "lever", "priority", "rank"),
             "pega-v2": ("interaction", "ts", "customer", "action_id", "record_type", "stage_group"),
             "generic": ("interaction", "ts", "customer", "channel", "action_id", "stage")}


def _typed_columns(fmt: str, spec: dict[str, str], types: dict[str, str],
                   row_no: str) -> tuple[list[str], list[tuple[str, str, str]], dict[str, str]]:
    """The staging SELECT's terms for a file's columns (typed, customer ids pseudonymised as
    they are read), the checks that find a bad row (key, condition over the source row,
    problem) and each column's source value as text (for reports)."""
    select = [f"{row_no} AS row_no"]
    checks: list[tuple[str, str, str]] = []  # (key, condition over the source row, problem)
    raws: dict[str, str] = {}  # key -> the source value as text, for reports
    for k, expr in spec.items():
        raw = f"CAST({expr} AS VARCHAR)"
        raws[k] = raw
        want = _TYPES.get(k)
        src_type = types.get(expr[1:-1].replace('""', '"')) if expr != "NULL" else None
        if want is None:
            typed = f"{_PSEUDONYM_UDF}({raw})" if k == "customer" else raw  # the raw id never reaches a table
        elif expr == "NULL":
            typed = f"NULL::{want}"
        elif _native(src_type, want):  # already typed in the file (Parquet): nothing to parse
            typed = f"CAST({expr} AS {want})"
        else:
            typed = f"TRY_CAST({expr} AS {want})"
            if want == "INTEGER":  # a whole number or nothing: never 1.5 rounded to 2
                typed = (f"CASE WHEN TRY_CAST({raw} AS DOUBLE) = round(TRY_CAST({raw} AS DOUBLE)) "
                         f"THEN TRY_CAST(TRY_CAST({raw} AS DOUBLE) AS INTEGER) END")
            if want == "BOOLEAN":  # a stated truth value or nothing: never 'maybe' read as false
                typed = (f"CASE WHEN lower(trim({raw})) IN ('true', '1', 'yes', 't', 'y') THEN true "
                         f"WHEN lower(trim({raw})) IN ('false', '0', 'no', 'f', 'n') THEN false END")
            checks.append((k, f"({typed}) IS NULL AND {raw} IS NOT NULL AND trim({raw}) <> ''",
                           f"not a valid {want.lower()}"))
        if k == "probability" and expr != "NULL":  # a logging probability: (0, 1]
            checks.append((k, f"({typed}) IS NOT NULL AND NOT (({typed}) > 0 AND ({typed}) <= 1)",
                           "not a probability in (0, 1]"))
        if k == "outcome" and expr != "NULL":
            known = ", ".join(f"'{v}'" for v in OUTCOMES)
            typed = f"map_extract({_OUTCOME_MAP}, lower(trim({raw})))[1]"
            checks.append((k, f"{raw} IS NOT NULL AND trim({raw}) <> '' AND lower(trim({raw})) NOT IN ({known})",
                           "not an outcome (accepted, rejected, ignored, none; or 1 / 0)"))
        select.append(f"{typed} AS {_q(k)}")
    for k in _REQUIRED[fmt]:
        checks.insert(0, (k, f"{raws[k]} IS NULL", "missing"))
    return select, checks, raws


def import_file(log: DecisionLog, fmt: str, path: str, mapping: dict[str, str] | None = None,
                chunk_rows: int = CHUNK_ROWS, progress: Callable[[int, int], None] | None = None,
                max_examples: int = 20, memory_limit: str = "400MB") -> ImportReport:
    """Import one file (see the module docstring).  Returns what was added and what was not."""
    t0 = time.perf_counter()
    _importable(log, path)
    con = log.con
    types = _column_types(con, path)
    spec = _spec(fmt, list(types), mapping or {}, path)
    rep = ImportReport(path, fmt)
    name = Path(path).name
    row_no = "file_row_number + 1" if _reader(path).startswith("read_parquet") else "row_number() OVER ()"
    reader = _reader(path).replace("read_parquet($file)", "read_parquet($file, file_row_number = true)")
    select, checks, raws = _typed_columns(fmt, spec, types, row_no)
    con.execute("SET TimeZone = 'UTC'")  # times without a zone are read as UTC
    con.execute("SET enable_progress_bar = false")  # the caller shows progress in its own units
    # bounded memory: DuckDB spills the staging tables and sorts to disk beyond this
    with limited(con, memory_limit):
        log.pseudonymise([])  # a log without its key refuses here, before anything is read
        con.create_function(_PSEUDONYM_UDF, lambda ids: _pseudonyms(log, ids), [duckdb.sqltype("VARCHAR")],
                            duckdb.sqltype("VARCHAR"), type="arrow", side_effects=False)
        try:
            # staging in the temporary catalog (memory, spilled outside the log file): nothing of
            # it is written into the log, and a killed import leaves no table behind
            bad = " OR ".join(f"({c})" for _, c, _ in checks) or "false"
            try:
                # in log order (oldest interaction first, rows in file order): each chunk below reads
                # only its own row groups; DuckDB sorts on disk beyond its memory limit
                con.execute(f"""CREATE OR REPLACE TEMP TABLE _k_import AS
                    SELECT *, min(ts) OVER (PARTITION BY interaction) AS first_ts
                    FROM (SELECT {', '.join(select)}, ({bad}) AS bad FROM {reader} s)
                    ORDER BY first_ts, interaction, row_no""", {"file": path})
            except (duckdb.IOException, duckdb.InvalidInputException, duckdb.ConversionException) as exc:
                raise _unreadable(path, exc) from None
            rep.rows, rep.bad_rows = con.execute("SELECT count(*), count(*) FILTER (WHERE bad) FROM _k_import"
                                                 ).fetchall()[0]
            rep.phases["read"] = time.perf_counter() - t0
            if rep.bad_rows:  # 1. bad rows: named with file, row, column and value (read again from the file)
                _bad_examples(con, rep, reader, row_no, path, spec, raws, checks, max_examples)
            # 2. interactions, oldest first; skip those already logged (same source, same id)
            con.execute("""CREATE OR REPLACE TEMP TABLE _k_import_ids AS
                SELECT interaction, $prefix || interaction AS decision_id, count(*) AS n_rows, min(first_ts) AS first_ts
                FROM _k_import GROUP BY interaction
                HAVING NOT bool_or(bad) AND interaction IS NOT NULL""", {"prefix": fmt + ":"})
            rep.decisions_left_out = con.execute(
                "SELECT count(DISTINCT interaction) FROM _k_import WHERE bad AND interaction IS NOT NULL").fetchall()[0][0]
            rep.decisions_already_logged = con.execute(
                "SELECT count(*) FROM _k_import_ids i SEMI JOIN decisions d USING (decision_id)").fetchall()[0][0]
            # chunks of about CHUNK_ROWS rows (an interaction is never split): memory is bounded by
            # rows, whether an interaction holds one row or two hundred
            con.execute("""CREATE OR REPLACE TEMP TABLE _k_import_ids AS
                SELECT interaction, decision_id, first_ts,
                       (sum(n_rows) OVER (ORDER BY first_ts, interaction) - n_rows) // $rows AS part
                FROM _k_import_ids ANTI JOIN decisions USING (decision_id)""", {"rows": int(chunk_rows)})
            total = con.execute("SELECT count(*) FROM _k_import_ids").fetchall()[0][0]
            rep.phases["check"] = time.perf_counter() - t0 - rep.phases["read"]
            if fmt == "pega-v1":
                _check_v1(con, rep, name, max_examples)
            with log.atomic():  # every decision of the file, its stages and outcomes, or none
                _write(log, fmt, name, rep, total, progress)
        finally:
            for t in ("_k_import", "_k_import_ids", "_k_rows"):
                con.execute(f"DROP TABLE IF EXISTS temp.{t}")
            con.remove_function(_PSEUDONYM_UDF)
    rep.seconds = time.perf_counter() - t0
    return rep


def _write(log: DecisionLog, fmt: str, name: str, rep: ImportReport, total: int,
           progress: Callable[[int, int], None] | None) -> None:
    """Log the staged interactions part by part (see :func:`import_file`)."""
    con = log.con
    t0 = time.perf_counter()
    _register_stages(log, fmt, rep)
    stage_sql, rule_sql, reason_sql, rank_sql, sel_sql = _funnel_sql(fmt)
    # 3. the candidate rows as the log stores them, in log order; rows keep their file order
    # within an interaction (``ordinal``), however many rows an action has
    # a generic file may carry what a bandit log has: the served action's logging probability
    # and the outcome that followed
    extra = (", probability, outcome, revenue AS o_revenue, margin AS o_margin, churned" if fmt == "generic"
             else ", NULL::DOUBLE AS probability, NULL::VARCHAR AS outcome, NULL::DOUBLE AS o_revenue, "
                  "NULL::DOUBLE AS o_margin, NULL::BOOLEAN AS churned")
    bounds = dict(((p, (lo, hi)) for p, lo, hi in con.execute(
        "SELECT part, min(first_ts), max(first_ts) FROM _k_import_ids GROUP BY part").fetchall()))
    done = 0
    rep.phases["build"] = rep.phases["write"] = 0.0
    t_build = time.perf_counter()
    rep.phases["check"] += t_build - t0
    for part in sorted(bounds):  # numbers may skip: an interaction larger than a part is a part of its own
        lo, hi = bounds[part]
        rows = arrow_of(con.execute(f"""
            WITH r AS (
                SELECT i.decision_id, c.* EXCLUDE (interaction, bad)
                FROM _k_import c JOIN _k_import_ids i USING (interaction)
                WHERE i.part = $part AND c.first_ts BETWEEN $lo AND $hi),
            ranked AS ({rank_sql})
            SELECT CAST(decision_id AS VARCHAR) AS decision_id, CAST(first_ts AS TIMESTAMPTZ) AS ts,
                   CAST(coalesce(channel, 'unknown') AS VARCHAR) AS channel, CAST(action_id AS VARCHAR) AS action_id,
                   CAST(issue AS VARCHAR) AS issue, CAST("group" AS VARCHAR) AS "group",
                   CAST({stage_sql} AS VARCHAR) AS stage, CAST({rule_sql} AS VARCHAR) AS rule,
                   CAST({reason_sql} AS VARCHAR) AS reason,
                   propensity, value, context_weight, lever, priority, CAST(ranked.rank AS INTEGER) AS rank,
                   CAST({sel_sql} AS BOOLEAN) AS selected, NULL::VARCHAR AS model_version,
                   customer, direction{extra}
            FROM r LEFT JOIN ranked USING (decision_id, row_no) ORDER BY decision_id, row_no""",
            {"part": part, "lo": lo, "hi": hi}))
        # each row's place within its decision: the file's order
        ids = rows.column("decision_id").combine_chunks()
        starts = np.flatnonzero(np.append(True, pc.not_equal(ids[1:], ids[:-1]).to_numpy(zero_copy_only=False)))
        ordinal = np.arange(rows.num_rows, dtype=np.int32) - np.repeat(
            starts.astype(np.int32), np.diff(np.append(starts, rows.num_rows)))
        part_rows = rows.append_column("ordinal", pa.array(ordinal, pa.int32()))
        dec = arrow_of(execute_over(con, """
            SELECT decision_id, min(ts) AS ts, any_value(customer) AS customer,
                   any_value(channel) AS channel, coalesce(any_value(lower(direction)), 'unknown') AS direction,
                   list(action_id ORDER BY rank, ordinal) FILTER (WHERE selected) AS chosen_rows,
                   (list(probability ORDER BY rank, ordinal) FILTER (WHERE selected))[1] AS selection_probability
            FROM _k_part GROUP BY decision_id ORDER BY decision_id""", _k_part=part_rows))
        outcomes = arrow_of(execute_over(con, """
            SELECT decision_id, action_id, any_value(outcome ORDER BY ordinal) AS outcome,
                   any_value(o_revenue ORDER BY ordinal) AS revenue, any_value(o_margin ORDER BY ordinal) AS margin,
                   any_value(churned ORDER BY ordinal) AS churned, min(ts) AS ts
            FROM _k_part WHERE outcome IS NOT NULL GROUP BY decision_id, action_id ORDER BY decision_id""",
            _k_part=part_rows))
        cand = part_rows.drop_columns(["customer", "direction", "probability", "outcome", "o_revenue", "o_margin",
                                     "churned"])
        del rows, part_rows
        n = dec.num_rows
        dtab = _decision_table(dec, fmt, name)
        t_write = time.perf_counter()
        rep.phases["build"] += t_write - t_build
        log.append_prepared(prepare_imported(dtab, cand, con))
        if outcomes.num_rows:  # sealed with the decisions they follow (a failed import re-runs cleanly)
            rep.outcomes_added += log.append_outcome_table(outcomes)
        t_build = time.perf_counter()
        rep.phases["write"] += t_build - t_write
        rep.decisions_added += n
        rep.candidates_added += cand.num_rows
        done += n
        if progress:
            progress(done, total)


def _importable(log: DecisionLog, path: str) -> None:
    """Refuse a read-only log or a missing file before anything is read."""
    if log.read_only:
        raise InputError(f"The log {log.path!r} is open read-only.", "Open it for writing to import.")
    if not Path(path).exists():
        raise InputError(f"No file at {path!r}.", "Check the path.")


def _native(src_type: str | None, want: str) -> bool:
    """Whether a file column of type ``src_type`` holds ``want`` values without parsing."""
    if src_type is None:
        return False
    src_type = src_type.upper()
    if want == "DOUBLE":
        return src_type in ("DOUBLE", "FLOAT", "REAL", "INTEGER", "BIGINT", "SMALLINT", "TINYINT")
    if want == "INTEGER":
        return src_type in ("INTEGER", "SMALLINT", "TINYINT")
    if want == "TIMESTAMPTZ":
        return src_type.startswith("TIMESTAMP")
    if want == "BOOLEAN":
        return src_type == "BOOLEAN"
    return False


def _bad_examples(con, rep: ImportReport, reader: str, row_no: str, path: str, spec: dict[str, str],
                  raws: dict[str, str], checks: list, max_examples: int) -> None:
    """Up to ``max_examples`` bad rows with the value as the file has it (read again from the
    file: the staging table keeps only the parsed values)."""
    name = Path(path).name
    for k, c, problem in checks:
        left = max_examples - len(rep.bad_examples)
        if left <= 0:
            break
        raw = raws[k] if k != "customer" else "NULL::VARCHAR"  # a raw customer id is never echoed
        q = (f"SELECT row_no, raw FROM (SELECT {row_no} AS row_no, {raw} AS raw, ({c}) AS hit FROM {reader} s) "
             f"WHERE hit ORDER BY row_no LIMIT {int(left)}")
        for r, v in con.execute(q, {"file": path}).fetchall():
            src_col = spec[k].strip('"') if spec[k] != "NULL" else k
            rep.bad_examples.append(BadRow(name, int(r), src_col, v, problem))
    rep.bad_examples.sort(key=lambda b: b.row)


_PSEUDONYM_UDF = "klartext_pseudonym"


def _pseudonyms(log, ids: pa.Array) -> pa.Array:
    """The log's pseudonyms of a batch of raw ids (NULL stays NULL): DuckDB calls this as it
    reads the file, so only pseudonyms are ever stored."""
    ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    valid = ids.is_valid().to_numpy(zero_copy_only=False)
    out = np.full(len(ids), None, dtype=object)
    raw = ids.to_numpy(zero_copy_only=False)[valid]
    if len(raw):  # an export repeats its customer on every row of an interaction: each id once
        uniq, inverse = np.unique(raw.astype(str), return_inverse=True)
        out[valid] = log.pseudonymise(uniq)[inverse]
    return pa.array(out, pa.string())


def _funnel_sql(fmt: str) -> tuple[str, str, str, str, str]:
    """stage, rule, reason, rank and selected expressions per format."""
    if fmt == "pega-v1":
        return ("CASE WHEN r.rank = 1 THEN 'selected' ELSE 'ranked' END", "NULL::VARCHAR", "NULL::VARCHAR",
                "SELECT decision_id, row_no, rank FROM r", "r.rank = 1")
    if fmt == "pega-v2":
        out = "upper(record_type) = 'OUTPUT'"
        # Pega's own stage names (their group and order are in the sealed ``stages`` table)
        stage = "coalesce(stage_name, stage_group)"
        rule = f"CASE WHEN {out} THEN NULL ELSE coalesce(component, stage_name, stage_group) END"
        # the stage's group and order are in the sealed ``stages`` table; the row adds where in
        # the strategy it happened
        via = ("concat_ws(', ', 'strategy ' || strategy_name, 'treatment ' || treatment)")
        reason = (f"CASE WHEN {out} THEN 'presented' || coalesce(' by ' || component, '') "
                  "ELSE coalesce(component_type || ' component', 'component') END "
                  f"|| coalesce(' in ' || nullif({via}, ''), '')")
        # the presented rows ranked by priority (a handful per interaction: ranked on their own)
        rank = (f"SELECT decision_id, row_no, row_number() OVER (PARTITION BY decision_id "
                f"ORDER BY priority DESC NULLS LAST, row_no) AS rank FROM r WHERE {out}")
        return stage, rule, reason, rank, out
    return ("stage", "rule", "reason", "SELECT decision_id, row_no, rank FROM r",
            "coalesce(selected, stage = 'selected')")


def _register_stages(log: DecisionLog, fmt: str, rep: ImportReport) -> None:
    """Record the stages the file names (group and order in the source's flow) in the sealed
    ``stages`` table, once per stage name; Klartext's own stage names keep their meaning."""
    if fmt == "pega-v1":
        return
    con = log.con
    name = "coalesce(stage_name, stage_group)" if fmt == "pega-v2" else "stage"
    rows = con.execute(f"""
        SELECT {name} AS stage, any_value(stage_group) AS stage_group, min(stage_order) AS stage_order,
               max(stage_order) AS top
        FROM _k_import WHERE NOT bad AND {name} IS NOT NULL GROUP BY 1""").fetchall()
    known = dict(con.execute("SELECT stage, stage_order FROM stages").fetchall())
    new = []
    for stage, group, order, top in rows:
        if stage in stages.NATIVE_NAMES:
            continue
        if order != top:
            rep.notes.append(f"stage {stage!r} has the orders {order} to {top} in this file; {order} is kept")
        if stage in known and order is not None and known[stage] != order:
            rep.notes.append(f"stage {stage!r} has the order {order} in this file but {known[stage]} in the log; "
                             f"{known[stage]} is kept")
        if stage not in known:
            new.append((fmt, stage, group, order))
    if new:
        with seals.sealed_write(con, "stages", in_transaction=log.in_transaction) as seq:
            con.executemany("INSERT INTO stages (source, stage, stage_group, stage_order, seal_seq) "
                            "VALUES (?, ?, ?, ?, ?)", [(*r, seq) for r in new])


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


OUTCOME_COLUMNS = ("decision_id", "action_id", "outcome", "revenue", "margin", "churned", "ts")


@dataclass
class OutcomeReport:
    file: str
    rows: int = 0
    outcomes_added: int = 0
    already_logged: int = 0  #: the same outcome again (a re-import): not logged twice
    bad_rows: int = 0
    bad_examples: list[BadRow] = field(default_factory=list)
    seconds: float = 0.0


def import_outcomes(log: DecisionLog, path: str, mapping: dict[str, str] | None = None,
                    max_examples: int = 20) -> OutcomeReport:
    """Add outcomes to the decisions of any log (made here or imported) from a CSV or Parquet
    file with the columns of :data:`OUTCOME_COLUMNS` (``action_id``, ``revenue``, ``margin``,
    ``churned`` and ``ts`` optional; other names via ``mapping``).

    ``decision_id`` is the log's id or the source system's (an imported decision's id without
    its ``<format>:`` prefix).  A row is left out, and reported with its row number, column and
    value, when a value does not parse, the decision or action is not in the log, or an outcome
    for the same decision and action is logged already with other values (outcomes are facts:
    the same one again is skipped).  The rest is written in one sealed transaction.
    """
    t0 = time.perf_counter()
    _importable(log, path)
    con = log.con
    mapping = mapping or {}
    cols = _column_types(con, path)
    src = {c: mapping.get(c, c) for c in OUTCOME_COLUMNS}
    for need in ("decision_id", "outcome"):
        if src[need] not in cols:
            raise InputError(f"{path}: column {src[need]!r} is missing for outcomes.",
                             f"The file has: {', '.join(cols)}. Map another column with --map {need}=COLUMN.")
    rep = OutcomeReport(path)
    name = Path(path).name

    def col(k: str) -> str:
        return f"CAST({_q(src[k])} AS VARCHAR)" if src[k] in cols else "NULL::VARCHAR"

    row_no = "file_row_number + 1" if _reader(path).startswith("read_parquet") else "row_number() OVER ()"
    reader = _reader(path).replace("read_parquet($file)", "read_parquet($file, file_row_number = true)")
    con.execute("SET TimeZone = 'UTC'")
    try:
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _k_oraw AS
            SELECT {row_no} AS row_no, {col('decision_id')} AS decision_raw, {col('action_id')} AS action_id,
                   {col('outcome')} AS outcome_raw, {col('revenue')} AS revenue_raw, {col('margin')} AS margin_raw,
                   {col('churned')} AS churned_raw, {col('ts')} AS ts_raw
            FROM {reader} s""", {"file": path})
    except (duckdb.IOException, duckdb.InvalidInputException, duckdb.ConversionException) as exc:
        raise _unreadable(path, exc) from None
    try:
        # the log's decision for each row: its own id, or a unique "<format>:<id>"
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _k_outs AS
            SELECT r.*, m.decision_id, m.n_match, d.ts AS decision_ts,
                   map_extract({_OUTCOME_MAP}, lower(trim(outcome_raw)))[1] AS outcome,
                   TRY_CAST(revenue_raw AS DOUBLE) AS revenue, TRY_CAST(margin_raw AS DOUBLE) AS margin,
                   CASE WHEN lower(trim(churned_raw)) IN ('true', '1', 'yes', 't', 'y') THEN true
                        WHEN lower(trim(churned_raw)) IN ('false', '0', 'no', 'f', 'n') THEN false END AS churned,
                   TRY_CAST(ts_raw AS TIMESTAMPTZ) AS ts
            FROM _k_oraw r
            LEFT JOIN (
                SELECT k.decision_raw, any_value(d.decision_id) AS decision_id, count(*) AS n_match
                FROM (SELECT DISTINCT decision_raw FROM _k_oraw) k
                JOIN decisions d ON d.decision_id = k.decision_raw
                    OR (d.source <> 'klartext' AND d.decision_id = d.source || ':' || k.decision_raw)
                GROUP BY k.decision_raw) m USING (decision_raw)
            LEFT JOIN decisions d ON d.decision_id = m.decision_id""")
        _mark_bad_outcomes(con, rep, name, src, max_examples)
        rep.already_logged = con.execute("""
            SELECT count(*) FROM _k_outs k SEMI JOIN outcomes o ON o.decision_id = k.decision_id
                AND o.action_id IS NOT DISTINCT FROM k.action_id
            WHERE k.bad IS NULL""").fetchall()[0][0]
        tbl = arrow_of(con.execute("""
            SELECT decision_id, action_id, outcome, revenue, margin, churned, coalesce(ts, decision_ts) AS ts
            FROM _k_outs k WHERE bad IS NULL AND NOT EXISTS (
                SELECT 1 FROM outcomes o WHERE o.decision_id = k.decision_id
                AND o.action_id IS NOT DISTINCT FROM k.action_id)
            ORDER BY row_no"""))
        if tbl.num_rows:
            rep.outcomes_added = log.append_outcome_table(tbl)
    finally:
        con.execute("DROP TABLE IF EXISTS temp._k_oraw")
        con.execute("DROP TABLE IF EXISTS temp._k_outs")
    rep.seconds = time.perf_counter() - t0
    return rep


def _mark_bad_outcomes(con, rep: OutcomeReport, name: str, src: dict[str, str], max_examples: int) -> None:
    """Mark each staged outcome row (``_k_outs``) with its first problem, count them, and name
    up to ``max_examples`` with file, row, column and value."""
    checks = [
        ("decision_id", "decision_raw", "decision_raw IS NULL", "missing"),
        ("decision_id", "decision_raw", "decision_raw IS NOT NULL AND decision_id IS NULL", "not a decision in the log"),
        ("decision_id", "decision_raw", "n_match > 1", "ambiguous: more than one decision in the log has this id"),
        ("outcome", "outcome_raw", "outcome IS NULL",
         "not an outcome (accepted, rejected, ignored, none; or 1 / 0)"),
        ("revenue", "revenue_raw", "revenue_raw IS NOT NULL AND trim(revenue_raw) <> '' AND "
         f"(revenue IS NULL OR NOT isfinite(revenue) OR abs(revenue) > {MAX_AMOUNT})",
         "not a finite amount"),
        ("margin", "margin_raw", "margin_raw IS NOT NULL AND trim(margin_raw) <> '' AND "
         f"(margin IS NULL OR NOT isfinite(margin) OR abs(margin) > {MAX_AMOUNT})",
         "not a finite amount"),
        ("churned", "churned_raw", "churned_raw IS NOT NULL AND trim(churned_raw) <> '' AND churned IS NULL",
         "not true or false"),
        ("ts", "ts_raw", "ts_raw IS NOT NULL AND trim(ts_raw) <> '' AND ts IS NULL", "not a valid timestamptz"),
        ("action_id", "action_id", "action_id IS NOT NULL AND decision_id IS NOT NULL AND NOT EXISTS ("
         "SELECT 1 FROM candidates c WHERE c.decision_id = _k_outs.decision_id AND c.action_id = _k_outs.action_id)",
         "not an action of that decision"),
        ("outcome", "outcome_raw", "EXISTS (SELECT 1 FROM outcomes o WHERE o.decision_id = _k_outs.decision_id "
         "AND o.action_id IS NOT DISTINCT FROM _k_outs.action_id AND (o.outcome, o.revenue, o.margin, o.churned) "
         "IS DISTINCT FROM (_k_outs.outcome, _k_outs.revenue, _k_outs.margin, _k_outs.churned))",
         "different from the outcome logged already for this decision and action (outcomes are not changed)"),
        ("action_id", "action_id", "count(*) OVER (PARTITION BY decision_id, action_id) > 1",
         "a second outcome for the same decision and action in this file"),
    ]
    con.execute("ALTER TABLE _k_outs ADD COLUMN bad VARCHAR")
    for k, raw, cond, problem in checks:  # the first problem of each row is the one reported
        con.execute(f"UPDATE _k_outs SET bad = ? WHERE bad IS NULL AND ({cond})" if "OVER" not in cond else
                    f"UPDATE _k_outs SET bad = ? WHERE bad IS NULL AND row_no IN (SELECT row_no FROM "
                    f"(SELECT row_no, ({cond}) AS hit FROM _k_outs WHERE bad IS NULL) WHERE hit)",
                    [f"{k}\x1f{raw}\x1f{problem}"])
    rep.rows = con.execute("SELECT count(*) FROM _k_outs").fetchall()[0][0]
    rep.bad_rows = con.execute("SELECT count(*) FROM _k_outs WHERE bad IS NOT NULL").fetchall()[0][0]
    for row, bad, r in con.execute("SELECT row_no, bad, [decision_raw, action_id, outcome_raw, revenue_raw, "
                                   "margin_raw, churned_raw, ts_raw] FROM _k_outs WHERE bad IS NOT NULL "
                                   f"ORDER BY row_no LIMIT {int(max_examples)}").fetchall():
        k, raw, problem = bad.split("\x1f")
        value = dict(zip(["decision_raw", "action_id", "outcome_raw", "revenue_raw", "margin_raw", "churned_raw",
                          "ts_raw"], r))[raw]
        rep.bad_examples.append(BadRow(name, int(row), src[k], value, problem))


def _decision_table(dec: pa.Table, fmt: str, name: str) -> pa.Table:
    """The ``decisions`` rows of one part of an import (``dec``: per decision its time,
    customer, channel, direction, the actions presented in rank order and the served
    action's logging probability)."""
    n = dec.num_rows
    # an action presented through several components counts once, at its best rank
    chosen = [list(dict.fromkeys(x or [])) for x in dec.column("chosen_rows").to_pylist()]
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
        "selection_probability": dec.column("selection_probability").cast(pa.float64()),
        "explored": pa.array([False] * n),
        "latency_us": pa.nulls(n, pa.int64()),
        "source": pa.array([fmt] * n, pa.string()),
    })
    return dtab
