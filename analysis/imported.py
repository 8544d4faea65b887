"""What-if and sensitivity on imported decisions that carry their four priority factors.

An imported log (e.g. Pega's explainability extract, v1) has no strategy to re-run, but each
scored candidate row holds ``propensity``, ``value``, ``context_weight`` and ``lever`` and
the decision's ranking.  Re-arbitration needs nothing more: the priority is their product,
the first action is the highest priority (ties to the row logged first).  On the logged
factors this must reproduce the logged first action, which :func:`load` counts; a what-if
replaces levers (per action, group or issue) or drops a factor (sets it to 1) and counts the
decisions whose first action changes.  The source's value does not split into margin and
retention, so there is no margin/retention frontier for such a log, and the views say so.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from decision_log import queries
from decisioning.errors import InputError

FACTORS = ("propensity", "value", "context_weight", "lever")


@dataclass
class LoggedFactors:
    """The scored candidate rows of imported decisions, grouped by decision (``start``)."""

    source: str
    decision_id: np.ndarray  #: (n,) decisions
    start: np.ndarray  #: (n + 1,) rows of decision i are start[i]:start[i + 1]
    action: np.ndarray  #: (m,) action id per row
    issue: np.ndarray
    group: np.ndarray
    factors: np.ndarray  #: (m, 4) in FACTORS order
    logged_first: np.ndarray  #: (n,) row index (global) of the logged first action, -1 = none
    reproduced: int  #: decisions whose logged first action re-arbitration reproduces

    def __len__(self) -> int:
        return len(self.decision_id)

    def first(self, lever: np.ndarray | None = None, scale: np.ndarray | None = None,
              drop: tuple[str, ...] = ()) -> np.ndarray:
        """The first action's row of every decision: highest product of the factors, ties to
        the earlier row.  ``lever``: per row, a lever replacing the logged one (NaN: keep it);
        ``scale``: per row, a factor on the lever; ``drop``: factors set to 1."""
        f = self.factors.copy()
        if lever is not None:
            f[:, 3] = np.where(np.isnan(lever), f[:, 3], lever)
        if scale is not None:
            f[:, 3] = f[:, 3] * scale
        for name in drop:
            f[:, FACTORS.index(name)] = 1.0
        prio = f.prod(axis=1)
        m = len(prio)
        seg = np.repeat(np.arange(len(self)), np.diff(self.start))
        # within each decision: order by priority (descending), then row (ascending)
        order = np.lexsort((np.arange(m), -prio, seg))
        firsts = order[self.start[:-1]]
        return np.where(np.diff(self.start) > 0, firsts, -1)

    def per_row(self, levers: dict[str, float], fill: float = np.nan) -> np.ndarray:
        """A value per row from ``{action, issue or group: value}`` (an action's own wins over
        its group's, which wins over its issue's; ``fill`` elsewhere)."""
        known = set(self.action) | set(self.issue) | set(self.group)
        unknown = [k for k in levers if k not in known]
        if unknown:
            raise InputError(f"Unknown action, issue or group {unknown[0]!r} in the levers.",
                             f"The log's issues: {', '.join(sorted(set(self.issue)))}; groups: "
                             f"{', '.join(sorted(set(self.group)))}.")
        out = np.full(len(self.action), fill)
        for col in (self.issue, self.group, self.action):  # later ones override
            for k, v in levers.items():
                hit = col == k
                if hit.any():
                    out[hit] = float(v)
        return out


def load(con: duckdb.DuckDBPyConnection) -> LoggedFactors:
    """The scored rows of the log's imported decisions (one source: the one with most such rows)."""
    rows = queries.imported_factor_rows(con)
    if rows.empty:
        raise InputError("The log holds no imported decision with all four priority factors (propensity, value, "
                         "context weight, lever) on its candidate rows, so there is nothing to re-arbitrate.",
                         "Import an export that carries the factors (Pega's explainability extract, or the generic "
                         "format's propensity, value, context_weight and lever columns).")
    source = rows["source"].value_counts().index[0]
    rows = rows[rows["source"] == source].reset_index(drop=True)
    did = rows["decision_id"].to_numpy(dtype=object)  # in log order, each decision's rows together
    cuts = np.flatnonzero(np.append(True, did[1:] != did[:-1]))
    ids = did[cuts]
    start = np.append(cuts, len(did))
    chosen = rows["logged_first"].to_numpy(dtype=bool)
    seg = np.repeat(np.arange(len(ids)), np.diff(start))
    logged = np.full(len(ids), -1)
    idx = np.flatnonzero(chosen)
    logged[seg[idx]] = idx
    lf = LoggedFactors(source, ids, start, rows["action_id"].to_numpy(dtype=object),
                       rows["issue"].fillna("").to_numpy(dtype=object), rows["group"].fillna("").to_numpy(dtype=object),
                       rows[list(FACTORS)].to_numpy(dtype=np.float64), logged, 0)
    again = lf.first()
    has = logged >= 0
    lf.reproduced = int((lf.action[again[has]] == lf.action[logged[has]]).sum())
    return lf


def what_if(lf: LoggedFactors, levers: dict[str, float] | None = None, drop: tuple[str, ...] = ()) -> dict:
    """The share of decisions whose first action changes when ``levers`` replace the logged
    levers (per action, group or issue) or factors are dropped, and the first actions' counts
    before and after (``by_action``: action, before, after, delta)."""
    base = lf.first()
    alt = lf.first(lf.per_row(levers or {}), drop=drop)
    ok = (base >= 0) & (alt >= 0)
    changed = float((lf.action[base[ok]] != lf.action[alt[ok]]).mean()) if ok.any() else 0.0
    before = pd.Series(lf.action[base[base >= 0]]).value_counts()
    after = pd.Series(lf.action[alt[alt >= 0]]).value_counts()
    by = pd.DataFrame({"before": before, "after": after}).fillna(0).astype(int)
    by["delta"] = by["after"] - by["before"]
    by = by.rename_axis("action_id").reset_index()
    by = by.assign(_size=-by["delta"].abs()).sort_values(["_size", "action_id"]).drop(columns="_size")
    return {"source": lf.source, "decisions": len(lf), "changed": changed, "by_action": by.reset_index(drop=True)}


def sensitivity(lf: LoggedFactors, lever_step: float = 1.1) -> pd.DataFrame:
    """Share of decisions whose first action changes when one factor is dropped, or one
    issue's lever is multiplied by ``lever_step`` (columns: change, changed)."""
    base = lf.first()
    cases = [(f"drop {x}", lf.first(drop=(x,))) for x in FACTORS]
    for issue in sorted(set(lf.issue) - {""}):
        cases.append((f"lever {issue} ×{lever_step:g}", lf.first(scale=lf.per_row({issue: lever_step}, 1.0))))
    ok = base >= 0
    rows = [{"change": name, "changed": float((lf.action[base[ok]] != lf.action[alt[ok]]).mean()) if ok.any() else 0.0}
            for name, alt in cases]
    return pd.DataFrame(rows).sort_values("changed", ascending=False, ignore_index=True)
