"""The flattened forest scores exactly like scikit-learn, in small and large batches alike."""

import numpy as np
import pytest

from decisioning.engine import FOREST_ROWS, Engine
from decisioning.forest import Forest, supported
from decisioning.inputs import Requests
from decisioning.models import model_matrix
from decisioning.strategy import STAGES


@pytest.mark.parametrize("parallel_from", [1, 10**9])  # rows split over threads, or one thread
def test_forest_is_bit_identical_to_scikit_learn(tiny_strategy, tiny_models, tiny_engine, monkeypatch,
                                                 parallel_from):
    import decisioning.forest

    monkeypatch.setattr(decisioning.forest, "PARALLEL_PATHS", parallel_from)
    from tests.conftest import tiny_customers

    f = tiny_customers(3000, seed=21)
    req = Requests.from_frame(tiny_strategy, f)
    tiny_engine.prepare()
    X = model_matrix(tiny_strategy, req, tiny_engine.columns_)
    X[::17, 0] = np.nan  # missing values follow each split's learned direction
    models = {a: tiny_models[x.id] for a, x in enumerate(tiny_strategy.actions)}
    assert all(supported(m) for m in models.values())
    fx = {a: tiny_engine.feature_idx_[x.id] for a, x in enumerate(tiny_strategy.actions)}
    forest = Forest(models, fx)
    rows = np.arange(len(X))
    for a, p in zip(models, forest.predict(X, [(a, rows) for a in models])):
        ref = models[a].estimator.predict_proba(X[:, fx[a]])[:, 1]
        assert np.array_equal(p, ref)


def test_one_by_one_equals_one_batch(tiny_strategy, tiny_models):
    from tests.conftest import tiny_customers

    req = Requests.from_frame(tiny_strategy, tiny_customers(FOREST_ROWS + 44, seed=8))
    ids = np.array([f"D{i}" for i in range(len(req))], dtype=object)
    big = Engine(tiny_strategy, tiny_models).decide(req, decision_ids=ids)
    eng = Engine(tiny_strategy, tiny_models)
    eng.prepare()
    X = model_matrix(tiny_strategy, req, eng.columns_)
    for a, action in enumerate(tiny_strategy.actions):  # every scored cell is scikit-learn's probability
        rows = np.flatnonzero(~np.isnan(big.propensity[:, a]))
        ref = tiny_models[action.id].estimator.predict_proba(X[np.ix_(rows, eng.feature_idx_[action.id])])[:, 1]
        np.testing.assert_array_equal(big.propensity[rows, a], ref)
    for i in range(0, len(req), 37):
        one = eng.decide(req.take(np.array([i])), decision_ids=ids[[i]])
        np.testing.assert_array_equal(one.propensity[0], big.propensity[i])
        np.testing.assert_array_equal(one.priority[0], big.priority[i])
        assert [STAGES[x] for x in one.stage[0]] == [STAGES[x] for x in big.stage[i]]
        # reasons rendered row by row (a small batch) read as those of the big batch
        assert [one.reasons[k] if k >= 0 else None for k in one.reason[0]] == \
            [big.reasons[k] if k >= 0 else None for k in big.reason[i]]


def test_trees_too_big_for_quickscorer_are_walked_bit_identically():
    """Trees of more than 64 leaves do not fit QuickScorer's 64-bit words: such a model is
    walked from each root instead, beside QuickScorer models in the same forest, and both
    score exactly like scikit-learn (missing values included)."""
    from types import SimpleNamespace

    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(4)
    X = rng.normal(size=(6000, 5))
    y = (X[:, 0] + np.sin(3 * X[:, 1]) + 0.5 * rng.normal(size=6000) > 0).astype(int)
    X[rng.random(X.shape) < 0.05] = np.nan
    big = HistGradientBoostingClassifier(max_iter=5, max_leaf_nodes=200, min_samples_leaf=5, early_stopping=False,
                                         random_state=0).fit(X, y)
    small = HistGradientBoostingClassifier(max_iter=20, early_stopping=False, random_state=0).fit(X, y)
    assert max(p[0].nodes["is_leaf"].sum() for p in big._predictors) > 64
    idx = np.arange(5)
    forest = Forest({0: SimpleNamespace(estimator=big), 1: SimpleNamespace(estimator=small)}, {0: idx, 1: idx})
    assert 0 not in forest.qs and 1 in forest.qs
    rows = np.arange(len(X))
    for a, est in ((0, big), (1, small)):
        (p,) = forest.predict(X, [(a, rows)])
        assert np.array_equal(p, est.predict_proba(X)[:, 1])
