"""Missing values reach the models that accept them (issue #16, item 8).

A feature declared ``missing: allowed`` may be empty in a customer table or null in a
request; the models read it as NaN (HistGradientBoosting learns where a missing value goes),
the log stores it as JSON null under the seal, replay reproduces the decision bit for bit,
the explanation names the value as missing, and everything that cannot take a missing value
(a rule, the lifetime value, a linear model) is refused with the feature's name.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from click.testing import CliRunner
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from streamlit.testing.v1 import AppTest

from decision_log.replay import replay
from decision_log.store import DecisionLog
from decisioning.engine import Engine
from decisioning.errors import InputError, KlartextError, StrategyError
from decisioning.inputs import Requests
from decisioning.models import PropensityModel, model_matrix, train_models
from decisioning.strategy import parse_strategy
from explain.api import Explainer
from explain.text import explanation_text
from klartext.cli import main
from tests.conftest import TINY_YAML, request, tiny_customers, tiny_history, tiny_truth

ROOT = Path(__file__).resolve().parents[1]
GAPPY = TINY_YAML.replace(
    "recency_days:  {type: integer, source: crm, label: Last purchase, unit: days ago, min: 0}",
    "recency_days:  {type: integer, source: crm, label: Last purchase, unit: days ago, min: 0, missing: allowed}")


def _gaps(f: pd.DataFrame, seed: int, share: float = 0.25) -> pd.DataFrame:
    f = f.copy()
    f["recency_days"] = f["recency_days"].astype("float64")
    f.loc[np.random.default_rng(seed).random(len(f)) < share, "recency_days"] = np.nan
    return f


@pytest.fixture(scope="module")
def gappy():
    s = parse_strategy(GAPPY, source="gappy.yaml")
    return s, train_models(s, tiny_history(s, transform=lambda f, k: _gaps(f, seed=k)))


def test_a_feature_that_may_be_missing_is_declared_and_only_models_read_it():
    assert parse_strategy(GAPPY, source="g.yaml").feature("recency_days").missing
    assert not parse_strategy(TINY_YAML, source="t.yaml").feature("recency_days").missing
    rule = GAPPY.replace("exclude_if: arrears_days > 0", "exclude_if: recency_days > 400")
    with pytest.raises(StrategyError, match="'recency_days' may be missing.*a rule cannot decide"):
        parse_strategy(rule, source="g.yaml")
    weight = GAPPY.replace("when: age < 30", "when: recency_days < 30")
    with pytest.raises(StrategyError, match="'recency_days' may be missing"):
        parse_strategy(weight, source="g.yaml")
    clv = GAPPY.replace("unit: EUR, min: 0}", "unit: EUR, min: 0, missing: allowed}")
    with pytest.raises(StrategyError, match="'clv' may be missing"):
        parse_strategy(clv, source="g.yaml")
    cat = GAPPY.replace("values: [new, regular, vip]}", "values: [new, regular, vip], missing: allowed}")
    with pytest.raises(StrategyError, match="only a number or integer feature may be missing"):
        parse_strategy(cat, source="g.yaml")


def test_requests_take_a_missing_value_only_where_it_is_allowed(gappy):
    s, _ = gappy
    item = request(recency_days=None)
    req = Requests.from_dicts(s, [item])
    assert np.isnan(req.features["recency_days"][0])
    assert req.to_dict(s, 0)["features"]["recency_days"] is None  # JSON null, the inverse
    left_out = request()
    del left_out["features"]["recency_days"]
    assert np.isnan(Requests.from_dicts(s, [left_out]).features["recency_days"][0])
    with pytest.raises(InputError, match="(?s)feature .age. is empty.*missing: allowed"):
        Requests.from_dicts(s, [request(age=None)])
    frame = tiny_customers(5)
    frame["recency_days"] = [1, None, 3, None, 5]
    assert np.isnan(Requests.from_frame(s, frame).features["recency_days"]).sum() == 2
    frame["age"] = frame["age"].astype("float64")
    frame.loc[2, "age"] = np.nan
    with pytest.raises(InputError, match="row 3: feature 'age' is empty"):
        Requests.from_frame(s, frame)
    frame["age"] = 30
    frame["recency_days"] = [1, None, 2.5, None, 5]
    with pytest.raises(InputError, match="row 3: feature 'recency_days' must be a whole number, got 2.5"):
        Requests.from_frame(s, frame)
    frame["recency_days"] = ["1", "", "x", None, "5"]
    with pytest.raises(InputError, match="row 3: feature 'recency_days' must be a number, got 'x'"):
        Requests.from_frame(s, frame)


@pytest.fixture(scope="module")
def gappy_log(gappy, tmp_path_factory):
    """A log of 600 decisions, a quarter with the last purchase unknown, made by `klartext run`."""
    s, models = gappy
    tmp_path = tmp_path_factory.mktemp("gappy")
    strategy_file = tmp_path / "gappy.yaml"
    strategy_file.write_text(GAPPY)
    db = tmp_path / "gappy.duckdb"
    with DecisionLog.open(db) as log:
        log.register_strategy(s)
        log.register_models(models)
    customers = _gaps(tiny_customers(600, seed=9), seed=99)
    customers["recency_days"] = customers["recency_days"].astype("Int64")  # written as empty cells
    path = tmp_path / "customers.csv"
    customers.to_csv(path, index=False)
    assert ",," in path.read_text()
    out = CliRunner().invoke(main, ["run", "--db", str(db), "--strategy", str(strategy_file), "--customers", str(path)])
    assert out.exit_code == 0, out.output
    with DecisionLog.open(db) as log:
        rows = log.con.execute("SELECT decision_id, customer, inputs FROM decisions ORDER BY seq").fetchall()
        rows = list(zip([r[0] for r in rows], log.open_inputs(*(list(c) for c in zip(*rows)))))  # sealed
        chose = {d for (d,) in log.con.execute("SELECT decision_id FROM decisions WHERE chosen_action IN "
                                               "('reactivate_0', 'reactivate_20')").fetchall()}
    gaps = [d for d, i in rows if json.loads(i)["features"]["recency_days"] is None]
    return db, rows, gaps, next(d for d in gaps if d in chose)


def test_a_missing_value_decides_logs_replays_and_explains(gappy, gappy_log):
    s, models = gappy
    db, rows, gaps, did = gappy_log
    out = CliRunner().invoke(main, ["verify", "--db", str(db)])
    assert out.exit_code == 0, out.output
    assert 100 < len(gaps) < 200  # a quarter of 600, stored as JSON null
    with DecisionLog.open(db) as log:
        assert all(r.reproduced for r in replay(log, [d for d, _ in rows]))
        # the compiled forest scores a missing value exactly as scikit-learn does
        inputs = json.loads(dict(rows)[did])
        p_logged = dict(log.con.execute("SELECT action_id, propensity FROM candidates WHERE decision_id = ? "
                                        "AND propensity IS NOT NULL", [did]).fetchall())
        req = Requests.from_dicts(s, [{"customer_id": "x", "channel": log.con.execute(
            "SELECT channel FROM decisions WHERE decision_id = ?", [did]).fetchall()[0][0],
            "features": inputs["features"]}])
        X = model_matrix(s, req)
        assert np.isnan(X).any()
        for aid, p in p_logged.items():
            assert p == models[aid].estimator.predict_proba(X)[0, 1]
        e = Explainer(log).explain(did)
    text = explanation_text(e)
    assert "Last purchase: missing" in text and "nan" not in text.lower(), text
    assert e.attributions
    for att in e.attributions.values():  # exact TreeSHAP with the missing value, re-checked
        assert att.verified and att.residual < 1e-9


def test_a_model_that_cannot_take_a_missing_value_is_refused_with_its_feature(gappy, tmp_path):
    s, _ = gappy
    f = tiny_customers(800, seed=3)
    X = f[["age", "recency_days", "clv"]].astype(float)
    y = (np.random.default_rng(0).random(800) < tiny_truth("reactivate_20", f)).astype(int)
    linear = LogisticRegression().fit(X, y)
    with pytest.raises(KlartextError, match="(?s)cannot score a missing value of .recency_days.*imputes"):
        PropensityModel.external(s, "reactivate_20", linear)
    imputing = make_pipeline(SimpleImputer(), LogisticRegression()).fit(X, y)
    m = PropensityModel.external(s, "reactivate_20", imputing)  # a Pipeline that imputes is welcome
    assert 0 < m.predict(np.array([[40.0, np.nan, 100.0]]))[0] < 1
    # via the command line: nothing is registered
    strategy_file = tmp_path / "gappy.yaml"
    strategy_file.write_text(GAPPY)
    sio.dump(linear, tmp_path / "linear.skops")
    out = CliRunner().invoke(main, ["model", "register", "--db", str(tmp_path / "x.duckdb"), "--strategy",
                                    str(strategy_file), "--action", "reactivate_20", "--model",
                                    str(tmp_path / "linear.skops")])
    assert out.exit_code == 2 and "missing value of 'recency_days'" in out.output
    assert "could not be read" not in out.output  # a readable model, refused for what it cannot do
    assert not list(tmp_path.glob("x.duckdb*"))  # and no log or key was made for it


def test_an_engine_never_guesses_a_missing_value_for_a_model_that_cannot_take_it(gappy):
    s, models = gappy
    f = tiny_customers(800, seed=3)
    X = f[["age", "recency_days", "clv"]].astype(float)
    linear = LogisticRegression().fit(X, (X["recency_days"] < 300).astype(int))
    plain = dict(models.models)
    plain["reactivate_20"] = PropensityModel("reactivate_20", linear, ("age", "recency_days", "clv"), "t", {},
                                             "LogisticRegression")
    engine = Engine(s, type(models)(plain))
    ok = engine.decide(Requests.from_dicts(s, [request()]))
    assert len(ok) == 1
    with pytest.raises(KlartextError, match="reactivate_20.*missing value of 'recency_days'"):
        engine.decide(Requests.from_dicts(s, [request(recency_days=None)]))


@pytest.mark.parametrize("page", ["replay", "customer", "overview", "explanations", "tradeoffs"])
def test_the_pages_show_a_decision_with_a_missing_value(gappy_log, page, monkeypatch):
    db, _, _, did = gappy_log
    monkeypatch.setenv("KLARTEXT_DB", str(db))
    at = AppTest.from_file(str(ROOT / "pages" / f"{page}.py"), default_timeout=90)
    at.run()
    if page == "replay":
        at.text_input(key="q_id").set_value(did).run()
        assert did in " ".join(h.value for h in at.header)
        shown = " ".join(str(m.value) for m in at.markdown).replace("\\", "")
        assert "Last purchase: missing" in shown and "nan" not in shown.lower(), shown
    assert not at.exception, [x.value for x in at.exception]
