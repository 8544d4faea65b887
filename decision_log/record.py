"""The decision record: every column of ``decisions`` and ``candidates``, defined once.

Each :class:`Column` states its name, DuckDB type, Arrow type, whether it may be NULL, how
the record hash reads it and what it means.  Everything else is derived from these two
tuples: the tables' DDL and migrations (:mod:`decision_log.schema`), the typed SELECTs and
the Arrow schema the writer uses (:mod:`decision_log.store`), the column order and encoding
of the record hash (:mod:`decision_log.integrity`) and the column tables of
``docs/decision-record.md`` (checked by a test).

To add a column: one line in :data:`DECISIONS` or :data:`CANDIDATES` (at the end, with
``since`` set: an existing log gets it by ``ALTER TABLE … ADD COLUMN``), and the code that
fills it.  Such a column is stored but not read by the record hash (``order`` or ``-``):
hashing it would change the hash of every decision logged before it existed.  Sealing a
later column needs the hash to know from which decision on it counts (not built yet).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

#: How the record hash reads a column: ``label`` = a text with few distinct values (hashed
#: through a digest per value), ``value`` = by its type (number, time, boolean, text or list),
#: ``order`` = not hashed itself but the order the rows are hashed in, ``-`` = not hashed.
HASH_KINDS = ("label", "value", "order", "-")


@dataclass(frozen=True)
class Column:
    name: str
    sql: str  #: DuckDB type
    arrow: pa.DataType  #: Arrow type of the column as DuckDB returns it (and the writer builds it)
    nullable: bool
    hash: str  #: one of :data:`HASH_KINDS`
    meaning: str
    since: str = ""  #: the release that added it to an existing table ("" = in the first one)

    @property
    def quoted(self) -> str:
        return f'"{self.name}"'

    def ddl(self) -> str:
        return f"{self.quoted} {self.sql}" + ("" if self.nullable else " NOT NULL")


_TS = pa.timestamp("us", tz="UTC")

DECISIONS: tuple[Column, ...] = (
    Column("seq", "BIGINT", pa.int64(), False, "value", "Append order: the hash chain's order (1, 2, …)."),
    Column("decision_id", "VARCHAR", pa.string(), False, "value",
           "Time-sortable id; `<format>:<interaction id>` for an imported decision."),
    Column("ts", "TIMESTAMPTZ", _TS, False, "value", "When the decision was made (UTC)."),
    Column("customer", "VARCHAR", pa.string(), False, "value",
           "Keyed HMAC pseudonym of the customer id; the raw id is never stored."),
    Column("channel", "VARCHAR", pa.string(), False, "label", "The channel of the interaction."),
    Column("direction", "VARCHAR", pa.string(), False, "label", "`inbound` or `outbound` (`unknown` if not given)."),
    Column("trigger", "VARCHAR", pa.string(), True, "value", "What started the interaction, if the request said."),
    Column("inputs", "JSON", pa.string(), False, "value",
           "The features, contacts and rejections exactly as the engine saw them (a missing value is `null`), "
           "sealed under the customer's own key in a log that seals inputs (`docs/compliance.md`); "
           "for an import, the file and interaction it came from."),
    Column("strategy_version", "VARCHAR", pa.string(), True, "label",
           "Content hash of the strategy that decided (NULL for an import)."),
    Column("model_versions", "JSON", pa.string(), True, "label", "Action → version of the model that scored it."),
    Column("chosen_action", "VARCHAR", pa.string(), True, "value", "The first slot's action; NULL = no action."),
    Column("chosen_actions", "VARCHAR[]", pa.list_(pa.string()), False, "value", "Every selected action, in slot order."),
    Column("selection_probability", "DOUBLE", pa.float64(), True, "value",
           "Probability with which `chosen_action` was picked (< 1 only under exploration or an experiment)."),
    Column("explored", "BOOLEAN", pa.bool_(), False, "value", "Whether exploration picked the first slot."),
    Column("latency_us", "BIGINT", pa.int64(), True, "value",
           "Engine time in microseconds (in a batch: the batch's time divided by its size)."),
    Column("source", "VARCHAR", pa.string(), False, "label", "`klartext`, or the importer that loaded the decision."),
)

CANDIDATES: tuple[Column, ...] = (
    Column("decision_id", "VARCHAR", pa.string(), False, "value", "The decision this row belongs to."),
    Column("ts", "TIMESTAMPTZ", _TS, False, "value", "The decision's time (copied: funnels need no join)."),
    Column("channel", "VARCHAR", pa.string(), False, "label", "The decision's channel (copied)."),
    Column("action_id", "VARCHAR", pa.string(), False, "label", "The action."),
    Column("issue", "VARCHAR", pa.string(), True, "label", "The action's issue (business goal)."),
    Column("group", "VARCHAR", pa.string(), True, "label", "The action's group (product family)."),
    Column("stage", "VARCHAR", pa.string(), False, "label",
           "Where the action stopped (`ranked` if it passed every filter); an import keeps its source's stages."),
    Column("rule", "VARCHAR", pa.string(), True, "label", "The rule that removed it (NULL if it survived)."),
    Column("reason", "VARCHAR", pa.string(), True, "value",
           "The reason in plain language, with the values tested (in a log that seals inputs, a reason that "
           "quotes the customer's values holds the rule's own text; views put the values back from the inputs)."),
    Column("propensity", "DOUBLE", pa.float64(), True, "value", "The model's probability (NULL if never scored)."),
    Column("value", "DOUBLE", pa.float64(), True, "value", "Margin and retention value of the action for this customer."),
    Column("context_weight", "DOUBLE", pa.float64(), True, "value", "Product of the context weights that fired."),
    Column("lever", "DOUBLE", pa.float64(), True, "value", "The business lever of its issue, group and action."),
    Column("priority", "DOUBLE", pa.float64(), True, "value", "propensity × value × context weight × lever."),
    Column("rank", "INTEGER", pa.int32(), True, "value", "Rank among the actions that passed every filter."),
    Column("selected", "BOOLEAN", pa.bool_(), False, "value", "Whether it was presented."),
    Column("model_version", "VARCHAR", pa.string(), True, "label", "The model that scored it."),
    Column("ordinal", "INTEGER", pa.int32(), True, "order",
           "The row's place in its decision (0, 1, …): the order the record hash and every view read the rows.",
           since="0.2"),
)

TABLES = {"decisions": DECISIONS, "candidates": CANDIDATES}

for _cols in TABLES.values():  # an added column goes last: ALTER TABLE appends, and INSERT … SELECT * is positional
    _added = [c.since != "" for c in _cols]
    assert _added == sorted(_added), "columns added by a migration must come after the first release's"
    assert all(c.hash in HASH_KINDS for c in _cols)
    assert all(c.hash in ("order", "-") for c in _cols if c.since), "a later column cannot be hashed (see above)"


def create_table(table: str) -> list[str]:
    """The DDL of ``table`` (the first release's columns) and one migration per later column."""
    cols = TABLES[table]
    first = ",\n        ".join(c.ddl() for c in cols if not c.since)
    out = [f"\n    CREATE TABLE IF NOT EXISTS {table} (\n        {first}\n    )\n    "]
    out += [f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {c.quoted} {c.sql}" for c in cols if c.since]
    return out


def hash_columns(table: str) -> list[str]:
    """The columns the record hash reads, in order."""
    return [c.name for c in TABLES[table] if c.hash in ("label", "value")]


#: Text columns with few distinct values, hashed through a per-value digest.
LABEL_COLUMNS = frozenset(c.name for cols in TABLES.values() for c in cols if c.hash == "label")


def typed_select(table: str, source: str, *, exprs: dict[str, str] | None = None,
                 without: tuple[str, ...] = ()) -> str:
    """``SELECT CAST(col AS type) AS col, …`` over ``source``, in the table's column order;
    ``exprs`` gives the expression of a column that is computed, not just cast."""
    exprs = exprs or {}
    terms = [f"CAST({exprs.get(c.name, c.quoted)} AS {c.sql}) AS {c.quoted}" if c.name not in exprs
             or c.sql != "JSON" else f"{exprs[c.name]} AS {c.quoted}"
             for c in TABLES[table] if c.name not in without]
    return "SELECT\n    " + ",\n    ".join(terms) + f"\nFROM {source}"


def arrow_schema(table: str, without: tuple[str, ...] = ()) -> pa.Schema:
    """The Arrow schema of the table's rows as DuckDB returns them."""
    return pa.schema([(c.name, c.arrow) for c in TABLES[table] if c.name not in without])


def markdown(table: str) -> str:
    """The column table of ``docs/decision-record.md``."""
    lines = ["| column | type | NULL | hash | meaning |", "|---|---|---|---|---|"]
    for c in TABLES[table]:
        lines.append(f"| `{c.name}` | {c.sql} | {'yes' if c.nullable else 'no'} | {c.hash} | {c.meaning} |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m decision_log.record: the tables of docs/decision-record.md
    for _name in TABLES:
        print(f"## `{_name}`\n\n{markdown(_name)}\n")
