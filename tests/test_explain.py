"""Explanations: exact attributions, fidelity checks, reason codes, why-A-not-B, caching."""

from __future__ import annotations

import dataclasses
import json
import math

import duckdb
import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from decision_log import explanations as store
from decision_log.replay import sample_ids
from decision_log.store import DecisionLog
from decisioning.engine import Engine
from decisioning.inputs import Requests
from decisioning.models import PropensityModel, model_matrix
from explain import figures
from explain.api import Explainer
from explain.attributions import ModelExplainer
from klartext.cli import main
from tests.conftest import request, tiny_customers

# -- a tiny log with hand-made decisions ---------------------------------------------------------

LAPSED_YOUNG = request(customer_id="young", age=22, recency_days=400, clv=1500.0)
IN_ARREARS = request(customer_id="arrears", age=50, recency_days=20, arrears_days=45)


@pytest.fixture
def tiny_log(tmp_path, tiny_strategy, tiny_engine, tiny_models):
    """A log with two hand-made web decisions and 300 random ones of the tiny shop."""
    path = tmp_path / "tiny.duckdb"
    f = tiny_customers(300, seed=7)
    items = [LAPSED_YOUNG, IN_ARREARS] + [
        {"customer_id": r.customer_id, "channel": r.channel,
         "features": {k: (v.item() if hasattr(v, "item") else v) for k, v in r._asdict().items()
                      if k not in ("customer_id", "channel", "Index")}}
        for r in f.itertuples()
    ]
    batch = tiny_engine.decide(Requests.from_dicts(tiny_strategy, items))
    with DecisionLog.open(path) as log:
        log.register_models(tiny_models)
        log.append(batch, tiny_strategy)
    return path, [str(d) for d in batch.decision_id]


# -- exactness on the demo log (the acceptance check, on the test-sized demo) -------------------------


def test_every_explained_candidate_adds_up_and_rescores_exactly(demo_copy):
    with DecisionLog.open(demo_copy) as log:
        log.con.execute("DELETE FROM explanations")  # the demo stored a sample; start from none
        ids = sample_ids(log, 1000, seed=5)
        first = Explainer(log).explain_many(ids)
        n_scored = log.con.execute(
            "SELECT count(*) FROM candidates WHERE propensity IS NOT NULL AND decision_id IN "
            "(SELECT unnest(?::VARCHAR[]))", [ids]).fetchall()[0][0]
        again = Explainer(log).explain_many(ids)
        stored = log.con.execute("SELECT count(*), max(abs(residual)), "
                                 "max(abs(propensity_rescored - propensity_logged)) FROM explanations").fetchall()[0]
    assert first["failures"] == []
    assert first["candidates_explained"] == n_scored == first["computed_now"]
    assert first["max_additivity_residual"] <= 1e-6
    assert first["max_rescore_error"] == 0.0
    assert again["computed_now"] == 0 and again["candidates_explained"] == n_scored  # read from the cache
    assert stored[0] == n_scored and stored[1] <= 1e-6 and stored[2] == 0.0


def test_a_cached_explanation_is_checked_against_the_log_again(demo_copy):
    with DecisionLog.open(demo_copy) as log:
        did, aid = log.con.execute("SELECT decision_id, action_id FROM candidates WHERE selected LIMIT 1").fetchall()[0]
        assert Explainer(log).explain(did).attributions[aid].verified  # computed and stored
        log.con.execute("UPDATE candidates SET propensity = propensity + 1e-9 WHERE decision_id = ? AND action_id = ?",
                        [did, aid])
        ca = Explainer(log).explain(did).attributions[aid]  # read from the cache
    assert not ca.verified and ca.rescore_error == pytest.approx(1e-9, rel=1e-3)


def test_only_an_explainer_on_a_read_only_log_keeps_its_explanations(demo_copy):
    with DecisionLog.open(demo_copy) as log:  # writable: every call re-reads and re-checks
        did, aid = log.con.execute("SELECT decision_id, action_id FROM candidates WHERE selected LIMIT 1").fetchall()[0]
        ex = Explainer(log)
        first = ex.explain(did)
        log.con.execute("UPDATE candidates SET propensity = propensity + 1e-9 WHERE decision_id = ? AND action_id = ?",
                        [did, aid])
        again = ex.explain(did)
        assert again is not first and first.attributions[aid].verified and not again.attributions[aid].verified
    with DecisionLog.open(demo_copy, read_only=True) as log:  # nobody can change the file while it is open
        ex = Explainer(log)
        e = ex.explain(did)
        assert ex.explain(did) is e and not e.attributions[aid].verified


