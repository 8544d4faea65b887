"""Explanations recover the simulator's true drivers (decisioning.scenarios.retail.TRUE_DRIVERS).

SHAP explains the *model*, so a driver the model did not learn cannot show up; the check is
made on models that learned their action (held-out AUC ≥ 0.6), and it says which those are.
The channel is a true driver of every action (the channel offset of the generative model);
features derived from true drivers (spend_12m = orders × order value, clv) may take part
of their credit — SHAP shares credit between correlated features.
"""

from __future__ import annotations

import numpy as np
import pytest

from decisioning.inputs import Requests
from decisioning.models import model_matrix, train_models
from decisioning.scenarios import retail
from explain.attributions import ModelExplainer


@pytest.fixture(scope="module")
def trained():
    strategy = retail.load_demo_strategy()
    history = retail.simulate_history(strategy, per_action=8000, seed=11)
    return strategy, history, train_models(strategy, history, seed=11)


def test_true_drivers_rank_among_the_top_attributions(trained):
    """Per learned action model: one of its listed drivers, or a feature the generator
    computes from one (retail.DERIVED_FROM, e.g. spend_12m = orders × order value), is among
    the 5 features with the largest mean |SHAP|, and the true drivers themselves carry at
    least 1.5× the share of the total mean |SHAP| they would get if attributions were spread
    evenly over the features."""
    strategy, history, models = trained
    failures, checked = [], 0
    for action_id, drivers in retail.TRUE_DRIVERS.items():
        m = models[action_id]
        if m.metrics["auc"] < 0.6:
            continue
        checked += 1
        rows = history[history["action_id"] == action_id].reset_index(drop=True).iloc[:1000]
        X = model_matrix(strategy, Requests.from_frame(strategy, rows), m.features)
        att = ModelExplainer(m).explain(X)
        assert np.abs(att.residual).max() <= 1e-9
        imp = np.abs(att.phi).mean(axis=0)
        truth = drivers + ["channel"]
        order = [m.features[i] for i in np.argsort(-imp)]
        share = sum(imp[m.features.index(d)] for d in truth) / imp.sum()
        uniform = len(truth) / len(m.features)
        carriers = set(drivers) | {f for f, src in retail.DERIVED_FROM.items() if set(src) & set(drivers)}
        if not carriers & set(order[:5]) or share < 1.5 * uniform:
            failures.append((action_id, drivers, order[:5], round(share, 3), round(uniform, 3)))
    # five actions have little to learn: even the true propensity ranks their outcomes with an
    # AUC of only 0.60-0.66 (test_models_come_close_to_the_true_propensity), so their models
    # stay just below 0.6
    assert checked >= 24, f"only {checked} of {len(retail.TRUE_DRIVERS)} models learned their action"
    assert failures == []


def test_models_come_close_to_the_true_propensity(trained):
    """Every model ranks its history's outcomes almost as well as the simulator's true
    propensity does (the best any model can do): within 0.1 of its AUC."""
    from sklearn.metrics import roc_auc_score

    strategy, history, models = trained
    gaps = {}
    for action_id in strategy.action_ids:
        rows = history[history["action_id"] == action_id]
        best = roc_auc_score(rows["accepted"], retail.true_propensity(rows, action_id))
        gaps[action_id] = round(best - models[action_id].metrics["auc"], 3)
    assert max(gaps.values()) < 0.1, gaps
