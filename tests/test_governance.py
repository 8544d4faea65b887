"""The governance report (#20): the planted drift and disparity are found and nothing else,
the clean scenario is calm, and each figure is recomputed here by independent SQL or numpy."""

import json
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

from analysis import governance as gv
from decision_log.store import DecisionLog
from decisioning import stability
from decisioning.errors import StrategyError
from decisioning.scenarios import retail
from decisioning.strategy import parse_strategy
from klartext.cli import main
from klartext.jobs import run_demo

N = 8000
ROOT = Path(__file__).resolve().parent.parent


def _period(db):
    with DecisionLog.open(db, read_only=True) as log:
        first, last = log.con.execute("SELECT min(ts)::DATE, max(ts)::DATE FROM decisions").fetchall()[0]
    return gv.Period(first + timedelta(days=14), last)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    db = str(tmp_path_factory.mktemp("gov") / "planted.duckdb")
    run_demo(db, N, seed=3, history_per_action=1500, plant=("drift", "disparity"))
    with DecisionLog.open(db, read_only=True) as log:
        rep = gv.build(log, _period(db), "previous")
    return db, rep


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    db = str(tmp_path_factory.mktemp("gov") / "clean.duckdb")
    run_demo(db, N, seed=3, history_per_action=1500)
    with DecisionLog.open(db, read_only=True) as log:
        rep = gv.build(log, _period(db), "previous")
    return db, rep


def test_planted_drift_and_disparity_are_found_and_nothing_else(planted):
    _, rep = planted
    kinds = {(a["kind"], a.get("feature") or a.get("attribute")) for a in rep["attention"] if a["kind"] != "score_drift"}
    assert kinds == {("input_drift", "avg_order_value"), ("fairness", "gender")}, kinds
    # a model whose score moved with it is flagged only with the shifted input as its cause
    for a in rep["attention"]:
        if a["kind"] == "score_drift":
            assert a["inputs"] == ["Average order value"], a
    gender = next(f for f in rep["fairness"] if f["attribute"] == "gender")
    inc = next(m for m in gender["metrics"] if m["metric"] == "incentive_rate")
    assert inc["flagged"] and inc["highest"] == "female" and inc["ratio_high"] < 0.8
    # the disparity came with a strategy change, and the report names the field
    (change,) = rep["changes"]
    assert [c["field"] for c in change["changes"]] == ["context_weights.voucher_push_for_women"]
    inc_effect = next(e for e in change["effect"] if e["metric"] == "incentive_offered")
    assert inc_effect["low"] > 0  # the incentive value shown per decision rose, and the interval says so


def test_the_clean_scenario_flags_nothing(clean):
    _, rep = clean
    assert rep["attention"] == []
    assert rep["changes"] == []
    assert rep["integrity"]["ok"]
    assert rep["compliance"]["recheck"]["violations"] == 0 and rep["compliance"]["recheck"]["contacts_checked"] > 1000
    assert all(c["breaches"] == 0 for c in rep["compliance"]["contact_limits"])


def test_headline_figures_recomputed_by_sql(planted):
    db, rep = planted
    start, stop = _period(db).bounds
    strategy = retail.load_demo_strategy()
    cost = {a.id: a.incentive_cost for a in strategy.actions}
    with DecisionLog.open(db, read_only=True) as log:
        con = log.con
        d = con.execute("SELECT count(*), count(DISTINCT customer), count(chosen_action) FROM decisions "
                        "WHERE ts >= ? AND ts < ?", [start, stop]).fetchall()[0]
        o = con.execute("""SELECT o.action_id, o.outcome, o.margin FROM outcomes o JOIN decisions d USING (decision_id)
                           WHERE d.ts >= ? AND d.ts < ? AND o.action_id IS NOT NULL""", [start, stop]).df()
    cur = rep["kpis"]["current"]
    assert (cur["decisions"], cur["customers"], cur["with_action"]) == d
    assert cur["with_outcome"] == len(o)
    assert cur["accepted"] == int((o["outcome"] == "accepted").sum())
    assert cur["acceptance_rate"] == pytest.approx((o["outcome"] == "accepted").mean())
    assert cur["margin"] == pytest.approx(o["margin"].sum(), rel=1e-9)
    spend = sum(cost[a] for a in o.loc[o["outcome"] == "accepted", "action_id"])
    assert cur["incentive_spend"] == pytest.approx(spend, rel=1e-9)
    by_issue = {r["key"]: r["contacts"] for r in rep["by_issue"]}
    issue = {a.id: a.issue for a in strategy.actions}
    assert by_issue == o["action_id"].map(issue).value_counts().to_dict()


