"""Margin vs retention: re-arbitration of logged decisions under other weights, levers,
thresholds and slots — no model calls, because every candidate row holds its factors.

The logged factors of one strategy version are loaded once (:class:`Factors`, one sparse
cell per scored candidate).  :func:`evaluate` re-runs the strategy's arbitration (incentive
choice, no-action threshold, top-N, ties in catalogue order) for many :class:`Setting` s in
one compiled pass; :meth:`Factors.arbitrate` is the dense numpy reference it is tested
against.  Under the strategy's own setting both reproduce the logged greedy selection
exactly, which :meth:`Factors.check` verifies.

The expected KPIs of a selection (sums over the selected actions, with their logged
propensity ``p``) are defined in :mod:`analysis.kpis`.

The margin/retention balance is swept with ``λ ∈ [0, 1]``: ``margin_weight = 2(1 − λ) ×
m₀``, ``retention_weight = 2λ × r₀``, so ``λ = 0.5`` is the strategy as logged, ``λ = 0``
pure margin and ``λ = 1`` pure retention.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from analysis import kpis as kpi_defs
from analysis.kpis import BREAKDOWN, KPI_TABLE, KPIS  # noqa: F401 - KPI_TABLE: for the CLI and pages
from analysis.ope import bootstrap_sums
from decision_log import queries
from decision_log.store import DecisionLog
from decisioning.arbitration import Tables, arbitrate, priority, tables
from decisioning.errors import InputError, LogError
from decisioning.strategy import Strategy

DROPPABLE = ("propensity", "value", "context_weight", "lever")  #: in analysis.kernels' order


@dataclass(frozen=True)
class Setting:
    """What a what-if changes; ``None`` keeps the strategy's value."""

    margin_weight: float | None = None
    retention_weight: float | None = None
    levers: dict[str, float] = field(default_factory=dict)  #: action id or issue → lever (replaces)
    thresholds: dict[str, float] = field(default_factory=dict)  #: channel → no-action threshold
    top_n: dict[str, int] = field(default_factory=dict)  #: channel → slots
    drop: tuple[str, ...] = ()  #: factors set to 1: propensity, value, context_weight, lever


