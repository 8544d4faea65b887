"""All boosted-tree models of a strategy as one flat forest, for fast small-batch scoring.

scikit-learn's HistGradientBoosting predicts tree by tree from Python: about 8 µs per tree,
so a 100-tree model costs ~1 ms however few rows it scores — 29 models make a single
decision cost ~30 ms.  This module flattens every tree of every model into shared node
arrays and walks all (row, model, tree) paths at once with numpy, then adds the leaf values
**in tree order** to the model's baseline and applies the same logistic function, so the
result is bit-for-bit scikit-learn's ``predict_proba`` (checked in the tests on every model).

Used by the engine for small batches (a live request, a replay, a group commit); large
batches go to scikit-learn, whose compiled, multi-threaded loop is faster there.
Models with categorical splits, or that are not HistGradientBoosting binary classifiers on
the model matrix, are left to scikit-learn.
"""

from __future__ import annotations

import numpy as np
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
        self.baseline[a] = float(np.asarray(est._baseline_prediction).ravel()[0])

    def __contains__(self, a: int) -> bool:
        return a in self.roots

    def predict(self, X: np.ndarray, pairs: list[tuple[int, np.ndarray]]) -> list[np.ndarray]:
        """Probabilities for each (action, rows) pair, rows indexing ``X`` (the model matrix)."""
        return [expit(r) for r in self.raw(X, pairs)]

    def raw(self, X: np.ndarray, pairs: list[tuple[int, np.ndarray]]) -> list[np.ndarray]:
        """Log-odds (``decision_function``) for each (action, rows) pair."""
        if not pairs:
            return []
        t_max = max(len(self.roots[a]) for a, _ in pairs)
        sizes = [len(r) for _, r in pairs]
        n = sum(sizes)
        row = np.concatenate([r for _, r in pairs]).astype(np.int64)
        node = np.zeros((n, t_max), dtype=np.int64)
        valid = np.zeros((n, t_max), dtype=bool)
        base = np.empty(n)
        start = 0
        for (a, _rows), k in zip(pairs, sizes):
            roots = self.roots[a]
            node[start:start + k, :len(roots)] = roots[None, :]
            valid[start:start + k, :len(roots)] = True
            base[start:start + k] = self.baseline[a]
            start += k
        rows = np.broadcast_to(row[:, None], node.shape)
        cur = node[valid]
        rr = rows[valid]
        active = ~self.leaf[cur]
        while active.any():
            idx = np.flatnonzero(active)
            nd = cur[idx]
            x = X[rr[idx], self.feat[nd]]
            nan = np.isnan(x)
            go_left = np.where(nan, self.mleft[nd], x <= self.thr[nd])
            cur[idx] = np.where(go_left, self.left[nd], self.right[nd])
            active[idx] = ~self.leaf[cur[idx]]
        vals = np.zeros((n, t_max))
        vals[valid] = self.value[cur]
        raw = base.copy()
        for t in range(t_max):  # tree by tree, as scikit-learn adds them (adding 0.0 for padding is exact)
            raw += vals[:, t]
        out, start = [], 0
        for k in sizes:
            out.append(raw[start:start + k])
            start += k
        return out
