"""Compiled re-arbitration: the engine's arbitration for many settings over millions of logged
decisions in one pass (numba, already installed with shap).

The factors are held sparse, one cell per scored candidate (CSR: ``ptr`` delimits each
decision's cells, in any order: every tie is broken by catalogue position, not by position
in the layout).  Each decision's cells are read once, then every
setting is arbitrated while they sit in cache: priority ``((p × value) × c) × lever`` in the engine's order of
operations (no fast-math, so results are bit-identical to numpy's), one incentive level per
offer (the best, the cheapest on ties), the no-action threshold, and the top N by priority
with ties in catalogue order.  Rows are split into chunks that run in parallel, each chunk
summing into its own slice of the accumulators.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from decisioning.arbitration import MIN_PROPENSITY

DROP_PROPENSITY, DROP_VALUE, DROP_CONTEXT, DROP_LEVER = range(4)


@njit(parallel=True, cache=True, nogil=True)
def rearbitrate(ptr, col, p, c, lv, clv, channel, mw, rw, lever, drop, thr, slots, fam, fam_order,
                nm, ret, cost_in_value, n_fam, coef, times_p, times_clv, term_kpi, breakdown, chunk, firsts, kpis, by_a,
                by_c):  # pragma: no cover - compiled
    """Arbitrate every decision under every setting.

    ptr : (n + 1,) cells of decision i are ptr[i]:ptr[i + 1];  col : (m,) their actions;  p, c, lv : (m,) logged propensity, context weight, lever
    clv, channel : (n,);  mw, rw : (S,) weights;  lever : (S, A) replacement lever, NaN = logged
    drop : (S, 4) bool factors set to 1;  thr, slots : (S, C) per channel
    fam, fam_order : (A,) offer family (-1 = none) and rank in it (cheapest first)
    nm, ret : (A,) net margin, retention effect
    cost_in_value : (A,) the contact cost that enters the value (0 unless the strategy says so)
    coef, times_p, times_clv, term_kpi : the KPIs' terms (:class:`analysis.kpis.TermArrays`);
    breakdown : the KPIs also summed per action and channel
    firsts : (S, n) int16 out, first-slot action (-1 = none), preset to -1
    kpis : (B, S, K), by_a : (B, S, len(breakdown), A), by_c : (B, S, len(breakdown), C) out, zeroed;
    B = ceil(n / chunk)
    """
    n, A = clv.shape[0], nm.shape[0]
    S = mw.shape[0]
    B = (n + chunk - 1) // chunk
    for b in prange(B):
        js = np.empty(A, np.int64)
        pr = np.empty(A, np.float64)
        alive = np.empty(A, np.bool_)
        best = np.empty(max(n_fam, 1), np.int64)
        val = np.empty(kpis.shape[2], np.float64)
        for i in range(b * chunk, min(n, (b + 1) * chunk)):
            e0 = ptr[i]
            k = ptr[i + 1] - e0
            for q in range(k):
                js[q] = col[e0 + q]
            if k == 0:
                continue
            ch = channel[i]
            x = clv[i]
            for s in range(S):
                for q in range(k):
                    j = js[q]
                    if drop[s, DROP_VALUE]:
                        v = 1.0
                    else:
                        v = mw[s] * nm[j] + (rw[s] * ret[j]) * x
                        if cost_in_value[j] != 0.0:  # the engine's arithmetic (decisioning.arbitration)
                            v = v - (mw[s] * cost_in_value[j]) / max(p[e0 + q], MIN_PROPENSITY)
                    P = v if drop[s, DROP_PROPENSITY] else p[e0 + q] * v
                    if not drop[s, DROP_CONTEXT]:
                        P = P * c[e0 + q]
                    if not drop[s, DROP_LEVER]:
                        L = lever[s, j]
                        P = P * (lv[e0 + q] if np.isnan(L) else L)
                    pr[q] = P
                for f in range(n_fam):
                    best[f] = -1
                for q in range(k):
                    f = fam[js[q]]
                    if f >= 0:
                        o = best[f]
                        if o < 0 or pr[q] > pr[o] or (pr[q] == pr[o] and fam_order[js[q]] < fam_order[js[o]]):
                            best[f] = q
                t = thr[s, ch]
                for q in range(k):
                    f = fam[js[q]]
                    alive[q] = (f < 0 or best[f] == q) and pr[q] >= t and np.isfinite(pr[q])
                for slot in range(slots[s, ch]):
                    w = -1
                    for q in range(k):
                        if alive[q] and (w < 0 or pr[q] > pr[w] or (pr[q] == pr[w] and js[q] < js[w])):
                            w = q
                    if w < 0:
                        break
                    alive[w] = False
                    j = js[w]
                    if slot == 0:
                        firsts[s, i] = j
                    pp = p[e0 + w]
                    val[:] = 0.0
                    for u in range(term_kpi.shape[0]):
                        y = coef[u, j]
                        if times_p[u]:
                            y = y * pp
                        if times_clv[u]:
                            y = y * x
                        val[term_kpi[u]] += y
                    for k_ in range(val.shape[0]):
                        kpis[b, s, k_] += val[k_]
                    for q in range(breakdown.shape[0]):
                        by_a[b, s, q, j] += val[breakdown[q]]
                        by_c[b, s, q, ch] += val[breakdown[q]]


@njit(cache=True, nogil=True)
def group_cells(row, col, p, c, lv, n, A):  # pragma: no cover - compiled
    """The sparse layout of scattered cells ``(row, col)`` with values ``p, c, lv``: ``ptr``
    (n + 1,) and ``col, p, c, lv`` grouped by row (a counting sort), within a row in catalogue
    order (``col``): DuckDB's parallel join returns the rows in no fixed order, and two reads of
    the same decisions give the same layout, so every sum over it adds in the same order.
    Raises on a cell outside ``n × A``; a repeated cell is caught by :func:`repeated_cell`."""
    m = row.shape[0]
    ptr = np.zeros(n + 1, np.int64)
    for e in range(m):
        r = row[e]
        if r < 0 or r >= n or col[e] < 0 or col[e] >= A:
            raise ValueError("a candidate cell lies outside the decisions or the catalogue")
        ptr[r + 1] += 1
    for i in range(n):
        ptr[i + 1] += ptr[i]
    fill = ptr[:-1].copy()
    oc = np.empty(m, np.int32)
    op, oc2, olv = np.empty(m), np.empty(m), np.empty(m)
    for e in range(m):
        r = row[e]
        a = fill[r]
        fill[r] += 1
        oc[a], op[a], oc2[a], olv[a] = col[e], p[e], c[e], lv[e]
    for i in range(n):  # insertion sort of each row's few cells (at most the catalogue's size)
        for e in range(ptr[i] + 1, ptr[i + 1]):
            k, vp, vc, vl = oc[e], op[e], oc2[e], olv[e]
            f = e - 1
            while f >= ptr[i] and oc[f] > k:
                oc[f + 1], op[f + 1], oc2[f + 1], olv[f + 1] = oc[f], op[f], oc2[f], olv[f]
                f -= 1
            oc[f + 1], op[f + 1], oc2[f + 1], olv[f + 1] = k, vp, vc, vl
    return ptr, oc, op, oc2, olv


@njit(cache=True, nogil=True)
def repeated_cell(ptr, col, A):  # pragma: no cover - compiled
    """The first decision that lists an action twice, -1 if none."""
    seen = np.full(A, -1, np.int64)
    for i in range(ptr.shape[0] - 1):
        for e in range(ptr[i], ptr[i + 1]):
            if seen[col[e]] == i:
                return i
            seen[col[e]] = i
    return -1


@njit(cache=True, nogil=True)
def find_cells(ptr, col, rows, cols):  # pragma: no cover - compiled
    """Index of cell ``(rows[k], cols[k])`` in the sparse layout, -1 where it was not scored."""
    out = np.full(rows.shape[0], -1, np.int64)
    for k in range(rows.shape[0]):
        r, j = rows[k], cols[k]
        if j < 0:
            continue
        for e in range(ptr[r], ptr[r + 1]):
            if col[e] == j:
                out[k] = e
                break
    return out


def compile_all() -> None:
    """Compile (or load from numba's on-disk cache) the trade-off and bootstrap kernels, so the
    dashboard's first trade-off view does not wait for the compiler (~10 s once per install)."""
    from analysis.ope import bootstrap_sums
    from decisioning.forest import compile_walk

    compile_walk()

    n, A, S, C = 2, 2, 1, 1
    row, col = np.array([0, 1, 0], dtype=np.int64), np.array([1, 0, 0], dtype=np.int32)
    z = np.zeros(len(row))
    ptr, col, p, c, lv = group_cells(row, col, z, z, z, n, A)
    repeated_cell(ptr, col, A)
    find_cells(ptr, col, row, col.astype(np.int64))
    rearbitrate(ptr, col, p, c, lv, np.zeros(n), np.zeros(n, dtype=np.int64), np.ones(S),
                np.ones(S), np.full((S, A), np.nan), np.zeros((S, 4), dtype=np.bool_), np.zeros((S, C)),
                np.ones((S, C), dtype=np.int64), np.full(A, -1, dtype=np.int64), np.zeros(A, dtype=np.int64),
                np.zeros(A), np.zeros(A), np.zeros(A), 0, np.zeros((1, A)), np.ones(1, dtype=np.bool_),
                np.zeros(1, dtype=np.bool_), np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64), 1,
                np.full((S, n), -1, dtype=np.int16), np.zeros((n, S, 1)), np.zeros((n, S, 1, A)), np.zeros((n, S, 1, C)))
    bootstrap_sums(np.zeros((1, n)), 2, 0)
