"""All boosted-tree models of a strategy as one flat forest, for fast scoring.

scikit-learn's HistGradientBoosting predicts tree by tree from Python: about 8 µs per tree,
so a 100-tree model costs ~1 ms however few rows it scores — 29 models make a single
decision cost ~30 ms.  This module flattens every tree of every model into shared node
arrays and walks them in one compiled loop (numba, no fast-math), adding the leaf values
**in tree order** to the model's baseline and applying the same logistic function, so the
result is bit-for-bit scikit-learn's ``predict_proba`` (checked in the tests on every model).

One decision's 29 models take ~0.5 ms instead of ~30 ms; a large batch ~20% less than
scikit-learn's multi-threaded loop (rows are split over the cores; the walk releases the
GIL).  Models with categorical splits, or that are not HistGradientBoosting binary
classifiers on the model matrix, are left to scikit-learn.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit
from scipy.special import expit
from sklearn.ensemble import HistGradientBoostingClassifier


def supported(model) -> bool:
    est = model.estimator
    if model.input is not None or not isinstance(est, HistGradientBoostingClassifier) or len(est.classes_) != 2:
        return False
    if est.n_trees_per_iteration_ != 1:
        return False
    return not any(bool(p[0].nodes["is_categorical"].any()) for p in est._predictors)


class Forest:
    """The supported models of an engine, flattened.

    Parameters
    ----------
    models : dict of action index → PropensityModel
    feature_idx : dict of action index → array mapping the model's features to columns of
        the engine's model matrix.
    """

    def __init__(self, models: dict | None = None, feature_idx: dict | None = None) -> None:
        self.roots: dict[int, np.ndarray] = {}
        self.roots_flat = np.empty(0, np.int64)  #: every model's tree roots, model after model
        self.span: dict[int, tuple[int, int]] = {}  #: model → its roots in ``roots_flat``
        self.baseline: dict[int, float] = {}
        self.feat = np.empty(0, np.int64)
        self.thr = np.empty(0, np.float64)
        self.mleft = np.empty(0, bool)
        self.left = np.empty(0, np.int64)
        self.right = np.empty(0, np.int64)
        self.leaf = np.empty(0, bool)
        self.value = np.empty(0, np.float64)
        for a, m in (models or {}).items():
            self.add(a, m, feature_idx[a])

    def add(self, a: int, model, feature_idx: np.ndarray) -> None:
        """Flatten one model's trees into the shared arrays (models are added as needed, so
        a replay of one decision deserialises only the models it scores)."""
        est = model.estimator
        offset = len(self.feat)
        feats, thr, mleft, left, right, leaf, value, roots = [], [], [], [], [], [], [], []
        for (pred,) in est._predictors:
            nodes = pred.nodes
            roots.append(offset)
            feats.append(np.asarray(feature_idx)[nodes["feature_idx"]])
            thr.append(nodes["num_threshold"].astype(np.float64))
            mleft.append(nodes["missing_go_to_left"].astype(bool))
            left.append(nodes["left"].astype(np.int64) + offset)
            right.append(nodes["right"].astype(np.int64) + offset)
            leaf.append(nodes["is_leaf"].astype(bool))
            value.append(nodes["value"].astype(np.float64))
            offset += len(nodes)
        self.feat = np.concatenate([self.feat, *feats]).astype(np.int64)
        self.thr = np.concatenate([self.thr, *thr])
        self.mleft = np.concatenate([self.mleft, *mleft])
        self.left = np.concatenate([self.left, *left])
        self.right = np.concatenate([self.right, *right])
        self.leaf = np.concatenate([self.leaf, *leaf])
        self.value = np.concatenate([self.value, *value])
        self.roots[a] = np.asarray(roots, dtype=np.int64)
        self.span[a] = (len(self.roots_flat), len(self.roots_flat) + len(roots))
        self.roots_flat = np.concatenate([self.roots_flat, self.roots[a]])
        self.baseline[a] = float(np.asarray(est._baseline_prediction).ravel()[0])

    def __contains__(self, a: int) -> bool:
        return a in self.roots

    def predict(self, X: np.ndarray, pairs: list[tuple[int, np.ndarray]]) -> list[np.ndarray]:
        """Probabilities for each (action, rows) pair, rows indexing ``X`` (the model matrix)."""
        return [expit(r) for r in self.raw(X, pairs)]

    def _packed(self) -> tuple[np.ndarray, np.ndarray]:
        """Nodes packed for the compiled walk: ``meta`` (N, 4) int32 = feature (-1 for a
        leaf), left, right, missing-goes-left; ``thr`` (N,) = threshold, or a leaf's value."""
        if self.__dict__.get("_packed_n") != len(self.feat):
            meta = np.empty((len(self.feat), 4), dtype=np.int32)
            meta[:, 0] = np.where(self.leaf, -1, self.feat)
            meta[:, 1], meta[:, 2], meta[:, 3] = self.left, self.right, self.mleft
            self.__dict__["_packed_arrays"] = (meta, np.where(self.leaf, self.value, self.thr))
            self.__dict__["_packed_n"] = len(self.feat)
        return self.__dict__["_packed_arrays"]

    def raw(self, X: np.ndarray, pairs: list[tuple[int, np.ndarray]]) -> list[np.ndarray]:
        """Log-odds (``decision_function``) for each (action, rows) pair."""
        if not pairs:
            return []
        meta, thr = self._packed()
        X = np.ascontiguousarray(X, dtype=np.float64)
        rows = [np.ascontiguousarray(r, dtype=np.int64) for _, r in pairs]
        outs = [np.empty(len(r)) for r in rows]
        # work items (pair, first row, last row): a pair's rows are split so the cores share them
        total = sum(len(r) for r in rows)
        k = min(os.cpu_count() or 1, 8) if total >= PARALLEL_PATHS else 1
        step = max(1, -(-total // (4 * k)))
        items = [(i, s, min(len(r), s + step)) for i, r in enumerate(rows) for s in range(0, len(r), step)]

        def run(part: list[tuple[int, int, int]]) -> None:
            for i, s, e in part:
                a = pairs[i][0]
                lo, hi = self.span[a]
                _walk(X, rows[i][s:e], self.roots_flat, lo, hi, self.baseline[a], meta, thr, outs[i][s:e])

        if k == 1:
            run(items)
        else:  # the compiled walk releases the GIL
            with ThreadPoolExecutor(k) as pool:
                list(pool.map(run, [items[j::k] for j in range(k)]))
        return outs


#: Below this many (row, model) paths one thread walks them all.
PARALLEL_PATHS = 20_000
_BLOCK = 64  #: rows walked together, tree by tree


@njit(cache=True, nogil=True)
def _walk(X, rows, roots, lo, hi, base, meta, thr, out):  # pragma: no cover - compiled
    """Raw scores of one model (trees ``roots[lo:hi]``) for ``rows`` of ``X`` into ``out``:
    the baseline plus each tree's leaf value, added in tree order — scikit-learn's arithmetic
    (``x <= threshold`` goes left; a missing value follows the split's learned direction), so
    the result is bit for bit its ``decision_function``.  Blocks of rows, tree by tree: the
    block's feature rows and the nodes near each root stay in cache."""
    n = rows.shape[0]
    for b0 in range(0, n, _BLOCK):
        b1 = min(n, b0 + _BLOCK)
        for i in range(b0, b1):
            out[i] = base
        for t in range(lo, hi):
            root = roots[t]
            for i in range(b0, b1):
                r = rows[i]
                node = root
                f = meta[node, 0]
                while f >= 0:
                    x = X[r, f]
                    if np.isnan(x):
                        node = meta[node, 1] if meta[node, 3] else meta[node, 2]
                    elif x <= thr[node]:
                        node = meta[node, 1]
                    else:
                        node = meta[node, 2]
                    f = meta[node, 0]
                out[i] += thr[node]


def compile_walk() -> None:
    """Compile (or load from numba's on-disk cache) the walk, so the first decision of a
    process does not wait for the compiler (a few seconds once per installation)."""
    meta = np.array([[-1, 0, 0, 0]], dtype=np.int32)
    _walk(np.zeros((1, 1)), np.zeros(1, np.int64), np.zeros(1, np.int64), 0, 1, 0.0, meta, np.zeros(1), np.empty(1))