def test_model_auc_and_positives_recomputed(planted):
    db, rep = planted
    start, stop = _period(db).bounds
    m = next(x for x in rep["models"] if x["auc"] is not None)
    with DecisionLog.open(db, read_only=True) as log:
        rows = log.con.execute("""
            SELECT c.propensity, o.outcome = 'accepted' FROM candidates c JOIN outcomes o
              ON o.decision_id = c.decision_id AND o.action_id = c.action_id
            WHERE c.selected AND c.action_id = ? AND c.ts >= ? AND c.ts < ?""", [m["action_id"], start, stop]).fetchall()
    p, y = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
    assert m["auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["positives"] == y.sum() and m["shown_with_outcome"] == len(y)
    assert m["mean_predicted"] == pytest.approx(p.mean())
    assert m["auc_low"] < m["auc"] < m["auc_high"]


def test_input_psi_and_fairness_recomputed_from_the_opened_inputs(planted):
    db, rep = planted
    period = _period(db)
    with DecisionLog.open(db, read_only=True) as log:
        def inputs(p):
            rows = log.con.execute("SELECT decision_id, customer, inputs::VARCHAR FROM decisions WHERE ts >= ? "
                                   "AND ts < ? ORDER BY seq", list(p.bounds)).fetchall()
            docs = log.open_inputs([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
            return pd.DataFrame([json.loads(x)["features"] for x in docs]).assign(decision_id=[r[0] for r in rows])
        cur, prev = inputs(period), inputs(period.previous())
        chosen = log.con.execute("SELECT decision_id, chosen_actions FROM decisions WHERE ts >= ? AND ts < ?",
                                 list(period.bounds)).df()
    # PSI of the average order value, ten bins at the earlier period's deciles
    edges = np.unique(np.quantile(prev["avg_order_value"], np.linspace(0.1, 0.9, 9)))
    e = np.bincount(np.searchsorted(edges, prev["avg_order_value"]), minlength=len(edges) + 1) / len(prev)
    a = np.bincount(np.searchsorted(edges, cur["avg_order_value"]), minlength=len(edges) + 1) / len(cur)
    e, a = np.maximum(e, 1e-4), np.maximum(a, 1e-4)
    mine = float(np.sum((a - e) * np.log(a / e)))
    got = next(r for r in rep["inputs"] if r["feature"] == "avg_order_value")
    assert got["psi"] == pytest.approx(mine, rel=1e-9) and got["band"] == "alert"
    # the incentive rate per gender, by pandas
    strategy = retail.load_demo_strategy()
    incentive = {a.id for a in strategy.actions if a.incentive_cost > 0}
    chosen["incentive"] = [bool(set(x) & incentive) for x in chosen["chosen_actions"]]
    both = cur.merge(chosen, on="decision_id")
    rates = both.groupby("gender")["incentive"].mean()
    gender = next(f for f in rep["fairness"] if f["attribute"] == "gender")
    for g in gender["groups"]:
        assert g["incentive_rate"] == pytest.approx(rates[g["group"]])
        assert g["decisions"] == int((both["gender"] == g["group"]).sum())
    m = next(x for x in gender["metrics"] if x["metric"] == "incentive_rate")
    judged = [g["group"] for g in gender["groups"] if g["judged"]]
    assert m["ratio"] == pytest.approx(rates[judged].min() / rates[judged].max())


def test_contact_limit_breaches_counted_like_a_loop_would(planted):
    db, rep = planted
    start, stop = _period(db).bounds
    with DecisionLog.open(db, read_only=True) as log:
        d = log.con.execute("SELECT customer, channel, ts FROM decisions WHERE chosen_action IS NOT NULL "
                            "ORDER BY ts").df()
    strategy = retail.load_demo_strategy()
    for lim in strategy.contact_limits:
        sub = d[d["channel"] == lim.channel]
        breaches = contacts = 0
        for _, grp in sub.groupby("customer"):
            ts = grp["ts"].tolist()
            for i, t in enumerate(ts):
                if t >= pd.Timestamp(start):
                    contacts += 1
                    window = sum(1 for u in ts[:i + 1] if t - u <= pd.Timedelta(days=lim.period_days))
                    breaches += window > lim.max_contacts
        got = next(c for c in rep["compliance"]["contact_limits"] if c["channel"] == lim.channel)
        assert (got["contacts"], got["breaches"]) == (contacts, breaches)


def test_integrity_is_the_verify_result(planted):
    db, rep = planted
    with DecisionLog.open(db, read_only=True) as log:
        res = log.verify()
    assert rep["integrity"]["ok"] and rep["integrity"]["head"] == res.head_hash


def test_the_cli_writes_the_report_in_both_languages(planted, tmp_path):
    db, _ = planted
    period = _period(db)
    for lang, words in (("en", ["Governance report", "need attention", "Gender", "Average order value"]),
                        ("de", ["Steuerungsbericht", "brauchen Aufmerksamkeit", "unter vier Fünfteln",
                                "Anhang: Methoden und Definitionen"])):
        out = tmp_path / f"r_{lang}.pdf"
        res = CliRunner().invoke(main, ["report", "--db", db, "--from", str(period.start), "--to", str(period.end),
                                        "--lang", lang, "--out", str(out)])
        assert res.exit_code == 0, res.output
        assert "finding(s) need attention" in res.output
        text = subprocess.run(["pdftotext", str(out), "-"], capture_output=True, text=True, check=True).stdout
        for w in words:
            assert w in text, w
        pages = subprocess.run(["pdftoppm", "-r", "30", "-png", str(out), str(tmp_path / f"p{lang}")], check=True)
        assert pages.returncode == 0 and len(list(tmp_path.glob(f"p{lang}*.png"))) >= 5
    html = tmp_path / "r.html"
    res = CliRunner().invoke(main, ["report", "--db", db, "--from", str(period.start), "--out", str(html)])
    assert res.exit_code == 0, res.output
    page = html.read_text()
    assert "<script" not in page and page.count("<svg") >= 5 and "http://" not in page.replace(
        "http://www.w3.org", "")


def test_report_refuses_a_period_without_decisions(planted, tmp_path):
    db, _ = planted
    res = CliRunner().invoke(main, ["report", "--db", db, "--from", "2020-01-01", "--to", "2020-01-31",
                                    "--out", str(tmp_path / "x.html")])
    assert res.exit_code == 2
    assert "No decision of a Klartext strategy between 2020-01-01 and 2020-01-31" in res.output
    assert "pick dates in that range" in res.output
    assert not (tmp_path / "x.html").exists()


def test_psi_and_bins():
    rng = np.random.default_rng(0)
    a = rng.normal(size=50_000)
    spec = stability.bins(a, False)
    assert len(spec["edges"]) == 9 and spec["share"][-1] == 0
    assert stability.psi(spec["share"], stability.shares(rng.normal(size=50_000), spec)) < 0.01
    assert stability.psi(spec["share"], stability.shares(rng.normal(1, 1, 50_000), spec)) > 0.25
    d = stability.bins(np.array([0.0, 1, 1, 2]), True)
    assert d["values"] == [0.0, 1.0, 2.0] and d["share"] == [0.25, 0.5, 0.25, 0.0]


def test_group_bootstrap_matches_row_resampling():
    rng = np.random.default_rng(1)
    x = rng.choice([0.0, 4.25, 8.5], size=3000, p=[0.8, 0.15, 0.05])
    fast = gv.group_boot(x, 4000, np.random.default_rng(2))
    slow = np.array([x[rng.integers(0, len(x), len(x))].mean() for _ in range(4000)])
    assert fast.mean() == pytest.approx(slow.mean(), rel=0.01)
    assert fast.std() == pytest.approx(slow.std(), rel=0.08)


def test_models_keep_their_training_distribution(planted):
    db, _ = planted
    with DecisionLog.open(db, read_only=True) as log:
        metrics = json.loads(log.con.execute("SELECT metrics FROM models LIMIT 1").fetchall()[0][0])
    ref = metrics["reference"]
    assert "(score)" in ref and "avg_order_value" in ref and "gender" not in ref  # no model reads gender
    assert sum(ref["avg_order_value"]["share"]) == pytest.approx(1.0)


@pytest.mark.parametrize("patch, message", [
    ("      gender: {feature: gender}", None),
    ("      gender: {feature: nope}", "unknown feature 'nope'"),
    ("      gender: {feature: age}", "bands"),
    ("      gender: {feature: age, bands: [30, 20]}", "are not at least two rising lower bounds"),
    ("      gender: {feature: gender, flag: false}", "needs a note saying why"),
    ("      gender: {feature: email_consent}", "is a boolean feature"),
])
def test_strategy_governance_section_is_checked(patch, message):
    text = retail.strategy_path().read_text().replace("      gender: {feature: gender}", patch)
    if message is None:
        assert parse_strategy(text).governance.attributes[0].name == "gender"
        return
    with pytest.raises(StrategyError, match=message):
        parse_strategy(text)


def test_no_chromium_gives_a_next_step(monkeypatch, planted):
    import kaleido

    from explain import report

    def broken(*a, **k):
        raise RuntimeError("no browser found")
    monkeypatch.setattr(kaleido, "start_sync_server", broken)
    _, rep = planted
    with pytest.raises(Exception, match="apt-get install chromium"):
        report.svgs(report.figures(rep, "en"))
    assert shutil.which("pdftotext")


# -- the dashboard's pages ---------------------------------------------------------------------------


def _page(path, db, monkeypatch, period):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_data.clear()
    st.cache_resource.clear()
    monkeypatch.setenv("KLARTEXT_DB", str(db))
    at = AppTest.from_file(str(ROOT / path), default_timeout=120)
    at.session_state["gov_period"] = (period.start, period.end)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_report_page_shows_the_findings_and_makes_the_pdf(planted, monkeypatch):
    db, rep = planted
    at = _page("pages/report.py", db, monkeypatch, _period(db))
    assert at.title[0].value == "Governance report"
    findings = at.error[0].value
    assert "Average order value" in findings and "Gender" in findings
    at.button(key="gov_prepare_pdf").click().run()
    assert not at.exception
    assert at.get("download_button")[0].proto.label.startswith("Download the report (PDF")


def test_fairness_page_flags_gender_and_lists_the_decisions_behind(planted, monkeypatch):
    db, rep = planted
    at = _page("pages/fairness.py", db, monkeypatch, _period(db))
    assert at.radio(key="fair_attr").value == "gender"
    assert any("below four-fifths" in e.value for e in at.error)
    at.selectbox(key="fair_group").set_value("female").run()
    at.selectbox(key="fair_metric").set_value("incentive_rate").run()
    assert not at.exception
    rows = at.dataframe[-1].value
    gender = next(f for f in rep["fairness"] if f["attribute"] == "gender")
    female = next(g for g in gender["groups"] if g["group"] == "female")
    assert len(rows) == min(200, round(female["incentive_rate"] * female["decisions"]))
    # the region shows no finding
    at.radio(key="fair_attr").set_value("region").run()
    assert not at.exception and not at.error


def test_model_health_page_shows_a_models_calibration_and_offers(planted, monkeypatch):
    db, rep = planted
    at = _page("pages/model_health.py", db, monkeypatch, _period(db))
    assert at.title[0].value == "Model health"
    aid = next(m["action_id"] for m in rep["models"] if m["auc"] is not None)
    at.selectbox(key="mh_model").set_value(aid).run()
    assert not at.exception
    offers = at.dataframe[-1].value
    assert len(offers) and set(offers["outcome"].dropna()) <= {"accepted", "rejected", "ignored"}


def test_strategy_change_effect_and_rules_fired_recomputed(planted):
    db, rep = planted
    start, stop = _period(db).bounds
    (change,) = rep["changes"]
    first = pd.Timestamp(change["first"])
    since = first - (pd.Timestamp(stop) - first)
    strategy = retail.load_demo_strategy()
    cost = {a.id: a.incentive_cost for a in strategy.actions}
    with DecisionLog.open(db, read_only=True) as log:
        d = log.con.execute("SELECT decision_id, strategy_version, ts, chosen_action, chosen_actions FROM decisions "
                            "WHERE ts >= ? AND ts < ?", [since, stop]).df()
        o = log.con.execute("SELECT decision_id, action_id, outcome FROM outcomes").df()
        fired = log.con.execute("SELECT rule, count(*) FROM candidates WHERE stage = 'suitability' AND ts >= ? "
                                "AND ts < ? GROUP BY rule", [start, stop]).fetchall()
    acc = o[o["outcome"] == "accepted"]
    spend = acc.assign(c=acc["action_id"].map(cost)).groupby("decision_id")["c"].sum()
    d["incentive"] = d["decision_id"].map(spend).fillna(0.0)
    before = d[(d["strategy_version"] == change["previous"]) & (d["ts"] < first)]
    after = d[(d["strategy_version"] == change["version"]) & (d["ts"] >= first)]
    shown = {a.id: a.incentive_cost for a in strategy.actions}
    d["offered_value"] = [sum(shown.get(a, 0.0) for a in x) for x in d["chosen_actions"]]
    eff = next(e for e in change["effect"] if e["metric"] == "incentive")
    assert (change["decisions_before"], change["decisions_after"]) == (len(before), len(after))
    assert eff["before"] == pytest.approx(before["incentive"].mean()) and eff["after"] == pytest.approx(
        after["incentive"].mean())
    shown_eff = next(e for e in change["effect"] if e["metric"] == "incentive_offered")
    after_v = d.loc[after.index, "offered_value"]
    assert shown_eff["after"] == pytest.approx(after_v.mean())
    off = next(e for e in change["effect"] if e["metric"] == "offered")
    assert off["after"] == pytest.approx(after["chosen_action"].notna().mean())
    got = {r["rule"]: r["candidates"] for r in rep["compliance"]["rules_fired"] if r["stage"] == "suitability"}
    assert got == dict(fired)


# -- integrity at report time: from the newest full verification ------------------------------------


def test_report_integrity_starts_from_the_last_full_verify_and_catches_later_edits(planted, tmp_path):
    import duckdb

    from tests.conftest import copy_log

    src, _ = planted
    db = str(tmp_path / "v.duckdb")
    copy_log(src, db)
    period = _period(db)
    with DecisionLog.open(db, read_only=True) as log:
        first = gv._integrity(log, full=False, via="cli")
    assert first["mode"] in ("full", "since") and first["ok"]
    # a full verification is recorded; the next report starts from it
    with DecisionLog.open(db, read_only=True) as log:
        log.verify_and_record("auditor", "cli")
        again = gv._integrity(log, full=False, via="cli")
    assert again["mode"] == "since" and again["ok"] and again["anchor"]["by"] == "auditor"
    assert again["anchor"]["added"] == 0
    # an outcome reported after it, then changed: found by the check from the anchor
    with DecisionLog.open(db) as log:
        did, aid = log.con.execute("SELECT decision_id, action_id FROM candidates WHERE NOT selected "
                                   "ORDER BY decision_id DESC LIMIT 1").fetchall()[0]
        log.append_outcomes(pd.DataFrame({"decision_id": [did], "action_id": [aid], "outcome": ["accepted"],
                                          "revenue": [50.0], "margin": [10.0], "churned": [False],
                                          "ts_us": [int(pd.Timestamp(period.end).timestamp() * 1e6)]}))
    con = duckdb.connect(db)
    con.execute("UPDATE outcomes SET margin = 1000 WHERE decision_id = ? AND action_id = ?", [did, aid])
    con.close()
    with DecisionLog.open(db, read_only=True) as log:
        bad = gv._integrity(log, full=False, via="cli")
    assert not bad["ok"] and bad["mode"] == "since" and bad["table"] == "outcomes"
    # a chain rebuilt through the verified head: found without re-reading the old records
    db2 = str(tmp_path / "w.duckdb")
    copy_log(src, db2)
    with DecisionLog.open(db2, read_only=True) as log:
        log.verify_and_record("auditor", "cli")
    con = duckdb.connect(db2)
    con.execute("UPDATE chain SET chain_hash = repeat('0', 64) WHERE seq = (SELECT max(seq) FROM chain)")
    con.close()
    with DecisionLog.open(db2, read_only=True) as log:
        res = gv._integrity(log, full=False, via="cli")
    assert not res["ok"] and "no longer passes through the head verified earlier" in res["problem"]


def test_an_old_row_edit_needs_the_full_verification(planted, tmp_path):
    import duckdb

    from tests.conftest import copy_log

    src, _ = planted
    db = str(tmp_path / "o.duckdb")
    copy_log(src, db)
    with DecisionLog.open(db, read_only=True) as log:
        log.verify_and_record("auditor", "cli")
    con = duckdb.connect(db)
    con.execute("UPDATE decisions SET channel = CASE WHEN channel = 'sms' THEN 'email' ELSE 'sms' END WHERE seq = 5")
    con.close()
    with DecisionLog.open(db, read_only=True) as log:
        assert gv._integrity(log, full=False, via="cli")["ok"]  # what the anchored check says it does not see
        full = gv._integrity(log, full=True, via="cli")
    assert not full["ok"] and full["mode"] == "full" and "was changed" in full["problem"]
