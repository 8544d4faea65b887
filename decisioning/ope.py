"""Off-policy evaluation: the value a *target* policy would have had, estimated from logs of
decisions made by another (randomised) policy that recorded its selection probabilities.

For decision ``i`` the log holds the action ``a_i`` the logging policy chose, the probability
``π₀(a_i | x_i)`` with which it chose it, and the reward ``r_i`` that followed.  A
deterministic target policy picks ``π(x_i)``; the importance weight is
``w_i = 1[π(x_i) = a_i] / π₀(a_i | x_i)``.

* **IPS** — ``mean(w_i r_i)``: unbiased when every target action had a logged probability > 0.
* **SNIPS** — ``Σ w_i r_i / Σ w_i``: self-normalised; slightly biased, much lower variance.
* **DR** (doubly robust) — ``mean(q̂(x_i, π(x_i)) + w_i (r_i − q̂(x_i, a_i)))`` with a reward
  model ``q̂``: unbiased if either the weights or ``q̂`` are right, and lower variance when
  ``q̂`` is good.  Klartext's reward model is the logged propensity (× the action's margin for
  margin rewards), so DR needs no extra model.

Intervals are percentile bootstraps over decisions (seeded); the effective sample size is
``(Σ w)² / Σ w²``.  :func:`difference` gives measured lift between two groups (e.g. greedy
vs. randomly served control decisions) with a bootstrap interval.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

ESTIMATORS = ("ips", "snips", "dr")


@dataclass
class Estimate:
    estimator: str
    value: float
    ci_low: float
    ci_high: float
    n: int  #: decisions
    matched: int  #: decisions where the target chose the logged action
    ess: float  #: effective sample size of the importance weights

    def to_dict(self) -> dict:
        return asdict(self)


def _point(kind: str, w: np.ndarray, r: np.ndarray, q_target: np.ndarray | None, q_logged: np.ndarray | None) -> float:
    if kind == "ips":
        return float(np.mean(w * r))
    if kind == "snips":
        s = w.sum()
        return float((w * r).sum() / s) if s > 0 else float("nan")
    if kind == "dr":
        return float(np.mean(q_target + w * (r - q_logged)))
    raise ValueError(f"Unknown estimator {kind!r}; use one of {', '.join(ESTIMATORS)}.")


def evaluate(
    logged_action: np.ndarray,
    logged_probability: np.ndarray,
    reward: np.ndarray,
    target_action: np.ndarray,
    q_target: np.ndarray | None = None,
    q_logged: np.ndarray | None = None,
    *,
    estimators: tuple[str, ...] = ESTIMATORS,
    n_boot: int = 300,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Estimate]:
    """Estimate the target policy's mean reward per decision.

    Parameters
    ----------
    logged_action, target_action : int arrays (n,)
        The logged first action and the target's (``-1`` = no action; "no action" matches
        "no action" and then carries the reward observed without one).
    logged_probability : float array (n,)
        Probability with which the logging policy chose ``logged_action`` (> 0).
    reward : float array (n,)
    q_target, q_logged : float arrays (n,), optional
        Reward-model predictions for the target's and the logged action (needed for DR).
    """
    logged_probability = np.asarray(logged_probability, dtype=np.float64)
    if (logged_probability <= 0).any() or np.isnan(logged_probability).any():
        bad = int(np.flatnonzero((logged_probability <= 0) | np.isnan(logged_probability))[0])
        raise ValueError(f"Logged selection probability {float(logged_probability[bad])!r} at decision {bad} is not "
                         "positive; off-policy evaluation needs the probabilities the logging policy used.")
    match = np.asarray(logged_action) == np.asarray(target_action)
    w = match / logged_probability
    r = np.asarray(reward, dtype=np.float64)
    n = len(r)
    ess = float(w.sum() ** 2 / (w ** 2).sum()) if (w > 0).any() else 0.0
    rng = np.random.default_rng(seed)
    alpha = (1 - level) / 2
    out = {}
    kinds = [k for k in estimators if k != "dr" or q_target is not None]
    wr = w * r
    dr_terms = None if q_target is None else np.asarray(q_target) + w * (r - np.asarray(q_logged))
    boots = {k: np.empty(n_boot) for k in kinds}
    for b in range(n_boot):  # resampling decisions = weighting each by how often it was drawn
        c = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
        for k in kinds:
            if k == "ips":
                boots[k][b] = c @ wr / n
            elif k == "snips":
                sw = c @ w
                boots[k][b] = (c @ wr) / sw if sw > 0 else np.nan
            else:
                boots[k][b] = c @ dr_terms / n
    for k in kinds:
        v = _point(k, w, r, q_target, q_logged)
        lo, hi = np.nanquantile(boots[k], [alpha, 1 - alpha]) if n_boot else (np.nan, np.nan)
        out[k] = Estimate(k, v, float(lo), float(hi), n, int(match.sum()), ess)
    return out


def difference(a: np.ndarray, b: np.ndarray, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> Estimate:
    """Mean of ``a`` minus mean of ``b`` (e.g. greedy vs. control) with a bootstrap interval."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) == 0 or len(b) == 0:
        raise ValueError("Both groups need at least one decision to measure a lift.")
    rng = np.random.default_rng(seed)
    boots = np.array([a[rng.integers(0, len(a), len(a))].mean() - b[rng.integers(0, len(b), len(b))].mean()
                      for _ in range(n_boot)])
    alpha = (1 - level) / 2
    lo, hi = np.quantile(boots, [alpha, 1 - alpha])
    return Estimate("difference", float(a.mean() - b.mean()), float(lo), float(hi), len(a) + len(b), len(b), float("nan"))
