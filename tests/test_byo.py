"""Bring your own model and customers: a user's Pipeline decides, replays and is explained."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from click.testing import CliRunner
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from decision_log.replay import replay
from decision_log.store import DecisionLog
from decisioning.errors import KlartextError
from decisioning.models import PropensityModel
from explain.api import Explainer
from klartext.cli import main
from tests.conftest import TINY_YAML, tiny_customers, tiny_truth

COLS = ["age", "recency_days", "segment", "channel", "clv"]


def _history(seed=5, n=3000):
    f = tiny_customers(n, seed=seed)
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < tiny_truth("reactivate_20", f)).astype(int)
    return f[COLS], y


@pytest.fixture
def setup(tmp_path, tiny_models):
    strategy_file = tmp_path / "tiny.yaml"
    strategy_file.write_text(TINY_YAML)
    db = tmp_path / "byo.duckdb"
    from decisioning.strategy import load_strategy

    with DecisionLog.open(db) as log:
        log.register_strategy(load_strategy(strategy_file))
        log.register_models(tiny_models)
    customers = tmp_path / "customers.csv"
    tiny_customers(400, seed=9).to_csv(customers, index=False)
    return strategy_file, db, customers


@pytest.mark.parametrize("kind", ["trees", "linear"])
def test_a_users_pipeline_decides_replays_and_is_explained(setup, tmp_path, kind):
    strategy_file, db, customers = setup
    X, y = _history()
    ct = ColumnTransformer([("oh", OneHotEncoder(handle_unknown="ignore"), ["segment", "channel"])],
                           remainder=StandardScaler() if kind == "linear" else "passthrough")
    last = HistGradientBoostingClassifier(max_iter=40, random_state=0) if kind == "trees" else LogisticRegression()
    pipe = make_pipeline(ct, last).fit(X, y)
    path = tmp_path / "model.skops"
    sio.dump(pipe, path)
    runner = CliRunner()
    out = runner.invoke(main, ["model", "register", "--db", str(db), "--strategy", str(strategy_file),
                               "--action", "reactivate_20", "--model", str(path)])
    assert out.exit_code == 0, out.output
    assert "features: age, recency_days, segment, channel, clv" in out.output
    assert ("exact TreeSHAP" if kind == "trees" else "model-agnostic SHAP") in out.output
    out = runner.invoke(main, ["run", "--db", str(db), "--strategy", str(strategy_file), "--customers", str(customers)])
    assert out.exit_code == 0, out.output
    assert "Logged 400 decisions of Tiny shop" in out.output
    with DecisionLog.open(db) as log:
        ids = [r[0] for r in log.con.execute(
            "SELECT decision_id FROM candidates WHERE action_id = 'reactivate_20' AND propensity IS NOT NULL "
            "LIMIT 20").fetchall()]
        assert all(r.reproduced for r in replay(log, ids))
        # the logged propensity is the user's pipeline on the customer's original values
        did = ids[0]
        p_logged = log.con.execute("SELECT propensity FROM candidates WHERE decision_id = ? AND "
                                   "action_id = 'reactivate_20'", [did]).fetchall()[0][0]
        e = Explainer(log).explain(did)
    feats = e.inputs["features"]
    row = pd.DataFrame([{c: (e.decision["channel"] if c == "channel" else feats[c]) for c in COLS}])
    assert p_logged == pipe.predict_proba(row)[0, 1]
    ca = e.attributions["reactivate_20"]
    assert ca.verified and ca.features == tuple(COLS)
    assert ca.algorithm == ("tree_path_dependent" if kind == "trees" else "permutation")
    assert abs(ca.residual) <= 1e-9


def test_models_that_do_not_fit_are_refused_with_the_reason(tiny_strategy):
    X, y = _history(n=500)
    reg = make_pipeline(ColumnTransformer([("oh", OneHotEncoder(), ["segment", "channel"])], remainder="passthrough"),
                        HistGradientBoostingRegressor(max_iter=5)).fit(X, y)
    with pytest.raises(KlartextError) as err:
        PropensityModel.external(tiny_strategy, "reactivate_20", reg)
    assert err.value.message == "The model for 'reactivate_20' is not a fitted binary classifier (Pipeline)."
    odd = LogisticRegression().fit(X.assign(shoe_size=1)[["age", "shoe_size"]], y)
    with pytest.raises(KlartextError) as err:
        PropensityModel.external(tiny_strategy, "reactivate_20", odd)
    assert err.value.message == "The model for 'reactivate_20' reads 'shoe_size', which strategy 'Tiny shop' does not declare."


def test_a_stored_model_with_foreign_code_is_refused_even_after_good_loads(tiny_strategy):
    from sklearn.preprocessing import FunctionTransformer

    from decisioning import models as M

    X, y = _history(n=300)
    X = X[["age"]]
    good = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    M.load_artifact(sio.dumps(good), "reactivate_20")
    evil = make_pipeline(FunctionTransformer(np.log1p), LogisticRegression()).fit(X, y)
    evil.steps[0][1].func = _history  # code that is not scikit-learn's or numpy's
    with pytest.raises(KlartextError) as err:
        M.load_artifact(sio.dumps(evil), "reactivate_20")
    foreign = f"{_history.__module__}._history"
    assert err.value.message == (f"The stored model for action 'reactivate_20' contains untrusted type "
                                 f"{foreign!r}; it was not loaded.")


def test_real_column_names_an_id_column_and_row_numbers_that_name_the_value(setup, tmp_path):
    strategy_file, db, customers = setup
    run = CliRunner().invoke
    table = pd.read_csv(customers)
    # columns as a CRM exports them: any name; the customer id under its own name
    real = table.rename(columns={"customer_id": "Kundennummer", "age": "Age", "recency_days": "Recency Days",
                                 "clv": "CLV", "segment": "Segment", "holds_card": "Holds-Card"})
    real_path = tmp_path / "crm.csv"
    real.to_csv(real_path, index=False)
    out = run(main, ["run", "--db", str(db), "--strategy", str(strategy_file), "--customers", str(real_path)])
    assert out.exit_code == 2 and "column 'customer_id' is missing" in out.output
    assert "Kundennummer" in out.output and "--id-column" in out.output
    out = run(main, ["run", "--db", str(db), "--strategy", str(strategy_file), "--customers", str(real_path),
                     "--id-column", "Kundennummer"])
    assert out.exit_code == 0, out.output
    with DecisionLog.open(db, read_only=True) as log:
        n = log.con.execute("SELECT count(*) FROM decisions").fetchall()[0][0]
        assert log.verify().ok
    assert n == len(table)
    # a value that is not a number: its row (1-based, header not counted, as `import` counts) and value
    bad = table.astype({"age": object})
    bad.loc[6, "age"] = "sixty"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    out = run(main, ["run", "--db", str(db), "--strategy", str(strategy_file), "--customers", str(tmp_path / "bad.csv")])
    assert out.exit_code == 2
    assert "row 7: feature 'age' must be a number, got 'sixty'" in out.output


def test_registered_models_carry_auc_and_training_size_from_held_out_data(setup, tmp_path):
    from sklearn.metrics import roc_auc_score

    from decision_log import queries

    strategy_file, db, _ = setup
    X, y = _history(n=2000)
    ct = ColumnTransformer([("oh", OneHotEncoder(handle_unknown="ignore"), ["segment", "channel"])],
                           remainder="passthrough")
    pipe = make_pipeline(ct, HistGradientBoostingClassifier(max_iter=30, random_state=0)).fit(X, y)
    sio.dump(pipe, tmp_path / "m.skops")
    hold = tiny_customers(800, seed=21)
    rng = np.random.default_rng(21)
    hold["accepted"] = (rng.random(len(hold)) < tiny_truth("reactivate_20", hold)).astype(int)
    hold.to_csv(tmp_path / "holdout.csv", index=False)
    out = CliRunner().invoke(main, ["model", "register", "--db", str(db), "--strategy", str(strategy_file),
                                    "--action", "reactivate_20", "--model", str(tmp_path / "m.skops"),
                                    "--holdout", str(tmp_path / "holdout.csv"), "--label", "accepted",
                                    "--n-train", "2000"])
    assert out.exit_code == 0, out.output
    expect = roc_auc_score(hold["accepted"], pipe.predict_proba(hold[COLS])[:, 1])
    assert f"On 800 held-out rows: AUC {expect:.3f}" in out.output and "fitted on 2,000 rows" in out.output
    with DecisionLog.open(db, read_only=True) as log:
        reg = queries.models_registry(log.con.cursor())
    row = reg[reg["action_id"] == "reactivate_20"].sort_values("created").iloc[-1]
    assert row["auc"] == pytest.approx(expect, abs=1e-12)
    assert (row["n_train"], row["n_test"]) == (2000, 800)