def test_stored_explanation_records_how_it_was_made(demo_copy):
    with DecisionLog.open(demo_copy) as log:  # a decision with scored candidates (one that chose an action)
        did = log.con.execute("SELECT decision_id FROM decisions WHERE len(chosen_actions) > 0 "
                              "ORDER BY seq LIMIT 1 OFFSET 7").fetchall()[0][0]
        e = Explainer(log).explain(did)
        row = log.con.execute("SELECT algorithm, output, library, background, model_version FROM explanations "
                              "WHERE decision_id = ? ORDER BY action_id LIMIT 1", [did]).fetchall()[0]
        pinned = json.loads(log.con.execute("SELECT model_versions FROM decisions WHERE decision_id = ?",
                                            [did]).fetchall()[0][0])
    assert row[0] == "tree_path_dependent" and row[1] == "log_odds"
    assert row[2].startswith("shap 0.") and "scikit-learn" in row[2]
    assert row[3] is None  # path-dependent TreeSHAP needs no background
    assert all(ca.model_version == pinned[a] for a, ca in e.attributions.items())


def test_a_changed_propensity_is_reported_as_a_mismatch_not_explained(demo_copy):
    con = duckdb.connect(str(demo_copy))
    did, aid, p = con.execute("SELECT decision_id, action_id, propensity FROM candidates "
                              "WHERE selected LIMIT 1 OFFSET 17").fetchall()[0]
    con.execute("UPDATE candidates SET propensity = ? WHERE decision_id = ? AND action_id = ?", [p * 1.5, did, aid])
    con.close()
    with DecisionLog.open(demo_copy) as log:
        e = Explainer(log).explain(did)
    ca = e.attributions[aid]
    assert not ca.verified and not e.verified
    assert ca.propensity_rescored == p and ca.propensity_logged == p * 1.5
    assert "this is not the model that decided" in ca.problems[0]
    assert all(r.kind != "feature" for r in e.reasons[aid])  # no reasons from unverified attributions
    assert any(n.startswith(f"{aid}: attributions withheld") for n in e.notes)
    result = CliRunner().invoke(main, ["explain", did, "--db", str(demo_copy)])
    assert result.exit_code == 1
    assert "MISMATCH" in result.output


# -- the two SHAP algorithms ----------------------------------------------------------------------


def test_rows_at_a_split_threshold_are_explained_exactly(tiny_models, tiny_strategy):
    m = tiny_models["reactivate_20"]
    nodes = m.estimator._predictors[0][0].nodes
    split = nodes[~nodes["is_leaf"].astype(bool)][0]
    X = model_matrix(tiny_strategy, Requests.from_dicts(tiny_strategy, [request(), LAPSED_YOUNG]), m.features)
    X[:, split["feature_idx"]] = split["num_threshold"]  # exactly on the threshold
    att = ModelExplainer(m).explain(X)
    assert np.abs(att.residual).max() <= 1e-9
    np.testing.assert_array_equal(att.raw_output, m.estimator.decision_function(X))


def test_model_agnostic_explainer_is_exact_for_a_linear_model(tiny_models, tiny_strategy):
    """For a model linear in log-odds with an independent masker, the Shapley values are
    known in closed form: coef_j × (x_j − mean of the background's x_j)."""
    base = tiny_models["store_card"]
    f = tiny_customers(400, seed=3)
    f["channel"] = "web"
    X = model_matrix(tiny_strategy, Requests.from_frame(tiny_strategy, f), base.features)
    y = (X[:, base.features.index("age")] < 40).astype(int)
    est = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    model = PropensityModel("store_card", est, base.features, "fp", {}, "Pipeline")
    assert not model.log_odds_trees
    bg, rows = X[:50], X[300:305]
    att = ModelExplainer(model, background=bg, permutations=4).explain(rows)
    scale = est[0].scale_
    coef = est[-1].coef_[0] / scale
    expected = coef[None, :] * (rows - bg.mean(axis=0)[None, :])
    np.testing.assert_allclose(att.phi, expected, atol=1e-9)
    assert np.abs(att.residual).max() <= 1e-9
    assert att.algorithm == "permutation" and len(att.background) == 16


