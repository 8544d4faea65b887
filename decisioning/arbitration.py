"""Arbitration: from priorities to the selected actions, as a pure vectorised function.

The engine and every what-if (a lever or KPI weight changed, a decision re-ranked from its
logged factors) share this one function, so a counterfactual is decided by exactly the
rules that made the real decision:

1. **incentive choice** — among the scored variants of one offer (e.g. no voucher / 5% /
   10% / 20%), only the one with the highest priority stays; ties go to the cheapest
   incentive (families are passed cheapest first);
2. **no-action threshold** — an action whose priority is below its channel's threshold
   drops out (a NaN priority never clears it);
3. **ranking** — by priority, descending; ties keep catalogue order; the channel's top N
   are selected.

Exploration (epsilon-greedy) is applied by the engine on top of this greedy result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from decisioning.strategy import Strategy


@dataclass
class Arbitration:
    """The greedy outcome for a batch (n decisions × A actions)."""

    incentive_winner: np.ndarray  #: int (n, A): the family winner for cells that lost the incentive choice, else -1
    below_threshold: np.ndarray  #: bool (n, A): survived the incentive choice, but priority < threshold
    alive: np.ndarray  #: bool (n, A): ranked (passed every filter)
    order: np.ndarray | None  #: int (n, A): actions by rank (alive ones first); None without ranks
    rank: np.ndarray | None  #: int32 (n, A): 1 = best; 0 where not ranked; None without ranks
    selected: np.ndarray  #: bool (n, A): within the channel's top N
    k_alive: np.ndarray  #: int (n,): number of ranked actions


def arbitrate(
    priority: np.ndarray,
    scored: np.ndarray,
    families: list[np.ndarray],
    threshold: np.ndarray,
    top_n: np.ndarray,
    *,
    ranks: bool = True,
) -> Arbitration:
    """Arbitrate a batch.

    Parameters
    ----------
    priority : float array (n, A)
        ``propensity × value × context_weight × lever`` (anything where not ``scored``).
    scored : bool array (n, A)
        The cells that passed every policy and were scored.
    families : list of int arrays
        The actions of each offer with several incentive levels, cheapest incentive first.
    threshold, top_n : arrays (n,)
        The no-action threshold and the number of slots of each decision's channel.
    ranks : bool
        Rank every ranked action (the engine logs ranks).  Without, only the top N are
        picked, by repeated argmax — the same selection, much cheaper for what-ifs over
        millions of decisions; ``order`` and ``rank`` are then None.
    """
    n, A = priority.shape
    stopped = ~scored
    winner = np.full((n, A), -1, dtype=np.int64)
    for fam in families:
        key = np.where(stopped[:, fam], -np.inf, priority[:, fam])
        rows = np.flatnonzero((~stopped[:, fam]).sum(axis=1) > 1)
        if not len(rows):
            continue
        best = np.argmax(key[rows], axis=1)  # first max = cheapest incentive on ties
        lose = (~stopped[np.ix_(rows, fam)]) & (np.arange(len(fam))[None, :] != best[:, None])
        lr, lc = np.nonzero(lose)
        winner[rows[lr], fam[lc]] = fam[best[lr]]
    stopped = stopped | (winner >= 0)
    below = (~stopped) & ~(priority >= threshold[:, None])
    alive = ~(stopped | below)
    key = np.where(alive, priority, -np.inf)
    if not ranks:
        selected = np.zeros_like(alive)
        r = np.arange(n)
        for k in range(int(top_n.max(initial=0))):  # first max = catalogue order on ties, as the sort
            j = np.argmax(key, axis=1)
            ok = np.isfinite(key[r, j]) & (k < top_n)
            selected[r[ok], j[ok]] = True
            key[r, j] = -np.inf
        return Arbitration(winner, below, alive, None, None, selected, alive.sum(axis=1))
    order = np.argsort(-key, axis=1, kind="stable")  # ties keep catalogue order
    rank = np.zeros((n, A), dtype=np.int32)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(1, A + 1, dtype=np.int32), (n, A)), axis=1)
    rank[~alive] = 0
    selected = alive & (rank <= top_n[:, None])
    return Arbitration(winner, below, alive, order, rank, selected, alive.sum(axis=1))


#: The propensity a contact's cost is divided by is at least this (a model may say 0).
MIN_PROPENSITY = 1e-300


@dataclass(frozen=True)
class Tables:
    """What arbitration needs of a strategy, in catalogue / channel order."""

    net_margin: np.ndarray  #: (A,) margin if accepted minus the incentive's cost
    retention: np.ndarray  #: (A,) retention effect
    threshold: np.ndarray  #: (C,) no-action threshold per channel
    top_n: np.ndarray  #: (C,) slots per channel
    families: list[np.ndarray]  #: offers with several incentive levels, cheapest first
    #: (A,) cost per contact where it enters the value (``kpi.contact_cost_in_value``), else 0
    contact_cost: np.ndarray | None = None

    def value(self, margin_weight: float | np.ndarray, retention_weight: float | np.ndarray,
              clv: np.ndarray, propensity: np.ndarray | None = None) -> np.ndarray:
        """``margin_weight × net margin + retention_weight × retention × clv`` per (row, action),
        less ``margin_weight × contact cost / propensity`` where the strategy counts the
        contact's cost (so that propensity × value = expected value − the contact's cost).

        Weights may be scalars or one per row; this is the engine's own arithmetic, so values
        recomputed here are bit-identical to logged ones.
        """
        mw = np.asarray(margin_weight, dtype=np.float64).reshape(-1, 1)
        rw = np.asarray(retention_weight, dtype=np.float64).reshape(-1, 1)
        return self.value_at(mw, rw, np.arange(len(self.net_margin))[None, :], clv[:, None], propensity)

    def value_at(self, margin_weight: float | np.ndarray, retention_weight: float | np.ndarray, actions: np.ndarray,
                 clv: np.ndarray, propensity: np.ndarray | None = None) -> np.ndarray:
        """:meth:`value` of the cells (row, ``actions``) whose CLV and propensity are given,
        broadcast alike: the one place the value formula is written."""
        v = margin_weight * self.net_margin[actions] + (retention_weight * self.retention[actions]) * clv
        if self.costs_contacts:
            if propensity is None:
                raise ValueError("this strategy's value depends on the propensity (contact_cost_in_value)")
            with np.errstate(invalid="ignore"):
                v = v - (margin_weight * self.contact_cost[actions]) / np.maximum(propensity, MIN_PROPENSITY)
        return v

    @property
    def costs_contacts(self) -> bool:
        return self.contact_cost is not None and bool(self.contact_cost.any())


def tables(strategy: Strategy) -> Tables:
    s = strategy
    families: dict[str, list[int]] = {}
    for a, action in enumerate(s.actions):
        families.setdefault(action.offer, []).append(a)
    fams = [
        np.array(sorted(idx, key=lambda i: (s.actions[i].incentive_cost, i)))
        for idx in families.values() if len(idx) > 1
    ]
    return Tables(
        net_margin=np.array([a.margin - a.incentive_cost for a in s.actions]),
        retention=np.array([a.retention_effect for a in s.actions]),
        threshold=np.array([c.no_action_threshold for c in s.channels]),
        top_n=np.array([c.top_n for c in s.channels]),
        families=fams,
        contact_cost=np.array([a.cost if s.contact_cost_in_value else 0.0 for a in s.actions]),
    )


def priority(propensity, value, context_weight, lever):
    """The priority of a candidate: ``((propensity × value) × context weight) × lever``, in
    this order of operations (what the engine logs, so every recomputation matches it to
    the bit)."""
    return propensity * value * context_weight * lever