@dataclass
class Factors:
    """The logged factors of the decisions of one strategy version.

    Held sparse, one cell per scored candidate (CSR: the cells of decision ``i`` are
    ``cell_ptr[i]:cell_ptr[i + 1]``, in no particular order) — on a typical log a quarter of the
    ``n × A`` grid, which is what keeps loading a million decisions fast.  The dense ``n × A``
    views (:attr:`scored`, :attr:`propensity`, :attr:`context_weight`, :attr:`lever`, NaN where
    not scored) are built on first use, for the dense reference arbitration.
    """

    strategy: Strategy
    tables: Tables
    seq: np.ndarray  #: (n,) the decisions' sequence numbers in the log (from an engine batch: 0 … n − 1)
    channel: np.ndarray  #: (n,) channel index
    clv: np.ndarray  #: (n,)
    cell_ptr: np.ndarray  #: (n + 1,) int64
    cell_col: np.ndarray  #: (m,) int32 catalogue index (any order within a decision)
    cell_propensity: np.ndarray  #: (m,)
    cell_context_weight: np.ndarray  #: (m,)
    cell_lever: np.ndarray  #: (m,)
    logged_first: np.ndarray  #: (n,) first chosen action as logged (-1 = none)
    explored: np.ndarray  #: (n,) the logged choice came from exploration
    issue_index: np.ndarray  #: (A,) issue of each action (index into ``issues``)
    issues: list[str]
    #: How many decisions these stand for: None — themselves; else they are a uniform random
    #: sample of that many (a large log, :data:`MAX_DECISIONS`), and every total is scaled up
    #: by :attr:`weight`.
    population: int | None = None
    #: Results derived from these factors and nothing else (the strategy's own selection and
    #: evaluation, the first actions' outcomes in this log), computed once on first use.
    derived: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.seq)

    @property
    def decisions(self) -> int:
        """The decisions these factors stand for (the whole version's, also when sampled)."""
        return len(self) if self.population is None else self.population

    @property
    def weight(self) -> float:
        """Decisions each loaded one stands for (1.0 unless a sample)."""
        return 1.0 if self.population is None or not len(self) else self.population / len(self)

    # -- dense views (built once, on first use) ---------------------------------------------

    @cached_property
    def _dense(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        n, A = len(self), len(self.strategy.actions)
        rows = np.repeat(np.arange(n), np.diff(self.cell_ptr))
        scored = np.zeros((n, A), dtype=bool)
        scored[rows, self.cell_col] = True
        mats = []
        for x in (self.cell_propensity, self.cell_context_weight, self.cell_lever):
            m = np.full((n, A), np.nan)
            m[rows, self.cell_col] = x
            mats.append(m)
        return (scored, *mats)

    @property
    def scored(self) -> np.ndarray:
        """(n, A) bool: the action reached scoring."""
        return self._dense[0]

    @property
    def propensity(self) -> np.ndarray:
        return self._dense[1]

    @property
    def context_weight(self) -> np.ndarray:
        return self._dense[2]

    @property
    def lever(self) -> np.ndarray:
        return self._dense[3]

    def cells(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Index of each cell ``(rows[k], cols[k])`` in the sparse arrays, -1 where that action
        was not scored in that decision (or ``cols[k]`` is -1)."""
        from analysis.kernels import find_cells

        return find_cells(self.cell_ptr, self.cell_col, np.asarray(rows, dtype=np.int64),
                          np.asarray(cols, dtype=np.int64))

    def propensity_at(self, cols: np.ndarray) -> np.ndarray:
        """Logged propensity of action ``cols[i]`` in decision ``i`` (NaN where not scored)."""
        e = self.cells(np.arange(len(self)), cols)
        return np.where(e >= 0, self.cell_propensity[np.maximum(e, 0)], np.nan)

    def subset(self, rows: np.ndarray, population: int | None = None) -> Factors:
        """The factors of ``rows``; ``population``: how many decisions they stand for when
        these factors are a sample (the selection's count in the whole log)."""
        rows = np.asarray(rows, dtype=np.int64)
        start, length = self.cell_ptr[rows], np.diff(self.cell_ptr)[rows]
        ptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(length, out=ptr[1:])
        take = np.repeat(start - ptr[:-1], length) + np.arange(ptr[-1])
        return replace(self, seq=self.seq[rows], channel=self.channel[rows], clv=self.clv[rows],
                       cell_ptr=ptr, cell_col=self.cell_col[take], cell_propensity=self.cell_propensity[take],
                       cell_context_weight=self.cell_context_weight[take], cell_lever=self.cell_lever[take],
                       logged_first=self.logged_first[rows], explored=self.explored[rows],
                       population=None if self.population is None else population)

    # -- arbitration ------------------------------------------------------------------------

    def weights(self, setting: Setting) -> tuple[float, float]:
        s = self.strategy
        return (s.margin_weight if setting.margin_weight is None else setting.margin_weight,
                s.retention_weight if setting.retention_weight is None else setting.retention_weight)

    def priority(self, setting: Setting) -> np.ndarray:
        """Priorities under ``setting`` (NaN where not scored), with the engine's arithmetic."""
        mw, rw = self.weights(setting)
        value = self.tables.value(mw, rw, self.clv, self.propensity)
        lever = self.lever
        if setting.levers:
            lever = lever.copy()
            for col, v in _lever_columns(self, setting).items():
                lever[:, col] = np.where(self.scored[:, col], v, np.nan)
        p = np.where(self.scored, 1.0, np.nan) if "propensity" in setting.drop else self.propensity
        v = np.where(self.scored, 1.0, np.nan) if "value" in setting.drop else value
        c = np.where(self.scored, 1.0, np.nan) if "context_weight" in setting.drop else self.context_weight
        lv = np.where(self.scored, 1.0, np.nan) if "lever" in setting.drop else lever
        return priority(p, v, c, lv)

    def _run(self, setting: Setting):
        """The strategy's own arbitration (:func:`decisioning.arbitration.arbitrate`) under
        ``setting``, without ranking every action; returns it and the priorities."""
        s, t = self.strategy, self.tables
        pr = self.priority(setting)
        thr, top = t.threshold.copy(), t.top_n.copy()
        for ch, v in setting.thresholds.items():
            thr[s.channel_ids.index(ch)] = v
        for ch, v in setting.top_n.items():
            top[s.channel_ids.index(ch)] = v
        arb = arbitrate(pr, self.scored, t.families, thr[self.channel], top[self.channel], ranks=False)
        return arb, pr

    def alive(self, setting: Setting = Setting()) -> tuple[np.ndarray, np.ndarray]:
        """The ranked actions (bool n × A: scored, won the incentive choice, cleared the
        threshold) and the priorities under ``setting``."""
        arb, pr = self._run(setting)
        return arb.alive, pr

    def ranked_at(self, cols: np.ndarray) -> np.ndarray:
        """Whether action ``cols[i]`` was ranked in decision ``i`` under the strategy's own
        setting (scored, won its offer's incentive choice, cleared the threshold) — the
        cells of :meth:`alive` without its dense ``n × A`` work.  ``-1`` gives False."""
        t, s = self.tables, self.strategy
        r = np.arange(len(self))

        def prio(rows: np.ndarray, j: np.ndarray) -> np.ndarray:  # the engine's arithmetic, one cell per row
            e = self.cells(rows, j)
            k = np.maximum(e, 0)
            v = t.value_at(s.margin_weight, s.retention_weight, j, self.clv[rows], self.cell_propensity[k])
            pr = priority(self.cell_propensity[k], v, self.cell_context_weight[k], self.cell_lever[k])
            return np.where(e >= 0, pr, -np.inf)

        j = np.maximum(cols, 0)
        ok = (cols >= 0) & (prio(r, j) >= t.threshold[self.channel])
        for fam in t.families:
            rows = np.flatnonzero(ok & np.isin(j, fam))
            if len(rows):
                stack = np.stack([prio(rows, np.full(len(rows), m)) for m in fam], axis=1)
                ok[rows] = fam[np.argmax(stack, axis=1)] == j[rows]  # first max: the cheapest on ties
        return ok

    def arbitrate(self, setting: Setting = Setting()) -> np.ndarray:
        """The greedy selection (bool n × A) under ``setting``; same rules as the engine.
        The strategy's own selection is computed once and reused (do not modify it)."""
        if setting == Setting():
            if "selection" not in self.derived:
                self.derived["selection"] = self._run(setting)[0].selected
            return self.derived["selection"]
        return self._run(setting)[0].selected

    def first(self, selected: np.ndarray, setting: Setting = Setting()) -> np.ndarray:
        """The first-slot action of each decision (-1 = none) for a selection."""
        pr = np.where(selected, self.priority(setting), -np.inf)
        j = np.argmax(pr, axis=1)
        return np.where(selected.any(axis=1), j, -1)

    def kpis(self, selected: np.ndarray) -> dict[str, float]:
        """The expected KPIs (:mod:`analysis.kpis`) of a selection."""
        out = kpi_defs.dense(self.strategy, self.tables, selected, self.propensity, self.clv)
        return out if self.population is None else {k: v * self.weight for k, v in out.items()}

    def check(self) -> int:
        """Decisions (not explored) whose logged first choice re-arbitration does not reproduce."""
        first = self.first(self.arbitrate())
        ok = self.explored | (first == self.logged_first)
        return int((~ok).sum())


def _sparse(propensity: np.ndarray, context_weight: np.ndarray, lever: np.ndarray) -> dict[str, np.ndarray]:
    """The CSR cells of dense ``n × A`` factor matrices (NaN propensity = not scored)."""
    rows, cols = np.nonzero(~np.isnan(propensity))  # row-major: by decision, then catalogue order
    ptr = np.zeros(len(propensity) + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=len(propensity)), out=ptr[1:])
    return {"cell_ptr": ptr, "cell_col": cols.astype(np.int32), "cell_propensity": propensity[rows, cols],
            "cell_context_weight": context_weight[rows, cols], "cell_lever": lever[rows, cols]}


def from_batch(strategy: Strategy, batch) -> Factors:
    """Factors straight from an engine batch (simulations and tests; no log needed)."""
    issues = sorted({a.issue for a in strategy.actions})
    first = batch.slots[:, 0].astype(np.int64) if batch.slots.shape[1] else np.full(len(batch), -1, np.int64)
    clv = np.asarray(batch.requests.features[strategy.clv_feature], dtype=np.float64)
    return Factors(strategy, tables(strategy), np.arange(len(batch)), np.asarray(batch.requests.channel,
                   dtype=np.int64), clv, **_sparse(batch.propensity, batch.context_weight, batch.lever),
                   logged_first=first, explored=np.asarray(batch.explored, dtype=bool),
                   issue_index=np.array([issues.index(a.issue) for a in strategy.actions]), issues=issues)


#: A selection of more decisions than this is re-arbitrated on a uniform random sample of this
#: many (seeded by the strategy version: the same sample every time), its totals scaled up.
#: Reading a sampled decision's factors costs about 20 µs on a 10M-decision log (its sealed
#: inputs opened, its candidates found); a quarter of a million keep the first view of the
#: trade-offs to seconds, and their totals within a fraction of a percent of the whole's.
MAX_DECISIONS = 250_000


def load_factors(log: DecisionLog, strategy_version: str | None = None,
                 progress: Callable[[str], None] | None = None, seqs: np.ndarray | None = None,
                 max_decisions: int | None = MAX_DECISIONS) -> Factors:
    """Load the factors of every decision of one strategy version (default: the newest), or
    of those of its decisions whose ``seqs`` are given.  A selection of more than
    ``max_decisions`` decisions (None: no limit) is loaded as a uniform random sample of that
    many (:attr:`Factors.population`: how many it stands for)."""
    con = log.con.cursor()
    sv = strategy_version or log.latest_strategy_version()
    s = log.load_strategy(sv)
    population = None
    if max_decisions is not None:
        if seqs is None:
            total = con.execute("SELECT count(*) FROM decisions WHERE strategy_version = ?", [sv]).fetchall()[0][0]
            if total > max_decisions:
                seqs = con.execute("SELECT seq FROM decisions WHERE strategy_version = ? ORDER BY seq",
                                   [sv]).fetchnumpy()["seq"]
        if seqs is not None and len(seqs) > max_decisions:
            rng = np.random.default_rng(int(sv[:16], 16) if all(c in "0123456789abcdef" for c in sv[:16]) else 0)
            population = len(seqs)
            seqs = np.sort(rng.choice(np.asarray(seqs, dtype=np.int64), max_decisions, replace=False))
    dec, cand = queries.decision_factors(con, sv, s.clv_feature, list(s.action_ids), list(s.channel_ids),
                                         keys=log.subject_keys, feature_names=[f.name for f in s.features],
                                         seqs=seqs)
    n, A = len(dec["seq"]), len(s.actions)
    if n == 0:
        raise LogError(f"The log {log.path!r} holds no decisions of strategy {sv!r}.",
                       "Pick a strategy version listed by the Overview page, or run `klartext demo`.")
    seq, cseq = dec["seq"].astype(np.int64), cand["seq"].astype(np.int64)
    if seq[-1] - seq[0] == n - 1:  # the version's decisions are contiguous in the log (the usual case)
        row = cseq - seq[0]
    else:
        row = np.searchsorted(seq, cseq)
    if np.ma.is_masked(cand["col"]):
        raise LogError(f"The log {log.path!r} scores actions that strategy {sv!r} does not declare.",
                       "Run `klartext verify` on the log: its candidates do not match its strategy.")
    for k in ("context_weight", "lever"):
        if np.ma.is_masked(cand[k]):
            raise LogError(f"The log {log.path!r} has scored candidates without a {k} (strategy {sv!r}).",
                           "Run `klartext verify` on the log: its candidate rows are incomplete.")
    from analysis.kernels import group_cells, repeated_cell

    ptr, col, p, cw, lv = group_cells(row, np.asarray(cand["col"], dtype=np.int32),
                                      *(np.asarray(cand[k], dtype=np.float64) for k in ("propensity", "context_weight",
                                                                                        "lever")), n, A)
    twice = repeated_cell(ptr, col, A)
    if twice >= 0:
        raise LogError(f"The log {log.path!r} lists an action twice in decision seq {int(seq[twice])}.",
                       "Run `klartext verify` on the log: its candidate rows were changed.")
    issues = sorted({a.issue for a in s.actions})
    return Factors(
        s, tables(s), seq, dec["channel"].astype(np.int64), dec["clv"].astype(np.float64),
        cell_ptr=ptr, cell_col=col, cell_propensity=p, cell_context_weight=cw, cell_lever=lv,
        logged_first=dec["first"].astype(np.int64), explored=dec["explored"].astype(bool),
        issue_index=np.array([issues.index(a.issue) for a in s.actions]), issues=issues, population=population)


# -- analyses ---------------------------------------------------------------------------------


@dataclass
class Evaluation:
    """The greedy selections of several :class:`Setting` s, summed (see :func:`evaluate`)."""

    kpis: np.ndarray  #: (S, len(KPIS)) totals
    by_action: np.ndarray  #: (S, len(BREAKDOWN), A) the KPIs of :data:`analysis.kpis.BREAKDOWN` per action
    by_channel: np.ndarray  #: (S, len(BREAKDOWN), C) the same per channel
    firsts: np.ndarray  #: (S, n) int16 first-slot action of each decision, -1 = none

    def kpi_dict(self, i: int) -> dict[str, float]:
        return {k: float(v) for k, v in zip(KPIS, self.kpis[i])}


def _lever_columns(f: Factors, setting: Setting) -> dict[int, float]:
    """Catalogue column → replacement lever of a setting (unknown names raise)."""
    ids, out = f.strategy.action_ids, {}
    for key, v in setting.levers.items():
        if key in ids:
            out[ids.index(key)] = float(v)
        elif key in f.issues:
            out.update({int(c): float(v) for c in np.flatnonzero(f.issue_index == f.issues.index(key))})
        else:
            raise ValueError(f"Unknown action or issue {key!r} in levers; use one of: "
                             f"{', '.join(f.issues + list(ids))}.")
    return out


def evaluate(f: Factors, settings: list[Setting], chunk: int = 4096) -> Evaluation:
    """The greedy selection of every decision under each of ``settings``, reduced to KPIs,
    per-action and per-channel sums and first actions — exactly the selections of
    :meth:`Factors.arbitrate`, in one compiled pass over the decisions
    (:func:`analysis.kernels.rearbitrate`) instead of dense ``n × A`` work per setting."""
    from analysis.kernels import rearbitrate

    s, t = f.strategy, f.tables
    S, A, C = len(settings), len(s.actions), len(s.channels)
    lever = np.full((S, A), np.nan)
    drop = np.zeros((S, 4), dtype=bool)
    thr = np.tile(np.asarray(t.threshold, dtype=np.float64), (S, 1))
    slots = np.tile(np.asarray(t.top_n, dtype=np.int64), (S, 1))
    weights = np.array([f.weights(st) for st in settings], dtype=np.float64).reshape(S, 2)
    for i, st in enumerate(settings):
        for col, v in _lever_columns(f, st).items():
            lever[i, col] = v
        for x in st.drop:
            if x not in DROPPABLE:
                raise ValueError(f"Unknown factor {x!r} to drop; use one of: {', '.join(DROPPABLE)}.")
            drop[i, DROPPABLE.index(x)] = True
        for ch in list(st.thresholds) + list(st.top_n):
            if ch not in s.channel_ids:
                raise ValueError(f"Unknown channel {ch!r}; use one of: {', '.join(s.channel_ids)}.")
        for ch, v in st.thresholds.items():
            thr[i, s.channel_ids.index(ch)] = v
        for ch, v in st.top_n.items():
            slots[i, s.channel_ids.index(ch)] = v
    fam = np.full(A, -1, dtype=np.int64)
    fam_order = np.zeros(A, dtype=np.int64)
    for k, members in enumerate(t.families):
        fam[members] = k
        fam_order[members] = np.arange(len(members))
    n = len(f)
    B = max(1, -(-n // chunk))
    firsts = np.full((S, n), -1, dtype=np.int16)
    terms = kpi_defs.term_arrays(s, t)
    Q = len(kpi_defs.BREAKDOWN)
    sums, by_a, by_c = np.zeros((B, S, len(KPIS))), np.zeros((B, S, Q, A)), np.zeros((B, S, Q, C))
    rearbitrate(f.cell_ptr, f.cell_col, f.cell_propensity, f.cell_context_weight, f.cell_lever, f.clv, f.channel,
                np.ascontiguousarray(weights[:, 0]), np.ascontiguousarray(weights[:, 1]), lever, drop, thr, slots,
                fam, fam_order, np.asarray(t.net_margin, dtype=np.float64), np.asarray(t.retention, dtype=np.float64),
                np.asarray(t.contact_cost, dtype=np.float64), len(t.families), terms.coef, terms.times_p,
                terms.times_clv, terms.kpi, terms.breakdown, chunk, firsts, sums, by_a, by_c)
    w = f.weight  # a sample's totals stand for the whole version's
    return Evaluation(sums.sum(axis=0) * w, by_a.sum(axis=0) * w, by_c.sum(axis=0) * w, firsts)


def first_actions(f: Factors, setting: Setting = Setting()) -> np.ndarray:
    """The first-slot action of every decision under ``setting`` (-1 = none), as
    :meth:`Factors.first` of :meth:`Factors.arbitrate` gives it, in one compiled pass."""
    ev = _base(f) if setting == Setting() else evaluate(f, [setting])
    return ev.firsts[0].astype(np.int64)


def _base(f: Factors) -> Evaluation:
    """The strategy's own setting, evaluated once per :class:`Factors`."""
    if "evaluation" not in f.derived:
        f.derived["evaluation"] = evaluate(f, [Setting()])
    return f.derived["evaluation"]


def sweep(f: Factors, steps: int = 21) -> pd.DataFrame:
    """Expected KPIs along the margin/retention balance (``steps`` values of λ in [0, 1]),
    every setting re-arbitrated exactly (:func:`evaluate`).

    Columns: lambda, margin_weight, retention_weight, the KPIs, changed (share of decisions
    whose first action differs from the strategy's own), current (λ = 0.5), efficient (on
    the margin/retention Pareto frontier).
    """
    s = f.strategy
    lams = np.linspace(0.0, 1.0, steps)
    weights = [(2 * (1 - lam) * s.margin_weight, 2 * lam * s.retention_weight) for lam in lams]
    ev = evaluate(f, [Setting(margin_weight=m, retention_weight=r) for m, r in weights])
    df = pd.DataFrame(ev.kpis, columns=list(KPIS))
    df.insert(0, "retention_weight", [w[1] for w in weights])
    df.insert(0, "margin_weight", [w[0] for w in weights])
    df.insert(0, "lambda", lams)
    df["current"] = np.isclose(lams, 0.5)
    base = _base(f).firsts[0]
    df["changed"] = [float((x != base).mean()) for x in ev.firsts]
    m, r = df["margin"].to_numpy(), df["retention"].to_numpy()
    df["efficient"] = [not ((m >= m[i]) & (r >= r[i]) & ((m > m[i]) | (r > r[i]))).any() for i in range(len(df))]
    return df


def what_if(f: Factors, setting: Setting) -> dict[str, Any]:
    """KPIs of the strategy and of ``setting``, the share of decisions whose first action
    changes, and the deltas by issue and channel (DataFrames)."""
    base, alt = _base(f), evaluate(f, [setting])
    return {
        "base": base.kpi_dict(0), "what_if": alt.kpi_dict(0),
        "changed": float((base.firsts[0] != alt.firsts[0]).mean()), "decisions": f.decisions,
        "sampled": None if f.population is None else len(f),
        "by_issue": _by_eval(f, base, alt, "issue"), "by_channel": _by_eval(f, base, alt, "channel"),
    }


def _by_eval(f: Factors, base: Evaluation, alt: Evaluation, by: str) -> pd.DataFrame:
    """Contacts, expected margin and retention of two evaluations by ``issue`` or ``channel``."""
    out: dict[str, Any] = {"key": f.issues if by == "issue" else list(f.strategy.channel_ids)}
    for label, ev in (("base", base), ("what_if", alt)):
        if by == "issue":
            sums = np.stack([np.bincount(f.issue_index, weights=ev.by_action[0, m], minlength=len(f.issues))
                             for m in range(len(BREAKDOWN))])
        else:
            sums = ev.by_channel[0]
        for m, name in enumerate(BREAKDOWN):
            out[f"{name}_{label}"] = sums[m].round().astype(np.int64) if name == "contacts" else sums[m]
    df = pd.DataFrame(out)
    for m in BREAKDOWN:
        df[f"{m}_delta"] = df[f"{m}_what_if"] - df[f"{m}_base"]
    return df


def sensitivity(f: Factors, lever_step: float = 1.1) -> pd.DataFrame:
    """Global sensitivity: the share of decisions whose first action changes when one factor
    is dropped (set to 1), or one issue's lever is multiplied by ``lever_step``.

    Columns: change, changed (share of decisions), contacts_delta, margin_delta, retention_delta.
    """
    base = _base(f)
    cases: list[tuple[str, Setting]] = [(f"drop {x}", Setting(drop=(x,)))
                                        for x in ("propensity", "value", "context_weight", "lever")]
    for i, issue in enumerate(f.issues):
        cols = np.flatnonzero(f.issue_index == i)
        current = f.strategy.levers[cols]
        if np.allclose(current, current[0]):
            cases.append((f"lever {issue} ×{lever_step:g}", Setting(levers={issue: float(current[0] * lever_step)})))
    ev = evaluate(f, [st for _, st in cases])
    k0 = base.kpis[0]
    rows = [{"change": name, "changed": float((ev.firsts[i] != base.firsts[0]).mean()),
             **{f"{k}_delta": ev.kpis[i, KPIS.index(k)] - k0[KPIS.index(k)] for k in BREAKDOWN}}
            for i, (name, _) in enumerate(cases)]
    return pd.DataFrame(rows).sort_values("changed", ascending=False, ignore_index=True)


def lever_for_share(f: Factors, action_id: str, target: float, hi: float = 1e4, iters: int = 60) -> dict[str, Any]:
    """The lever of ``action_id`` under which it is selected in ``target`` share of all
    decisions (bisection; the share only grows with the lever).  Only decisions where the
    action was scored can change, so the search runs on those."""
    a = f.strategy.action_index(action_id)
    rows = np.repeat(np.arange(len(f)), np.diff(f.cell_ptr))[f.cell_col == a]  # (one cell per action and decision)
    sub = f.subset(rows)
    n = len(f)

    def share(lv: float) -> float:
        contacts = evaluate(sub, [Setting(levers={action_id: lv})]).by_action[0, BREAKDOWN.index("contacts"), a]
        return float(contacts) / n

    current = float(f.strategy.levers[a])
    now = share(current)
    reach = share(hi)
    if target > reach:
        return {"action_id": action_id, "target": target, "lever": None, "share": reach, "current_lever": current,
                "current_share": now, "note": f"Even a lever of {hi:g} reaches only {reach:.2%}: the action is "
                                              f"scored in {len(rows) / n:.2%} of decisions."}
    lo_v, hi_v = 0.0, hi
    for _ in range(iters):
        mid = (lo_v + hi_v) / 2
        if share(mid) >= target:
            hi_v = mid
        else:
            lo_v = mid
    got = share(hi_v)
    return {"action_id": action_id, "target": target, "lever": hi_v, "share": got, "current_lever": current,
            "current_share": now, "note": f"A lever of {hi_v:.4g} (now {current:g}) gives {action_id} "
                                          f"{got:.2%} of decisions (now {now:.2%})."}


def to_json(obj: Any) -> str:
    def conv(o):
        if isinstance(o, pd.DataFrame):
            return o.to_dict(orient="records")
        if isinstance(o, (np.floating, np.integer)):
            return o.item()
        raise TypeError(type(o))
    return json.dumps(obj, indent=2, default=conv)


# -- champion / challenger and off-policy evaluation -------------------------------------------


def rerun(log: DecisionLog, challenger: Strategy, f: Factors, batch_size: int = 20_000,
          progress: Callable[[int], None] | None = None) -> Factors:
    """Re-execute the logged inputs of ``f``'s decisions under another strategy (all its
    policies, weights and models) with the same decision ids and times; the challenger's
    models are the newest registered in the log for its action ids."""
    from decisioning.engine import Engine
    from decisioning.inputs import Requests

    models = log.latest_models_for(challenger)
    engine = Engine(challenger, models)
    everything = int(log.con.cursor().execute(
        "SELECT count(*) FROM decisions WHERE strategy_version = ? AND source = 'klartext'", [f.strategy.version]
    ).fetchall()[0][0]) == len(f)
    rows = log.reveal(queries.decision_inputs(log.con.cursor(), f.strategy.version, None if everything else f.seq))
    rows = rows[~rows["erased"]]  # as in the factors: an erased customer's inputs are gone
    parts = []
    for start in range(0, len(rows), batch_size):
        chunk = rows.iloc[start:start + batch_size]
        req = Requests.from_logged(challenger, chunk["customer"], chunk["channel"], chunk["inputs"], assignment=False)
        b = engine.decide(req, decision_ids=chunk["decision_id"].to_numpy(dtype=object),
                          ts_us=chunk["ts_us"].to_numpy(dtype=np.int64))
        parts.append(from_batch(challenger, b))
        if progress:
            progress(len(chunk))
    return replace(_concat(parts), seq=f.seq)


def _concat(parts: list[Factors]) -> Factors:
    """Factors of the same strategy, one after the other."""
    ptr = [parts[0].cell_ptr]
    for p in parts[1:]:
        ptr.append(p.cell_ptr[1:] + ptr[-1][-1])
    per_decision = ("seq", "channel", "clv", "logged_first", "explored")
    cells = ("cell_col", "cell_propensity", "cell_context_weight", "cell_lever")
    return replace(parts[0], cell_ptr=np.concatenate(ptr),
                   **{k: np.concatenate([getattr(p, k) for p in parts]) for k in per_decision + cells})


def compare(champion: Factors, challenger: Factors) -> dict[str, Any]:
    """Which decisions change, and the expected KPIs of both (greedy selections; exploration
    is left out so the strategies, not the random draws, are compared)."""
    a_ev, b_ev = _base(champion), _base(challenger)
    a_first, b_first = a_ev.firsts[0].astype(np.int64), b_ev.firsts[0].astype(np.int64)
    a_ids = np.array(champion.strategy.action_ids + ("(none)",), dtype=object)
    b_ids = np.array(challenger.strategy.action_ids + ("(none)",), dtype=object)
    a_names, b_names = a_ids[a_first], b_ids[b_first]
    changed = a_names != b_names
    moves = pd.DataFrame({"champion": a_names[changed], "challenger": b_names[changed]}).value_counts().rename(
        "decisions").reset_index().head(20)
    by = []
    for label, fx, ev in (("champion", champion, a_ev), ("challenger", challenger, b_ev)):
        for grp in ("issue", "channel"):
            d = _by_eval(fx, ev, ev, grp)[["key", "contacts_base", "margin_base", "retention_base"]]
            d.columns = ["key", "contacts", "margin", "retention"]
            d.insert(0, "by", grp)
            d.insert(0, "strategy", label)
            by.append(d)
    table = pd.concat(by, ignore_index=True)
    wide = table.pivot_table(index=["by", "key"], columns="strategy", values=["contacts", "margin", "retention"],
                             fill_value=0.0)
    wide.columns = [f"{m}_{s}" for m, s in wide.columns]
    wide = wide.reset_index()
    for m in ("contacts", "margin", "retention"):
        wide[f"{m}_delta"] = wide.get(f"{m}_challenger", 0.0) - wide.get(f"{m}_champion", 0.0)
    return {"decisions": len(champion), "changed": float(changed.mean()), "changed_decisions": int(changed.sum()),
            "champion": a_ev.kpi_dict(0), "challenger": b_ev.kpi_dict(0), "moves": moves,
            "by_segment": wide}


REWARDS = ("conversion", "visit", "revenue", "margin", "retention")
#: Below this share of supported decisions an estimate is flagged as unreliable.
SUPPORT_WARN = 0.95


class UnsupportedTarget(InputError):
    """The log gives the target policy's choices no positive probability anywhere: in
    ``decisions`` decisions with outcomes, served with probability 1 throughout where
    ``no_exploration`` (else randomised only among actions the target does not choose)."""

    def __init__(self, message: str, hint: str | None = None, *, decisions: int = 0,
                 no_exploration: bool = False) -> None:
        super().__init__(message, hint)
        self.decisions, self.no_exploration = decisions, no_exploration


def off_policy(log: DecisionLog, f: Factors, target_first: np.ndarray, target: Factors | None = None,
               reward: str = "conversion", n_boot: int = 300, seed: int = 0) -> dict[str, Any]:
    """IPS, SNIPS and DR estimates of a deterministic target policy's value per decision,
    from the logged first choices, their selection probabilities and outcomes.

    ``target_first`` is the target's first action per decision (index into ``f``'s catalogue,
    -1 = none).  Rewards: ``conversion`` (the first action was accepted), ``visit`` (accepted,
    or a visit without purchase), ``revenue``, ``margin`` (realised), ``retention`` (the
    customer did not churn).  The DR reward model is the logged propensity (× net margin −
    contact cost for margin); for visit and revenue there is none, and DR equals IPS.
    """
    from analysis.ope import difference, evaluate

    if reward not in REWARDS:
        raise ValueError(f"Unknown reward {reward!r}; use one of: {', '.join(REWARDS)}.")
    if "first_outcomes" not in f.derived:  # the factors belong to one version of one log: so do its outcomes
        # (only the factors' decisions: a sample of a 10M log reads a fortieth of them)
        f.derived["first_outcomes"] = queries.first_action_outcomes(log.con.cursor(), f.strategy.version, f.seq)
    o = f.derived["first_outcomes"]
    n = len(f)
    if len(o["seq"]) != n:  # a subset of the version's decisions (a period or channels): theirs only
        pos = np.searchsorted(o["seq"], f.seq)
        o = f.derived["first_outcomes"] = {k: v[pos] for k, v in o.items()}
    r_all = {"conversion": o["accepted"].astype(float), "visit": o["visited"].astype(float),
             "revenue": o["revenue"].astype(float), "margin": o["margin"].astype(float),
             "retention": 1.0 - o["churned"].astype(float)}[reward]
    has = o["has_outcome"].astype(bool)
    prob = o["selection_probability"].astype(float)
    t = f.tables
    cost = np.array([a.cost for a in f.strategy.actions])

    def q(fx: Factors, acts: np.ndarray) -> np.ndarray:
        j = np.maximum(acts, 0)
        pa = np.nan_to_num(fx.propensity_at(acts))
        if reward == "conversion":
            v = pa
        elif reward in ("visit", "revenue"):  # no reward model for these: DR falls back to IPS form
            return np.zeros(n)
        elif reward == "margin":
            v = pa * t.net_margin[j] - cost[j]
        else:  # no model of churn: the mean retention, plus the action's effect if accepted
            base = float(r_all[has].mean())
            return np.where(acts >= 0, base + pa * t.retention[j], base)
        return np.where(acts >= 0, v, 0.0)

    # positivity: the target's choice had a positive logging probability where it is the action
    # that was served, or where the logger randomised (selection probability < 1: exploration
    # or an experiment picks among the ranked actions) and the target's choice was ranked; a
    # deterministic logger (probability 1) gave every other action probability 0
    supported = (target_first == f.logged_first) | ((prob < 1) & f.ranked_at(target_first))
    n_out = int(has.sum())
    support = float(supported[has].mean()) if n_out else 0.0
    if n_out and support == 0:
        raise UnsupportedTarget(
            f"The target policy cannot be evaluated on this log: in none of its {n_out:,} decisions with outcomes "
            "did the logging policy give the target's choice a positive probability (it served other actions, "
            f"{'always with probability 1: there was no exploration and no experiment' if (prob[has] >= 1).all() else 'and randomised only among actions the target does not choose'}).",
            "Log decisions with exploration (a strategy with exploration.epsilon > 0) or run an experiment whose "
            "assignment probabilities are logged (imports: a logging-probability column), then estimate again.",
            decisions=n_out, no_exploration=bool((prob[has] >= 1).all()))
    rows = has & supported
    est = evaluate(f.logged_first[rows], prob[rows], r_all[rows], target_first[rows],
                   q(target or f, target_first)[rows], q(f, f.logged_first)[rows], n_boot=n_boot, seed=seed)
    logging_value = float(r_all[rows].mean())
    out = {"reward": reward, "decisions": int(rows.sum()), "decisions_with_outcomes": n_out,
           "logging_policy_value": logging_value,
           "estimates": {k: e.to_dict() for k, e in est.items()},
           "target_differs": float((target_first != f.logged_first)[has].mean()),
           "supported": support, "scope": "all" if support == 1 else "supported",
           "explored_share": float(f.explored[has].mean())}
    if support < 1:
        out["warning"] = (
            f"Positivity is violated: in {1 - support:.1%} of the decisions ({n_out - int(rows.sum()):,}) the logging "
            "policy gave the target's choice probability 0, so nothing in the log says what it would have earned "
            f"there. The estimates below cover only the {support:.1%} of decisions where it was possible (and the "
            "logged value beside them is measured on the same decisions); they are not the target's value on the "
            "whole population." + (" Too little of the log supports the target for a reliable estimate."
                                   if support < SUPPORT_WARN else ""))
    ctrl = f.explored[rows]
    if ctrl.any() and (~ctrl).any():
        lift = difference(r_all[rows][~ctrl], r_all[rows][ctrl], n_boot=min(n_boot, 500), seed=seed)
        out["greedy_vs_explored_lift"] = lift.to_dict()
    return out


def read_target_probabilities(path: str) -> pd.DataFrame:
    """A stochastic target policy from a CSV or Parquet file: ``action_id, probability`` (one
    distribution for every decision) or ``decision_id, action_id, probability`` (one per
    decision).  Each distribution must sum to 1."""
    from pathlib import Path

    p = Path(path)
    if not p.exists():
        raise InputError(f"No target file at {path!r}.", "Pass a CSV or Parquet file of action_id, probability "
                         "(or decision_id, action_id, probability).")
    try:
        t = pd.read_parquet(p) if p.suffix.lower() == ".parquet" else pd.read_csv(p, dtype={"decision_id": str,
                                                                                            "action_id": str})
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same answer
        raise InputError(f"{path} cannot be read: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                         "Write it as CSV with a header row, or as Parquet.") from None
    missing = [c for c in ("action_id", "probability") if c not in t.columns]
    if missing:
        raise InputError(f"{path}: column {missing[0]!r} is missing.",
                         f"The file has: {', '.join(map(str, t.columns))}. Give action_id, probability (and "
                         "decision_id for one distribution per decision).")
    prob = pd.to_numeric(t["probability"], errors="coerce")
    bad = ~prob.between(0, 1) | prob.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"{path} row {i + 1}: probability {str(t['probability'].iloc[i])!r} is not a number in [0, 1].",
                         "Give each action's probability under the target policy.")
    t = t.assign(probability=prob.astype(float), action_id=t["action_id"].astype(str))
    keys = ["decision_id"] if "decision_id" in t.columns else []
    if keys:
        t["decision_id"] = t["decision_id"].astype(str)
    dup = t.duplicated(keys + ["action_id"])
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise InputError(f"{path} row {i + 1}: action {t['action_id'].iloc[i]!r} is listed twice"
                         + (f" for decision {t['decision_id'].iloc[i]!r}." if keys else "."),
                         "Give each action once per distribution.")
    sums = t.groupby(keys)["probability"].sum() if keys else pd.Series([t["probability"].sum()], index=["all"])
    off = sums[(sums - 1).abs() > 1e-6]
    if len(off):
        where = f"for decision {off.index[0]!r} " if keys else ""
        raise InputError(f"{path}: the probabilities {where}sum to {off.iloc[0]:.6g}, not 1.",
                         "A target policy gives each decision a distribution over actions that sums to 1.")
    return t


def off_policy_probabilities(log: DecisionLog, target: pd.DataFrame, reward: str = "conversion", n_boot: int = 300,
                             seed: int = 0) -> dict[str, Any]:
    """IPS, SNIPS and DR estimates of a *stochastic* target policy (:func:`read_target_probabilities`)
    on any log — made here or imported — from each decision's served action, its logged
    selection probability and its outcome.

    The DR reward model is the direct method fitted on the log: each action's mean reward
    where it was served.  Positivity: the target's probability mass is *supported* where the
    logger randomised (probability < 1; its randomisation is assumed to cover the actions it
    served somewhere in the log) and, where it served deterministically, only on the served
    action.  No support at all is refused; partial support is flagged (the estimates are then
    biased towards the supported part).
    """
    from analysis.ope import evaluate_stochastic

    if reward not in REWARDS:
        raise ValueError(f"Unknown reward {reward!r}; use one of: {', '.join(REWARDS)}.")
    o = queries.served_outcomes(log.con.cursor())
    o = o[o["has_outcome"]].reset_index(drop=True)
    if o.empty:
        raise InputError(f"The log {log.path!r} holds no decision with a chosen action and a logged outcome.",
                         "Add outcomes (`klartext import-outcomes`, or an outcome column when importing) first.")
    if o["probability"].isna().any():
        n_missing = int(o["probability"].isna().sum())
        src = sorted(o.loc[o["probability"].isna(), "source"].unique())
        raise InputError(f"{n_missing:,} decisions with outcomes have no logged selection probability (source: "
                         f"{', '.join(src)}), so nothing says how likely the served action was.",
                         "Import the logging probability of the served action (generic format: a `probability` "
                         "column on the selected rows), or evaluate decisions Klartext made with exploration.")
    r = {"conversion": o["accepted"], "visit": o["visited"], "revenue": o["revenue"], "margin": o["margin"],
         "retention": 1.0 - o["churned"].astype(float)}[reward].to_numpy(dtype=np.float64)
    served = o["action"].to_numpy(dtype=object)
    dm = pd.Series(r).groupby(served).mean()  # the direct method: mean reward per served action
    base = float(r.mean())
    if "decision_id" in target.columns:
        ids = o["decision_id"].astype(str)
        local = ids.str.split(":", n=1).str[-1].where(o["source"] != "klartext", ids)
        t = target.copy()
        known = set(ids)
        t["decision_id"] = np.where(t["decision_id"].isin(known), t["decision_id"],
                                    t["decision_id"].map(dict(zip(local, ids))))
        have = set(t["decision_id"].dropna())
        lacking = ids[~ids.isin(have)]
        if len(lacking):
            raise InputError(f"The target gives no distribution for decision {lacking.iloc[0]!r} "
                             f"({len(lacking):,} of the {len(ids):,} decisions with outcomes lack one).",
                             "Give a distribution for every decision, or one for all (action_id, probability).")
        t = t.dropna(subset=["decision_id"])
        pi_logged = (pd.DataFrame({"decision_id": ids, "action_id": served})
                     .merge(t, on=["decision_id", "action_id"], how="left")["probability"].fillna(0.0).to_numpy())
        t["q"] = t["action_id"].map(dm).fillna(base) * t["probability"]
        q_target = t.groupby("decision_id")["q"].sum().reindex(ids).fillna(0.0).to_numpy()
        never = t.loc[~t["action_id"].isin(set(served)), ["decision_id", "probability"]]
        mass_never = never.groupby("decision_id")["probability"].sum().reindex(ids).fillna(0.0).to_numpy()
    else:
        dist = dict(zip(target["action_id"], target["probability"]))
        pi_logged = np.array([dist.get(a, 0.0) for a in served], dtype=np.float64)
        q_target = np.full(len(o), sum(p * float(dm.get(a, base)) for a, p in dist.items()))
        mass_never = np.full(len(o), sum(p for a, p in dist.items() if a not in set(served)))
    p0 = o["probability"].to_numpy(dtype=np.float64)
    unsupported = np.where(p0 >= 1, 1.0 - pi_logged, mass_never)
    support = float(1.0 - unsupported.mean())
    if support <= 0:
        raise UnsupportedTarget(
            f"The target policy cannot be evaluated on this log: none of its probability mass falls on actions "
            f"the logging policy could have served in the {len(o):,} decisions with outcomes"
            + (" (every logged selection probability is 1: there was no exploration and no experiment)."
               if (p0 >= 1).all() else "."),
            "Log decisions with exploration (a strategy with exploration.epsilon > 0) or run an experiment whose "
            "assignment probabilities are logged, then estimate again.",
            decisions=len(o), no_exploration=bool((p0 >= 1).all()))
    q_logged = np.array([float(dm.get(a, base)) for a in served])
    est = evaluate_stochastic(p0, pi_logged, r, q_target, q_logged, n_boot=n_boot, seed=seed)
    out = {"reward": reward, "decisions": len(o), "decisions_with_outcomes": len(o),
           "logging_policy_value": base, "estimates": {k: e.to_dict() for k, e in est.items()},
           "target_differs": float((pi_logged < 1).mean()), "supported": support,
           "scope": "all" if support >= 1 - 1e-12 else "biased", "explored_share": float((p0 < 1).mean()),
           "dr_reward_model": "mean reward of each action where it was served (direct method)"}
    if out["scope"] != "all":
        out["warning"] = (
            f"Positivity is violated: {1 - support:.1%} of the target's probability mass falls on actions the "
            "logging policy could not have served there (probability 0), so nothing in the log says what they would "
            "have earned. IPS counts that mass as earning nothing and SNIPS as earning what the supported part "
            "earns: both are biased, and their intervals do not cover that." +
            (" Too little of the log supports the target for a reliable estimate." if support < SUPPORT_WARN else ""))
    return out


def policy_report(log: DecisionLog, f: Factors, rewards: tuple[str, ...] = ("visit", "conversion", "revenue", "margin"),
                  n_boot: int = 300, seed: int = 0) -> pd.DataFrame:
    """Off-policy estimates for the strategy's own greedy targeting and for "everyone gets
    action X" (each action), per reward: value, 95% interval, and the learned targeting's
    lift over each fixed policy with its own interval (paired bootstrap of the difference).

    Columns: target, reward, ips, ips_low, ips_high, snips, snips_low, snips_high, matched.
    """
    targets = {"learned targeting (the strategy)": first_actions(f)}
    for j, a in enumerate(f.strategy.action_ids):
        targets[f"everyone: {a}"] = np.full(len(f), j)
    rows = []
    for name, tf in targets.items():
        for rw in rewards:
            res = off_policy(log, f, tf, reward=rw, n_boot=n_boot, seed=seed)
            e_i, e_s = res["estimates"]["ips"], res["estimates"]["snips"]
            rows.append({"target": name, "reward": rw, "ips": e_i["value"], "ips_low": e_i["ci_low"],
                         "ips_high": e_i["ci_high"], "snips": e_s["value"], "snips_low": e_s["ci_low"],
                         "snips_high": e_s["ci_high"], "matched": e_i["matched"]})
    return pd.DataFrame(rows)


def lift(log: DecisionLog, f: Factors, target: np.ndarray, baseline: np.ndarray, reward: str,
         n_boot: int = 300, seed: int = 0) -> dict[str, float]:
    """IPS estimate of ``target − baseline`` with a paired bootstrap interval (same resamples)."""
    o = queries.first_action_outcomes(log.con.cursor(), f.strategy.version, f.seq)  # f's decisions, in its order
    r = {"conversion": o["accepted"], "visit": o["visited"], "revenue": o["revenue"], "margin": o["margin"],
         "retention": 1.0 - o["churned"].astype(float)}[reward].astype(float)
    p = o["selection_probability"].astype(float)
    d = ((f.logged_first == target).astype(float) - (f.logged_first == baseline).astype(float)) / p * r
    sums = bootstrap_sums(d, n_boot, seed)  # one resample per replicate, shared by target and baseline
    lo, hi = np.nanquantile(sums[:, 0] / sums[:, 1], [0.025, 0.975]) if n_boot else (np.nan, np.nan)
    return {"reward": reward, "lift": float(d.mean()), "ci_low": float(lo), "ci_high": float(hi)}


def challenger_targets(log: DecisionLog, f: Factors, challenger: Strategy,
                       progress: Callable[[int], None] | None = None) -> np.ndarray:
    """The first action ``challenger`` takes in each logged decision of ``f``, as an index
    into the logged strategy's catalogue (-1 = none), re-deciding the logged inputs
    (:func:`rerun`).  A challenger that chooses an action the logged strategy never offered
    cannot be evaluated on this log: that is refused, naming the action."""
    return logged_targets(f, rerun(log, challenger, f, progress=progress))


def logged_targets(f: Factors, g: Factors) -> np.ndarray:
    """The first action of ``g`` (the same decisions re-decided under another strategy) in
    each decision, as an index into ``f``'s catalogue (-1 = none); refused (naming the action)
    where ``g`` chooses an action ``f``'s strategy never offered."""
    names = np.array(g.strategy.action_ids)
    idx = {a: i for i, a in enumerate(f.strategy.action_ids)}
    firsts = first_actions(g)
    missing = sorted({names[j] for j in firsts if j >= 0 and names[j] not in idx})
    if missing:
        raise InputError(f"The target chooses action {missing[0]!r}, which the logged strategy never offered, so no "
                         "logged decision can tell its value.", "Evaluate targets that choose among the logged actions.")
    return np.array([idx[names[j]] if j >= 0 else -1 for j in firsts], dtype=np.int64)


def targeting_report(log: DecisionLog, f: Factors, n_boot: int = 300, seed: int = 0) -> dict[str, Any]:
    """The strategy's targeting against every "everyone gets X" policy: off-policy estimates
    for every reward (:func:`policy_report`), the observed means per logged action (what the
    IPS of "everyone gets X" must agree with) and the lift of the targeting over each fixed
    policy (:func:`lift`, paired bootstrap)."""
    learned = first_actions(f)
    lifts = [{"versus": f"everyone: {a}", **lift(log, f, learned, np.full(len(f), j), reward, n_boot, seed)}
             for j, a in enumerate(f.strategy.action_ids) for reward in ("visit", "conversion", "revenue", "margin")]
    return {"estimates": policy_report(log, f, n_boot=n_boot, seed=seed),
            "observed_by_logged_action": queries.arm_means(log.con.cursor()), "learned_lift": pd.DataFrame(lifts)}