# -- reason codes ---------------------------------------------------------------------------------


def test_reason_codes_come_from_attributions_and_fired_rules(tiny_log, tiny_strategy):
    path, ids = tiny_log
    with DecisionLog.open(path) as log:
        e = Explainer(log).explain(ids[0])
    assert e.verified
    for aid in e.chosen:
        ca = e.attributions[aid]
        reasons = e.reasons[aid]
        assert 1 <= len(reasons) <= 4
        assert [r.effect for r in reasons] == sorted((r.effect for r in reasons), reverse=True)
        for r in reasons:
            if r.kind == "feature":
                assert r.effect == ca.phi[ca.features.index(r.name)] > 0
    if "store_card" in e.chosen:  # age 22 < 30 fires young_web; growth has lever 1.2
        texts = [r.text for r in e.reasons["store_card"]]
        assert "Young customers on the web like cards — weighted ×1.5 by the rule “young_web”" in texts
        assert "Business lever ×1.2 for “store card” (issue growth)" in texts


def test_reason_text_shows_the_customers_value(tiny_log):
    path, ids = tiny_log
    with DecisionLog.open(path) as log:
        e = Explainer(log).explain(ids[0])
    feature_reasons = [r for aid in e.chosen for r in e.reasons[aid] if r.kind == "feature"]
    assert feature_reasons
    phrases = {"recency_days": "Last purchase 400 days ago", "age": "Age: 22", "clv": "Lifetime value: 1,500 EUR",
               "segment": "Segment: regular", "channel": "Channel: web", "holds_card": "Holds the store card: no",
               "arrears_days": "Payment overdue: 0 days", "email_consent": "E-mail consent: yes"}
    for r in feature_reasons:
        assert r.text.startswith(phrases[r.name] + " raised the chance of accepting ")


# -- why A and not B ------------------------------------------------------------------------------


def test_why_not_a_filtered_action_names_the_rule_and_its_values(tiny_log):
    path, ids = tiny_log
    with DecisionLog.open(path) as log:
        ex = Explainer(log)
        if not ex.explain(ids[1]).chosen:
            pytest.skip("the arrears customer got no action")
        c = ex.why_not(ids[1], "pay_later")
    assert c.kind == "filtered"
    assert (c.stage, c.rule) == ("suitability", "no_credit_in_arrears")
    assert c.description == "No payment terms while a payment is overdue."
    assert c.tested == {"arrears_days": 45}
    assert c.reason == "suitability/no_credit_in_arrears: arrears_days=45 > 0"
    assert c.counterfactuals == []


def _ranked_pairs(log, ids):
    ex = Explainer(log)
    for did in ids:
        e = ex.explain(did)
        if not e.chosen:
            continue
        for r in e.candidates.itertuples():
            if r.stage == "ranked" and r.priority > 0:
                yield ex, e, r.action_id


def test_priority_decomposition_is_exact(tiny_log):
    path, ids = tiny_log
    n = 0
    with DecisionLog.open(path) as log:
        for ex, e, other in _ranked_pairs(log, ids[:60]):
            c = ex.why_not(e.decision_id, other)
            assert c.kind == "ranked_lower"
            assert math.isclose(c.log_ratio, math.log(c.priority_winner) - math.log(c.priority_other), abs_tol=0)
            assert abs(sum(t.log_ratio for t in c.terms) - c.log_ratio) <= 1e-12
            prop = next(t for t in c.terms if t.name == "propensity")
            assert abs(sum(t.log_ratio for t in c.propensity_terms) - prop.log_ratio) <= 1e-9
            n += 1
    assert n >= 10


