"""The expected KPIs of a selection of actions, defined once.

Each KPI is a sum over the selected actions of its *terms*; a term is a per-action figure of
the strategy (net margin, cost per contact, retention effect, incentive cost, or 1), times
the logged propensity ``p`` of the action (or not: paid for every action shown), times the
customer's CLV (or not).  The compiled re-arbitration (:mod:`analysis.kernels`), the dense
reference (:meth:`analysis.tradeoff.Factors.kpis`), the CLI and the dashboard all read this
table; adding a KPI is one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from decisioning.arbitration import Tables
from decisioning.strategy import Strategy


@dataclass(frozen=True)
class Term:
    """``sign × figure[action] × (p if times_p) × (CLV if times_clv)``."""

    figure: str  #: a per-action figure of :func:`figures`
    sign: float = 1.0
    times_p: bool = True
    times_clv: bool = False


@dataclass(frozen=True)
class KPI:
    name: str
    label: str  #: what a person reads
    unit: str  #: "contacts", "customers" or "currency" (the strategy's)
    meaning: str
    terms: tuple[Term, ...]


KPI_TABLE: tuple[KPI, ...] = (
    KPI("contacts", "Contacts", "contacts", "Number of actions shown.", (Term("one", times_p=False),)),
    KPI("accepts", "Expected acceptances", "contacts", "Σ p: actions the customers are expected to accept.",
        (Term("one"),)),
    KPI("margin", "Expected margin", "currency",
        "Σ p × (margin − incentive cost) − Σ cost per contact (paid for every action shown, accepted or not).",
        (Term("net_margin"), Term("cost", sign=-1.0, times_p=False))),
    KPI("retention", "Expected retention value", "currency", "Σ p × retention effect × CLV: customer value kept.",
        (Term("retention", times_clv=True),)),
    KPI("churn_reduction", "Expected customers kept", "customers", "Σ p × retention effect.", (Term("retention"),)),
    KPI("incentive_spend", "Expected incentive spend", "currency", "Σ p × incentive cost.", (Term("incentive_cost"),)),
)
KPIS: tuple[str, ...] = tuple(k.name for k in KPI_TABLE)
#: The KPIs also summed per action and per channel (in this order).
BREAKDOWN: tuple[str, ...] = ("contacts", "margin", "retention")


def figures(strategy: Strategy, t: Tables) -> dict[str, np.ndarray]:
    """Each per-action figure a term can read, in catalogue order."""
    A = len(strategy.actions)
    return {"one": np.ones(A), "net_margin": np.asarray(t.net_margin, dtype=np.float64),
            "cost": np.array([a.cost for a in strategy.actions], dtype=np.float64),
            "retention": np.asarray(t.retention, dtype=np.float64),
            "incentive_cost": np.array([a.incentive_cost for a in strategy.actions], dtype=np.float64)}


@dataclass(frozen=True)
class TermArrays:
    """The terms of every KPI as the compiled re-arbitration reads them."""

    coef: np.ndarray  #: (T, A) sign × figure
    times_p: np.ndarray  #: (T,) bool
    times_clv: np.ndarray  #: (T,) bool
    kpi: np.ndarray  #: (T,) int64 index into :data:`KPIS`
    breakdown: np.ndarray  #: (len(BREAKDOWN),) int64 index into :data:`KPIS`


def term_arrays(strategy: Strategy, t: Tables) -> TermArrays:
    fig = figures(strategy, t)
    terms = [(i, term) for i, k in enumerate(KPI_TABLE) for term in k.terms]
    return TermArrays(
        coef=np.array([term.sign * fig[term.figure] for _, term in terms], dtype=np.float64),
        times_p=np.array([term.times_p for _, term in terms]),
        times_clv=np.array([term.times_clv for _, term in terms]),
        kpi=np.array([i for i, _ in terms], dtype=np.int64),
        breakdown=np.array([KPIS.index(k) for k in BREAKDOWN], dtype=np.int64))


def dense(strategy: Strategy, t: Tables, selected: np.ndarray, propensity: np.ndarray,
          clv: np.ndarray) -> dict[str, float]:
    """The KPIs of a dense selection (bool ``n × A``), the reference the kernel is tested against."""
    fig = figures(strategy, t)
    p = np.where(selected, propensity, 0.0)
    out = {}
    for k in KPI_TABLE:
        total = 0.0
        for term in k.terms:
            v = (p if term.times_p else selected.astype(np.float64)) * (term.sign * fig[term.figure])[None, :]
            if term.times_clv:
                v = v * clv[:, None]
            total += float(v.sum())
        out[k.name] = total
    return out
