"""Where a candidate action can stop: Klartext's own stages and those of imported logs.

A candidate row's ``stage`` names where the action stopped.  Klartext's engine uses the
fixed stages of :data:`decisioning.stages.FLOW` (:data:`NATIVE`, in that order).  An
imported log brings its own: a Pega v2 export names a stage (``Stage_pyName``), its stage
group (``Stage_pyStageGroup``) and its place in the flow (``Stage_pyOrder``); the importer
records each stage once in the sealed ``stages`` table, so funnels keep the source's order
and names and ``verify`` notices an edited order.

A row that stopped at stage *s* passed every stage before *s*: an interaction **reaches** a
stage when at least one of its rows stopped there or later.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from decision_log.schema import has_table
from decisioning import stages as flow


@dataclass(frozen=True)
class Stage:
    name: str
    group: str
    order: int
    label: str
    source: str = "klartext"


#: Klartext's own stages, in the engine's order (orders 100, 200, …).
NATIVE = tuple(Stage(s.name, s.group, 100 * (i + 1), s.label) for i, s in enumerate(flow.FLOW))
_BY_NAME = {s.name: s for s in NATIVE}
NATIVE_NAMES = frozenset(_BY_NAME)


def label(stage: str) -> str:
    """How a stage is named to a person (an imported stage under its own name)."""
    s = _BY_NAME.get(stage)
    return s.label if s else stage


def known(con: duckdb.DuckDBPyConnection) -> list[Stage]:
    """Every stage the log knows, in order: Klartext's and those recorded by imports."""
    out = list(NATIVE)
    if has_table(con, "stages"):
        for source, name, group, order in con.execute(
                "SELECT source, stage, stage_group, stage_order FROM stages ORDER BY stage_order, stage").fetchall():
            if name not in _BY_NAME:
                out.append(Stage(name, group or name, int(order) if order is not None else 1 << 30, name, source))
    return sorted(out, key=lambda s: (s.order, s.name))


def order_values(stages: list[Stage]) -> str:
    """A SQL ``VALUES`` list of (stage, stage_group, stage_order, label) for joins."""
    def q(s: str) -> str:
        return "'" + s.replace("'", "''") + "'"
    return ", ".join(f"({q(s.name)}, {q(s.group)}, {int(s.order)}, {q(s.label)})" for s in stages)
