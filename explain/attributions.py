"""SHAP attributions of one propensity model on given rows, with their fidelity checks.

Everything is in **log-odds**, the space in which boosted trees add up exactly:
``base_value + sum(attributions) == raw_output`` (the model's log-odds of acceptance), and
the probability is ``1 / (1 + exp(-raw_output))``.  SHAP's own ``model_output="probability"``
is not exact, so it is never used; figures show the probability on a second axis.

Algorithms
----------
``tree_path_dependent``
    Gradient-boosted trees (HistGradientBoosting, GradientBoosting): SHAP's TreeExplainer
    with the path-dependent algorithm — exact, no background data, well under a millisecond
    per row for a 100-tree model.  (The interventional algorithm is *not* used: with shap
    0.51 it mis-attributes rows whose feature value equals a split threshold, because shap
    keeps thresholds as float32 while scikit-learn compares in float64.)
``tree_path_dependent`` on a Pipeline
    A scikit-learn Pipeline ending in boosted trees (e.g. a ColumnTransformer with one-hot
    encoding + HistGradientBoosting): exact TreeSHAP on the encoded columns, summed per row
    back to the original features (the group map is read from the fitted pipeline's
    ``get_feature_names_out``, so it is versioned with the model).
``permutation``
    Any other fitted classifier (a scikit-learn Pipeline, a linear model, ...): SHAP's
    PermutationExplainer on the logit of ``predict_proba``, with an independent masker over
    a background sample drawn from the log (seeded, its fingerprint recorded).  Exact in its
    additivity (each permutation telescopes from the background mean to the row's output);
    the values are a Monte-Carlo estimate of the Shapley values whose cost is
    ``2 × features × permutations × background rows`` model evaluations per row — about
    10–50 ms per row for a linear pipeline with 30 features and 100 background rows.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np

from decisioning.engine import FOREST_ROWS
from decisioning.forest import Forest
from decisioning.forest import supported as forest_supported
from decisioning.models import PropensityModel, imported, logit

#: |base + Σ attributions − raw output| above this is a fidelity failure.
ADDITIVITY_TOL = 1e-6
#: |re-scored − logged propensity| above this is a fidelity failure (a replay is bit-exact).
RESCORE_TOL = 1e-12


@functools.cache
def library() -> str:
    """The libraries that compute attributions, as an explanation records them."""
    return f"shap {imported('shap').__version__}; scikit-learn {imported('sklearn').__version__}"


@dataclass
class Attributions:
    """Attributions of one model for ``n`` rows (all arrays have ``n`` rows)."""

    features: tuple[str, ...]
    x: np.ndarray  #: (n, F) the model-matrix values explained
    phi: np.ndarray  #: (n, F) attributions in log-odds
    base_value: np.ndarray  #: (n,)
    raw_output: np.ndarray  #: (n,) the model's log-odds for the row
    propensity: np.ndarray  #: (n,) the model's probability for the row (re-scored now)
    algorithm: str
    background: str | None = None  #: fingerprint of the background sample, if one was used

    @property
    def residual(self) -> np.ndarray:
        """``base + Σ attributions − raw output`` per row (should be ≈ 0)."""
        return self.base_value + self.phi.sum(axis=1) - self.raw_output


def background_fingerprint(background: np.ndarray) -> str:
    """SHA-256 (16 hex digits) of the background matrix's shape and float64 bytes."""
    b = np.ascontiguousarray(background, dtype=np.float64)
    return hashlib.sha256(repr(b.shape).encode() + b.tobytes()).hexdigest()[:16]