def test_counterfactual_lever_and_weight_make_the_other_action_win_in_the_engine(tiny_log, tiny_strategy, tiny_models):
    """Re-run the real engine with the lever / weight the contrast proposes: B must now come
    first; just below the proposed lever it must not."""
    path, ids = tiny_log
    checked_lever = checked_weight = 0
    with DecisionLog.open(path) as log:
        for ex, e, other in _ranked_pairs(log, ids[:150]):
            c = ex.why_not(e.decision_id, other)
            assert c.rearbitration_reproduced
            item = {"customer_id": e.decision["customer"], "channel": e.decision["channel"], **{
                k: e.inputs[k] for k in ("features", "contacts", "rejections")}}
            b = tiny_strategy.action_index(other)

            def first_with(strategy, _item=item, _e=e):
                batch = Engine(strategy, tiny_models).decide(
                    Requests.from_dicts(strategy, [_item]), decision_ids=np.array([_e.decision_id], dtype=object))
                return tiny_strategy.action_ids[batch.chosen[0][0]] if batch.chosen[0] else None

            lever = next(cf for cf in c.counterfactuals if cf.parameter == "lever")
            if lever.needed is not None:
                assert lever.verified
                levers = tiny_strategy.levers.copy()
                levers[b] = lever.needed
                assert first_with(dataclasses.replace(tiny_strategy, levers=levers)) == other
                levers[b] = np.nextafter(lever.needed, 0) * (1 - 1e-12)
                assert first_with(dataclasses.replace(tiny_strategy, levers=levers)) != other
                checked_lever += 1
            for cf in c.counterfactuals:
                if cf.parameter in ("retention_weight", "margin_weight") and cf.needed is not None:
                    assert cf.verified
                    assert first_with(dataclasses.replace(tiny_strategy, **{cf.parameter: cf.needed})) == other
                    checked_weight += 1
    assert checked_lever >= 5 and checked_weight >= 1


def test_why_not_errors_name_the_value(tiny_log):
    path, ids = tiny_log
    with DecisionLog.open(path) as log:
        ex = Explainer(log)
        with pytest.raises(Exception) as err:
            ex.why_not(ids[0], "no_such_action")
    assert err.value.message == f"Action 'no_such_action' is not in decision {ids[0]!r}."
    assert err.value.hint == "Pick one of: newsletter, pay_later, reactivate_0, reactivate_20, store_card."


# -- global views ---------------------------------------------------------------------------------


def test_global_importance_matches_the_stored_attributions(tiny_log):
    path, ids = tiny_log
    with DecisionLog.open(path) as log:
        Explainer(log).explain_many(ids)
        con = log.con.cursor()
        imp = store.importance(con, "reactivate_20")
        by_channel = store.importance(con, "reactivate_20", by="channel")
        rows = con.execute("SELECT features, attributions FROM explanations WHERE action_id = 'reactivate_20'").fetchall()
        dep = store.dependence(con, "reactivate_20", "recency_days", keys=log.subject_keys)
    feats = rows[0][0]
    phi = np.array([r[1] for r in rows])
    expected = dict(zip(feats, np.abs(phi).mean(axis=0)))
    got = dict(zip(imp["feature"], imp["mean_abs"]))
    assert got.keys() == expected.keys()
    assert all(math.isclose(got[f], expected[f], rel_tol=1e-12) for f in feats)
    assert list(imp["mean_abs"]) == sorted(imp["mean_abs"], reverse=True)
    assert set(by_channel["segment"]) == {"web", "email"}
    assert int(by_channel.groupby("segment")["n"].first().sum()) == len(rows)
    assert len(dep) == len(rows)
    assert set(dep["phi"].round(12)) == set(phi[:, feats.index("recency_days")].round(12))


# -- CLI ------------------------------------------------------------------------------------------


def test_cli_explain_and_why_not(tiny_log):
    path, ids = tiny_log
    runner = CliRunner()
    out = runner.invoke(main, ["explain", ids[1], "--db", str(path), "--vs", "pay_later"])
    assert out.exit_code == 0, out.output
    assert "Why " in out.output and " and not pay_later?  (filtered)" in out.output
    assert "Values the rule tested: arrears_days=45" in out.output
    js = runner.invoke(main, ["explain", ids[0], "--db", str(path), "--json"])
    data = json.loads(js.output)
    assert data["verified"] is True
    assert set(data["reasons"]) == set(data["decision"]["chosen_actions"])
    bad = runner.invoke(main, ["explain", "01NOPE", "--db", str(path)])
    assert bad.exit_code == 2
    assert bad.output.splitlines()[0] == f"Error: Decision '01NOPE' is not in the log {str(path)!r}."


