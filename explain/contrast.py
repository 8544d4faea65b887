"""Why A and not B: filter reasons, an exact priority decomposition and counterfactuals.

For the winner A of a decision and any other action B:

* **B was filtered** — the stage, the rule, its description, the logged reason and the
  customer's values of the fields the rule tested;
* **B ranked lower** — ``log(priority_A) − log(priority_B)`` split exactly into the
  propensity, value, context-weight and lever terms; the propensity term split further
  into the two models' base values, per-feature attribution differences and the
  saturation term of the logistic link::

      log p = raw + log(1 − p),   raw = base + Σ attributions

* **what would have made B win** — the smallest lever of B, and the nearest margin or
  retention weight, under which B takes first place.  Both are found by re-running the
  strategy's own arbitration (:func:`decisioning.arbitration.arbitrate`) on the logged
  factors, after checking that this reproduces the logged ranking.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from decisioning.arbitration import Tables, arbitrate, priority


@dataclass
class Term:
    name: str
    winner: float | None
    other: float | None
    log_ratio: float  #: contribution to log(priority_A) − log(priority_B)


@dataclass
class Counterfactual:
    parameter: str  #: ``lever``, ``margin_weight`` or ``retention_weight``
    current: float
    needed: float | None
    verified: bool
    note: str


@dataclass
class Contrast:
    decision_id: str
    winner: str
    other: str
    kind: str  #: filtered, ranked_lower, also_selected, winner
    summary: str
    explored: bool = False
    # filtered
    stage: str | None = None
    rule: str | None = None
    description: str | None = None
    reason: str | None = None
    tested: dict[str, Any] = field(default_factory=dict)
    # ranked lower
    priority_winner: float | None = None
    priority_other: float | None = None
    log_ratio: float | None = None
    terms: list[Term] = field(default_factory=list)
    propensity_terms: list[Term] = field(default_factory=list)
    residual: float | None = None
    counterfactuals: list[Counterfactual] = field(default_factory=list)
    rearbitration_reproduced: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- re-arbitration on logged factors ------------------------------------------------------


@dataclass
class DecisionFactors:
    """One logged decision's factors in catalogue order (what re-arbitration needs)."""

    tables: Tables  #: the pinned strategy's arbitration tables
    channel_index: int
    scored: np.ndarray  #: (A,) bool — reached scoring
    propensity: np.ndarray
    value: np.ndarray
    context_weight: np.ndarray
    lever: np.ndarray
    clv: float
    rank: np.ndarray  #: logged rank (0 = not ranked)
    selected: np.ndarray  #: logged selected

    def rearbitrate(self, priority: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ranks and selection for a (k, A) matrix of priorities under this decision's channel."""
        t = self.tables
        k = priority.shape[0]
        arb = arbitrate(priority, np.broadcast_to(self.scored, priority.shape),
                        t.families, np.full(k, t.threshold[self.channel_index]),
                        np.full(k, t.top_n[self.channel_index]))
        return arb.rank, arb.selected

    def values_for(self, margin_weight: np.ndarray, retention_weight: np.ndarray) -> np.ndarray:
        """Values under other KPI weights, computed as the engine computes them (k, A)."""
        return self.tables.value(margin_weight, retention_weight, np.full(len(margin_weight), self.clv),
                                 self.propensity[None, :])

    def priority(self, propensity=None, value=None, cw=None, lever=None) -> np.ndarray:
        p = self.propensity if propensity is None else propensity
        v = self.value if value is None else value
        c = self.context_weight if cw is None else cw
        lv = self.lever if lever is None else lever
        return priority(p, v, c, lv)


def _first_place(factors: DecisionFactors, b: int, priority: np.ndarray) -> np.ndarray:
    rank, _ = factors.rearbitrate(priority)
    return rank[:, b] == 1


def _smallest(predicate, lo: float, hi: float, iters: int = 400) -> float:
    """Smallest x in (lo, hi] with predicate(x) true, given predicate(lo) false and
    predicate(hi) true (monotone), to the last bit: geometric steps while the bracket is
    wide, then arithmetic ones."""
    for _ in range(iters):
        mid = math.sqrt(lo * hi) if lo > 0 and hi / lo > 1.0001 else lo + (hi - lo) / 2
        if not lo < mid < hi:
            break
        if predicate(mid):
            hi = mid
        else:
            lo = mid
    return hi


def lever_needed(factors: DecisionFactors, b: int) -> Counterfactual:
    """The smallest lever of action ``b`` that gives it first place (others unchanged)."""
    current = float(factors.lever[b])
    if not factors.scored[b]:
        return Counterfactual("lever", current, None, False,
                              "No lever helps: the action was removed by a policy before scoring.")
    base = factors.propensity[b] * factors.value[b] * factors.context_weight[b]
    if not base > 0:
        return Counterfactual("lever", current, None, False,
                              "No lever helps: its propensity × value × context weight is not positive.")

    def wins(lv: float) -> bool:
        lever = factors.lever.copy()
        lever[b] = lv
        return bool(_first_place(factors, b, factors.priority(lever=lever)[None, :])[0])

    if wins(current):
        return Counterfactual("lever", current, current, True, "It already takes first place.")
    hi = max(current, 1e-12)
    for _ in range(200):
        hi *= 2
        if wins(hi):
            break
    else:
        return Counterfactual("lever", current, None, False, "No finite lever gives it first place.")
    needed = _smallest(wins, max(current, hi / 2), hi)
    return Counterfactual("lever", current, needed, wins(needed),
                          f"With a lever of {needed:.6g} instead of {current:g} it would have taken first place.")


def weight_needed(factors: DecisionFactors, b: int, which: str, margin_weight: float,
                  retention_weight: float, upper: float = 10.0, grid: int = 401) -> Counterfactual:
    """The margin or retention weight nearest to the current one under which ``b`` takes
    first place (the other weight unchanged), searched in [0, max(upper, 10 × current)]."""
    current = margin_weight if which == "margin_weight" else retention_weight
    if not factors.scored[b]:
        return Counterfactual(which, current, None, False,
                              "No weight helps: the action was removed by a policy before scoring.")
    top = max(upper, 10 * current)
    ws = np.linspace(0.0, top, grid)

    def wins_at(w: np.ndarray) -> np.ndarray:
        mw = w if which == "margin_weight" else np.full(len(w), margin_weight)
        rw = w if which == "retention_weight" else np.full(len(w), retention_weight)
        value = factors.values_for(mw, rw)
        pr = factors.propensity[None, :] * value * factors.context_weight[None, :] * factors.lever[None, :]
        return _first_place(factors, b, pr)

    if wins_at(np.array([current]))[0]:
        return Counterfactual(which, current, current, True, "It already takes first place.")
    ok = wins_at(ws)
    if not ok.any():
        return Counterfactual(which, current, None, False,
                              f"No {which.replace('_', ' ')} in [0, {top:g}] gives it first place.")
    # the winning grid point nearest to the current weight, refined towards the boundary
    idx = np.flatnonzero(ok)
    j = int(idx[np.argmin(np.abs(ws[idx] - current))])
    w_win = float(ws[j])

    def wins(w: float) -> bool:
        return bool(wins_at(np.array([w]))[0])

    if w_win > current:
        w_win = _smallest(wins, max(float(ws[j - 1]), current), w_win)
    else:
        # largest winning weight below the current one: mirror the search
        hi = min(float(ws[j + 1]), current)
        lo = w_win
        for _ in range(400):
            mid = lo + (hi - lo) / 2
            if not lo < mid < hi:
                break
            if wins(mid):
                lo = mid
            else:
                hi = mid
        w_win = lo
    verified = bool(wins_at(np.array([w_win]))[0])
    label = which.replace("_", " ")
    return Counterfactual(which, current, w_win, verified,
                          f"With a {label} of {w_win:.6g} instead of {current:g} (the other weight unchanged) "
                          "it would have taken first place.")


def decompose(factors_a: dict[str, float], factors_b: dict[str, float]) -> tuple[float, list[Term], float] | None:
    """``log(P_A) − log(P_B)`` and its four terms, or None where a factor is not positive."""
    names = ("propensity", "value", "context_weight", "lever")
    if not all(factors_a[n] > 0 and factors_b[n] > 0 for n in names + ("priority",)):
        return None
    total = math.log(factors_a["priority"]) - math.log(factors_b["priority"])
    terms = [Term(n, factors_a[n], factors_b[n], math.log(factors_a[n]) - math.log(factors_b[n])) for n in names]
    residual = total - sum(t.log_ratio for t in terms)
    return total, terms, residual


def propensity_breakdown(features: tuple[str, ...], phi_a: np.ndarray, base_a: float, raw_a: float,
                         p_a: float, phi_b: np.ndarray, base_b: float, raw_b: float, p_b: float,
                         labels: dict[str, str]) -> list[Term]:
    """Exact split of ``log p_A − log p_B`` into base values, per-feature attribution
    differences (largest first) and the logistic saturation term."""
    terms = [Term("model base values", base_a, base_b, base_a - base_b)]
    diffs = [(f, float(a), float(b), float(a - b)) for f, a, b in zip(features, phi_a, phi_b)]
    diffs.sort(key=lambda t: -abs(t[3]))
    terms += [Term(labels.get(f, f), a, b, d) for f, a, b, d in diffs]
    sat = math.log1p(-p_a) - math.log1p(-p_b)
    terms.append(Term("logistic saturation log(1−p)", math.log1p(-p_a), math.log1p(-p_b), sat))
    return terms