class ModelExplainer:
    """Explains one fitted :class:`PropensityModel` (built once, reused for many rows).

    Parameters
    ----------
    model : PropensityModel
    background : array (m, F), optional
        Required for models that are not boosted trees: rows of the model matrix to mask
        with (draw them from the log, seeded).
    permutations : int
        Permutations per row for the model-agnostic explainer.
    seed : int
        Seed of the model-agnostic explainer's permutations.
    """

    def __init__(self, model: PropensityModel, background: np.ndarray | None = None,
                 permutations: int = 10, seed: int = 0) -> None:
        shap = imported("shap")  # (when a model is first explained: a page that explains nothing does without it)
        self.model = model
        self.seed = seed
        self._groups = None
        self._forest = Forest({0: model}, {0: np.arange(len(model.features))}) if forest_supported(model) else None
        if model.log_odds_trees:
            self.algorithm = "tree_path_dependent"
            self.background = None
            self._tree = shap.TreeExplainer(model.estimator, feature_perturbation="tree_path_dependent",
                                            model_output="raw")
        elif model.pipeline_trees and (groups := group_map(model.estimator[:-1], model.features)) is not None:
            # exact on the encoded columns, then summed back to the features people know
            self.algorithm = "tree_path_dependent"
            self.background = None
            self._groups = groups
            self._tree = shap.TreeExplainer(model.estimator[-1], feature_perturbation="tree_path_dependent",
                                            model_output="raw")
        else:
            if background is None or len(background) == 0:
                raise ValueError(f"The model of action {model.action_id!r} is not a boosted-tree model; "
                                 "a background sample is needed to explain it.")
            self.algorithm = "permutation"
            bg = np.ascontiguousarray(background, dtype=np.float64)
            self.background = background_fingerprint(bg)
            masker = shap.maskers.Independent(bg, max_samples=len(bg))
            self._perm = shap.PermutationExplainer(self.model.raw_output, masker, seed=seed)
            self._max_evals = 2 * len(model.features) * permutations + 1

    def explain(self, X: np.ndarray, raw: np.ndarray | None = None) -> Attributions:
        """Attributions of the rows of ``X`` (the model's features).  ``raw``: the model's
        log-odds for these rows when the caller has re-scored them already (with the same
        bit-identical flat forest, :meth:`decisioning.forest.Forest.raw`)."""
        from scipy.special import expit

        X = np.ascontiguousarray(X, dtype=np.float64)
        n, F = X.shape
        if raw is not None:
            prop = expit(raw)
        elif self._forest is not None and n <= FOREST_ROWS:  # bit-identical to scikit-learn, much faster
            (raw,) = self._forest.raw(X, [(0, np.arange(n))])
            prop = expit(raw)
        else:
            raw = self.model.raw_output(X)
            prop = self.model.predict(X)
        if n == 0:
            phi = np.empty((0, F))
            base = np.empty(0)
        elif self.algorithm == "tree_path_dependent" and self._groups is not None:
            Xt = self.model.estimator[:-1].transform(self.model.frame(X) if self.model.input else X)
            Xt = np.asarray(Xt.toarray() if hasattr(Xt, "toarray") else Xt, dtype=np.float64)
            phi_t = np.asarray(self._tree.shap_values(Xt, check_additivity=False), dtype=np.float64).reshape(n, -1)
            phi = np.zeros((n, F))
            for k, g in enumerate(self._groups):
                phi[:, g] += phi_t[:, k]
            base = np.full(n, float(np.ravel(self._tree.expected_value)[0]))
        elif self.algorithm == "tree_path_dependent":
            phi = np.asarray(self._tree.shap_values(X, check_additivity=False), dtype=np.float64).reshape(n, F)
            base = np.full(n, float(np.ravel(self._tree.expected_value)[0]))
        else:
            out = self._perm(X, max_evals=max(self._max_evals, 2 * F + 1), silent=True)
            phi = np.asarray(out.values, dtype=np.float64).reshape(n, F)
            base = np.asarray(out.base_values, dtype=np.float64).reshape(n)
        return Attributions(tuple(self.model.features), X, phi, base, raw, prop, self.algorithm, self.background)


def group_map(pre, features: tuple[str, ...]) -> list[int] | None:
    """For each column a fitted preprocessing step outputs, the index of the original feature
    it encodes (one-hot columns ``f_value``, scaled ``f``, with or without a transformer
    prefix ``name__``), or None when a column cannot be traced to exactly one feature."""
    try:
        names = [str(x) for x in pre.get_feature_names_out()]
    except Exception:  # a step without get_feature_names_out: no exact path
        return None
    by_len = sorted(enumerate(features), key=lambda t: -len(t[1]))
    out = []
    for name in names:
        base = name.split("__", 1)[1] if "__" in name else name
        hit = next((i for i, f in by_len if base == f or base.startswith(f + "_")), None)
        if hit is None:
            return None
        out.append(hit)
    return out


def probability(raw: np.ndarray | float) -> np.ndarray:
    """The logistic function (log-odds → probability)."""
    return 1.0 / (1.0 + np.exp(-np.asarray(raw, dtype=np.float64)))


__all__ = ["ADDITIVITY_TOL", "RESCORE_TOL", "library", "Attributions", "ModelExplainer",
           "background_fingerprint", "probability", "logit"]