def test_cli_explain_sample(tiny_log):
    path, _ = tiny_log
    out = CliRunner().invoke(main, ["explain", "--sample", "100", "--db", str(path)])
    assert out.exit_code == 0, out.output
    assert "Largest additivity residual" in out.output
    assert "(limit 1e-06); largest re-scoring error 0.0e+00 (limit 1e-12)." in out.output


# -- figures --------------------------------------------------------------------------------------


def test_waterfall_bars_add_up_to_the_model_output():
    phi = np.array([0.5, -0.2, 0.1, 0.05, -0.01])
    fig = figures.attribution_waterfall(list("abcde"), phi, -1.0, -1.0 + phi.sum(), max_bars=3)
    wf = fig.data[0]
    assert list(wf.measure) == ["absolute", "relative", "relative", "relative", "relative", "total"]
    assert list(wf.y)[1:4] == ["a", "b", "c"] and wf.y[4] == "2 other features"
    assert math.isclose(sum(wf.x[:-1]), wf.x[-1], abs_tol=1e-15)


def test_contrast_and_importance_figures():
    fig = figures.contrast_bars([("propensity", 0.7), ("value", -0.3)], "A", "B")
    assert list(fig.data[0].y) == ["propensity", "value", "Priority ratio (all factors)"]
    assert math.isclose(fig.data[0].x[-1], 0.4)
    # the bars say how many times higher: e^0.7, e^-0.3, and their product e^0.4
    assert list(fig.data[0].text) == ["×2.01", "×0.74", "×1.49"]
    de = figures.contrast_bars([("Annahmechance", 0.7), ("Wert", -0.3)], "A", "B", lang="de")
    assert list(de.data[0].text) == ["×2,01", "×0,74", "×1,49"] and de.data[0].y[-1].startswith("Verhältnis")
    import pandas as pd

    imp = pd.DataFrame({"feature": ["x", "y", "z"], "mean_abs": [0.1, 0.3, 0.2]})
    assert list(figures.global_importance(imp).data[0].y) == ["y", "z", "x"]
    dep = pd.DataFrame({"x": [0.0, 1.0, 2.0], "phi": [0.1, -0.1, 0.2], "channel": ["web"] * 3})
    fig = figures.dependence(dep, "Segment", categories=["new", "regular", "vip"])
    assert list(fig.layout.xaxis.ticktext) == ["new", "regular", "vip"]
    # a few points are drawn as SVG (a WebGL context costs the browser more than it saves), thousands in WebGL
    assert fig.data[0].type == "scatter"
    many = pd.DataFrame({"x": np.arange(figures.SVG_POINTS_MAX + 1.0), "phi": 0.0, "channel": "web"})
    assert figures.dependence(many, "Segment").data[0].type == "scattergl"


def test_the_evidence_page_is_self_contained(tiny_log):
    from explain import evidence

    path, ids = tiny_log
    with DecisionLog.open(path) as log:
        ev = evidence.evidence(log, Explainer(log), ids[1], "tester")
    html = evidence.to_html(ev)
    assert html.startswith("<!doctype html>") and "Replay verified" in html
    assert "<script" not in html and "http" not in html.replace("http-equiv", "")  # nothing fetched, nothing run
    assert "suitability/no_credit_in_arrears: arrears_days=45 &gt; 0" in html


def test_the_next_replica_explains_with_the_models_and_explainers_built_before(demo_log):
    # beside a running service each live replica is a new log: it rebuilt every model and SHAP
    # explainer the replay needed (1.2 s a decision on 10M), though built from the same rows
    with DecisionLog.open(demo_log, read_only=True) as a, DecisionLog.open(demo_log, read_only=True) as b:
        did = a.con.execute("SELECT decision_id FROM decisions WHERE chosen_action IS NOT NULL "
                            "ORDER BY seq DESC LIMIT 1").fetchall()[0][0]
        first, second = Explainer(a), Explainer(b)
        e1, e2 = first.explain(did), second.explain(did)
        assert e1.chosen and e1.attributions.keys() == e2.attributions.keys()
        for aid, ca in e1.attributions.items():
            assert ca.verified and ca.phi.tolist() == e2.attributions[aid].phi.tolist()
        shared = [k for k in first._explainers if first._explainers[k] is second._explainers.get(k)]
        assert shared and len(shared) == len(first._explainers)  # the demo's models are boosted trees
