"""Population stability: the binned distribution of a model input or score, and the
population stability index (PSI) between two of them.

A distribution is recorded at training time (:func:`bins`, in the model's ``metrics`` under
``reference``) and recomputed on the logged decisions of a period; :func:`psi` compares the
two on the same bins.  Numeric values fall into ten bins cut at the training deciles (fewer
where values repeat); discrete values (categories, booleans, the channel — coded as in the
model matrix) each have their own bin; a missing value has its own bin.  An empty bin counts
as a share of 0.0001, the usual guard that keeps the index finite.
"""

from __future__ import annotations

from typing import Any

import numpy as np

FLOOR = 1e-4


def bins(values: np.ndarray, discrete: bool) -> dict[str, Any]:
    """The reference distribution of ``values``: ``{"edges": [...]}`` or ``{"values": [...]}``
    with ``share`` (one per bin, then the missing values' share last)."""
    v = np.asarray(values, dtype=np.float64)
    finite = v[~np.isnan(v)]
    if discrete:
        spec: dict[str, Any] = {"values": sorted(float(x) for x in np.unique(finite))}
    else:
        qs = np.quantile(finite, np.linspace(0.1, 0.9, 9)) if len(finite) else np.empty(0)
        spec = {"edges": [float(x) for x in np.unique(qs)]}
    spec["share"] = shares(v, spec).tolist()
    return spec


def shares(values: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    """The share of ``values`` in each bin of ``spec`` (the missing bin last); all zeros for
    no values.  A discrete value the reference never saw counts in no bin but lowers every
    share (so it shows as drift)."""
    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    missing = np.isnan(v)
    if "edges" in spec:
        idx = np.searchsorted(np.asarray(spec["edges"], dtype=np.float64), v[~missing], side="left")
        counts = np.bincount(idx, minlength=len(spec["edges"]) + 1).astype(np.float64)
    else:
        known = np.asarray(spec["values"], dtype=np.float64)
        pos = np.searchsorted(known, v[~missing])
        pos = np.minimum(pos, max(len(known) - 1, 0))
        hit = (known[pos] == v[~missing]) if len(known) else np.zeros(0, dtype=bool)
        counts = np.bincount(pos[hit], minlength=len(known)).astype(np.float64)
    out = np.append(counts, missing.sum())
    return out / n if n else out


def psi(expected: np.ndarray | list[float], actual: np.ndarray | list[float]) -> float:
    """Σ (actual − expected) · ln(actual / expected) over the bins, shares floored at 0.0001.
    NaN when either side holds no values."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.sum() == 0 or a.sum() == 0:
        return float("nan")
    e, a = np.maximum(e, FLOOR), np.maximum(a, FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def noise_p(value: float, n_expected: int, n_actual: int, bins: int) -> float:
    """The chance that two samples of these sizes from one population differ by a PSI of at
    least ``value`` over ``bins`` bins: the PSI is a symmetrised divergence, and
    PSI × n₁n₂ / (n₁ + n₂) is approximately χ²-distributed with bins − 1 degrees of freedom.
    Small samples give large PSIs by chance; a drift is judged only where this is tiny."""
    from scipy.stats import chi2

    if not n_expected or not n_actual or bins < 2 or value != value:
        return 1.0
    return float(chi2.sf(value * n_expected * n_actual / (n_expected + n_actual), bins - 1))
